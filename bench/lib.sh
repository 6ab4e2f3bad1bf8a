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

# median: the median of numbers read one a line
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# ms_of SQL: the milliseconds of SQL run once in a new session of $db
ms_of() { psql -X -q -d "$db" -c '\timing on' -c "$1" | grep -oE 'Time: [0-9.]+' | tail -1 | awk '{print $2}'; }
