#!/usr/bin/env bash
# summary.sh: a 30-day tenant summary over ten million events, against the
# same summary over the seed-style peer's raw log, in one run.
#  - EVENTS events (default 10,000,000) of one tenant spread over the last
#    30 days (2,000 users, skewed; five models of three providers; three
#    endpoints), priced at ingest (INSERT ... SELECT through the trigger),
#    rolled up by meter.rollup(); then 1,000 fresh events that are not rolled
#    up yet, so that reads must add the tail; the callers of every hour
#    summarized as the alerts job does (meter.anomalies' polling storms);
#  - the same rows in the peer's indexed log (peer.api_usage_logs);
#  - median of REPS runs, each in a new session, of meter.totals over
#    [now() - 30 days, now()) by model, provider, none, day and subject, of
#    meter.summary, meter.subject_usage, meter.top_subjects,
#    meter.runway, meter.projection, meter.anomalies (the last day) and
#    meter.dashboard_html (the whole page; also over 30 whole UTC days,
#    where no read takes a cut day from the log), and of the peer's query
#    by model (count, cost, p95 latency);
#  - the dashboard's parts alone, warm: each section's function as
#    meter._dashboard_document calls it, the page's drawing and the document,
#    over both ranges;
#  - a check that meter.totals by model equals a query over meter.events.
# Usage: bench/summary.sh   (after scripts/setup.sh; EVENTS=10000000 REPS=11;
#        LOAD=0 measures the reads again on the database a previous run left)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$PGM_ROOT"
db=${BENCH_DB:-pg_meter_summary}
events=${EVENTS:-10000000}
reps=${REPS:-11}
chunk=1000000
if [[ ${LOAD:-1} == 1 ]]; then
fresh_db "$db" peer
psql -X -q -d "$db" -c "SELECT meter.create_partition(now()), meter.create_partition(now() - interval '1 month')" >/dev/null

t0=$(psql -X -At -d "$db" -c "SELECT now()")
echo "== loading $events events (and the same rows into the peer's log)"
s=$(date +%s.%N)
for ((from = 1; from <= events; from += chunk)); do
  to=$((from + chunk - 1 < events ? from + chunk - 1 : events))
  psql -X -q -d "$db" -v t0="$t0" -v ON_ERROR_STOP=1 <<SQL
INSERT INTO meter.events (tenant, subject, endpoint, provider, model, usage, cached, latency_ms, success, occurred_at)
SELECT 'app', subject, endpoint, provider, model, jsonb_build_object('input_tokens', inp, 'output_tokens', outp), cached, ms, success, at
  FROM ($(gen_events "$from" "$to")) g;
SQL
done
e=$(date +%s.%N)
for ((from = 1; from <= events; from += chunk)); do
  to=$((from + chunk - 1 < events ? from + chunk - 1 : events))
  psql -X -q -d "$db" -v t0="$t0" -v ON_ERROR_STOP=1 <<SQL
INSERT INTO peer.api_usage_logs (user_id, session_id, endpoint, provider, model, input_tokens, output_tokens, total_tokens,
                                 cached, cost_usd, potential_cost_usd, duration_ms, success, created_at)
SELECT subject, subject, endpoint, provider, model, inp, outp, inp + outp, cached,
       (inp * 3 + outp * 15) / 1000000.0, (inp * 3 + outp * 15) / 1000000.0, ms, success, at
  FROM ($(gen_events "$from" "$to")) g;
SQL
done
f=$(date +%s.%N)
psql -X -q -d "$db" -c "VACUUM ANALYZE meter.events" -c "VACUUM ANALYZE peer.api_usage_logs"
g=$(date +%s.%N)
rolled=$(psql -X -q -At -d "$db" -c "SELECT meter.rollup()")
h=$(date +%s.%N)
# the fresh rollups vacuumed and analyzed, as autovacuum does within a
# minute of the rollup (it vacuums a table after many inserts): without
# statistics the planner expects one subject-day row, sorts 60,000 on disk
# and reads them through the index (per-subject reads 1.6x as long); without
# the visibility map, the index-only read of subject-day keys that counts
# meter.summary's subjects visits every heap page (42 instead of 24 ms)
psql -X -q -d "$db" -c "VACUUM ANALYZE meter.rollup_hourly, meter.rollup_daily, meter.rollup_subject_daily"
# the callers of every hour summarized, as the alerts job does 24 hours a
# run (meter._callers_update): the polling storms of meter.anomalies read them
c0=$(date +%s.%N)
callers_catch_up
c1=$(date +%s.%N)
# fresh events, not rolled up: reads must add them
psql -X -q -d "$db" -c "SELECT count(meter.record(tenant => 'app', subject => 'user-' || (i % 50), provider => 'openai', model => 'gpt-4o-mini',
                               usage => jsonb_build_object('input_tokens', 100 + i, 'output_tokens', 20), latency_ms => 300 + i % 700))
                          FROM generate_series(1, 1000) AS i" >/dev/null
awk -v a="$s" -v b="$e" -v c="$f" -v g="$g" -v h="$h" -v n="$events" -v r="$rolled" -v c0="$c0" -v c1="$c1" 'BEGIN {
  printf "meter.events load (priced):  %6.1f s (%.0f events/s)\n", b - a, n / (b - a)
  printf "peer log load:               %6.1f s\n", c - b
  printf "meter.rollup() of %d events: %.1f s (%.0f events/s)\n", r, h - g, r / (h - g)
  printf "their callers by hour (meter._callers_update, 24 hours a call): %.1f s\n", c1 - c0 }'
fi
psql -X -q -At -d "$db" -c "SELECT 'rollup rows: ' || (SELECT count(*) FROM meter.rollup_hourly) || ' hourly, ' || (SELECT count(*) FROM meter.rollup_daily) || ' daily'"

echo "== check: meter.totals by model equals the raw events"
psql -X -q -At -d "$db" <<'SQL'
SELECT CASE WHEN count(*) = 0 THEN 'exact: every model''s requests, tokens and cost equal the raw log'
            ELSE 'MISMATCH in ' || count(*) || ' rows' END
  FROM ((SELECT key, requests, input_tokens, output_tokens, cost FROM meter.totals('app', now() - interval '30 days', now(), 'model')
         EXCEPT ALL
         SELECT model, count(*), sum(input_tokens), sum(output_tokens), sum(cost) FROM meter.events
          WHERE tenant = 'app' AND occurred_at >= now() - interval '30 days' AND occurred_at < now() GROUP BY model)
        UNION ALL
        (SELECT model, count(*), sum(input_tokens), sum(output_tokens), sum(cost) FROM meter.events
          WHERE tenant = 'app' AND occurred_at >= now() - interval '30 days' AND occurred_at < now() GROUP BY model
         EXCEPT ALL
         SELECT key, requests, input_tokens, output_tokens, cost FROM meter.totals('app', now() - interval '30 days', now(), 'model'))) d;
SQL

echo "== 30-day summary, median of $reps: each in a new session (cold), and in one session after a first call (warm)"
# warm_of SQL [SETUP]: one session runs SETUP (psql lines, not timed), then
# the statement reps + 1 times; the first time is dropped
warm_of() { { echo "${2:-}"; echo '\timing on'; for ((k = 0; k <= reps; k++)); do echo "$1;"; done; } | psql -X -q -d "$db" |
            grep -oE 'Time: [0-9.]+' | tail -n +2 | awk '{print $2}'; }
for by in model provider none day subject; do
  arg=$([[ $by == none ]] && echo NULL || echo "'$by'")
  q="SELECT * FROM meter.totals('app', now() - interval '30 days', now(), $arg)"
  cold=$(for ((k = 0; k < reps; k++)); do ms_of "$q"; done | median)
  warm=$(warm_of "$q" | median)
  printf 'meter.totals by %-8s cold %8.1f ms   warm %8.1f ms\n' "$by" "$cold" "$warm"
done
# the admin's read functions over the same 30 days (a balance for runway)
psql -X -q -d "$db" -c "SELECT meter.record_balance('app', 'openai', 1000, now() - interval '3 days')" >/dev/null
for q in "SELECT * FROM meter.summary('app', now() - interval '30 days', now())" \
         "SELECT * FROM meter.subject_usage('app', 'user-1', now() - interval '30 days', now())" \
         "SELECT * FROM meter.top_subjects('app', now() - interval '30 days', now(), by => 'cost', n => 10)" \
         "SELECT * FROM meter.runway('app')" \
         "SELECT * FROM meter.projection('app')" \
         "SELECT * FROM meter.anomalies('app', now() - interval '1 day', now())" \
         "SELECT meter.dashboard_html('app', now() - interval '30 days', now())" \
         "SELECT meter.dashboard_html('app', date_trunc('day', now()) - interval '30 days', date_trunc('day', now()))"; do
  cold=$(for ((k = 0; k < reps; k++)); do ms_of "$q"; done | median)
  warm=$(warm_of "$q" | median)
  name=$(grep -oE 'meter\.[a-z_]+' <<<"$q" | head -1)$([[ $q == *date_trunc* ]] && echo ", whole days" || true)
  printf '%-34s cold %8.1f ms   warm %8.1f ms\n' "$name" "$cold" "$warm"
done
# meter.anomalies over the day ending with the last whole hour loaded, its
# hours all summarized, then with that hour's summary gone (read from the
# log, as the hour in progress is in a live system)
hsetup="SELECT max(bucket) - interval '1 hour' AS h FROM meter.rollup_hourly \\gset"
hq="SELECT * FROM meter.anomalies('app', :'h'::timestamptz - interval '23 hours', :'h'::timestamptz + interval '1 hour')"
summed=$(warm_of "$hq" "$hsetup" | median)
logged=$(warm_of "$hq" "$hsetup
BEGIN;
DELETE FROM meter.endpoint_hours WHERE tenant = 'app' AND bucket = :'h';" | median)
printf 'meter.anomalies, 24 whole hours      warm %8.1f ms; its last hour from the log: %.1f ms\n' "$summed" "$logged"
# the dashboard's parts alone, each call as meter._dashboard_document makes
# it (the figures, top subjects and document it passes on read beforehand)
echo "== meter.dashboard_html's parts, warm medians: 30 days ending now | 30 whole UTC days"
ranges=("now() - interval '30 days', now()" "date_trunc('day', now()) - interval '30 days', date_trunc('day', now())")
parts=("overview figures (meter._figures)|SELECT * FROM meter._figures('app', RANGE)"
       "top subjects (meter.top_subjects)|SELECT * FROM meter.top_subjects('app', RANGE)"
       "cost per day, requests per hour|SELECT meter._dashboard_over_time('app', RANGE)"
       "latency and cache by model|SELECT meter._dashboard_models('app', RANGE, :'f'::jsonb)"
       "anomalies of the last day|SELECT meter._dashboard_anomalies('app', RANGE)"
       "projection|SELECT meter._dashboard_projection('app')"
       "runway|SELECT meter._dashboard_runway('app')"
       "quota status of the top subjects|SELECT meter._dashboard_quotas('app', :'top'::text[])"
       "alerts|SELECT meter._dashboard_alerts('app', RANGE)"
       "the page drawn (meter._dashboard_render)|SELECT length(meter._dashboard_render(:'doc'::jsonb))"
       "the document (all reads)|SELECT meter._dashboard_document('app', RANGE)")
for part in "${parts[@]}"; do
  line=$(printf '%-42s' "${part%%|*}")
  for range in "${ranges[@]}"; do
    setup="SELECT to_jsonb(x) AS f FROM meter._figures('app', $range) x \\gset
SELECT array_agg(t.subject ORDER BY t.rank)::text AS top FROM meter.top_subjects('app', $range) t \\gset
SELECT meter._dashboard_document('app', $range) AS doc \\gset"
    sql=${part#*|}
    [[ $sql == *":'"* ]] || setup=""
    ms=$(warm_of "${sql//RANGE/$range}" "$setup" | median)
    line+=$(printf ' %8.1f ms' "$ms")
  done
  echo "$line"
done
peer_q="SELECT model, count(*), sum(cost_usd), percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM peer.api_usage_logs WHERE created_at >= now() - interval '30 days' GROUP BY model"
peer_ms=$(for ((k = 0; k < 3; k++)); do ms_of "$peer_q"; done | median)
q="SELECT * FROM meter.totals('app', now() - interval '30 days', now(), 'model')"
m=$(warm_of "$q" | median)
awk -v a="$m" -v b="$peer_ms" 'BEGIN { printf "by model: meter.totals %.1f ms (warm), peer raw query %.1f ms (median of 3): %.0fx\n", a, b, b / a }'
psql -X -q -At -d "$db" -c "SELECT 'disk bytes per event (events with indexes): ' || round(sum(pg_total_relation_size(c.oid))::numeric / $events, 1)
                               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'meter.events'::regclass"
