#!/usr/bin/env bash
# Runs a local roomcast cluster: one redis-server (unless --redis is given) and N instances sharing
# one port with SO_REUSEPORT (or on distinct ports with --ports). State, pids and logs live in one folder.
#
#   scripts/cluster.sh start [--instances N] [--port P | --ports P1,P2,..] [--host H]
#                            [--redis URL | --redis-port P | --redis-cluster N|HOST:PORT,..]
#                            [--state DIR] [-- roomcast options...]
#   scripts/cluster.sh stop   [--state DIR]   stops exactly what start started
#   scripts/cluster.sh status [--state DIR]
#
#   --redis-cluster N           a local Redis Cluster of N masters (N >= 3) with one replica each, on ports
#                               from --redis-port (default: the first free run from 7000; bus ports +10000),
#                               and the instances on it with --redis-cluster
#   --redis-cluster H:P,H:P,..  an existing Redis Cluster (seed nodes); none is started
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
[ $# -gt 0 ] && shift
state=${ROOMCAST_STATE:-.run/cluster}
instances=${INSTANCES:-$(nproc)}
port=${PORT:-8080}
ports=""
host=${HOST:-0.0.0.0}
redis_url=${REDIS_URL:-}
redis_port=""
redis_cluster=${ROOMCAST_REDIS_CLUSTER:-}
# The Redis started here is bounded: at most this much memory; under pressure the least recently used
# keys that have a TTL go first (room histories, --history-ttl), never members or liveness keys' peers.
redis_maxmemory=${ROOMCAST_REDIS_MAXMEMORY:-256mb}
bin=${ROOMCAST_BIN:-build/server/roomcast}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --instances) instances=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --ports) ports=$2; shift 2 ;;
    --host) host=$2; shift 2 ;;
    --redis) redis_url=$2; shift 2 ;;
    --redis-port) redis_port=$2; shift 2 ;;
    --redis-cluster) redis_cluster=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

healthz() {  # port -> prints the body, fails if nothing answers
  curl -s --max-time 2 "http://127.0.0.1:$1/healthz" 2>/dev/null
}

# A local Redis Cluster: node i in $state/redis-cluster/node-$i (nodes.conf, redis.pid, redis.log), on port
# base+i and cluster-bus port base+i+10000; masters first, one replica each (redis-cli --cluster create).
cluster_dir() { echo "$(cd "$state" && pwd)/redis-cluster"; }

start_redis_cluster() {  # masters -> sets redis_cluster to the seed list
  local masters=$1 n=$(($1 * 2)) base=$redis_port dir
  [ "$masters" -ge 3 ] || { echo "cluster: --redis-cluster N needs N >= 3 masters (Redis Cluster's minimum)" >&2; exit 2; }
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
    || { echo "cluster: redis-server and redis-cli are not installed (scripts/deps.sh)" >&2; exit 1; }
  if [ -z "$base" ]; then
    base=7000
    while :; do
      local busy=0
      for ((i = 0; i < n; i++)); do
        if port_busy $((base + i)) || port_busy $((base + i + 10000)); then busy=1; break; fi
      done
      [ $busy = 0 ] && break
      base=$((base + 10))
      [ $base -lt 7500 ] || { echo "cluster: no free run of $n ports between 7000 and 7500" >&2; exit 1; }
    done
  fi
  dir=$(cluster_dir)
  stop_redis_cluster   # what an earlier start left running in this state folder
  rm -rf "$dir"        # a node with an old nodes.conf would refuse to join a new cluster
  local addrs=()
  for ((i = 0; i < n; i++)); do
    local p=$((base + i))
    port_busy $p && { echo "cluster: port $p is already in use; choose another base with --redis-port" >&2; exit 1; }
    mkdir -p "$dir/node-$i"
    redis-server --port $p --bind 127.0.0.1 --dir "$dir/node-$i" --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port $((p + 10000)) \
      --cluster-node-timeout 5000 --cluster-require-full-coverage no --repl-diskless-sync-delay 0 \
      --maxmemory "$redis_maxmemory" --maxmemory-policy volatile-lru \
      --daemonize yes --pidfile "$dir/node-$i/redis.pid" --logfile "$dir/node-$i/redis.log"
    echo $p >"$dir/node-$i/port"
    addrs+=("127.0.0.1:$p")
  done
  for ((i = 0; i < n; i++)); do
    for _ in $(seq 50); do redis-cli -p $((base + i)) ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
    echo "cluster: redis-cli --cluster create failed; see $dir/create.log" >&2; stop; exit 1
  fi
  # Ready when every node says cluster_state:ok and redis-cli finds every slot covered and agreed on.
  local ok=""
  for _ in $(seq 150); do
    ok=1
    for a in "${addrs[@]}"; do
      redis-cli -p "${a##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || { ok=""; break; }
    done
    [ -n "$ok" ] && redis-cli --cluster check "${addrs[0]}" 2>/dev/null | grep -q 'All nodes agree' && break
    ok=""
    sleep 0.2
  done
  [ -n "$ok" ] || echo "cluster: warning: the Redis Cluster is not consistent yet (see $dir/node-*/redis.log)" >&2
  redis_cluster=$(IFS=,; echo "${addrs[*]}")
  echo "cluster: Redis Cluster of $masters masters + $masters replicas on ports $base-$((base + n - 1)) (bus +10000; state $dir)"
}

stop_redis_cluster() {
  local dir pids=() f
  dir=$(cluster_dir 2>/dev/null) || return 0
  for f in "$dir"/node-*/redis.pid; do [ -f "$f" ] && alive "$f" && pids+=("$(cat "$f")"); done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    local left=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p"; done
  rm -f "$dir"/node-*/redis.pid
  echo "cluster: Redis Cluster stopped (${#pids[@]} node(s))"
}

start() {
  if ls "$state"/roomcast-*.pid >/dev/null 2>&1; then
    for f in "$state"/roomcast-*.pid; do
      if alive "$f"; then echo "cluster: already running (state in $state); run '$0 stop' first" >&2; exit 1; fi
    done
  fi
  [ -x "$bin" ] || { echo "cluster: $bin not built; run scripts/build.sh" >&2; exit 1; }
  if [ -n "$redis_cluster" ] && [ -n "$redis_url" ]; then
    echo "cluster: --redis and --redis-cluster (or REDIS_URL and ROOMCAST_REDIS_CLUSTER) exclude each other" >&2; exit 2
  fi
  mkdir -p "$state"
  rm -f "$state"/*.pid
  local list=()
  if [ -n "$ports" ]; then IFS=, read -r -a list <<<"$ports"; else for ((i = 0; i < instances; i++)); do list+=("$port"); done; fi
  for p in $(printf '%s\n' "${list[@]}" | sort -u); do
    if port_busy "$p"; then echo "cluster: port $p is already in use; choose another with --port or PORT=" >&2; exit 1; fi
  done

  local broker=(--redis "$redis_url") want='"redis":"up"'
  if [ -n "$redis_cluster" ]; then
    if [[ "$redis_cluster" =~ ^[0-9]+$ ]]; then
      start_redis_cluster "$redis_cluster"
    else
      echo "cluster: using the Redis Cluster at $redis_cluster (not started here)"
    fi
    echo "$redis_cluster" >"$state/redis-cluster.seeds"
    rm -f "$state/redis.url"
    broker=(--redis-cluster "$redis_cluster")
    want='"redis":"cluster"'
  elif [ -z "$redis_url" ]; then
    command -v redis-server >/dev/null || { echo "cluster: redis-server is not installed (scripts/deps.sh)" >&2; exit 1; }
    [ -n "$redis_port" ] || redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$(cd "$state" && pwd)" --save '' --appendonly no \
      --maxmemory "$redis_maxmemory" --maxmemory-policy volatile-lru \
      --daemonize yes --pidfile "$(cd "$state" && pwd)/redis.pid" --logfile "$(cd "$state" && pwd)/redis.log"
    for _ in $(seq 50); do [ -s "$state/redis.pid" ] && break; sleep 0.1; done
    redis_url="redis://127.0.0.1:$redis_port"
    echo "cluster: redis-server on port $redis_port (pid $(cat "$state/redis.pid"), log $state/redis.log, maxmemory $redis_maxmemory volatile-lru)"
  else
    echo "cluster: using Redis at $redis_url (not started here)"
  fi
  if [ -z "$redis_cluster" ]; then
    echo "$redis_url" >"$state/redis.url"
    rm -f "$state/redis-cluster.seeds"
    broker=(--redis "$redis_url")
  fi

  local i=0
  for p in "${list[@]}"; do
    i=$((i + 1))
    setsid "$bin" --host "$host" --port "$p" "${broker[@]}" "${extra[@]}" >>"$state/roomcast-$i.log" 2>&1 </dev/null &
    echo $! >"$state/roomcast-$i.pid"
    echo "$p" >"$state/roomcast-$i.port"
  done
  # Ready when every instance answers and reports Redis up (through the shared port, a random one answers).
  for p in $(printf '%s\n' "${list[@]}" | sort -u); do
    local ok=""
    for _ in $(seq 100); do
      if healthz "$p" | grep -q '"status":"ok"' && healthz "$p" | grep -q "$want"; then ok=1; break; fi
      sleep 0.1
    done
    [ -n "$ok" ] || echo "cluster: warning: port $p does not report ${want//\"/} yet (see $state/*.log)" >&2
  done
  for f in "$state"/roomcast-*.pid; do
    alive "$f" || { echo "cluster: an instance exited at start; its log:" >&2; tail -5 "${f%.pid}.log" >&2; stop; exit 1; }
  done
  echo "cluster: $i instance(s) up; pids $(cat "$state"/roomcast-*.pid | tr '\n' ' ')"
  for p in $(printf '%s\n' "${list[@]}" | sort -u); do
    local shown=$host; [ "$shown" = "0.0.0.0" ] && shown=localhost
    echo "cluster: web client at http://$shown:$p/"
  done
}

stop() {
  local pids=()
  for f in "$state"/roomcast-*.pid; do [ -f "$f" ] && alive "$f" && pids+=("$(cat "$f")"); done
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 60); do
    local left=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { echo "cluster: pid $p did not stop in 6 s; killing" >&2; kill -KILL "$p"; }; done
  if alive "$state/redis.pid"; then
    local rp; rp=$(cat "$state/redis.pid")
    kill -TERM "$rp" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$rp" 2>/dev/null || break; sleep 0.1; done
  fi
  [ -d "$state/redis-cluster" ] && stop_redis_cluster
  rm -f "$state"/*.pid "$state"/*.port
  echo "cluster: stopped (${#pids[@]} instance(s))"
}

status() {
  local any=0
  for f in "$state"/roomcast-*.pid; do
    [ -f "$f" ] || continue
    any=1
    local p; p=$(cat "${f%.pid}.port" 2>/dev/null || echo "?")
    if alive "$f"; then echo "instance pid $(cat "$f") port $p: running"; else echo "instance pid $(cat "$f") port $p: dead"; fi
  done
  if [ -f "$state/redis.pid" ]; then
    if alive "$state/redis.pid"; then echo "redis pid $(cat "$state/redis.pid"): running ($(cat "$state/redis.url"))"; else echo "redis: dead"; fi
  fi
  if [ -f "$state/redis-cluster.seeds" ] && { [ -d "$state/redis-cluster" ] || ls "$state"/roomcast-*.pid >/dev/null 2>&1; }; then
    local f
    for f in "$state"/redis-cluster/node-*/redis.pid; do
      [ -f "$f" ] || continue
      local np role
      np=$(cat "$(dirname "$f")/port")
      if alive "$f"; then
        role=$(redis-cli -p "$np" role 2>/dev/null | head -1)
        echo "redis-cluster node 127.0.0.1:$np pid $(cat "$f"): running (${role:-no answer})"
      else
        echo "redis-cluster node 127.0.0.1:$np: dead"
      fi
    done
    ls "$state"/roomcast-*.pid >/dev/null 2>&1 && echo "redis cluster seeds: $(cat "$state/redis-cluster.seeds")"
  fi
  [ $any = 1 ] || { echo "no cluster running (state $state)"; return 3; }
  for p in $(cat "$state"/roomcast-*.port 2>/dev/null | sort -u); do echo "port $p /healthz: $(healthz "$p" || echo 'no answer')"; done
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status [options] (see --help)" >&2; exit 2 ;;
esac
