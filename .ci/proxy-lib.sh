# shellcheck shell=bash
# Sourced by the conformance scripts: start privacy-proxy in a scratch directory in front of
# UPSTREAM and wait until /readyz answers (detector warm, log writable). Sets $work, $port.
VENV=$(cd "${VENV:-.venv}" && pwd)
work=$(mktemp -d)
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start_proxy() {  # start_proxy UPSTREAM_URL DETECTOR_WORKERS
  (
    cd "$work"
    PRIVACY_PROXY_DETECTOR_WORKERS=$2 exec "$VENV/bin/privacy-proxy" serve --upstream "$1" --port "$port" \
      >"$work/proxy.log" 2>&1
  ) &
  proxy_pid=$!
  trap 'kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then return 0; fi
    kill -0 "$proxy_pid" 2>/dev/null || { cat "$work/proxy.log"; return 1; }
    sleep 0.5
  done
  echo "privacy-proxy did not become ready" >&2
  return 1
}
