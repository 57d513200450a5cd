#!/usr/bin/env bash
# Installs the build into a temporary prefix and runs the Python tests against it with Debian's python3, with
# no FACEKIT_* variable set and the source tree out of the module path: what a user who installed facekit gets.
#   tests/python/run_installed.sh BUILD_DIR
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
if ! "$py" -c 'import numpy' 2>/dev/null; then
  echo "python3-numpy is missing: skipped" >&2
  exit 77
fi
prefix=$(mktemp -d /tmp/fk_pyprefix.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >"$prefix.log" 2>&1 || { cat "$prefix.log" >&2; rm -f "$prefix.log"; exit 1; }
rm -f "$prefix.log"
for v in $(env | grep -o '^FACEKIT_[A-Z_]*' || true); do unset "$v"; done
export FACEKIT_TEST_PREFIX=$prefix
export PYTHONPATH=$prefix/lib/python3/dist-packages
# HOME in the prefix: the default gallery path must not touch the user's own.
export HOME=$prefix/home
mkdir -p "$HOME"
cd "$prefix"
exec "$py" "$here/test_facekit.py" -v 2>&1
