#!/usr/bin/env bash
# Configures and builds roomcast.
#
#   scripts/build.sh [--no-tests] [build-dir] [extra cmake args...]
#
# By default everything: the server, the load generator, the units and the tests' helpers (needs cmocka).
# --no-tests builds the server alone (BUILD_TESTING=OFF, no bench): what scripts/run.sh needs, and less.
# Either choice is written into the build folder's cache, so the next call without it builds the tests again.
set -euo pipefail
cd "$(dirname "$0")/.."
what=(-DBUILD_TESTING=ON -DROOMCAST_BUILD_BENCH=ON)
if [ "${1:-}" = "--no-tests" ]; then
  what=(-DBUILD_TESTING=OFF -DROOMCAST_BUILD_BENCH=OFF)
  shift
fi
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "${what[@]}" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
