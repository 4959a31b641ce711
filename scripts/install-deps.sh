#!/usr/bin/env bash
# Installs everything realtimed needs to build, run, test and benchmark:
# Debian packages (compilers, libraries, redis-server, python test clients,
# chromium, gnuplot, supervisor) and the npm packages of the test/bench folders.
# Idempotent: a second run with everything present does almost nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PKGS=(
  build-essential clang libclang-rt-14-dev pkg-config
  libssl-dev libhiredis-dev libcurl4-openssl-dev libjansson-dev zlib1g-dev
  redis-server
  python3 python3-venv python3-socketio python3-websocket python3-requests python3-redis python3-pytest
  python3-uvicorn python3-httpx python3-websockets
  chromium gnuplot-nox valgrind curl nginx-light
  supervisor
)
missing=()
# Node.js 18+ with npm: use what is there (nodesource or Debian), else Debian's.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Tests start redis-server on their own ports. When this run has just
# installed the package, the distribution's default instance it started is
# ours to stop; a Redis that was already there serves something else and is
# left alone.
if [[ " ${missing[*]:-} " == *" redis-server "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
# The same for supervisor: the setup-bench test runs a supervisord of its own.
if [[ " ${missing[*]:-} " == *" supervisor "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now supervisor >/dev/null 2>&1 || true
fi

# npm packages for the integration tests, the browser test and the baseline.
for d in tests bench/baseline; do
  if [ -f "$d/package.json" ]; then
    if [ ! -d "$d/node_modules" ] || [ "$d/package.json" -nt "$d/node_modules/.stamp" ]; then
      (cd "$d" && npm install --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
    fi
  fi
done
echo "install-deps: ok"
