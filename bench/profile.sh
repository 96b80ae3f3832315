#!/usr/bin/env bash
# Profiles roomcast in the saturated fan-out (one room of 100, 2 publishers, window 32) with perf
# (software cpu-clock sampling: this VM exposes no hardware counters) and prints the top symbols.
# Rule: everything it starts, its trap stops.
#
#   bench/profile.sh [--redis] [--floor] [--messages 40000] [--build-dir build-bench]
# --floor profiles roomcast-floor instead, for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-bench messages=40000 redis=0 floor=0
while [ $# -gt 0 ]; do
  case "$1" in
    --redis) redis=1; shift ;;
    --floor) floor=1; shift ;;
    --messages) messages=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d /tmp/roomcast-profile.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
extra=()
if [ $redis = 1 ]; then
  rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
  pids+=("$!")
  sleep 0.3
  extra=(--redis "redis://127.0.0.1:$rport")
fi
if [ $floor = 1 ]; then
  "$build/bench/roomcast-floor" --port "$port" >"$work/floor.log" 2>&1 &
else
  "$build/server/roomcast" --host 127.0.0.1 --port "$port" --rate 100000 --log-level warn "${extra[@]}" >"$work/roomcast.log" 2>&1 &
fi
pid=$!
pids+=("$pid")
sleep 0.5
echo "profile: load $(cut -d' ' -f1 /proc/loadavg) at the start"
perf record -e cpu-clock -F 2000 -g -p "$pid" -o "$work/perf.data" >/dev/null 2>&1 &
perf_pid=$!
"$build/bench/roomcast-bench" fanout --members 100 --publishers 2 --messages "$messages" --size 100 --window 32 \
  --url "ws://127.0.0.1:$port/ws" --pid "$pid" --timeout 120 | grep -E "throughput|per unit|cpu  "
kill -INT "$perf_pid"
wait "$perf_pid" 2>/dev/null || true
echo "profile: load $(cut -d' ' -f1 /proc/loadavg) at the end; perf data in $work/perf.data"
echo "where the time goes, by object (kernel = the socket calls and loopback TCP):"
perf report -i "$work/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8 | sed 's/ *$//'
echo "top symbols:"
perf report -i "$work/perf.data" --no-children --sort dso,symbol -g none --percent-limit 0.7 --stdio 2>/dev/null | grep -E '^ +[0-9]' |
  head -40 | sed 's/  */ /g' | cut -c1-150
