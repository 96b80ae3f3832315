#!/usr/bin/env bash
# One command to try roomcast: installs what is missing, builds, starts a local redis-server and one
# instance per core on one port (SO_REUSEPORT), prints the web client's URL, stops everything on Ctrl-C.
#
#   ./scripts/run.sh                      Redis + one instance per core on port 8080 (PORT=... to change)
#   ./scripts/run.sh --standalone         one process, no Redis
#   ./scripts/run.sh --ports 8080,8081    instances on distinct ports (the two-terminal demo)
#   ./scripts/run.sh --redis redis://host:6379   use your own Redis, start none
#   ./scripts/run.sh --redis-cluster 3    a local Redis Cluster (3 masters, 1 replica each, ports from 7000)
#                                         and the instances on it (--redis-cluster mode)
#   ./scripts/run.sh --redis-cluster host:7000,host:7001   use your own Redis Cluster (seed nodes), start none
#   ./scripts/run.sh --auth ...           also authentication and the server API: a fresh random JWT secret
#                                         and API key (printed), and web-client URLs with tokens for two users
#   Anything after -- goes to every roomcast instance (see build/server/roomcast --help); the other options
#   are scripts/cluster.sh start's (scripts/cluster.sh start --help).
set -euo pipefail
cd "$(dirname "$0")/.."

# --auth may come anywhere before --; the rest is passed on as it was.
auth=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --auth) auth=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) args+=("$@"); break ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- ${args[@]+"${args[@]}"}

./scripts/deps.sh run
./scripts/build.sh --no-tests build

auth_opts=()
if [ $auth = 1 ]; then
  # 33 random bytes are 44 base64 characters without '=' padding (a secret with '=' could read as KID=SECRET).
  jwt_secret=$(head -c 33 /dev/urandom | base64 -w0)
  api_key=$(head -c 33 /dev/urandom | base64 -w0)
  auth_opts=(--jwt-secret "$jwt_secret" --api-key "$api_key")
fi

# Prints the secret, the key and a web-client URL with a fresh token per user (after the servers are up).
print_auth() {
  [ $auth = 1 ] || return 0
  local url_port=$1
  echo "run: authentication is on; these change at every start"
  echo "run:   JWT secret (HS256): $jwt_secret"
  echo "run:   API key:            $api_key"
  echo "run:   mint more tokens:   build/server/roomcast token --secret '$jwt_secret' --sub USER --name NAME --ttl 1h"
  echo "run:   server API:         curl -H 'X-API-Key: $api_key' http://localhost:$url_port/api/rooms/lobby"
  local who
  for who in alice:Alice bob:Bob; do
    local token
    token=$(build/server/roomcast token --secret "$jwt_secret" --sub "${who%%:*}" --name "${who#*:}" --ttl 1h)
    echo "run: web client as ${who#*:} (token valid 1 h): http://localhost:$url_port/?token=$token"
  done
}

if [ "${1:-}" = "--standalone" ]; then
  shift
  port=${PORT:-8080}
  echo "run: standalone on http://localhost:$port/ (Ctrl-C stops)"
  if [ $auth = 1 ]; then
    build/server/roomcast --port "$port" "${auth_opts[@]}" "$@" &
    pid=$!
    trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM
    for _ in $(seq 100); do curl -s --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    print_auth "$port"
    wait $pid
    exit $?
  fi
  exec build/server/roomcast --port "$port" "$@"
fi

# The port the URLs name: --port P, the first of --ports, else PORT or 8080; the auth options join the
# ones after -- (or start that list).
url_port=${PORT:-8080}
cluster_args=()
seen_dd=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) url_port=$2; cluster_args+=("$1" "$2"); shift 2 ;;
    --ports) url_port=${2%%,*}; cluster_args+=("$1" "$2"); shift 2 ;;
    --) seen_dd=1; cluster_args+=("$@"); break ;;
    *) cluster_args+=("$1"); shift ;;
  esac
done
if [ $auth = 1 ]; then
  [ $seen_dd = 1 ] || cluster_args+=(--)
  cluster_args+=("${auth_opts[@]}")
fi
set -- ${cluster_args[@]+"${cluster_args[@]}"}

state=.run/cluster
stopping=0
cleanup() {
  [ $stopping = 1 ] && return
  stopping=1
  echo
  ./scripts/cluster.sh stop --state "$state"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
./scripts/cluster.sh start --state "$state" "$@"
print_auth "$url_port"
if [ $auth = 1 ]; then
  echo "run: open the two URLs above in two browser tabs; logs: $state/*.log; Ctrl-C stops the cluster"
else
  echo "run: open the URL above in two browser tabs; logs: $state/*.log; Ctrl-C stops the cluster"
fi
# Stay in the foreground while the instances live, showing their logs.
tail -q -n +1 -F "$state"/roomcast-*.log &
tail_pid=$!
while ls "$state"/roomcast-*.pid >/dev/null 2>&1; do
  running=0
  for f in "$state"/roomcast-*.pid; do kill -0 "$(cat "$f")" 2>/dev/null && running=1; done
  [ $running = 1 ] || { echo "run: every instance has exited"; break; }
  sleep 1
done
kill $tail_pid 2>/dev/null || true
