#!/usr/bin/env bash
# make bench: realtimed and the Node baseline (bench/baseline/server.js), one
# after the other, same scenarios, one run. Writes bench/results/latest.json,
# bench/results/latest.md, bench/results/*.png and docs/performance.md.
# Method: bench/README.md.
#
# Environment knobs (defaults in brackets):
#   BENCH_SERVERS       servers to measure ["realtimed node python"]
#   BENCH_CLIENTS       WebSocket clients [10000]
#   BENCH_POLL_CLIENTS  polling clients [1000]
#   BENCH_PROCS         loadgen worker processes for WebSocket sessions [2]
#   BENCH_SCALE         multiplies every phase duration [1]
#   BENCH_REPEAT        passes over all sessions; for every phase the report
#                       keeps the pass least disturbed by other processes [2]
#   BENCH_NO_DOCS=1     do not rewrite docs/performance.md
#   BENCH_SESSIONS      loadgen sessions to run ["ws storm poll"]
#   BENCH_RESULTS       output folder [bench/results]
#   BENCH_WORKERS=N     realtimed runs with --workers N on every core (CPU and
#                       memory are summed over the master and its workers)
#   BENCH_APPS=1        the bench has an app with realtime/handlers.js installed on
#                       the site (bench/apps/benchjs): every socket is mirrored to
#                       the Node handler host (the fan-out must not change)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SERVERS=${BENCH_SERVERS:-"realtimed node python"}
CLIENTS=${BENCH_CLIENTS:-10000}
POLL_CLIENTS=${BENCH_POLL_CLIENTS:-1000}
PROCS=${BENCH_PROCS:-2}
SCALE=${BENCH_SCALE:-1}
REPEAT=${BENCH_REPEAT:-2}
RESULTS=${BENCH_RESULTS:-bench/results}
SESSIONS=${BENCH_SESSIONS:-"ws storm poll"}
TMP=$RESULTS/tmp
case $TMP in /*) TMPX=$TMP ;; *) TMPX=$ROOT/$TMP ;; esac
T0=$(date +%s)

log() { printf '[bench %3ds] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- prerequisites
for t in redis-server redis-cli node gnuplot python3 taskset ss; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
make -s build/realtimed build/bench/loadgen build/bench/authstub
if [ ! -d bench/baseline/node_modules/socket.io ]; then
    log "installing the Node baseline's dependencies"
    (cd bench/baseline && npm ci --no-audit --no-fund >/dev/null)
fi

NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then SRV_CPU=0; CLI_CPU=1; else SRV_CPU=0; CLI_CPU=0; fi
# realtimed --workers N (BENCH_WORKERS): the workers may use every core (the
# clients keep theirs, so on 2 cores one worker shares it with them)
WORKERS=${BENCH_WORKERS:-1}
if [ "$WORKERS" -gt 1 ]; then RT_CPUS=0-$((NCPU - 1)); else RT_CPUS=$SRV_CPU; fi

rm -rf "$TMP"
mkdir -p "$TMP"
# Every pass runs the same binaries, even if build/ is rebuilt meanwhile.
cp build/realtimed build/bench/loadgen build/bench/authstub "$TMP/"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no -- src Makefile 2>/dev/null)" ] || COMMIT="$COMMIT-dirty"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
REDIS_PORT=$(free_port)
AUTH_PORT=$(free_port)
SIO_PORT=$(free_port)
SITE=bench.local

PIDS=()
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- infrastructure on the client core: Redis and the auth backend
taskset -c $CLI_CPU redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --loglevel warning >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
taskset -c $CLI_CPU "$TMP/authstub" --port "$AUTH_PORT" ${BENCH_APPS:+--apps benchjs} >"$TMP/authstub.log" 2>&1 &
AUTH_PID=$!
PIDS+=("$AUTH_PID")
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

BENCH_ROOT=$TMP/bench-root
mkdir -p "$BENCH_ROOT/sites/$SITE"
cat >"$BENCH_ROOT/sites/common_site_config.json" <<EOF
{"redis_queue": "redis://127.0.0.1:$REDIS_PORT", "webserver_port": $AUTH_PORT, "socketio_port": $SIO_PORT}
EOF
echo '{}' >"$BENCH_ROOT/sites/$SITE/site_config.json"
if [ -n "${BENCH_APPS:-}" ]; then
    mkdir -p "$BENCH_ROOT/apps"
    ln -sfn "$ROOT/bench/apps/benchjs" "$BENCH_ROOT/apps/benchjs"
fi

# ---- server lifecycle
start_server() { # $1 = realtimed|node
    local name=$1
    case $name in
    realtimed)
        (cd "$BENCH_ROOT" && REALTIMED_HOST_DIR="$ROOT/host" exec taskset -c $RT_CPUS "$TMPX/realtimed" --webserver-host 127.0.0.1 \
            --log-level warning --workers "$WORKERS") >>"$TMP/$name.log" 2>&1 &
        ;;
    node)
        (cd "$BENCH_ROOT" && exec taskset -c $SRV_CPU node "$ROOT/bench/baseline/server.js") \
            >>"$TMP/$name.log" 2>&1 &
        ;;
    python)
        (cd "$BENCH_ROOT" && exec taskset -c $SRV_CPU /usr/bin/python3 "$ROOT/bench/baseline/server.py") \
            >>"$TMP/$name.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    # ready = listening and subscribed to `events`
    for _ in $(seq 100); do
        if ss -ltnH "sport = :$SIO_PORT" 2>/dev/null | grep -q . &&
            [ "$(redis-cli -p "$REDIS_PORT" pubsub numsub events | tail -1)" = "$([ "$name" = realtimed ] && echo "$WORKERS" || echo 1)" ]; then
            sleep 1 # idle baseline for the RSS reading
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "$name exited at startup (see $TMP/$name.log)"
        sleep 0.1
    done
    die "$name did not start listening within 10 s"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    # wait until the port is free again
    for _ in $(seq 50); do ss -ltnH "sport = :$SIO_PORT" | grep -q . || break; sleep 0.1; done
}

SRC=2 # last octet of the next loadgen source address (127.0.0.x)
run_session() { # $1 server, $2 session (ws|storm|poll), $3 pass
    local name=$1 session=$2 pass=$3 procs clients
    # ws: 64 connects in flight keeps the heap's high-water mark from the
    # connect burst small, so the idle-memory readings are about connections;
    # storm: 256 in flight, the connect-rate measurement
    local window
    case $session in
    poll) procs=1; clients=$POLL_CLIENTS; window=64 ;;
    ws) procs=$PROCS; clients=$CLIENTS; window=64 ;;
    *) procs=$PROCS; clients=$CLIENTS; window=256 ;;
    esac
    [ $((SRC + procs)) -lt 250 ] || SRC=2
    start_server "$name"
    log "$name: $session ($clients clients, $procs loadgen processes, source 127.0.0.$SRC+)"
    local out=$TMP/$name-$session-$pass.json
    if ! taskset -c $CLI_CPU "$TMP/loadgen" "$session" --port "$SIO_PORT" --site "$SITE" \
        --redis-port "$REDIS_PORT" --server-pid "$SERVER_PID" --procs "$procs" --src "$SRC" \
        --clients "$clients" --window "$window" --scale "$SCALE" --aux "redis:$REDIS_PID,authstub:$AUTH_PID" \
        $([ "$name" = realtimed ] && [ "$WORKERS" -gt 1 ] && echo --server-tree) \
        >"$out" 2>>"$TMP/loadgen.log"; then
        log "$name: $session: loadgen failed (see $TMP/loadgen.log)"
        rm -f "$out"
    fi
    SRC=$((SRC + procs))
    stop_server
}

for pass in $(seq "$REPEAT"); do
    for name in $SERVERS; do
        for session in $SESSIONS; do
            run_session "$name" "$session" "$pass"
        done
    done
done

# ---- report
ELAPSED=$(($(date +%s) - T0))
python3 bench/report.py --tmp "$TMP" --out "$RESULTS" --servers "$SERVERS" --repeat "$REPEAT" \
    --elapsed "$ELAPSED" --clients "$CLIENTS" --poll-clients "$POLL_CLIENTS" --procs "$PROCS" \
    --scale "$SCALE" --commit "$COMMIT" ${BENCH_NO_DOCS:+--no-docs}
log "done in $(($(date +%s) - T0)) s: $RESULTS/latest.md"
