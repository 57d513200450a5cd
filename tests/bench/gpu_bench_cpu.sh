#!/usr/bin/env bash
# bench/gpu_bench.cpp's network path (the library's network code alone, as bench/gpu/build.sh builds it for a GPU
# machine) reproduces the library's own embeddings: on this machine's CPU, for 16 LFW chips made by
# facekit_gpu_prepare, every cosine is 1 to 1e-5 and no pair is decided differently. Skips (77) without LFW.
#   gpu_bench_cpu.sh PREPARE_BIN BENCH_BIN SOURCE_DIR
set -euo pipefail
prepare=$1 bench=$2 src=$3
lfw=$src/../shared/data/lfw
[ -f "$lfw/pairs.txt" ] || { echo "LFW not found at $lfw: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
FACEKIT_DATA=$src/share FACEKIT_MODELS=${FACEKIT_MODELS:-$src/models} \
  "$prepare" --root "$lfw" --pairs "$lfw/pairs.txt" --pairs-n 8 --out "$tmp/data"
models=${FACEKIT_MODELS:-$src/models}
"$bench" --data "$tmp/data" --models "$models" --manifests "$src/share/models" --device cpu --precisions fp32 \
  --batches 1 --graphs blazeface-back --json "$tmp/out.json"
/usr/bin/python3 - "$tmp/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
e = r["embedder"][0]
assert r["chips"] == 16 and r["pairs"] == 8, r
assert e["cosine_min"] >= 0.99999, e
assert e["decisions_changed"] == 0, e
assert e["speed"][0]["chips_per_s"] > 0 and r["landmarks"] and r["graphs"], r
print("ok: cosine min", e["cosine_min"])
PY
