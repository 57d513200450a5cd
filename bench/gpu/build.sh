#!/usr/bin/env bash
# Builds bench/gpu_bench.cpp (facekit_gpu_bench) against the CUDA libtorch of the machine's Python torch, for a
# lent GPU machine (no OpenCV, no CMake package needed there): the OpenCV and nlohmann-json headers come from
# INCLUDE_DIR (bench/gpu/pack.sh copies them from this machine). Only the library's network code is compiled
# (src/nn/opencv_bridge.cpp, the part that needs OpenCV's libraries, is left out); --gc-sections drops the loaders
# in those files that reach into the rest of the library (weights.cpp's load_model_weights: model manifests).
#   bench/gpu/build.sh OUT_DIR INCLUDE_DIR
# Torch is found through python3 unless TORCH_INCLUDES (-I flags) and TORCH_LIBDIR are set.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
inc=$2
mkdir -p "$out/obj"
if [ -z "${TORCH_LIBDIR:-}" ]; then
  t=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
  TORCH_INCLUDES="-I$t/include -I$t/include/torch/csrc/api/include"
  TORCH_LIBDIR=$t/lib
  abi=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  TORCH_INCLUDES="$TORCH_INCLUDES -D_GLIBCXX_USE_CXX11_ABI=$abi"
fi
cuda_libs=""
[ -e "$TORCH_LIBDIR/libtorch_cuda.so" ] && cuda_libs="-ltorch_cuda -lc10_cuda"
flags="-O2 -std=c++20 -fPIC -ffunction-sections -fdata-sections -Wno-deprecated-declarations -Wno-deprecated-enum-enum-conversion -Iinclude -Isrc
       -I$inc -I$inc/opencv4 $TORCH_INCLUDES ${EXTRA_FLAGS:-}"
core=(src/core/error.cpp src/model/weights.cpp src/nn/tf_ops.cpp src/embed/dlib_resnet.cpp src/embed/dlib_resnet_int8.cpp
      src/align/landmark68_net.cpp)
graph=(src/graph/graph_model.cpp src/graph/ops_array.cpp src/graph/ops_math.cpp src/graph/ops_nn.cpp)
compile() {  # compile SRC [extra flags]: prints the object's path, or nothing when it fails
  local src=$1; shift
  local obj=$out/obj/$(echo "$src" | tr / _).o
  if ${CXX:-g++} $flags "$@" -c "$src" -o "$obj" 2>"$obj.log"; then echo "$obj"; else
    echo "FAILED: $src" >&2; head -20 "$obj.log" >&2; fi
}
export -f compile; export out flags
objs=$(printf '%s\n' "${core[@]}" "${graph[@]}" | xargs -P "$(nproc)" -I{} bash -c 'compile {}')
link() {
  ${CXX:-g++} "$@" -Wl,--gc-sections -L"$TORCH_LIBDIR" -Wl,--no-as-needed -ltorch $cuda_libs -ltorch_cpu -lc10 \
    -Wl,--as-needed -Wl,-rpath,"$TORCH_LIBDIR" -o "$out/facekit_gpu_bench"
}
n_graph=$(echo "$objs" | grep -c src_graph_ || true)
graph_ok=0; [ "$n_graph" -eq ${#graph[@]} ] && graph_ok=1
# CUDA-graph replay (bench/gpu_cuda_graph.cpp): only against a CUDA libtorch, with CUDA's runtime headers.
cuda_obj=""
if [ -n "$cuda_libs" ]; then
  for d in /usr/local/cuda/include $(ls -d "$TORCH_LIBDIR"/../../nvidia/*/include "$TORCH_LIBDIR"/../../nvidia/include 2>/dev/null); do
    if [ -e "$d/cuda_runtime_api.h" ]; then cuda_obj=$(compile bench/gpu_cuda_graph.cpp -I"$d"); break; fi
  done
fi
attempt() {  # attempt GRAPH(0/1) CUDA_GRAPH(0/1)
  local defs=() extra=()
  [ "$1" = 1 ] || defs+=(-DFACEKIT_GPU_BENCH_NO_GRAPH)
  [ "$2" = 1 ] && defs+=(-DFACEKIT_GPU_BENCH_CUDA) && extra+=("$cuda_obj")
  local bench
  bench=$(compile bench/gpu_bench.cpp "${defs[@]}") && [ -n "$bench" ] || return 1
  local use=$objs
  [ "$1" = 1 ] || use=$(echo "$objs" | grep -v src_graph_)
  link $use "${extra[@]}" "$bench" && echo "built $out/facekit_gpu_bench (graph runtime: $1, CUDA graphs: $2)"
}
if [ -n "$cuda_obj" ] && attempt $graph_ok 1; then exit 0; fi
attempt $graph_ok 0 || attempt 0 0
