#!/usr/bin/env bash
# On a lent GPU machine (the device tool, with .gpu carried): builds facekit_gpu_bench against the machine's CUDA
# libtorch and runs it on the GPU (every arithmetic, batch 1 to 512) and, for a same-machine baseline, on its CPU.
#   bench/gpu/run.sh OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
out=$1
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
  lscpu | grep -E "Model name|^CPU\(s\)"; g++ --version | head -1; } > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
if ! bench/gpu/build.sh /tmp/gb .gpu/include > "$out/build.log" 2>&1; then tail -40 "$out/build.log"; exit 1; fi
tail -1 "$out/build.log"
args="--data .gpu/data --models .gpu/models --manifests share/models"
timeout 300 /tmp/gb/facekit_gpu_bench $args --device cuda --precisions fp32,tf32,fp16,bf16 --batches 1,16,128,512 \
  --json "$out/gpu.json" 2>&1 | tee "$out/gpu.log"
# The same networks on this machine's CPU (fp32, all its cores), for a same-machine ratio.
cores=$(nproc)
timeout 150 /tmp/gb/facekit_gpu_bench $args --device cpu --threads "$cores" --precisions fp32 --batches 1,16 \
  --graphs blazeface-back --json "$out/cpu.json" 2>&1 | tee "$out/cpu.log"
