#!/usr/bin/env bash
# The public conformance check: the proxy in front of the benchmark's capture upstream on
# 127.0.0.1:8765 must report CLEAN (exit 0) for profile pii-v1.
set -euo pipefail
. "$(dirname "$0")/proxy-lib.sh"
start_proxy http://127.0.0.1:8765/v1 1

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
