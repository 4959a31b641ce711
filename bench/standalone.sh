#!/usr/bin/env bash
# The standalone mode's connect rate (issue 18): loadgen storm (N clients
# from zero, 256 handshakes in flight, WebSocket) against
#   realtimed --auth-mode jwt with an HS256 and with an RS256 token,
#   realtimed in Frappe mode (every connect asks the web server: authstub),
#   Node socket.io 4.8 + a jsonwebtoken middleware (HS256, RS256).
# The server on CPU 0, the load generator and helpers on CPU 1.
#   bench/standalone.sh [clients=10000]
# Prints one line per run and writes bench/results/standalone-<date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CLIENTS=${1:-10000}
make -s build/realtimed build/bench/loadgen build/bench/authstub
[ -d bench/baseline/node_modules/jsonwebtoken ] || (cd bench/baseline && npm ci --no-audit --no-fund >/dev/null)
TMP=$(mktemp -d /tmp/realtimed-sbench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# keys and tokens (minted once; every connect is verified again)
head -c 32 /dev/urandom | base64 >"$TMP/hs.key"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/rsa-priv.pem" 2>/dev/null
openssl pkey -in "$TMP/rsa-priv.pem" -pubout -out "$TMP/rsa.pem"
HS_TOKEN=$(node -e '
const c=require("crypto"),f=require("fs");const b=(o)=>Buffer.from(JSON.stringify(o)).toString("base64url");
const i=b({alg:"HS256",typ:"JWT"})+"."+b({sub:"bench",exp:Math.floor(Date.now()/1000)+3600});
console.log(i+"."+c.createHmac("sha256",f.readFileSync(process.argv[1],"utf8").replace(/\n$/,"")).update(i).digest("base64url"))' "$TMP/hs.key")
RS_TOKEN=$(node -e '
const c=require("crypto"),f=require("fs");const b=(o)=>Buffer.from(JSON.stringify(o)).toString("base64url");
const i=b({alg:"RS256",typ:"JWT"})+"."+b({sub:"bench",exp:Math.floor(Date.now()/1000)+3600});
console.log(i+"."+c.sign("sha256",Buffer.from(i),f.readFileSync(process.argv[1])).toString("base64url"))' "$TMP/rsa-priv.pem")

# the Frappe mode's helpers: Redis and the web server stand-in
REDIS_PORT=$(free_port); AUTH_PORT=$(free_port)
taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >/dev/null 2>&1 &
PIDS+=($!)
REDIS_PID=$!
taskset -c 1 build/bench/authstub --port "$AUTH_PORT" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
BENCH=$TMP/bench; mkdir -p "$BENCH/sites/bench.local"; echo '{}' >"$BENCH/sites/bench.local/site_config.json"

OUT=bench/results/standalone-$(date -u +%Y%m%d-%H%M%S).json
echo "[" >"$OUT"
first=1
run() { # $1 label, $2 site for loadgen, $3 auth json or "", then the server command
    local label=$1 site=$2 auth=$3; shift 3
    local port; port=$(free_port)
    (cd "$BENCH" && PORT=$port exec taskset -c 0 "$@" --port "$port" 2>/dev/null) >"$TMP/$label.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do ss -ltnH "sport = :$port" | grep -q . && break; sleep 0.1; done
    sleep 0.5
    local spid; spid=$(pgrep -P $pid | head -1 || true); [ -n "$spid" ] || spid=$pid
    taskset -c 1 build/bench/loadgen storm --port "$port" --server-pid "$spid" --site "$site" ${auth:+--auth-json "$auth"} \
        --clients "$CLIENTS" --procs 2 --window 256 >"$TMP/$label.json" 2>>"$TMP/loadgen.log" || true
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    python3 - "$label" "$TMP/$label.json" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
try:
    d = json.load(open(path))
except Exception as e:
    print(f"{label:28s} failed: {e}"); sys.exit(0)
p = d.get("storm_distinct_sid", {})
print(f"{label:28s} {p.get('connects_per_s', float('nan')):9.0f} connects/s  "
      f"({p.get('new_connections', 0):.0f} of {p.get('target', 0):.0f}, "
      f"failed {p.get('new_failed', 0):.0f}, server CPU {p.get('server_cpu_s', float('nan'))} s)")
PY
    [ $first = 1 ] || echo "," >>"$OUT"; first=0
    printf '{"label": "%s", "result": ' "$label" >>"$OUT"; cat "$TMP/$label.json" >>"$OUT" 2>/dev/null || echo null >>"$OUT"; echo "}" >>"$OUT"
}
RT=$ROOT/build/realtimed
cat >"$BENCH/sites/common_site_config.json" <<J
{"redis_queue": "redis://127.0.0.1:$REDIS_PORT", "webserver_port": $AUTH_PORT}
J
run "realtimed jwt HS256" / "{\"token\":\"$HS_TOKEN\"}" "$RT" --auth-mode jwt --jwt-key "$TMP/hs.key" --log-level warning
run "realtimed jwt RS256" / "{\"token\":\"$RS_TOKEN\"}" "$RT" --auth-mode jwt --jwt-key "$TMP/rsa.pem" --log-level warning
run "realtimed frappe (authstub)" bench.local "" "$RT" --webserver-host 127.0.0.1 --log-level warning
JWT_KEY=$TMP/hs.key run "node socket.io+jwt HS256" / "{\"token\":\"$HS_TOKEN\"}" node "$ROOT/bench/baseline/server_jwt.js"
JWT_KEY=$TMP/rsa.pem run "node socket.io+jwt RS256" / "{\"token\":\"$RS_TOKEN\"}" node "$ROOT/bench/baseline/server_jwt.js"
echo "]" >>"$OUT"
echo "wrote $OUT"
