#!/usr/bin/env bash
# The public conformance check: the proxy in front of the benchmark's capture upstream on
# 127.0.0.1:8765 must report CLEAN (exit 0) for profile pii-v1.
set -euo pipefail
VENV=$(cd "${VENV:-.venv}" && pwd)
work=$(mktemp -d)
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(
  cd "$work"
  PRIVACY_PROXY_DETECTOR_WORKERS=1 exec "$VENV/bin/privacy-proxy" serve \
    --upstream http://127.0.0.1:8765/v1 --port "$port" >"$work/proxy.log" 2>&1
) &
proxy_pid=$!
trap 'kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true' EXIT

# ready = detector warm and log writable (the benchmark itself only waits for TCP)
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$proxy_pid" 2>/dev/null || { cat "$work/proxy.log"; exit 1; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/readyz"; echo

status=0
"$VENV/bin/pii-leak-benchmark" ci --profile pii-v1 --target-base-url "http://127.0.0.1:$port/v1" \
  --out "$work/report" >"$work/benchmark.out" 2>&1 || status=$?
grep -E '^\| Outcome' "$work/benchmark.out" || true
if [ "$status" -ne 0 ]; then
  echo "pii-leak-benchmark did not report CLEAN (exit $status)" >&2
  tail -40 "$work/benchmark.out" >&2
  tail -20 "$work/proxy.log" >&2
  exit 1
fi
echo "pii-leak-benchmark: CLEAN"
