#!/usr/bin/env bash
# One command to try roomcast: installs what is missing, builds, starts a local redis-server and one
# instance per core on one port (SO_REUSEPORT), prints the web client's URL, stops everything on Ctrl-C.
#
#   ./scripts/run.sh                      Redis + one instance per core on port 8080 (PORT=... to change)
#   ./scripts/run.sh --standalone         one process, no Redis
#   ./scripts/run.sh --ports 8080,8081    instances on distinct ports (the two-terminal demo)
#   ./scripts/run.sh --redis redis://host:6379   use your own Redis, start none
#   Anything after -- goes to every roomcast instance (see build/server/roomcast --help).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh build

if [ "${1:-}" = "--standalone" ]; then
  shift
  port=${PORT:-8080}
  echo "run: standalone on http://localhost:$port/ (Ctrl-C stops)"
  exec build/server/roomcast --port "$port" "$@"
fi

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
echo "run: open the URL above in two browser tabs; logs: $state/*.log; Ctrl-C stops the cluster"
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
