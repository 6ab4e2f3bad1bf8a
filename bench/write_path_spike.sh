#!/usr/bin/env bash
# write_path_spike.sh: measures the candidate designs of the write path
# (issue 3) against the seed-style peer in one run, so the design rests on
# figures: what pricing, partitioning, idempotency and a per-request hot-row
# rollup each cost at 8 clients with synchronous_commit on.
# Usage: bench/write_path_spike.sh   (after scripts/setup.sh; DURATION=15 ROUNDS=2)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$PGM_ROOT"
db=pg_meter_spike
duration=${DURATION:-15}
rounds=${ROUNDS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
psql -X -q -d "$db" -f ../shared/peer/peer.sql >/dev/null 2>&1
psql -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION pg_meter;
CREATE SCHEMA spike;
-- the event log: time-partitioned, a transaction id for exactly-once rollups
CREATE TABLE spike.events (event_id bigserial, tenant text NOT NULL, subject text, session text, provider text, model text,
    endpoint text, usage jsonb, cost numeric, latency_ms int, success boolean NOT NULL DEFAULT true, request_id text,
    occurred_at timestamptz NOT NULL DEFAULT now(), txid xid8 NOT NULL DEFAULT pg_current_xact_id()) PARTITION BY RANGE (occurred_at);
CREATE TABLE spike.events_now PARTITION OF spike.events
    FOR VALUES FROM (date_trunc('month', now()) - interval '1 month') TO (date_trunc('month', now()) + interval '2 months');
CREATE TABLE spike.events_default PARTITION OF spike.events DEFAULT;
-- the same log with an index for looking up a request id (the advisory design)
CREATE TABLE spike.events_idx (LIKE spike.events INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at);
CREATE TABLE spike.events_idx_now PARTITION OF spike.events_idx
    FOR VALUES FROM (date_trunc('month', now()) - interval '1 month') TO (date_trunc('month', now()) + interval '2 months');
CREATE TABLE spike.events_idx_default PARTITION OF spike.events_idx DEFAULT;
CREATE INDEX ON spike.events_idx (tenant, request_id);
-- idempotency as a side table
CREATE TABLE spike.request_ids (tenant text, request_id text, PRIMARY KEY (tenant, request_id));
-- an hourly rollup upserted per request (the hot row when all write one model)
CREATE TABLE spike.hourly (tenant text, hour timestamptz, model text, requests bigint, cost numeric, PRIMARY KEY (tenant, hour, model));
SQL
scripts/load-prices -d "$db" >/dev/null

vars='\set u random_zipfian(1, 2000, 1.1)
\set i random(50, 4000)
\set o random(10, 1200)
\set r random(1, 2000000000)'
usage="jsonb_build_object('prompt_tokens', (:i)::int, 'completion_tokens', (:o)::int)"
event="INSERT INTO spike.events (tenant, subject, provider, model, usage, cost, latency_ms, request_id)
SELECT 't1', 'user-' || (:u)::int, 'openai', 'gpt-4o-mini', u, meter.cost('openai', 'gpt-4o-mini', u), 300, 'r' || (:r)::int"
printf '%s\n%s\n  FROM (SELECT %s AS u) x;\n' "$vars" "$event" "$usage" > "$work/priced.pgbench"
printf "%s\nWITH k AS (INSERT INTO spike.request_ids VALUES ('t1', 'r' || (:r)::int) ON CONFLICT DO NOTHING RETURNING 1)\n%s\n  FROM k, (SELECT %s AS u) x;\n" \
    "$vars" "$event" "$usage" > "$work/side_table.pgbench"
printf "%s\n%s\n  FROM (SELECT %s AS u) x, (SELECT pg_advisory_xact_lock(hashtext('t1' || (:r)::int))) l\n WHERE NOT EXISTS (SELECT 1 FROM spike.events_idx WHERE tenant = 't1' AND request_id = 'r' || (:r)::int);\n" \
    "$vars" "${event/spike.events /spike.events_idx }" "$usage" > "$work/advisory.pgbench"
printf "%s\nWITH e AS (%s\n  FROM (SELECT %s AS u) x RETURNING cost)\nINSERT INTO spike.hourly SELECT 't1', date_trunc('hour', now()), 'gpt-4o-mini', 1, cost FROM e\nON CONFLICT (tenant, hour, model) DO UPDATE SET requests = spike.hourly.requests + 1, cost = spike.hourly.cost + EXCLUDED.cost;\n" \
    "$vars" "$event" "$usage" > "$work/hot_row.pgbench"

run() { pgbench -n -M prepared -c 8 -j 2 -T "$duration" -f "$1" "$db" 2>&1 | grep -oE 'tps = [0-9.]+' | awk '{print $3}'; }
declare -A tps
names=(bare priced side_table advisory hot_row track)
for round in $(seq 1 "$rounds"); do
    for n in "${names[@]}"; do
        case $n in
            bare) f=../shared/peer/bare.pgbench ;;
            track) f=../shared/peer/track.pgbench ;;
            *) f="$work/$n.pgbench" ;;
        esac
        tps[$n]="${tps[$n]:-} $(run "$f")"
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
bare=$(echo "${tps[bare]}" | median)
track=$(echo "${tps[track]}" | median)
printf '%-12s %10s %8s %8s   %s\n' design tps x_bare x_track runs
for n in "${names[@]}"; do
    m=$(echo "${tps[$n]}" | median)
    awk -v n="$n" -v m="$m" -v b="$bare" -v t="$track" -v r="${tps[$n]}" 'BEGIN {printf "%-12s %10.0f %8.2f %8.2f  %s\n", n, m, m / b, m / t, r}'
done
