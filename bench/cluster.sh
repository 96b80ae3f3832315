#!/usr/bin/env bash
# Throughput through a Redis Cluster of 1, 2 and 3 masters, and through one plain Redis, under the SAME
# load: 2 roomcast instances (distinct ports), 30 rooms of 2 members (one on each instance), 30
# publish-only connections whose chats go round the rooms, as fast as a window of unacked chats allows.
# Rule: whatever this script starts (redis-servers, roomcast instances, cgroups), its trap stops and
# removes; every step has a time limit.
#
#   bench/cluster.sh [--build-dir DIR] [--no-build] [--redis-cpu PCT[,PCT...]] [--masters "1 2 3"]
#                    [--messages M] [--no-plain] [--redis-opt ARG]...
#
# --redis-cpu: each redis-server process gets its own CPU budget of PCT % of one core (a cgroup with a
#   CFS quota, period 10 ms, 100 ms below 10 %), so that Redis, not the two shared cores, is the
#   bottleneck: throughput through N masters is then bounded by N budgets. 0 = no budget (everything
#   competes for the cores). A list runs every series once per value. Default "10,0". Needs a writable
#   cgroup cpu controller (v1 or v2); without one, budgeted series are skipped with a note.
# --redis-opt: one more argument for every redis-server (repeatable), e.g.
#   --redis-opt=--stream-node-max-entries --redis-opt=16.
# About 2-2.5 minutes after the build. Results: a table, and build-bench/bench-cluster/results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$root/build-bench
do_build=1
budgets="10,0"
masters_list="1 2 3"
messages=1000
plain=1
redis_opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --redis-cpu) budgets=$2; shift 2 ;;
    --masters) masters_list=$2; shift 2 ;;
    --messages) messages=$2; shift 2 ;;
    --no-plain) plain=0; shift ;;
    --redis-opt) redis_opts+=("$2"); shift 2 ;;
    --redis-opt=*) redis_opts+=("${1#--redis-opt=}"); shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

work=$build/bench-cluster
bench=$build/bench/roomcast-bench
server=$build/server/roomcast
results=$work/results.txt
rooms=30
members=60       # 2 per room: member i in room i % 30, and each room's two members on different instances
publishers=30
window=8
size=100
server_opts=(--host 127.0.0.1 --rate 1000000 --history 10 --log-level warn)

redis_pids=()      # every redis-server started (for the trap)
roomcast_pids=()   # every roomcast started
cgroups=()         # every cgroup made
cleanup() {
  set +e
  local group p
  for group in roomcast redis; do  # the instances first: Redis going away under them is not what is measured
    local list=()
    if [ $group = roomcast ]; then list=("${roomcast_pids[@]}"); else list=("${redis_pids[@]}"); fi
    for p in "${list[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${list[@]}"; do
      for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$p" 2>/dev/null
    done
  done
  roomcast_pids=()
  redis_pids=()
  for g in "${cgroups[@]}"; do rmdir "$g" 2>/dev/null; done
  cgroups=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A port P free with P + 10000 free too (a cluster node's bus port), below 55536.
redis_port() {
  python3 -c '
import random, socket
while True:
    p = random.randrange(20000, 55000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'
}
wait_healthy() {  # port, what /healthz must contain: up to 10 s
  for _ in $(seq 100); do
    curl -s --max-time 1 "http://127.0.0.1:$1/healthz" 2>/dev/null | grep -q "$2" && return 0
    sleep 0.1
  done
  echo "cluster.sh: port $1 not healthy ($(curl -s --max-time 1 "http://127.0.0.1:$1/healthz" 2>&1))" >&2
  return 1
}

# CPU budgets: cgroup v1 (cpu controller mounted at /sys/fs/cgroup/cpu) or v2 (cpu.max).
cg_kind=""
if [ -w /sys/fs/cgroup/cpu/cgroup.procs ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
  cg_kind=v1
elif [ -f /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
  cg_kind=v2
fi
cg_base() { [ $cg_kind = v1 ] && echo /sys/fs/cgroup/cpu || echo /sys/fs/cgroup; }
budget_pid() {  # pid name pct: a cgroup of its own with pct % of one core (period 10 ms)
  local g
  g=$(cg_base)/roomcast-bench-$$-$2
  mkdir -p "$g"
  cgroups+=("$g")
  local period=10000  # 10 ms; the kernel's smallest quota is 1 ms, so below 10 % the period is 100 ms
  [ "$3" -lt 10 ] && period=100000
  if [ $cg_kind = v1 ]; then
    echo $period >"$g/cpu.cfs_period_us"
    echo $(($3 * period / 100)) >"$g/cpu.cfs_quota_us"
  else
    echo "$(($3 * period / 100)) $period" >"$g/cpu.max"
  fi
  echo "$1" >"$g/cgroup.procs"
}

# Starts a redis-server (cluster-enabled or not) in $work/redis-$port; prints its pid.
start_redis() {  # port cluster(yes/no)
  local d=$work/redis-$1
  rm -rf "$d"
  mkdir -p "$d"
  local extra=()
  [ "$2" = yes ] && extra=(--cluster-enabled yes --cluster-config-file "$d/nodes.conf" --cluster-node-timeout 5000)
  redis-server --port "$1" --bind 127.0.0.1 --dir "$d" --save '' --appendonly no --daemonize yes \
    --pidfile "$d/redis.pid" --logfile "$d/redis.log" "${extra[@]}" "${redis_opts[@]}"
  for _ in $(seq 50); do [ -s "$d/redis.pid" ] && redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  [ -s "$d/redis.pid" ] || { echo "cluster.sh: redis-server on port $1 did not start (see $d/redis.log)" >&2; return 1; }
  cat "$d/redis.pid"
}

# A cluster of N masters, no replicas, slots split in N equal ranges (as redis-cli --cluster create would;
# it refuses fewer than 3 masters, so the slots are assigned here with CLUSTER ADDSLOTSRANGE and the
# nodes introduced with CLUSTER MEET). Sets ports=(...) and node_pids=(...).
start_cluster() {  # N
  local n=$1 i
  ports=()
  node_pids=()
  for ((i = 0; i < n; i++)); do
    ports+=("$(redis_port)")
    node_pids+=("$(start_redis "${ports[$i]}" yes)")
    redis_pids+=("${node_pids[$i]}")
  done
  for ((i = 0; i < n; i++)); do
    redis-cli -p "${ports[$i]}" cluster addslotsrange $((i * 16384 / n)) $(((i + 1) * 16384 / n - 1)) >/dev/null
    [ $i -gt 0 ] && redis-cli -p "${ports[$i]}" cluster meet 127.0.0.1 "${ports[0]}" >/dev/null
  done
  for _ in $(seq 100); do
    local ok=1
    for ((i = 0; i < n; i++)); do
      redis-cli -p "${ports[$i]}" cluster info | grep -q 'cluster_state:ok' || ok=0
      [ "$(redis-cli -p "${ports[$i]}" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = "$n" ] || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  echo "cluster.sh: the $n-master cluster did not converge" >&2
  return 1
}

start_roomcast() {  # broker options...: starts 2 instances; sets rc_ports=(...) rc_pids=(...)
  rc_ports=()
  rc_pids=()
  local i p
  for i in 1 2; do
    p=$(free_port)
    "$server" --port "$p" "${server_opts[@]}" "$@" >>"$work/roomcast-$i.log" 2>&1 </dev/null &
    rc_ports+=("$p")
    rc_pids+=("$!")
    roomcast_pids+=("$!")
  done
}

stop_all() { cleanup; set -e; }

# Rooms whose slots split evenly over 2 and over 3 equal slot ranges (15/15 and 10/10/10), so that the
# load is spread as thousands of rooms would spread it: the first names clb-K (K = 0, 1, ...) that fill the
# quotas of the slot ranges 0-5460, 5461-8191, 8192-10922, 10923-16383 (10, 5, 5, 10 rooms). Slot =
# CRC16 of the room id (the hash tag of room:{R}) mod 16384; checked against the nodes after each run.
room_list=$(python3 - <<'EOF'
def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc
bounds, quota = [5460, 8191, 10922, 16383], [10, 5, 5, 10]
names, k, total = [], 0, sum(quota)
while len(names) < total:
    name = f"clb-{k}"
    slot = crc16(name.encode()) % 16384
    part = next(i for i, b in enumerate(bounds) if slot <= b)
    if quota[part] > 0:
        quota[part] -= 1
        names.append(name)
    k += 1
print(",".join(names))
EOF
)
[ "$(tr ',' '\n' <<<"$room_list" | wc -l)" = $rooms ] || { echo "cluster.sh: room list: $room_list" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$work"
rm -rf "$results" "$work"/*.log "$work"/commandstats-*.txt "$work"/redis-*

if [ $do_build = 1 ]; then
  say "build (Release) in $build"
  timeout 1200 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$work/build.log" 2>&1
  timeout 1200 cmake --build "$build" -j2 --target roomcast roomcast-bench >>"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log"; exit 1; }
fi
[ -x "$server" ] && [ -x "$bench" ] || { echo "cluster.sh: $server or $bench missing (build first)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "cluster.sh: redis-server is not installed" >&2; exit 1; }

say "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(redis-server --version | cut -d' ' -f1-3), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "roomcast at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'); rooms: $room_list"
[ ${#redis_opts[@]} = 0 ] || echo "redis-server options added: ${redis_opts[*]}"
echo "load (every line): $rooms rooms x 2 members (one per instance), $publishers publishers x $messages chats of $size B, window $window; servers ${server_opts[*]}"

# One measured run. $1 label, $2 budget, $3 masters (0 = plain Redis), then bench --pid/--url options.
run_bench() {
  local label=$1 budget=$2 nmasters=$3 rc=0
  shift 3
  timeout --signal=INT --kill-after=10 100 "$bench" fanout --rooms "$rooms" --members "$members" --publishers "$publishers" \
    --messages "$messages" --size "$size" --window "$window" --room "$room_list" --label "$label" --timeout 80 "$@" \
    >"$work/last.out" 2>"$work/last.err" || rc=$?
  grep -v '^RESULT' "$work/last.out" | sed 's/^/  /' || true
  [ $rc = 0 ] || echo "  (roomcast-bench exited $rc; its stderr: $(tail -2 "$work/last.err" | tr '\n' ' '))"
  local line
  line=$(grep '^RESULT' "$work/last.out" || echo "RESULT mode=fanout label=$label status=no_result_rc_$rc")
  # Per Redis process: commandstats of the chat path, and how many of the rooms' streams it holds.
  local extra="budget=$budget masters=$nmasters" i=0 port
  for port in "${redis_ports[@]}"; do
    i=$((i + 1))
    local stats streams
    stats=$(redis-cli -p "$port" info commandstats | tr -d '\r')
    echo "$stats" >"$work/commandstats-${label//[^a-z0-9-]/_}-node$i.txt"
    streams=$(redis-cli -p "$port" --scan --pattern 'room:*clb-*:log' | wc -l)
    extra+=" node${i}_streams=$streams"
    for cmd in eval spublish publish xadd; do
      local calls usec
      calls=$(sed -n "s/^cmdstat_$cmd:calls=\([0-9]*\),usec=\([0-9]*\),usec_per_call=\([0-9.]*\).*/\1/p" <<<"$stats")
      usec=$(sed -n "s/^cmdstat_$cmd:calls=\([0-9]*\),usec=\([0-9]*\),usec_per_call=\([0-9.]*\).*/\3/p" <<<"$stats")
      extra+=" node${i}_${cmd}_calls=${calls:-0} node${i}_${cmd}_usec=${usec:-0}"
    done
  done
  echo "$line $extra" >>"$results"
  echo "  redis: $extra"
}

IFS=, read -r -a budget_list <<<"$budgets"
for budget in "${budget_list[@]}"; do
  if [ "$budget" != 0 ] && [ -z "$cg_kind" ]; then
    say "CPU budget $budget %: skipped (no writable cgroup cpu controller here)"
    continue
  fi
  btext=$([ "$budget" = 0 ] && echo "no CPU budget on Redis" || echo "each redis-server limited to $budget % of a core")
  configs=()
  [ $plain = 1 ] && configs+=(0)
  for m in $masters_list; do configs+=("$m"); done
  for nm in "${configs[@]}"; do
    if [ "$nm" = 0 ]; then
      say "one plain Redis (--redis), $btext"
      redis_ports=("$(redis_port)")
      node_pids=("$(start_redis "${redis_ports[0]}" no)")
      redis_pids+=("${node_pids[0]}")
      broker=(--redis "redis://127.0.0.1:${redis_ports[0]}")
      healthy='"status":"ok"'
    else
      say "Redis Cluster, $nm master(s), $btext"
      start_cluster "$nm"
      redis_ports=("${ports[@]}")
      broker=(--redis-cluster "127.0.0.1:${ports[0]}")
      healthy='"status":"ok"'
    fi
    if [ "$budget" != 0 ]; then
      for ((i = 0; i < ${#node_pids[@]}; i++)); do budget_pid "${node_pids[$i]}" "m$nm-$i" "$budget"; done
    fi
    start_roomcast "${broker[@]}"
    wait_healthy "${rc_ports[0]}" "$healthy"
    wait_healthy "${rc_ports[1]}" "$healthy"
    for port in "${redis_ports[@]}"; do redis-cli -p "$port" config resetstat >/dev/null; done
    pids=()
    for p in "${rc_pids[@]}" "${node_pids[@]}"; do pids+=(--pid "$p"); done
    label=$([ "$nm" = 0 ] && echo "plain" || echo "cluster-$nm")
    [ "$budget" != 0 ] && label+="@$budget%"
    run_bench "$label" "$budget" "$nm" --url "ws://127.0.0.1:${rc_ports[0]}/ws" --url "ws://127.0.0.1:${rc_ports[1]}/ws" "${pids[@]}"
    stop_all
  done
done

say "figures (details above; logs in $work)"
awk '
  function v(k,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return substr($i, length(k) + 2) } return "" }
  function sum(prefix,   i, kv, s) { s = 0; for (i = 2; i <= NF; i++) { split($i, kv, "="); if (index(kv[1], prefix) == 1) s += kv[2] } return s }
  BEGIN {
    fmt = "%-14s %-6s %7s %8s %12s %14s %11s %8s %9s %9s %22s %6s %s\n"
    printf fmt, "setup", "status", "masters", "chats/s", "deliveries/s", "p50/p99 ms", "redis cpu%", "redis", "roomcast", "roomcast", "eval us per call", "other", "rooms per"
    printf fmt, "", "", "", "acked", "", "", "(all nodes)", "us/chat", "us/chat", "us/deliv.", "(each node)", "cpu%", "master"
  }
  {
    n = v("masters") + 0; nodes = (n == 0 ? 1 : n)
    acked = v("acked") + 0; received = v("received") + 0
    rcpu = sum("cpusec_redis-server_"); scpu = sum("cpusec_roomcast_")
    spread = ""; evals = ""
    for (i = 1; i <= nodes; i++) {
      spread = spread (i > 1 ? "/" : "") v("node" i "_streams")
      evals = evals (i > 1 ? "/" : "") v("node" i "_eval_usec")
    }
    wall = v("wall_s") + 0
    printf fmt, v("label"), v("status"), (n == 0 ? "plain" : n), v("chats_per_s"), v("deliveries_per_s"), v("p50_ms") "/" v("p99_ms"),
      (wall > 0 ? sprintf("%.0f", rcpu / wall * 100) : "-"), (acked > 0 ? sprintf("%.1f", rcpu / acked * 1e6) : "-"),
      (acked > 0 ? sprintf("%.1f", scpu / acked * 1e6) : "-"), (received > 0 ? sprintf("%.2f", scpu / received * 1e6) : "-"),
      evals, v("cpu_other"), spread
  }
' "$results"
echo "chats/s: acked chats / (first send to last ack); deliveries/s: deliveries / (first send to last delivery); every"
echo "chat has 2 deliveries (2 members per room). redis cpu%: utime+stime of all redis-servers over the run, % of one core;"
echo "redis us/chat: that CPU / chats acked; roomcast us/chat, us/deliv.: CPU of both instances / chats, / deliveries; eval us per call:"
echo "INFO commandstats usec_per_call of EVAL on each node (the chat script; joins and heartbeats are a few dozen calls; wall"
echo "time inside the call, so a descheduled or throttled redis-server inflates it; full commandstats in $work);"
echo "other cpu%: the machine outside the bench, roomcast and Redis; rooms per master: the rooms' streams found on each node."
