#!/usr/bin/env bash
# The clustering figures of docs/clustering.md: every method across thresholds on LFW (all, DevTrain people, DevTest
# people, people with 10+ photos), cfp-dev (all, frontal only) and greyscale and half-size copies of cfp-dev.
#   bench/cluster_measure.sh [DATA (../shared/data)] [WORK ($TMPDIR/facekit_cluster)]
# Scans are cached in WORK (LFW's takes ~4 min on 2 cores, cfp-dev's ~1 min each); reruns take ~5 min.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:-$root/../shared/data}" && pwd)
work=${2:-${TMPDIR:-/tmp}/facekit_cluster}
fk=$root/build/facekit
lfw=$data/lfw
cfp=$data/cfp-dev/images
mkdir -p "$work"
[ -d "$work/cfp_grey" ] || "$root/build/bench/facekit_photo_variants" "$cfp" "$work/cfp_grey" grey
[ -d "$work/cfp_half" ] || "$root/build/bench/facekit_photo_variants" "$cfp" "$work/cfp_half" half
T=0.26,0.28,0.30,0.32,0.33,0.34,0.35,0.36,0.38,0.40,0.42
run() {  # NAME CACHE PATHS...
  local name=$1 cache=$2
  shift 2
  "$fk" bench cluster "$@" --cache "$cache" --thresholds $T --json "$work/$name.json" > "$work/$name.txt"
  "$fk" bench cluster "$@" --cache "$cache" --thresholds $T --methods agglomerative --size-allowance 0 \
    --json "$work/${name}_plain.json" > "$work/${name}_plain.txt"
  echo "$name: $work/$name.txt"
}
people() { tail -n +2 "$lfw/$1" | awk -v L="$lfw" '{print L "/" $1}'; }
mapfile -t train < <(people peopleDevTrain.txt)
mapfile -t test < <(people peopleDevTest.txt)
mapfile -t ten < <(for d in "$lfw"/*/; do [ "$(ls "$d" | wc -l)" -ge 10 ] && echo "${d%/}"; done)
mapfile -t frontal < <(ls "$cfp"/*/*_00{01,02,03,04,05,06,07,08,09,10}.jpg)
run lfw "$work/lfw.cache" "$lfw"
run lfw_devtrain "$work/lfw.cache" "${train[@]}"
run lfw_devtest "$work/lfw.cache" "${test[@]}"
run lfw_10 "$work/lfw.cache" "${ten[@]}"
run cfp "$work/cfp.cache" "$cfp"
run cfp_frontal "$work/cfp.cache" "${frontal[@]}"
run cfp_grey "$work/cfp_grey.cache" "$work/cfp_grey"
run cfp_half "$work/cfp_half.cache" "$work/cfp_half"
