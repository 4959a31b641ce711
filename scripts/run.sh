#!/usr/bin/env bash
# Runs the live-count demo (examples/live-count) on a fresh machine: installs
# the dependencies, builds realtimed, starts redis-server unless one is
# reachable at $REDIS_URL, starts realtimed in guest mode serving the page and
# the JS client, and the Python publisher; prints the URL to open. Ctrl-C
# (or SIGTERM) stops all of it.
#
# Environment:
#   PORT=9000          HTTP / Socket.IO port of realtimed
#   LISTEN_HOST=127.0.0.1  address realtimed binds. For browsers on other
#                      machines: LISTEN_HOST=0.0.0.0 SITE=<this host's name>,
#                      and open http://<name>:PORT/?site=<name> (away from
#                      localhost the site is the Host header's name)
#   REDIS_URL=...      use this Redis; if nothing answers there and it is
#                      local, redis-server is started on its port.
#                      Default: our own redis-server on a free port.
#   SITE=demo          site (namespace /<site>) the page and publisher use
#   INTERVAL=1         seconds between counts
#   SKIP_DEPS=1        do not run scripts/install-deps.sh
# shellcheck disable=SC2016,SC2317  # trap/indirect functions; single quotes on purpose
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${PORT:-9000}
LISTEN_HOST=${LISTEN_HOST:-127.0.0.1}
SITE=${SITE:-demo}
INTERVAL=${INTERVAL:-1}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

say() { echo "run.sh: $*" >&2; }

if [ -z "${SKIP_DEPS:-}" ]; then ./scripts/install-deps.sh; fi
make -j"$(nproc)" >/dev/null

pids=()
names=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/realtimed-demo.XXXXXX")

cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  # Newest first: publisher, realtimed, then redis.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$tmp"
  [ ${#pids[@]} -gt 0 ] && say "stopped ${names[*]}"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # start NAME CMD...: in the background, remembered for cleanup
  local name=$1
  shift
  "$@" &
  pids+=($!)
  names+=("$name")
}

redis_ping() { # redis_ping URL: true when Redis answers there
  "$PY" -c 'import redis, sys
sys.exit(0 if redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping() else 1)' "$1" \
    >/dev/null 2>&1
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_until() { # wait_until WHAT SECONDS CMD...: poll CMD; fail if a child died
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    for ((i = 0; i < ${#pids[@]}; i++)); do
      kill -0 "${pids[i]}" 2>/dev/null || { say "${names[i]} exited"; exit 1; }
    done
    [ $SECONDS -lt $deadline ] || { say "$what not ready after ${secs} s"; exit 1; }
    sleep 0.1
  done
}

# ---- Redis
if [ -n "${REDIS_URL:-}" ] && redis_ping "$REDIS_URL"; then
  say "using the Redis at $REDIS_URL"
else
  if [ -n "${REDIS_URL:-}" ]; then
    rhost=$("$PY" -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).hostname or "")' "$REDIS_URL")
    rport=$("$PY" -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).port or 6379)' "$REDIS_URL")
    case "$rhost" in
      127.0.0.1 | localhost) ;;
      *) say "no Redis answers at $REDIS_URL (not local: not starting one)"; exit 1 ;;
    esac
  else
    rport=$(free_port)
    REDIS_URL="redis://127.0.0.1:$rport"
  fi
  say "starting redis-server on port $rport (data in $tmp)"
  start redis-server redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/redis.log"
  wait_until redis-server 10 redis_ping "$REDIS_URL"
fi

# ---- the served folder: the page, the JS client and socket.io-client's ESM build
www=$ROOT/build/live-count
sio=$ROOT/tests/node_modules/socket.io-client/dist/socket.io.esm.min.js
[ -f "$sio" ] || { say "missing $sio: run scripts/install-deps.sh"; exit 1; }
mkdir -p "$www"
cp "$ROOT/examples/live-count/index.html" "$ROOT/clients/js/realtime.js" "$sio" "$www/"

# ---- realtimed (guest mode: no Frappe; run from an empty folder, no bench)
mkdir -p "$tmp/cwd"
start realtimed bash -c 'cd "$1" && shift && exec "$@"' _ "$tmp/cwd" \
  "$ROOT/build/realtimed" --auth-mode guest --default-site "$SITE" --static-dir "$www" \
  --redis-queue "$REDIS_URL" --port "$PORT" --listen-host "$LISTEN_HOST"
case "$LISTEN_HOST" in 0.0.0.0 | 127.0.0.1) host=127.0.0.1 ;; *) host=$LISTEN_HOST ;; esac
health() { curl -fsS -o /dev/null "http://$host:$PORT/health"; }
wait_until realtimed 10 health

# ---- the publisher
start publisher env PYTHONPATH="$ROOT/clients/python${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" "$ROOT/examples/live-count/publisher.py" --redis "$REDIS_URL" --site "$SITE" --interval "$INTERVAL"

echo
echo "Open http://$host:$PORT/ in a browser  (Ctrl-C stops ${names[*]})"
echo

# Until Ctrl-C, or until one of them stops on its own.
set +e
wait -n "${pids[@]}"
rc=$?
for ((i = 0; i < ${#pids[@]}; i++)); do
  kill -0 "${pids[i]}" 2>/dev/null || say "${names[i]} exited (status $rc)"
done
exit 1
