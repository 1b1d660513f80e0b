#!/usr/bin/env bash
# pii-leak-benchmark v2 (response path): the proxy in front of the benchmark's capture upstream on
# 127.0.0.1:8799, every 2-part split of every injected value, partial-emission pass, fixed seed.
# The command exits 0 even when the gateway fails: the verdict is read from its JSON reports.
set -euo pipefail
. "$(dirname "$0")/proxy-lib.sh"
start_proxy http://127.0.0.1:8799/v1 2

# --gateway-url is POSTed to as it is: give the full chat completions URL
"$VENV/bin/pii-leak-benchmark-v2" --out "$work/out" --only privacy-proxy --seed 20261126 \
  --gateway-url "http://127.0.0.1:$port/v1/chat/completions" --upstream-port 8799 \
  --exhaustive-splits --partial-emission --json-out "$work/summary.json" >"$work/benchmark.out" 2>&1

status=0
"$VENV/bin/python" - "$work/summary.json" "$work/out/privacy-proxy.partial-emission.json" <<'PY' || status=$?
import json, sys
[row] = json.load(open(sys.argv[1]))["rows"]
partial = json.load(open(sys.argv[2]))
print(f"fidelity={row['fidelity_rate']} leak_single={row['leak_single_chunk']} leak_adversarial={row['leak_adversarial']} "
      f"request_path_leak={row['request_path_leak']} inconclusive={row['inconclusive']} outcome={row['outcome']} "
      f"partial_emission_passed={partial['passed']} partitions={partial['metrics']['partitions_tried']}")
ok = (row["outcome"] == "pass" and row["fidelity_rate"] == 1.0 and row["leak_single_chunk"] == 0
      and row["leak_adversarial"] == 0 and not row["request_path_leak"] and row["inconclusive"] == 0
      and partial["passed"] is True)
sys.exit(0 if ok else 1)
PY
if [ "$status" -ne 0 ]; then
  tail -30 "$work/benchmark.out" >&2
  exit 1
fi
echo "pii-leak-benchmark-v2: pass"
