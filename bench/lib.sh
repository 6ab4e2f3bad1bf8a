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

# peer_sets: the \set lines of the peer's bare.pgbench (a zipfian user, a
# model, tokens, a cache hit, a latency, an outcome), so that a script of
# pg_meter's draws the same calls as the peer's scripts
peer_sets() { grep '^\\set' ../shared/peer/bare.pgbench; }

# median: the median of numbers read one a line
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# ms_of SQL: the milliseconds of SQL run once in a new session of $db
ms_of() { psql -X -q -d "$db" -c '\timing on' -c "$1" | grep -oE 'Time: [0-9.]+' | tail -1 | awk '{print $2}'; }

# callers_catch_up: the callers of every due hour summarized, 24 hours a
# call, as the alerts job's first step does (meter._callers_update)
callers_catch_up() {
  while [[ $(psql -X -q -At -d "$db" -c "SELECT still_due FROM meter._callers_update(24)") != 0 ]]; do :; done
}

# gen_events FROM TO: rows FROM..TO of $events as a SELECT (psql variable t0:
# when the load started): row i is a skewed user (cubed uniform, 2,000 of
# them), one of three endpoints, one of five models of three providers, a
# time spread evenly over the 30 days before t0
gen_events() {
  cat <<SQL
SELECT i, 'user-' || (1 + (((hashint4(i) & 2147483647) / 2147483647.0) ^ 3 * 1999)::int) AS subject,
       (ARRAY['chat', 'chat', 'summarize', 'embed-search'])[1 + (hashint4(i + 7) & 3)] AS endpoint,
       m.provider, m.model,
       50 + (hashint4(i + 1) & 2147483647) % 3950 AS inp, 10 + (hashint4(i + 2) & 2147483647) % 1190 AS outp,
       (hashint4(i + 3) & 15) = 0 AS cached, 150 + (hashint4(i + 4) & 2147483647) % 5850 AS ms,
       (hashint4(i + 5) & 63) <> 0 AS success,
       :'t0'::timestamptz - (i::float8 / $events) * interval '30 days' AS at
  FROM generate_series($1, $2) AS i,
       LATERAL (SELECT (ARRAY['anthropic', 'google', 'google', 'openai', 'openai'])[1 + i % 5] AS provider,
                       (ARRAY['claude-sonnet-4-5', 'gemini-2.5-flash', 'gemini-2.5-pro', 'gpt-4o', 'gpt-4o-mini'])[1 + i % 5] AS model) m
SQL
}
