#!/usr/bin/env bash
# backfill.sh: meter.backfill over the ten million events bench/summary.sh
# loads (30 days, one tenant, 2,000 users), against the seed-style peer
# rebuilding its hourly aggregate table from its raw log, in one run.
#  - meter.backfill of the 32 UTC days covering the data, BATCH_DAYS a
#    transaction (default 1), each a rebuild of all three rollups: over the
#    rollups as they are (healthy: backfill writes only rows that differ),
#    twice (the first run is the cold one: the log's pages come from the
#    disk or the OS cache; the second is the figure), then after emptying
#    them (every row written);
#  - the peer: DELETE its aggregates, then one INSERT ... SELECT ... GROUP BY
#    hour, provider, model (one grain, no users, no percentiles);
#  - then meter.verify over the range must find no difference.
# Usage: bench/summary.sh (loads the data), then bench/backfill.sh
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$PGM_ROOT"
db=${BENCH_DB:-pg_meter_summary}
n=$(psql -X -At -d "$db" -c "SELECT count(*) FROM meter.events")
secs() { local s e; s=$(date +%s.%N); psql -X -q -d "$db" -c "$1" >/dev/null; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", b - a }'; }
echo "== $n events"
peer=$(secs "BEGIN; DELETE FROM peer.api_usage_aggregates;
  INSERT INTO peer.api_usage_aggregates (bucket_start, provider, model, request_count, success_count, cached_count,
         input_tokens, output_tokens, cost_usd, potential_cost_usd, total_latency_ms)
  SELECT date_trunc('hour', created_at), provider, model, count(*), count(*) FILTER (WHERE success),
         count(*) FILTER (WHERE cached), sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(potential_cost_usd),
         sum(duration_ms)
    FROM peer.api_usage_logs GROUP BY 1, 2, 3; COMMIT;")
printf "peer rebuild of its hourly aggregates: %6.2f s (%.0f events/s)\n" "$peer" "$(awk -v n="$n" -v t="$peer" 'BEGIN { print n / t }')"
b=${BATCH_DAYS:-1}
fill() {
  t=$(secs "CALL meter.backfill(now() - interval '31 days', now() + interval '1 day', batch_days => $b)")
  awk -v n="$n" -v t="$t" -v p="$peer" -v b="$b" -v what="$1" 'BEGIN {
    printf "meter.backfill %s, %d day(s) a batch: %6.2f s (%.0f events/s), %.2fx the peer'"'"'s time\n", what, b, t, n / t, t / p }'
}
psql -X -q -d "$db" -c "VACUUM meter.rollup_hourly, meter.rollup_daily, meter.rollup_subject_daily" -c "CHECKPOINT"
fill "over healthy rollups, first run (cold)"
fill "over healthy rollups (rows rebuilt equal: none written)"
psql -X -q -d "$db" -c "TRUNCATE meter.rollup_hourly, meter.rollup_daily, meter.rollup_subject_daily" -c "CHECKPOINT"
fill "into empty rollups (every row written)"
psql -X -q -At -d "$db" -c "SELECT 'rows: ' || (SELECT count(*) FROM meter.rollup_hourly) || ' hourly, ' || (SELECT count(*) FROM meter.rollup_daily) || ' daily, ' || (SELECT count(*) FROM meter.rollup_subject_daily) || ' subject-daily'"
echo "== check: meter.verify over the range"
psql -X -q -At -d "$db" -c "SELECT CASE WHEN count(*) = 0 THEN 'exact: no difference between the rollups and the raw events'
                                        ELSE 'MISMATCH: ' || count(*) || ' differences' END
                              FROM meter.verify(now() - interval '31 days', now() + interval '1 day')"
