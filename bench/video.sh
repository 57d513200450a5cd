#!/bin/sh
# The video measurement of docs/video.md: test clips from LFW (facekit_bench_video generate), `facekit video`
# on each at several detection intervals and thread counts (frames/s: the median of RUNS runs), and its tracks
# scored against the ground truth (facekit_bench_video score).
#
#   bench/video.sh [BUILD_DIR] [OUT_DIR] [LFW_DIR]      (defaults: build, /tmp/facekit-video-bench, ../shared/data/lfw)
#   SEEDS="1 2 3" EVERY="1 2 3" THREADS="1 2" RUNS=3 bench/video.sh    (what it measures; these are the defaults)
set -eu
BUILD=${1:-build}
OUT=${2:-/tmp/facekit-video-bench}
LFW=${3:-../shared/data/lfw}
SEEDS=${SEEDS:-1 2 3}
EVERY=${EVERY:-1 2 3}
THREADS=${THREADS:-1 2}
RUNS=${RUNS:-3}
mkdir -p "$OUT"
for seed in $SEEDS; do
  dir="$OUT/seed$seed"
  [ -f "$dir/truth.json" ] || "$BUILD/bench/facekit_bench_video" generate --lfw "$LFW" --out "$dir" --seed "$seed" --seconds 20
  for every in $EVERY; do
    for threads in $THREADS; do
      run=1
      while [ "$run" -le "$RUNS" ]; do
        OMP_NUM_THREADS=$threads "$BUILD/facekit" --threads "$threads" video "$dir/clip.avi" --gallery "$dir/gallery.db" \
          --every "$every" --json "$dir/tracks_e${every}_t${threads}_r${run}.json" --quiet > /dev/null
        run=$((run + 1))
      done
      "$BUILD/bench/facekit_bench_video" score --truth "$dir/truth.json" --tracks "$dir/tracks_e${every}_t${threads}_r1.json" \
        --json "$dir/score_e${every}_t${threads}.json" > /dev/null
    done
  done
done
# One row per (clip, interval, threads): median frames/s over the runs, and the scores of the first run (the
# tracks do not depend on timing: every run gives the same).
python3 - "$OUT" "$SEEDS" "$EVERY" "$THREADS" "$RUNS" <<'EOF'
import json, statistics, sys
out, seeds, every, threads, runs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split(), int(sys.argv[5])
print("| clip | every | threads | frames/s (median of %d) | coverage | ID switches | fragmentation | tracks on 2 people | ID accuracy (enrolled track-frames) | unknown reported unknown | boxes on no face |" % runs)
print("|---|---|---|---|---|---|---|---|---|---|---|")
for s in seeds:
    for e in every:
        for t in threads:
            fps = [json.load(open(f"{out}/seed{s}/tracks_e{e}_t{t}_r{r}.json"))["processing_fps"] for r in range(1, runs + 1)]
            sc = json.load(open(f"{out}/seed{s}/score_e{e}_t{t}.json"))
            print(f"| seed {s} | {e} | {t} | {statistics.median(fps):.1f} | {sc['coverage']:.3f} | {sc['id_switches']} | "
                  f"{sc['fragmentation']:.2f} | {sc['tracks_on_two_people']} | {sc['identification_accuracy']:.4f} "
                  f"({sc['enrolled_track_frames']}) | {sc['unknown_reported_unknown']:.4f} ({sc['unknown_track_frames']}) | "
                  f"{sc['boxes_on_no_face']}/{sc['track_boxes']} |")
EOF
