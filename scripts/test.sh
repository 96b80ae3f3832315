#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: cmocka units, black-box integration tests
# (real roomcast processes and a real redis-server) and the headless-Chromium test of the web client.
# Then the same suite, but the browser test, under AddressSanitizer + UndefinedBehaviorSanitizer.
# ROOMCAST_SKIP_SANITIZE=1 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh test

echo "== build (Release)"
./scripts/build.sh build
echo "== tests (Release)"
(cd build && ctest --output-on-failure -j2 --timeout 300)

if [ "${ROOMCAST_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== build (ASan + UBSan)"
  BUILD_TYPE=Debug ./scripts/build.sh build-asan -DROOMCAST_SANITIZE=ON
  echo "== tests (ASan + UBSan)"
  # A small quarantine: freed memory ASan holds back (256 MiB by default) would otherwise show as RSS
  # growth in the tests that bound memory; use-after-free is still caught within it.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=8:thread_local_quarantine_size_kb=64 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j2 --timeout 300 -E '^e2e\.')
fi
