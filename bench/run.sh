#!/usr/bin/env bash
# Builds roomcast and roomcast-bench (Release), runs the benchmark scenarios on loopback and prints one
# table of figures. Rule: whatever this script starts, its trap stops; every step has a time limit.
#
#   bench/run.sh [--build-dir DIR] [--no-build] [--connections K]
#
# Scenarios (about 1-2 minutes after the build):
#   1. fan-out, standalone: 100 members in one room, 2 publish-only connections, window-bound (throughput)
#      and paced at 2000 chats/s (latency at a moderate load)
#   2. the same across 2 instances on distinct ports with a local redis-server (members and publishers
#      spread over both)
#   3. idle memory: K WebSockets held on a fresh standalone instance (K default 20000, capped by the
#      open-file limit), joining no room, then the same joining 2000 rooms of 10
# Servers run with --rate 100000: the default of 50 chats/s per connection would refuse most of the load.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$root/build-bench
do_build=1
connections=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --connections) connections=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

work=$build/bench-run
bench=$build/bench/roomcast-bench
server=$build/server/roomcast
server_opts=(--host 127.0.0.1 --rate 100000 --log-level warn --max-connections 30000)  # idle: 20,000 connections
results=$work/results.txt

standalone_pid=""
cluster_state=""
cleanup() {
  set +e
  if [ -n "$standalone_pid" ]; then stop_standalone; fi
  if [ -n "$cluster_state" ]; then ROOMCAST_BIN=$server scripts/cluster.sh stop --state "$cluster_state" >/dev/null 2>&1; cluster_state=""; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_healthy() {  # port: up to 5 s
  for _ in $(seq 50); do
    curl -s --max-time 1 "http://127.0.0.1:$1/healthz" 2>/dev/null | grep -q '"status":"ok"' && return 0
    sleep 0.1
  done
  echo "run.sh: nothing healthy on port $1" >&2
  return 1
}
start_standalone() {  # -> standalone_pid, standalone_port
  standalone_port=$(free_port)
  "$server" --port "$standalone_port" "${server_opts[@]}" >>"$work/standalone.log" 2>&1 </dev/null &
  standalone_pid=$!
  wait_healthy "$standalone_port"
}
stop_standalone() {
  kill -TERM "$standalone_pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$standalone_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$standalone_pid" 2>/dev/null && kill -KILL "$standalone_pid" 2>/dev/null
  wait "$standalone_pid" 2>/dev/null || true
  standalone_pid=""
}
# Runs the bench (bounded twice: its own --timeout and timeout(1)), shows its report, keeps its RESULT line.
bench() {
  local rc=0 label="" prev=""
  for a in "$@"; do [ "$prev" = --label ] && label=$a; prev=$a; done
  timeout --signal=INT --kill-after=10 150 "$bench" "$@" --timeout 120 >"$work/last.out" 2>"$work/last.err" || rc=$?
  grep -v '^RESULT' "$work/last.out" || true
  grep '^RESULT' "$work/last.out" >>"$results" || echo "RESULT mode=? label=${label:-?} status=no_result_rc_$rc" >>"$results"
  [ $rc = 0 ] || echo "(roomcast-bench exited $rc; its stderr: $(tail -2 "$work/last.err" | tr '\n' ' '))"
}

# Servers and bench both hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$work"
rm -f "$results" "$work"/*.log

if [ $do_build = 1 ]; then
  say "build (Release) in $build"
  timeout 1200 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$work/build.log" 2>&1
  timeout 1200 cmake --build "$build" -j2 --target roomcast roomcast-bench >>"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log"; exit 1; }
fi
[ -x "$server" ] && [ -x "$bench" ] || { echo "run.sh: $server or $bench missing (build first)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "run.sh: redis-server is not installed (scripts/deps.sh)" >&2; exit 1; }

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
say "machine: $(nproc) cores ($cpu_model), kernel $(uname -r), $(free -g | awk '/Mem:/{print $2}') GiB, open-file limit $(ulimit -n), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ $do_build = 1 ]; then
  echo "built from commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD -- server protocol redis 2>/dev/null || echo ' plus uncommitted changes in server/, protocol/ or redis/')"
else
  echo "not rebuilt: $server is from $(date -r "$server" '+%F %T') (HEAD is $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
fi

fanout_throughput=(fanout --members 100 --publishers 2 --messages 20000 --size 100 --window 32)
fanout_paced=(fanout --members 100 --publishers 2 --messages 5000 --size 100 --rate 2000 --window 64)

say "1. fan-out, standalone (100 members, 2 publishers)"
start_standalone
url=ws://127.0.0.1:$standalone_port/ws
bench "${fanout_throughput[@]}" --url "$url" --pid "$standalone_pid" --label standalone-max
bench "${fanout_paced[@]}" --url "$url" --pid "$standalone_pid" --label standalone-2000/s
stop_standalone

say "2. fan-out, 2 instances + Redis (members and publishers spread over both)"
p1=$(free_port)
p2=$(free_port)
cluster_state=$work/cluster
ROOMCAST_BIN=$server timeout 60 scripts/cluster.sh start --ports "$p1,$p2" --host 127.0.0.1 --state "$cluster_state" \
  -- --rate 100000 --log-level warn
pids=(--pid "$(cat "$cluster_state/roomcast-1.pid")" --pid "$(cat "$cluster_state/roomcast-2.pid")" --pid "$(cat "$cluster_state/redis.pid")")
urls=(--url "ws://127.0.0.1:$p1/ws" --url "ws://127.0.0.1:$p2/ws")
bench "${fanout_throughput[@]}" "${urls[@]}" "${pids[@]}" --label cluster-max
bench "${fanout_paced[@]}" "${urls[@]}" "${pids[@]}" --label cluster-2000/s
ROOMCAST_BIN=$server scripts/cluster.sh stop --state "$cluster_state" >/dev/null
cluster_state=""

say "3. idle memory per connection (fresh standalone instance each)"
start_standalone
bench idle --connections "$connections" --url "ws://127.0.0.1:$standalone_port/ws" --pid "$standalone_pid" --label idle-no-room
stop_standalone
start_standalone
bench idle --connections "$connections" --rooms 2000 --url "ws://127.0.0.1:$standalone_port/ws" --pid "$standalone_pid" --label idle-2000-rooms
stop_standalone

say "figures (details above; logs in $work)"
awk '
  function v(k,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return substr($i, length(k) + 2) } return "-" }
  function servers(   i, kv, sum) {  # CPU % of the named server processes (roomcast, redis-server)
    sum = 0
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] ~ /^cpu_.*_[0-9]+$/) sum += kv[2] }
    return sum
  }
  BEGIN {
    fmt = "%-18s %-9s %13s %28s %9s %6s %5s %15s %20s\n"
    printf fmt, "scenario", "status", "deliveries/s", "latency ms p50/p90/p99/max", "lost", "errors", "drops", "cpu% b/s/other", "memory per idle conn"
  }
  v("mode") == "fanout" {
    printf fmt, v("label"), v("status"), v("deliveries_per_s"), v("p50_ms") "/" v("p90_ms") "/" v("p99_ms") "/" v("max_ms"),
      v("lost"), v("errors"), v("slow_consumer_drops"), v("cpu_bench") "/" servers() "/" v("cpu_other"), "-"
  }
  v("mode") == "idle" {
    printf fmt, v("label"), v("status"), "-", "-", "-", "-", "-", "-", v("bytes_per_conn") " B x " v("opened")
  }
  v("mode") == "?" { printf fmt, v("label"), v("status"), "-", "-", "-", "-", "-", "-", "-" }
' "$results"
echo "lost: deliveries expected (acked chats x 100 members) and not received; drops: slow-consumer closes in the servers' /metrics;"
echo "cpu%: of one core during publishing; b = roomcast-bench, s = roomcast (+ redis-server), other = the rest of the machine"
echo "(loopback softirq, other programs); memory: the server's VmRSS growth while the connections are held / connections open (target <= 1024 B)"
