#!/usr/bin/env bash
# Installs, only when missing, every Debian package roomcast needs to build, run and test,
# and the browser test's npm package. apt-get update runs only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libuv1-dev libwslay-dev libhiredis-dev node-llhttp libcmocka-dev
  rapidjson-dev libssl-dev libjwt-dev
  redis-server
  python3 python3-websockets
  chromium
  nginx haproxy  # tests only: test_tls_proxy runs them from its own temp folder, never the system services
  curl
)
# Node.js: any node/npm on PATH will do (images often carry NodeSource's); else Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
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
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  echo "deps: npm ci in tests/e2e"
  (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
