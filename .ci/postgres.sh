#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the storage tests (Debian's packages; installed if
# missing). Prints the SQLAlchemy URL to use; `.ci/postgres.sh stop DIR` stops it.
set -euo pipefail
if [ "${1:-}" = stop ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$2" -m fast stop >/dev/null 2>&1 || "$pgbin/pg_ctl" -D "$2" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
data=$(mktemp -d /tmp/privacy-proxy-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$data"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$pgbin/initdb" -D "$data" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$data" -l "$data/server.log" -w \
  -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
echo "postgresql+asyncpg://postgres@127.0.0.1:$port/postgres $data"
