# lib.sh: what the bench scripts share (sourced after scripts/env.sh, from
# the project root).

# fresh_db DB [peer]: DB made anew with pg_meter and the genai-prices
# catalog; with "peer", the seed-style peer's schema (../shared/peer) too.
fresh_db() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null 2>&1
    if [[ "${2:-}" == peer ]]; then
        psql -X -q -d "$1" -f ../shared/peer/peer.sql >/dev/null 2>&1
    fi
    psql -X -q -d "$1" -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_meter" >/dev/null
    scripts/load-prices -d "$1" >/dev/null
}
