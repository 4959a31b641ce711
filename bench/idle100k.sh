#!/usr/bin/env bash
# 100,000 idle WebSocket clients on one port (issue 10): realtimed with
# --workers (each process may open at most 20,000 files here, so the
# connections are spread over several workers and load-generator processes).
# Prints loadgen's JSON: server RSS (master + workers) after 1k and after all
# clients, and the kernel's share (slab, TCP buffer pages; machine-wide, and
# on loopback both ends of every connection are on this machine).
#
#   bench/idle100k.sh [CLIENTS=100000] [WORKERS=6]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIENTS=${1:-100000}
WORKERS=${2:-6}
PROCS=$(((CLIENTS + 16999) / 17000))
TMP=$(mktemp -d /tmp/realtimed-idle-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
AUTH_PORT=$(free_port)
SIO_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
"$ROOT/build/bench/authstub" --port "$AUTH_PORT" >"$TMP/authstub.log" 2>&1 &
PIDS+=($!)
mkdir -p "$TMP/bench/sites/bench.local"
echo '{}' >"$TMP/bench/sites/bench.local/site_config.json"
cat >"$TMP/bench/sites/common_site_config.json" <<EOF
{"redis_queue": "redis://127.0.0.1:$REDIS_PORT", "webserver_port": $AUTH_PORT, "socketio_port": $SIO_PORT}
EOF
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
(cd "$TMP/bench" && exec "$ROOT/build/realtimed" --webserver-host 127.0.0.1 --log-level warning --workers "$WORKERS" \
    --max-sessions 200000 --max-pending 200000) >"$TMP/realtimed.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 100); do
    [ "$(redis-cli -p "$REDIS_PORT" pubsub numsub events | tail -1)" = "$WORKERS" ] && break
    sleep 0.1
done
sleep 1
"$ROOT/build/bench/loadgen" ws --port "$SIO_PORT" --site bench.local --redis-port "$REDIS_PORT" --server-pid "$SERVER" \
    --server-tree --idle-only --procs "$PROCS" --src 2 --clients "$CLIENTS" --window 256
