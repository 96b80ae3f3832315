#!/usr/bin/env bash
# Installs, only when missing, the Debian packages roomcast needs. apt-get update runs only when something
# is missing.
#
#   scripts/deps.sh run    building and running: compiler, cmake, pkg-config, the -dev libraries, redis-server
#   scripts/deps.sh test   the above and what the tests add: cmocka, Python websockets, Chromium, Node.js and
#                          the browser test's npm packages, systemd-analyze, the .deb tools, nginx and haproxy
#                          (the default)
set -euo pipefail
cd "$(dirname "$0")/.."

part=${1:-test}
case "$part" in
  run|test) ;;
  -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "deps: unknown part '$part' (run or test)" >&2; exit 2 ;;
esac

# Building and running (scripts/build.sh --no-tests, scripts/run.sh, scripts/cluster.sh).
packages=(
  build-essential cmake pkg-config
  libuv1-dev libwslay-dev libhiredis-dev node-llhttp
  rapidjson-dev libssl-dev libjwt-dev
  redis-server
  python3 curl
)
if [ "$part" = test ]; then
  # The tests: units (cmocka), black-box tests (Python websockets), the browser test (Chromium, Node.js),
  # the package test (dpkg-shlibdeps from dpkg-dev, file for CPack), the unit files' check (systemd-analyze)
  # and the TLS proxy test (nginx, haproxy).
  packages+=(
    libcmocka-dev
    python3-websockets
    chromium
    dpkg-dev file
    systemd
    nginx haproxy  # test_tls_proxy runs them from its own temp folder, never the system services
    openssl        # test_tls_proxy's self-signed certificate (libssl-dev does not bring the command)
    iproute2       # ip netns: the multi-host tests (test_netns_*), which otherwise skip
  )
  # Node.js: any node/npm on PATH will do (images often carry NodeSource's); else Debian's.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The browser test drives Debian's chromium with playwright-core (never a downloaded browser).
if [ "$part" = test ] && [ ! -d tests/e2e/node_modules/playwright-core ]; then
  echo "deps: npm ci in tests/e2e"
  (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
