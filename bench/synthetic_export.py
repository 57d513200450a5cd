#!/usr/bin/env python3
"""Writes a facekit gallery export (JSON Lines) of synthetic people for scale benchmarks.

  bench/synthetic_export.py OUT --people 200000 --per 5 [--dim 128] [--embedder dlib_resnet --version 1.7.15]

Each person has a random unit centre; their templates are the centre plus Gaussian noise (sigma 0.035 per
value, about 0.4 from the centre before normalising), normalised. Seeded.
"""
import argparse
import base64
import json

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--people", type=int, default=200000)
ap.add_argument("--per", type=int, default=5)
ap.add_argument("--dim", type=int, default=128)
ap.add_argument("--embedder", default="dlib_resnet")
ap.add_argument("--version", default="1.7.15")
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
rng = np.random.default_rng(a.seed)
with open(a.out, "w") as f:
    f.write(json.dumps({"format": "facekit-gallery-export", "version": 2, "gallery_uuid": "synthetic", "revision": 0,
                        "people": a.people, "templates": a.people * a.per}) + "\n")
    chunk = 10000
    for start in range(0, a.people, chunk):
        n = min(chunk, a.people - start)
        centres = rng.standard_normal((n, a.dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        t = centres[:, None, :] + rng.standard_normal((n, a.per, a.dim)).astype(np.float32) * 0.035
        t /= np.linalg.norm(t, axis=2, keepdims=True)
        t = t.astype("<f4")
        for i in range(n):
            tpl = [{"embedder": a.embedder, "embedder_version": a.version, "quality": 1.0, "kind": "synthetic",
                    "embedding": base64.b64encode(t[i, k].tobytes()).decode()} for k in range(a.per)]
            f.write(json.dumps({"name": f"syn{start + i}", "templates": tpl}) + "\n")
