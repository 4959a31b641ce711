#!/usr/bin/env bash
# Sets everything up and runs every test: C unit tests, fuzz-corpus replay,
# integration tests (node --test with socket.io-client, pytest with
# python-socketio and the publishing library) and the browser test.
# SAN=1 builds and runs the same suite with ASan+UBSan (LeakSanitizer on).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh >/dev/null
if [ -n "${SAN:-}" ]; then
  out=build-san
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=66"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=66"
else
  out=build
fi
make -j"$(nproc)" ${SAN:+SAN=1} >/dev/null
make ${SAN:+SAN=1} check
export REALTIMED_BIN="$PWD/$out/realtimed"
mkdir -p test-output
node --test --test-concurrency=1 tests/integration/*.mjs
PYTHONPATH=clients/python /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python
