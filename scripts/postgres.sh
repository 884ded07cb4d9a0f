#!/usr/bin/env bash
# Make sure a local PostgreSQL server runs and has the role the test suite uses.
# Installs Debian's postgresql when it is missing. Prints the test URL on stdout.
set -euo pipefail

ROLE=singlewindow
PASSWORD=singlewindow
PORT=${SW_PG_PORT:-5432}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "installing postgresql ..." >&2
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >&2
fi

read -r version cluster _ < <(pg_lsclusters --no-header | head -n 1)
if [ -z "${version:-}" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  cluster=main
  as_root pg_createcluster "$version" "$cluster" --port "$PORT" >&2
fi
if ! pg_lsclusters --no-header | grep -q "^$version *$cluster .* online"; then
  as_root pg_ctlcluster "$version" "$cluster" start >&2
fi

for _ in $(seq 1 50); do
  as_root runuser -u postgres -- pg_isready -q -p "$PORT" && break
  sleep 0.2
done

as_root runuser -u postgres -- psql -q -p "$PORT" -v ON_ERROR_STOP=1 <<SQL >&2
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END \$\$;
SQL

echo "postgresql+asyncpg://$ROLE:$PASSWORD@127.0.0.1:$PORT/postgres"
