#!/bin/sh
# Runs one fuzzer: tests/fuzz/run.sh <target> [seconds] [extra libFuzzer flags...]
# target is one of http_parser ws_decode ws_roundtrip message http_path ws_handshake.
# The working corpus grows in build-fuzz/corpus/<target> (seeded from tests/fuzz/corpus/<target>);
# crashes, timeouts and leaks land in build-fuzz/artifacts/<target>/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_FUZZ:-$root/build-fuzz}
t=$1
secs=${2:-240}
[ $# -ge 2 ] && shift 2 || shift $#
mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
exec "$build/fuzz_$t" -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" "$@" "$build/corpus/$t" "$here/corpus/$t"
