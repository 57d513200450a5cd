#!/usr/bin/env bash
# ctest install.find_package / install.pkg_config: installs the current build into a fresh prefix outside the
# source tree, builds tests/install/consumer against that prefix (with find_package, or with pkg-config) and
# runs it on real photos (libdlib19.1's examples/faces) with no FACEKIT_* variable set. Checks:
#  - the consumer finds the installed package, links the prefix's libfacekit (ldd), and the library reports
#    data directories under the prefix;
#  - it finds 1 face and 2 faces in the photos, a photo and its mirror image verify as the same person, two
#    people do not;
#  - no installed config, pkg-config file or header names the source or build tree, and (where strace works)
#    the consumer touches no file in them;
#  - find_package mode: the installed CLI runs; after the prefix moves, the library follows it; with its data
#    directory deleted it still reports the moved prefix and fails to load a model there instead of reading the
#    source tree.
# Exit 77 (ctest SKIP_RETURN_CODE) when something it needs from outside is absent: the photos, the models
# (scripts/setup), pkg-config.
#   check_install.sh cmake|pkg-config SOURCE_DIR BUILD_DIR CXX_COMPILER
set -euo pipefail
mode=$1 source=$(realpath "$2") build=$(realpath "$3") cxx=$4

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

faces=/usr/share/doc/libdlib19.1/examples/faces
photo=$faces/Tom_Cruise_avp_2014_4.jpg other=$faces/2008_001009.jpg
[ -f "$photo" ] && [ -f "$other" ] || skip "libdlib19.1's example photos are not installed"
[ -d "$source/models" ] || skip "no models in $source/models (run scripts/setup)"
[ "$mode" = cmake ] || command -v pkg-config >/dev/null || skip "pkg-config is not installed"
[ -f "$build/cmake_install.cmake" ] || fail "$build is not a configured build tree"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/facekit-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tmp=$(realpath "$tmp")
case "$tmp/" in "$source"/* | "$build"/*) fail "the temporary prefix $tmp must be outside the source tree" ;; esac
prefix=$tmp/prefix

# A clean environment: nothing from the caller's shell (FACEKIT_*, LD_LIBRARY_PATH, CMAKE_PREFIX_PATH) helps.
clean() { env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$tmp" LANG=C.UTF-8 "$@"; }

# 1. Install ------------------------------------------------------------------------------------------------
clean cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "cmake --install failed (are facekit and facekit_cli built?)"; }
lib=$(find "$prefix" -name 'libfacekit.so.*.*.*' -type f)
[ -n "$lib" ] || fail "no libfacekit.so.X.Y.Z installed"
libdir=$(dirname "$lib")
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ -e "$libdir/$soname" ] && [ -e "$libdir/libfacekit.so" ] || fail "SONAME link $soname or libfacekit.so missing"
data=$prefix/share/facekit
for f in "$data"/{models/dlib_resnet.json,models/models.lock,gallery/open_set.json} \
         "$data/weights/face-api/face_recognition_model.bin" "$data/weights/human-models/blazeface-back.bin" \
         "$libdir"/cmake/facekit/facekit{Config,ConfigVersion,Targets}.cmake \
         "$prefix/include/facekit/pipeline.hpp" "$prefix/bin/facekit"; do
  [ -f "$f" ] || fail "not installed: $f"
done
[ ! -e "$data/weights/npm" ] || fail "the npm tarballs were installed"
pass "installed $(find "$prefix" -type f | wc -l) files, $soname"
# Nothing installed to be read by a consumer's build names the source or build tree.
if grep -rlF -e "$source" -e "$build" "$prefix/include" "$libdir/cmake" "$libdir/pkgconfig" "$data" 2>/dev/null; then
  fail "the installed files above name the source or build tree"
fi
for elf in "$lib" "$prefix/bin/facekit"; do
  if readelf -d "$elf" | grep -E 'R(UN)?PATH' | grep -qF -e "$source" -e "$build"; then
    fail "$elf has a run path into the source or build tree"
  fi
done
pass "no installed config, header or run path names $source"

# 2. Build the consumer outside the tree ---------------------------------------------------------------------
cp -r "$source/tests/install/consumer" "$tmp/consumer-src"
if [ "$mode" = cmake ]; then
  clean cmake -S "$tmp/consumer-src" -B "$tmp/consumer-build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    >"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "configuring the consumer failed"; }
  found=$(sed -n 's/^facekit_DIR:PATH=//p' "$tmp/consumer-build/CMakeCache.txt")
  [ "$(realpath "$found")" = "$(realpath "$libdir/cmake/facekit")" ] || fail "find_package found facekit in $found"
  clean cmake --build "$tmp/consumer-build" >>"$tmp/consumer.log" 2>&1 ||
    { cat "$tmp/consumer.log"; fail "building the consumer failed"; }
  exe=$tmp/consumer-build/facekit_consumer
  pass "find_package(facekit) found $found; consumer built"
else
  pc=$libdir/pkgconfig
  [ -f "$pc/facekit.pc" ] || fail "no $pc/facekit.pc"
  flags=$(clean PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs facekit) || fail "pkg-config facekit failed"
  pc_libdir=$(clean PKG_CONFIG_PATH="$pc" pkg-config --variable=libdir facekit)
  [ "$(realpath "$pc_libdir")" = "$libdir" ] || fail "facekit.pc's libdir is $pc_libdir, not $libdir"
  case " $flags " in *" -I$prefix/include "*) ;; *) fail "pkg-config --cflags lacks -I$prefix/include: $flags" ;; esac
  exe=$tmp/facekit_consumer
  # shellcheck disable=SC2086  # the flags are words
  clean "$cxx" -std=c++20 -O1 "$tmp/consumer-src/main.cpp" -o "$exe" $flags -Wl,-rpath,"$pc_libdir" \
    >"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "building the consumer with pkg-config failed"; }
  pass "pkg-config facekit: $flags; consumer built"
fi

resolved=$(clean ldd "$exe" | sed -n 's/^\s*libfacekit\.so[^ ]* => \([^ ]*\).*/\1/p')
[ -n "$resolved" ] && [ "$(realpath "$resolved")" = "$lib" ] || fail "the consumer loads libfacekit from '$resolved'"
pass "the consumer loads $resolved"

# 3. Run it on real photos ---------------------------------------------------------------------------------
cd "$tmp"
run=(clean "$exe" "$photo" "$other")
if strace -f -qq -o /dev/null true 2>/dev/null; then
  run=(clean strace -f -qq -e trace=%file -o "$tmp/files.trace" "$exe" "$photo" "$other")
fi
start=$(date +%s%N)
"${run[@]}" >"$tmp/out.txt" 2>"$tmp/err.txt" || { cat "$tmp/out.txt" "$tmp/err.txt"; fail "the consumer failed"; }
echo "--- consumer output ($(( ($(date +%s%N) - start) / 1000000 )) ms)"
cat "$tmp/out.txt"
value() { sed -n "s/^$1=//p" "$tmp/out.txt"; }
[ "$(value share_dir)" = "$data" ] || fail "share_dir is $(value share_dir), expected $data"
[ "$(value models_dir)" = "$data/weights" ] || fail "models_dir is $(value models_dir)"
[ "$(value manifests_dir)" = "$data/models" ] || fail "manifests_dir is $(value manifests_dir)"
[ "$(value source_tree)" = 0 ] || fail "the installed library says it reads the source tree"
[ "$(value faces_photo)" = 1 ] || fail "expected 1 face in $photo"
[ "$(value faces_other)" = 2 ] || fail "expected 2 faces in $other"
[ "$(value embedding_dim)" = 640 ] || fail "expected 640-d embeddings (the default dlib_faceplugin: 128 + 512)"
grep -q '^verify_mirrored .* same=1$' "$tmp/out.txt" || fail "a photo and its mirror image are not the same person"
grep -q '^verify_other .* same=0$' "$tmp/out.txt" || fail "two different people verified as the same"
pass "data under the prefix; faces found, embedded and verified"
if [ -f "$tmp/files.trace" ]; then
  # models/ may be a link to another checkout's: that is the source tree too.
  if grep -F -e "$source" -e "$build" -e "$(realpath "$source/models")" "$tmp/files.trace" | head -5 | grep .; then
    fail "the consumer touched the files above in the source or build tree"
  fi
  pass "no file in $source touched ($(wc -l <"$tmp/files.trace") file calls traced)"
else
  echo "note: strace does not work here; the file-access check is skipped"
fi

# 4. find_package mode: the installed CLI; the prefix moves; then its data goes ---------------------------------
if [ "$mode" = cmake ]; then
  clean "$prefix/bin/facekit" detect "$photo" >"$tmp/cli.txt" 2>&1 || { cat "$tmp/cli.txt"; fail "installed CLI failed"; }
  grep -q ': 1 face$' "$tmp/cli.txt" || { cat "$tmp/cli.txt"; fail "the installed CLI did not find the face"; }
  pass "the installed facekit binary runs: $(head -1 "$tmp/cli.txt")"
  moved=$tmp/moved
  mv "$prefix" "$moved"
  mlib=${libdir/#$prefix/$moved}
  clean LD_LIBRARY_PATH="$mlib" "$exe" --dirs >"$tmp/out.txt" || fail "the consumer failed after the move"
  [ "$(value share_dir)" = "$moved/share/facekit" ] || fail "after the move share_dir is $(value share_dir)"
  pass "the moved prefix is followed: $(value share_dir)"
  rm -rf "$moved/share/facekit"
  clean LD_LIBRARY_PATH="$mlib" "$exe" --dirs >"$tmp/out.txt" || fail "the consumer failed without its data"
  [ "$(value share_dir)" = "$moved/share/facekit" ] && [ "$(value source_tree)" = 0 ] ||
    fail "without its data dir the installed library turned to $(value share_dir)"
  if clean LD_LIBRARY_PATH="$mlib" "$exe" "$photo" "$other" >"$tmp/out.txt" 2>"$tmp/err.txt"; then
    fail "the consumer ran without the installed data: it found models elsewhere"
  fi
  grep -qF "$moved/share/facekit" "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "the error does not name the prefix"; }
  pass "without its data the installed library fails naming it: $(cat "$tmp/err.txt")"
fi
echo "PASS ($mode)"
