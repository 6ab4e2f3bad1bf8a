#!/usr/bin/env bash
# ingest.sh: the write path against the seed-style peer, in one run.
#  - single events at 8 clients, synchronous_commit on: meter.record vs the
#    peer's bare INSERT and its track (check + log + upsert), for many users
#    and models and for one tenant/model (the hot-row case);
#  - bulk: N events through COPY into meter.events (priced, deduplicated)
#    vs the peer's INSERT ... SELECT of the same rows into its indexed log;
#  - a 30-day tenant summary through meter.totals after meter.rollup, vs the
#    same summary over the peer's raw log; disk bytes per event.
# Usage: bench/ingest.sh   (after scripts/setup.sh; DURATION=15 ROWS=1000000)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$PGM_ROOT"
db=pg_meter_ingest
duration=${DURATION:-15}
rows=${ROWS:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fresh_db "$db" peer
psql -X -q -d "$db" -c "SELECT meter.create_partition(now()), meter.create_partition(now() - interval '1 month')" >/dev/null
# the floor of the single-event figure: the row meter.record writes (priced,
# with its request key and transaction id), inserted by a plain INSERT into
# a copy of meter.events without pg_meter: the same columns, partitions and
# indexes, no trigger, no pricing, no probe for an earlier request id
psql -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE SCHEMA floor;
CREATE TABLE floor.events (LIKE meter.events INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at);
ALTER TABLE floor.events ALTER COLUMN txid SET DEFAULT txid_current();
DO $$
DECLARE p record; i record;
BEGIN
    FOR p IN SELECT c.oid, c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
               FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid WHERE h.inhparent = 'meter.events'::regclass LOOP
        EXECUTE format('CREATE TABLE floor.%I PARTITION OF floor.events %s', p.relname, p.bound);
        FOR i IN SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = p.oid LOOP
            EXECUTE replace(i.def, ' ON meter.', ' ON floor.');
        END LOOP;
    END LOOP;
END $$;
SQL

{ peer_sets; cat <<'EOF'
\set r random(1, 2000000000)
SELECT event_id FROM meter.record(tenant => 'app', subject => 'user-' || (:u)::int, session => 'sess-' || (:u)::int, endpoint => 'chat',
  provider => (ARRAY['anthropic','google','google','openai','openai'])[(:m)::int],
  model => (ARRAY['claude-sonnet-4','gemini-2.5-flash','gemini-2.5-pro','gpt-4','gpt-4o-mini'])[(:m)::int],
  usage => jsonb_build_object('input_tokens', (:i)::int, 'output_tokens', (:o)::int), cached => (:c)::int = 0,
  latency_ms => (:ms)::int, success => (:c)::int <> 9, request_id => 'r' || (:r)::int);
EOF
} > "$work/record.pgbench"
cat > "$work/record_hot.pgbench" <<'EOF'
\set u random_zipfian(1, 2000, 1.1)
\set i random(50, 4000)
\set o random(10, 1200)
\set r random(1, 2000000000)
SELECT event_id FROM meter.record(tenant => 'app', subject => 'user-' || (:u)::int, endpoint => 'chat', provider => 'openai', model => 'gpt-4o-mini',
  usage => jsonb_build_object('input_tokens', (:i)::int, 'output_tokens', (:o)::int), latency_ms => 300, request_id => 'h' || (:r)::int);
EOF
sed "s/random(1, 5)/random(5, 5)/" ../shared/peer/track.pgbench > "$work/track_hot.pgbench"
{ peer_sets; cat <<'EOF'
\set r random(1, 2000000000)
INSERT INTO floor.events (tenant, subject, session, endpoint, provider, model, usage, input_tokens, output_tokens, cached,
                          cost, potential_cost, price_version, priced, latency_ms, success, request_id, request_key)
VALUES ('app', 'user-' || (:u)::int, 'sess-' || (:u)::int, 'chat',
  (ARRAY['anthropic','google','google','openai','openai'])[(:m)::int],
  (ARRAY['claude-sonnet-4','gemini-2.5-flash','gemini-2.5-pro','gpt-4','gpt-4o-mini'])[(:m)::int],
  jsonb_build_object('input_tokens', (:i)::int, 'output_tokens', (:o)::int), (:i)::int, (:o)::int, (:c)::int = 0,
  0.0123456, 0.0123456, 7, true, (:ms)::int, (:c)::int <> 9, 'r' || (:r)::int, hashtextextended('app/r' || (:r)::int, 0));
EOF
} > "$work/floor.pgbench"
run() { pgbench -n -M prepared -c 8 -j 2 -T "$duration" -f "$1" "$db" 2>&1 | grep -oE 'tps = [0-9.]+' | awk '{print $3}'; }
echo "== single events, 8 clients, ${duration}s each"
bare=$(run ../shared/peer/bare.pgbench)
track=$(run ../shared/peer/track.pgbench)
rec=$(run "$work/record.pgbench")
floor=$(run "$work/floor.pgbench")
track_hot=$(run "$work/track_hot.pgbench")
rec_hot=$(run "$work/record_hot.pgbench")
awk -v b="$bare" -v t="$track" -v r="$rec" -v th="$track_hot" -v rh="$rec_hot" -v f="$floor" 'BEGIN {
  printf "peer bare insert      %8.0f tps\n", b
  printf "peer track            %8.0f tps\n", t
  printf "meter.record          %8.0f tps  = %.2fx bare, %.2fx track\n", r, r / b, r / t
  printf "floor: the same row   %8.0f tps  = %.2fx bare; meter.record = %.2fx it (plain INSERT into a copy of meter.events: its partitions and indexes, no pg_meter)\n", f, f / b, r / f
  printf "hot row: peer track   %8.0f tps\n", th
  printf "hot row: meter.record %8.0f tps  = %.2fx bare, %.2fx track (one tenant, one model)\n", rh, rh / b, rh / th }'

echo "== bulk: $rows events"
psql -X -q -d "$db" -c "TRUNCATE meter.events, peer.api_usage_logs" >/dev/null
psql -X -q -d "$db" -v rows="$rows" -At -f bench/bulk_events.sql > "$work/events.tsv"
# the same rows by INSERT ... SELECT (the other bulk way in), generated as
# the peer's are, into an empty log; then emptied again for the COPY
t5=$(date +%s.%N)
psql -X -q -d "$db" -v rows="$rows" -f bench/bulk_insert_select.sql >/dev/null
t6=$(date +%s.%N)
psql -X -q -d "$db" -c "TRUNCATE meter.events" >/dev/null
t0=$(date +%s.%N)
psql -X -q -d "$db" -c "\\copy meter.events (tenant, subject, session, endpoint, provider, model, usage, cached, latency_ms, success, request_id, occurred_at) FROM '$work/events.tsv'"
t1=$(date +%s.%N)
psql -X -q -d "$db" -v rows="$rows" <<'SQL' >/dev/null
INSERT INTO peer.api_usage_logs (user_id, session_id, endpoint, provider, model, input_tokens, output_tokens, total_tokens, cached,
                                 cost_usd, potential_cost_usd, duration_ms, success, created_at)
SELECT 'user-' || (i % 2000), 'sess-' || (i % 5000), 'chat', (ARRAY['anthropic','google','google','openai','openai'])[1 + i % 5],
       (ARRAY['claude-sonnet-4','gemini-2.5-flash','gemini-2.5-pro','gpt-4','gpt-4o-mini'])[1 + i % 5],
       50 + i % 3950, 10 + i % 1190, 60 + i % 3950 + i % 1190, i % 10 = 0, 0.001, 0.001, 200 + i % 5800, i % 10 <> 9,
       now() - (i % (30 * 86400)) * interval '1 second'
  FROM generate_series(1, :rows) AS i;
SQL
t2=$(date +%s.%N)
# what autovacuum does in the background (statistics, the visibility map)
psql -X -q -d "$db" -c "VACUUM ANALYZE meter.events" -c "VACUUM ANALYZE peer.api_usage_logs"
t3=$(date +%s.%N)
rolled=$(psql -X -q -At -d "$db" -c "SELECT meter.rollup()")
t4=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" -v f="$t5" -v g="$t6" -v n="$rows" -v r="$rolled" 'BEGIN {
  printf "COPY into meter.events (priced, deduplicated): %6.1f s\n", b - a
  printf "INSERT ... SELECT into meter.events (same):    %6.1f s\n", g - f
  printf "peer INSERT ... SELECT into its indexed log:   %6.1f s\n", c - b
  printf "meter.rollup() of %d events: %.1f s (%.0f events/s)\n", r, e - d, r / (e - d)
  printf "ratio meter / peer, COPY: ingest alone %.2f, priced and rolled up %.2f\n", (b - a) / (c - b), (b - a + e - d) / (c - b)
  printf "ratio meter / peer, INSERT ... SELECT: ingest alone %.2f, priced and rolled up %.2f\n", (g - f) / (c - b), (g - f + e - d) / (c - b) }'
psql -X -q -At -d "$db" -c "SELECT 'disk bytes per event: ' || round((sum(pg_total_relation_size(c.oid)))::numeric / $rows, 1)
                               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'meter.events'::regclass"

echo "== 30-day tenant summary, median of 5"
m=(); p=()
for k in 1 2 3 4 5; do
  m+=("$(ms_of "SELECT * FROM meter.totals('app', now() - interval '30 days', now(), 'model')")")
  p+=("$(ms_of "SELECT model, count(*), sum(cost_usd), percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM peer.api_usage_logs WHERE created_at >= now() - interval '30 days' GROUP BY model")")
done
mm=$(printf '%s\n' "${m[@]}" | median); pm=$(printf '%s\n' "${p[@]}" | median)
awk -v a="$mm" -v b="$pm" 'BEGIN { printf "meter.totals by model: %.1f ms; peer raw query: %.1f ms; ratio %.1fx\n", a, b, b / a }'

# Every partition's request index is probed for each event with a request id
# (src/pg/request_ids.hpp), so the number of partitions is part of the write
# path's cost. The bench above has three (the default one and two months); the
# partitions job (meter.create_partitions(3)) and the 90-day retention keep
# about eight: three months back, this one, three ahead and the default.
echo "== the same INSERT ... SELECT with the partitions the jobs keep (request-id probes per partition)"
psql -X -q -d "$db" -c "SELECT count(meter.create_partition(now() - k * interval '1 month')) FROM generate_series(2, 3) k" \
                    -c "SELECT count(*) FROM meter.create_partitions(3)" >/dev/null
nparts=$(psql -X -q -At -d "$db" -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'meter.events'::regclass")
psql -X -q -d "$db" -c "TRUNCATE meter.events" >/dev/null
t7=$(date +%s.%N)
psql -X -q -d "$db" -v rows="$rows" -f bench/bulk_insert_select.sql >/dev/null
t8=$(date +%s.%N)
awk -v a="$t5" -v b="$t6" -v c="$t7" -v d="$t8" -v p="$nparts" -v q="$t1" -v r="$t2" 'BEGIN {
  printf "INSERT ... SELECT with %d partitions: %.1f s (with 3: %.1f s), %.2fx the peer\n", p, d - c, b - a, (d - c) / (r - q) }'
