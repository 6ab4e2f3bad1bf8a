# env.sh: where the private cluster lives. Sourced by every script.
PGM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PGM_ROOT
export PGM_RUN="${PGM_RUN:-$PGM_ROOT/.run}"
export PGDATA="$PGM_RUN/data"
export PGHOST="$PGM_RUN"
export PGPORT="${PGM_PORT:-5491}"
export PGUSER=postgres
export PGDATABASE=pg_meter
# PGM_PG_BIN: another copy of the PostgreSQL tree (relocated with
# scripts/pg-tree), so that two work trees can install side by side
export PG_BIN="${PGM_PG_BIN:-/usr/lib/postgresql/15/bin}"
export PATH="$PG_BIN:$PATH"
# as_pg runs a command as the postgres OS user (initdb and postgres refuse root)
as_pg() { runuser -u postgres -- env PATH="$PATH" PGDATA="$PGDATA" PGHOST="$PGHOST" PGPORT="$PGPORT" "$@"; }
