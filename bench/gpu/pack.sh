#!/usr/bin/env bash
# Packs what a lent GPU machine needs for bench/gpu/run.sh into .gpu/ (ignored by git; name it in the device
# tool's `carry`): OpenCV core and nlohmann-json headers from this machine, the model files of the networks
# measured, and the chips + CPU reference embeddings that facekit_gpu_prepare makes from LFW pairs.
#   bench/gpu/pack.sh [LFW_DIR] [PAIRS_N]     (default ../shared/data/lfw, 256 pairs = 512 chips)
set -euo pipefail
cd "$(dirname "$0")/../.."
lfw=${1:-../shared/data/lfw}
n=${2:-256}
rm -rf .gpu && mkdir -p .gpu/include/opencv4/opencv2 .gpu/models/face-api .gpu/models/human-models
cp -r /usr/include/opencv4/opencv2/core /usr/include/opencv4/opencv2/core.hpp \
  /usr/include/opencv4/opencv2/opencv_modules.hpp .gpu/include/opencv4/opencv2/
cp -r /usr/include/nlohmann .gpu/include/
cp models/face-api/face_recognition_model* models/face-api/face_landmark_68_model* models/face-api/ssd_mobilenetv1_model* .gpu/models/face-api/
cp models/human-models/blazeface-back.* models/human-models/facemesh.json models/human-models/facemesh.bin .gpu/models/human-models/
root=$lfw; [ -d "$lfw/images" ] && root=$lfw/images
FACEKIT_DATA=share FACEKIT_MODELS=models build/bench/facekit_gpu_prepare --root "$root" --pairs "$lfw/pairs.txt" \
  --pairs-n "$n" --out .gpu/data
du -sh .gpu
