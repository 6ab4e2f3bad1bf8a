#!/usr/bin/env bash
# subject_grain.sh: what a subject-by-hour rollup would cost and save, on the
# database bench/summary.sh leaves (ten million events of one tenant over
# 30 days, 2,000 users). Nothing of pg_meter changes: the grain is a
# prototype table filled by one INSERT ... SELECT, dropped at the end.
#  - the two parts of the per-subject read over [now() - 30 days, now())
#    (meter._usage by subject without sketches: what top_subjects ranks):
#    the whole days from meter.rollup_subject_daily and the day cut by the
#    start of the range from meter.events; rows read and warm median of REPS;
#  - the sizes of the grains: events, subject-day rows, distinct (tenant,
#    subject, hour) groups, and those of the cut day;
#  - the subject-day grain and the subject-hour grain each built by the same
#    INSERT ... SELECT over all the events (sums, both sketches, first and
#    last time; the rollup's unique key and indexes): time, rows, bytes;
#  - the cut day's part as the subject-hour grain would serve it (its hours
#    from the prototype, the cut hour from the log), warm median of REPS.
# Usage: bench/summary.sh && bench/subject_grain.sh   (REPS=5 BENCH_DB=pg_meter_summary)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$PGM_ROOT"
db=${BENCH_DB:-pg_meter_summary}
reps=${REPS:-5}
q() { psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 "$@"; }
# warm SQL: median of reps runs in one session after a first (psql variables
# since, h1, sh, h2: the range's start, the first whole day, the first whole
# hour, the end of the whole days)
bounds="SELECT now() - interval '30 days' AS since,
               date_trunc('hour', now() - interval '30 days') + interval '1 hour' AS sh,
               date_trunc('day', now() - interval '30 days') + interval '1 day' AS h1,
               date_trunc('day', now()) + interval '1 day' AS h2 \\gset"
# (count(x) of a whole row: every sum is computed; count(*) would let the
# planner drop the unused ones)
warm() { { echo "$bounds"; echo '\timing on'; for ((k = 0; k <= reps; k++)); do echo "$1;"; done; } | psql -X -q -d "$db" |
         grep -oE 'Time: [0-9.]+' | tail -n +2 | awk '{print $2}' | median; }
count() { { echo "$bounds"; echo "$1;"; } | psql -X -q -At -d "$db"; }

rows_r="sum(r.requests) AS requests, sum(r.errors) AS errors, sum(r.cache_hits) AS cache_hits, sum(r.unpriced) AS unpriced,
        sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens, sum(r.cache_read_tokens) AS cache_read_tokens,
        sum(r.cache_write_tokens) AS cache_write_tokens, sum(r.cost) AS cost, sum(r.potential_cost) AS potential_cost"
rows_e="count(*), count(*) FILTER (WHERE NOT e.success), count(*) FILTER (WHERE e.cached), count(*) FILTER (WHERE NOT e.priced),
        sum(e.input_tokens), sum(e.output_tokens), sum(e.cache_read_tokens), sum(e.cache_write_tokens),
        coalesce(sum(e.cost), 0), coalesce(sum(e.potential_cost), 0)"
whole="SELECT r.subject, $rows_r FROM meter.rollup_subject_daily r
        WHERE r.tenant = 'app' AND r.bucket >= :'h1' AND r.bucket < :'h2' GROUP BY 1"
cut="SELECT e.subject, $rows_e FROM meter.events e
      WHERE e.tenant = 'app' AND e.occurred_at >= :'since' AND e.occurred_at < :'h1' GROUP BY 1"
echo "== the per-subject read over 30 days ending now, by part (warm, median of $reps)"
printf '%-52s %10s rows %8.1f ms\n' "whole days: subject-day rows" \
    "$(count "SELECT count(*) FROM meter.rollup_subject_daily r WHERE r.tenant = 'app' AND r.bucket >= :'h1' AND r.bucket < :'h2'")" \
    "$(warm "SELECT count(x) FROM ($whole) x")"
printf '%-52s %10s rows %8.1f ms\n' "the cut day: events from the start to its midnight" \
    "$(count "SELECT count(*) FROM meter.events e WHERE e.tenant = 'app' AND e.occurred_at >= :'since' AND e.occurred_at < :'h1'")" \
    "$(warm "SELECT count(x) FROM ($cut) x")"
printf '%-52s %10s      %8.1f ms\n' "the whole read (meter._usage by subject)" "" \
    "$(warm "SELECT count(u) FROM meter._usage('app', :'since', now(), 'subject', NULL, false) u")"

echo "== the grains"
q -c "SELECT 'events: ' || count(*) FROM meter.events"
q -c "SELECT 'subject-day rows: ' || count(*) FROM meter.rollup_subject_daily"
s=$(date +%s.%N)
q -c "SELECT 'subject-hour groups: ' || count(*) FROM (SELECT 1 FROM meter.events GROUP BY tenant, subject, date_trunc('hour', occurred_at)) x"
e=$(date +%s.%N)
awk -v a="$s" -v b="$e" 'BEGIN { printf "(counted in %.1f s)\n", b - a }'
printf 'subject-hour groups of the cut day after the start: %s\n' \
    "$(count "SELECT count(*) FROM (SELECT 1 FROM meter.events e WHERE e.tenant = 'app' AND e.occurred_at >= :'sh' AND e.occurred_at < :'h1' GROUP BY e.subject, date_trunc('hour', e.occurred_at)) x")"

echo "== each grain built by one INSERT ... SELECT over the events (the rollup's columns, key and indexes)"
cols="tenant, bucket, subject, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced, input_tokens,
      output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost, latency, ttft, first_at, last_at"
for grain in day hour; do
  t=bench_subject_$grain
  q -c "DROP TABLE IF EXISTS $t" \
    -c "CREATE TABLE $t (LIKE meter.rollup_subject_daily INCLUDING DEFAULTS) WITH (toast_tuple_target = 8160)" \
    -c "ALTER TABLE $t ADD UNIQUE NULLS NOT DISTINCT (tenant, bucket, subject, provider, model, endpoint, feature)" \
    -c "CREATE INDEX ON $t (bucket)" -c "CREATE INDEX ON $t (tenant, subject, bucket)"
  s=$(date +%s.%N)
  n=$(q -c "WITH i AS (INSERT INTO $t ($cols)
              SELECT e.tenant, date_trunc('$grain', e.occurred_at), e.subject, NULL, NULL, NULL, NULL, $rows_e,
                     meter.sketch(e.latency_ms), meter.sketch(e.ttft_ms), min(e.occurred_at), max(e.occurred_at)
                FROM meter.events e GROUP BY e.tenant, date_trunc('$grain', e.occurred_at), e.subject RETURNING 1)
            SELECT count(*) FROM i")
  e=$(date +%s.%N)
  q -c "VACUUM ANALYZE $t"
  awk -v a="$s" -v b="$e" -v n="$n" -v g="$grain" -v sz="$(q -c "SELECT pg_total_relation_size('$t')")" 'BEGIN {
    printf "subject-%-4s %9d rows in %6.1f s, %7.1f MB with indexes (%.0f bytes a row)\n", g, n, b - a, sz / 1048576, sz / n }'
done
awk -v sz="$(q -c "SELECT pg_total_relation_size('meter.rollup_subject_daily')")" \
    'BEGIN { printf "(meter.rollup_subject_daily: %.1f MB with indexes)\n", sz / 1048576 }'

echo "== the cut day's part served by the subject-hour grain (warm, median of $reps)"
hourly="SELECT r.subject, $rows_r FROM bench_subject_hour r
         WHERE r.tenant = 'app' AND r.bucket >= :'sh' AND r.bucket < :'h1' GROUP BY 1
        UNION ALL
        SELECT e.subject, $rows_e FROM meter.events e
         WHERE e.tenant = 'app' AND e.occurred_at >= :'since' AND e.occurred_at < :'sh' GROUP BY 1"
printf '%-52s %10s rows %8.1f ms\n' "its hours: subject-hour rows" \
    "$(count "SELECT count(*) FROM bench_subject_hour r WHERE r.tenant = 'app' AND r.bucket >= :'sh' AND r.bucket < :'h1'")" \
    "$(warm "SELECT count(x) FROM (SELECT r.subject, $rows_r FROM bench_subject_hour r WHERE r.tenant = 'app' AND r.bucket >= :'sh' AND r.bucket < :'h1' GROUP BY 1) x")"
printf '%-52s %10s rows %8.1f ms\n' "the cut hour: events from the start to its hour" \
    "$(count "SELECT count(*) FROM meter.events e WHERE e.tenant = 'app' AND e.occurred_at >= :'since' AND e.occurred_at < :'sh'")" \
    "$(warm "SELECT count(x) FROM (SELECT e.subject, $rows_e FROM meter.events e WHERE e.tenant = 'app' AND e.occurred_at >= :'since' AND e.occurred_at < :'sh' GROUP BY 1) x")"
printf '%-52s %10s      %8.1f ms\n' "both, grouped by subject" "" \
    "$(warm "SELECT count(y) FROM (SELECT x.subject, sum(x.requests), sum(x.errors), sum(x.cache_hits), sum(x.unpriced),
                    sum(x.input_tokens), sum(x.output_tokens), sum(x.cache_read_tokens), sum(x.cache_write_tokens),
                    sum(x.cost), sum(x.potential_cost) FROM ($hourly) x GROUP BY 1) y")"
q -c "DROP TABLE bench_subject_day, bench_subject_hour"
