#!/usr/bin/env python3
"""Golden outputs for facekit's TFLite reader (tests/reference/test_tflite_parity.cpp), computed independently:
this script parses the flatbuffer itself and runs the float ops in numpy (float64), sharing no code with
facekit's reader or its graph runtime.

    python3 tests/data/tflite/reference.py models/expo/MobileFaceNet.tflite tests/data/tflite/MobileFaceNet

Input: a batch of two ramps, x0[i] = -1 + 2 * ((i * 7919) % 1000) / 999 over the NHWC input, x1 = -0.5 * x0.
Writes meta.json (shapes, sha256 of the model) and output.f32 (the first output, float32, row-major)."""
import hashlib
import json
import os
import struct
import sys

import numpy as np


class Table:
    def __init__(self, buf, pos):
        self.b, self.pos = buf, pos
        self.vt = pos - struct.unpack_from('<i', buf, pos)[0]
        self.vlen = struct.unpack_from('<H', buf, self.vt)[0]

    def _off(self, f):
        o = 4 + 2 * f
        return struct.unpack_from('<H', self.b, self.vt + o)[0] if o < self.vlen else 0

    def scalar(self, f, fmt, default=0):
        o = self._off(f)
        return struct.unpack_from('<' + fmt, self.b, self.pos + o)[0] if o else default

    def table(self, f):
        o = self._off(f)
        if not o:
            return None
        p = self.pos + o
        return Table(self.b, p + struct.unpack_from('<I', self.b, p)[0])

    def vector(self, f):
        o = self._off(f)
        if not o:
            return 0, 0
        p = self.pos + o
        p += struct.unpack_from('<I', self.b, p)[0]
        return p + 4, struct.unpack_from('<I', self.b, p)[0]

    def tables(self, f):
        p, n = self.vector(f)
        return [Table(self.b, p + 4 * i + struct.unpack_from('<I', self.b, p + 4 * i)[0]) for i in range(n)]

    def ints(self, f):
        p, n = self.vector(f)
        return list(struct.unpack_from('<%di' % n, self.b, p)) if n else []


def run(model_path, x):
    buf = open(model_path, 'rb').read()
    model = Table(buf, struct.unpack_from('<I', buf, 0)[0])
    codes = [max(c.scalar(0, 'b'), c.scalar(3, 'i')) for c in model.tables(1)]
    sg = model.tables(2)[0]
    tensors, buffers = sg.tables(0), model.tables(4)

    def const(i):
        p, n = buffers[tensors[i].scalar(2, 'I')].vector(0)
        if not n:
            return None
        dtype = {0: np.float32, 2: np.int32}[tensors[i].scalar(1, 'b')]
        return np.frombuffer(buf[p:p + n], dtype=dtype).reshape(tensors[i].ints(0)).astype(np.float64)

    def conv(x, w, b, sh, sw, same, depthwise):
        kh, kw = w.shape[1:3]
        if same:
            h, wd = x.shape[1:3]
            ph = max((-(-h // sh) - 1) * sh + kh - h, 0)
            pw = max((-(-wd // sw) - 1) * sw + kw - wd, 0)
            x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        n, h, wd, c = x.shape
        oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
        taps = [x[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] for i in range(kh) for j in range(kw)]
        if depthwise:
            m = w.shape[3] // c
            return sum(np.repeat(t, m, axis=3) * w[0, k // kw, k % kw, :] for k, t in enumerate(taps)) + b
        cols = np.stack(taps, axis=3).reshape(n, oh, ow, kh * kw * c)
        return cols @ w.reshape(w.shape[0], -1).T + b

    def activation(y, a):
        return np.maximum(y, 0) if a == 1 else np.clip(y, 0, 6) if a == 3 else y

    values = {sg.ints(1)[0]: x.astype(np.float64)}
    get = lambda i: values[i] if i in values else const(i)
    for op in sg.tables(3):
        code, ins, out, opt = codes[op.scalar(0, 'I')], op.ints(1), op.ints(2)[0], op.table(4)
        if code in (3, 4):  # CONV_2D, DEPTHWISE_CONV_2D
            dw = code == 4
            b = const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else 0
            y = conv(get(ins[0]), const(ins[1]), b, opt.scalar(2, 'i'), opt.scalar(1, 'i'), opt.scalar(0, 'b') == 0, dw)
            y = activation(y, opt.scalar(4 if dw else 3, 'b'))
        elif code in (0, 41, 18):  # ADD, SUB, MUL
            a, b = get(ins[0]), get(ins[1])
            y = activation(a + b if code == 0 else a - b if code == 41 else a * b, opt.scalar(0, 'b') if opt else 0)
        elif code == 19:
            y = np.maximum(get(ins[0]), 0)
        elif code == 101:
            y = np.abs(get(ins[0]))
        elif code == 22:
            y = get(ins[0]).reshape([x.shape[0]] + tensors[out].ints(0)[1:])
        else:
            raise SystemExit('op %d is not in this reference' % code)
        values[out] = y
    return values[sg.ints(2)[0]]


def main():
    model_path, out_dir = sys.argv[1], sys.argv[2]
    buf = open(model_path, 'rb').read()
    # The input's shape from the file, its batch replaced by 2.
    model = Table(buf, struct.unpack_from('<I', buf, 0)[0])
    sg = model.tables(2)[0]
    in_shape = sg.tables(0)[sg.ints(1)[0]].ints(0)[1:]
    n = int(np.prod(in_shape))
    i = np.arange(n, dtype=np.int64)
    x0 = (-1 + 2 * ((i * 7919) % 1000) / 999).astype(np.float32).reshape(in_shape)
    x = np.stack([x0, (-0.5 * x0).astype(np.float32)])
    y = run(model_path, x)
    os.makedirs(out_dir, exist_ok=True)
    y.astype(np.float32).tofile(os.path.join(out_dir, 'output.f32'))
    meta = {'model_sha256': hashlib.sha256(buf).hexdigest(), 'input_shape': [2] + in_shape,
            'output_shape': list(y.shape), 'made_by': 'tests/data/tflite/reference.py (numpy %s)' % np.__version__}
    json.dump(meta, open(os.path.join(out_dir, 'meta.json'), 'w'), indent=1)
    print(meta, 'norms', np.linalg.norm(y, axis=1))


if __name__ == '__main__':
    main()
