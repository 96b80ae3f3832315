#!/usr/bin/env bash
# Restarts roomcast instances one at a time, so that the shared port always has instances serving it: each
# instance is stopped (SIGTERM: its clients get close 1001 and reconnect elsewhere, or here later, with `since`),
# started again, and the next one waits until /healthz answers 200 from the new process.
# Rule: it stops at the first instance that does not come back healthy (the others keep running).
#
#   rolling-restart.sh systemd [--port P] [--timeout S] [UNIT...]
#       roomcast@N.service units (default: every active one, in order); port: PORT of /etc/roomcast/roomcast.env
#   rolling-restart.sh cluster [--state DIR] [--timeout S]
#       the plain processes of scripts/cluster.sh (default state .run/cluster): each restarts with the
#       command line, working folder and environment it had, its log appended, its pid file updated
#
# /healthz names the instance that answers ("instance":"host:N" under systemd, "host:pid" by default), so the
# wait is for an answer from the new process itself, even among several instances on one SO_REUSEPORT port.
set -euo pipefail

mode=${1:-}
[ $# -gt 0 ] && shift
port=""
timeout=30
state=${ROOMCAST_STATE:-.run/cluster}
units=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "rolling-restart: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) units+=("$1"); shift ;;
  esac
done

# GET /healthz on 127.0.0.1:port over bash's /dev/tcp (no curl needed); prints status line and body.
healthz() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" >&3 && cat <&3' _ "$1" 2>/dev/null || true
}

# Waits until a 200 /healthz on port comes from instance id; fails after $timeout seconds.
wait_healthy() {
  local p=$1 id=$2 deadline=$((SECONDS + timeout)) body
  while [ $SECONDS -lt $deadline ]; do
    body=$(healthz "$p")
    if [[ $body == "HTTP/1.1 200"* && $body == *"\"instance\":\"$id\""* ]]; then return 0; fi
    sleep 0.1
  done
  echo "rolling-restart: instance $id did not answer /healthz 200 on port $p within ${timeout}s; last answer:" >&2
  echo "$body" | tail -1 >&2
  return 1
}

restart_systemd() {
  if [ ${#units[@]} -eq 0 ]; then
    mapfile -t units < <(systemctl list-units 'roomcast@*.service' --state=active --plain --no-legend | awk '{print $1}' | sort -V)
  fi
  [ ${#units[@]} -gt 0 ] || { echo "rolling-restart: no active roomcast@*.service" >&2; exit 1; }
  if [ -z "$port" ]; then
    port=$(sed -n 's/^[[:space:]]*PORT=["'\'']\{0,1\}\([0-9]*\).*/\1/p' /etc/roomcast/roomcast.env 2>/dev/null | tail -1)
    [ -n "$port" ] || port=8080
  fi
  local host; host=$(uname -n)
  local u i
  for u in "${units[@]}"; do
    i=${u#roomcast@}; i=${i%.service}
    echo "rolling-restart: restarting $u"
    systemctl restart "$u"
    wait_healthy "$port" "$host:$i"
    echo "rolling-restart: $u is back (pid $(systemctl show -p MainPID --value "$u"))"
  done
  echo "rolling-restart: ${#units[@]} instance(s) restarted"
}

restart_cluster() {
  local f n=0
  ls "$state"/roomcast-*.pid >/dev/null 2>&1 || { echo "rolling-restart: no instances in $state" >&2; exit 1; }
  for f in $(ls "$state"/roomcast-*.pid | sort -V); do
    local pid; pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || { echo "rolling-restart: pid $pid ($f) is not running; skipped" >&2; continue; }
    local p; p=$(cat "${f%.pid}.port")
    local argv=() envs=() cwd
    mapfile -d '' argv <"/proc/$pid/cmdline"
    mapfile -d '' envs <"/proc/$pid/environ"
    cwd=$(readlink "/proc/$pid/cwd")
    # The id the new process will report: its --instance-id, else host:pid (the server's default).
    local fixed_id="" k
    for k in "${envs[@]}"; do [[ $k == ROOMCAST_INSTANCE_ID=?* ]] && fixed_id=${k#ROOMCAST_INSTANCE_ID=}; done
    for ((k = 0; k < ${#argv[@]}; k++)); do
      case "${argv[k]}" in
        --instance-id) fixed_id=${argv[k + 1]:-} ;;
        --instance-id=*) fixed_id=${argv[k]#--instance-id=} ;;
      esac
    done
    echo "rolling-restart: restarting pid $pid (port $p)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
      [ $SECONDS -lt $deadline ] || { echo "rolling-restart: pid $pid did not exit within ${timeout}s" >&2; exit 1; }
      sleep 0.05
    done
    (cd "$cwd" && exec setsid env -i "${envs[@]}" "${argv[@]}" >>"${f%.pid}.log" 2>&1 </dev/null) &
    local newpid=$!
    echo "$newpid" >"$f"
    wait_healthy "$p" "${fixed_id:-$(uname -n):$newpid}"
    echo "rolling-restart: port $p: pid $newpid is up"
    n=$((n + 1))
  done
  echo "rolling-restart: $n instance(s) restarted"
}

case "$mode" in
  systemd) restart_systemd ;;
  cluster) restart_cluster ;;
  *) echo "usage: $0 systemd|cluster [options] (see --help)" >&2; exit 2 ;;
esac
