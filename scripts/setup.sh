#!/usr/bin/env bash
# setup.sh: installs what pg_meter needs from Debian's packages and npm,
# builds and installs the extension, and (re)starts a private PostgreSQL 15
# cluster in .run/ with pg_cron and pg_meter preloaded. Safe to run again.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PGM_ROOT"

packages=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
          libtap-parser-sourcehandler-pgtap-perl libipc-run-perl libboost-dev
          cmake g++ make googletest libgtest-dev
          chromium  # renders meter.dashboard_html in the test suite (headless)
          prometheus-postgres-exporter curl)  # the exporter's test (test/prometheus/run.sh)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm read the genai-prices catalog; use the machine's own if present
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
    echo "== installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -d scripts/catalog/node_modules/@pydantic/genai-prices ]]; then
    echo "== installing the genai-prices catalog package (npm)"
    npm install --prefix scripts/catalog --no-audit --no-fund --loglevel=error >/dev/null
fi

echo "== building pg_meter"
make -s -j2 >/dev/null
# unlink the old library first: install would rewrite it in place, under
# the feet of any server that has it mapped
rm -f "$(pg_config --pkglibdir)/pg_meter.so"
make -s install >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 >/dev/null

# the postgres user must reach the project folder
d="$PGM_ROOT"
while [[ "$d" != "/" ]]; do
    runuser -u postgres -- test -x "$d" || chmod o+x "$d"
    d=$(dirname "$d")
done
mkdir -p "$PGM_RUN"
chown postgres:postgres "$PGM_RUN"

if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
    echo "== creating the private cluster in $PGDATA"
    as_pg initdb -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
cat > "$PGDATA/pg_meter.conf" <<CONF
listen_addresses = ''
port = $PGPORT
unix_socket_directories = '$PGM_RUN'
shared_preload_libraries = 'pg_cron,pg_meter'
cron.database_name = 'pg_meter'
# pg_cron connects like a client: through the cluster's socket directory
cron.host = '$PGM_RUN'
max_connections = 100
shared_buffers = 512MB
# rebuilding rollups writes ~20 MB of WAL a day of events: with the stock
# 1 GB a backfill checkpointed every 10 s and wrote every page image twice
max_wal_size = 8GB
checkpoint_timeout = 15min
wal_compression = lz4
max_prepared_transactions = 10
log_min_messages = warning
CONF
chown postgres:postgres "$PGDATA/pg_meter.conf"
grep -q "include_if_exists = 'pg_meter.conf'" "$PGDATA/postgresql.conf" ||
    echo "include_if_exists = 'pg_meter.conf'" >> "$PGDATA/postgresql.conf"

# restart so the postmaster preloads the freshly installed library
if as_pg pg_ctl status -D "$PGDATA" >/dev/null 2>&1; then
    as_pg pg_ctl stop -D "$PGDATA" -m fast -w >/dev/null
fi
as_pg pg_ctl start -D "$PGDATA" -l "$PGM_RUN/server.log" -w -t 60 >/dev/null
psql -X -q -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'pg_meter'" | grep -q 1 ||
    psql -X -q -d postgres -c "CREATE DATABASE pg_meter" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS pg_meter;
SQL
echo "== cluster ready: PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE (pg_cron, pg_meter preloaded)"
