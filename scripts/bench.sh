#!/usr/bin/env bash
# The standard benchmark set: installs what the peers need (Debian: nginx, libnginx-mod-nchan, nodejs,
# npm, gnuplot; npm: bench/peers/package.json), builds Release into build-bench/, runs bench/bench.py and
# rewrites the generated part of docs/benchmarks.md, docs/bench/results.json and docs/bench/*.png|svg.
# Rule: under 10 minutes on 2 cores; whatever it starts, it stops; a peer that cannot be installed is left
# out (and said so), it never fails the run.
#
#   scripts/bench.sh                  everything (about 8 minutes after the build)
#   scripts/bench.sh --smoke          each scenario for about a second, tiny sizes: the plumbing only (no docs)
#   scripts/bench.sh --no-install     use what is installed;   --no-build: reuse build-bench/
#   scripts/bench.sh --only fanout,idle --systems floor,roomcast      (see bench/bench.py --help)
# The million-connection run is separate: bench/million.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
install=1
build=1
args=()
for a in "$@"; do
  case "$a" in
    --no-install) install=0 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done
if [ $install = 1 ]; then
  need=()
  for p in nginx libnginx-mod-nchan nodejs gnuplot-nox redis-server redis-tools; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  command -v npm >/dev/null || need+=(npm)
  if [ ${#need[@]} -gt 0 ]; then
    echo "bench.sh: installing ${need[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null 2>&1 ||
      echo "bench.sh: apt-get could not install all of ${need[*]}; the peers that need them are left out"
  fi
  if command -v npm >/dev/null && [ ! -d bench/peers/node_modules ]; then
    echo "bench.sh: npm install in bench/peers"
    (cd bench/peers && timeout 300 npm install --no-audit --no-fund --loglevel=error) ||
      echo "bench.sh: npm install failed; Socket.IO and ws peers are left out"
  fi
fi
if [ $build = 1 ]; then
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-bench -j"$(nproc)" --target roomcast roomcast-bench roomcast-floor roomcast-verify-bench >/dev/null
fi
exec python3 bench/bench.py "${args[@]}"
