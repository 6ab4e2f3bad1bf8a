#!/usr/bin/env bash
# lag.sh: how far the rollups trail a bulk ingest under the default
# schedule, and whether reads stay exact meanwhile.
#  - the rollup job runs as meter.schedule() installs it: pg_cron starts
#    CALL meter.run_job('rollup') every minute (here through
#    cron.schedule_in_database, since pg_cron lives in database pg_meter);
#  - one client COPYs the write-path bench's bulk (bench/ingest.sh: ROWS
#    events of one tenant, 2,000 users, five models, times spread over 30
#    days, so most are late for their hour, one COPY of them), REPEAT times
#    back to back, each with request ids of its own;
#  - every second a sampler reads the lag: the age of the oldest committed
#    event the watermark does not cover yet (0 when all are covered);
#  - every few seconds a reader compares meter.totals over 30 days with the
#    same sums over the raw events, in one snapshot.
# Usage: bench/lag.sh   (after scripts/setup.sh; ROWS=1000000 REPEAT=3)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$PGM_ROOT"
db=pg_meter_lag
rows=${ROWS:-1000000}
repeat=${REPEAT:-3}
job=pg_meter_lag_rollup
work=$(mktemp -d)
cleanup() {
  psql -X -q -At -d pg_meter -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = '$job'" >/dev/null 2>&1 || true
  psql -X -q -At -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db' AND pid <> pg_backend_pid()" >/dev/null 2>&1 || true
  jobs -p | xargs -r kill 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fresh_db "$db"
psql -X -q -d "$db" -c "SELECT meter.create_partition(now()), meter.create_partition(now() - interval '1 month')" >/dev/null

# the bulk events of bench/ingest.sh; each COPY gets its own request ids
psql -X -q -d "$db" -v rows="$rows" -At -f bench/bulk_events.sql > "$work/events.tsv"

# the default schedule's rollup job, run by pg_cron in this database
cmd=$(psql -X -At -d pg_meter -c "SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'")
[ "$cmd" = 1 ] || { echo "pg_cron is not installed in database pg_meter (run scripts/setup.sh)"; exit 1; }
psql -X -q -At -d pg_meter -c "SELECT cron.schedule_in_database('$job', '* * * * *', \$\$CALL meter.run_job('rollup')\$\$, '$db')" >/dev/null
echo "== waiting for pg_cron to start the rollup job (at the next minute)"
for _ in $(seq 1 75); do
  r=$(psql -X -At -d "$db" -c "SELECT count(*) FROM meter.job_status WHERE job = 'rollup' AND running_pid IS NOT NULL")
  [ "$r" = 1 ] && break
  sleep 1
done
[ "$r" = 1 ] || { echo "the rollup job did not start within 75 s"; exit 1; }

for k in $(seq 1 "$repeat"); do
  sed "s/\tb\([0-9]*\)\t/\tc$k-\1\t/" "$work/events.tsv" > "$work/copy$k.tsv"
done
echo "== ingest: $repeat COPYs of $rows events, one client, back to back; rollups by the scheduled job"
s0=$(date +%s.%N)
(
  for k in $(seq 1 "$repeat"); do
    psql -X -q -d "$db" -c "\\copy meter.events (tenant, subject, session, endpoint, provider, model, usage, cached, latency_ms, success, request_id, occurred_at) FROM '$work/copy$k.tsv'"
  done
) &
ingest=$!

# unrolled EXPR: EXPR over the committed events the watermark does not cover
unrolled() {
  psql -X -At -d "$db" -c "
    WITH w AS (SELECT coalesce((SELECT watermark FROM meter.rollup_state), '1:1:'::pg_snapshot) AS w)
    SELECT $1 FROM meter.events e, w
     WHERE e.txid >= pg_snapshot_xmin(w.w)::text::bigint AND meter._unrolled(e.txid, w.w)"
}

# lag samples: seconds since the oldest event not covered by the watermark
# was received (its transaction began); 0 when every committed event is in
(
  : > "$PGM_RUN/lag-samples"
  while kill -0 "$ingest" 2>/dev/null || [ ! -e "$work/caught-up" ]; do
    unrolled "coalesce(extract(epoch FROM clock_timestamp() - min(e.received_at)), 0)" >> "$PGM_RUN/lag-samples"
    sleep 1
  done
) &
sampler=$!

# exactness: totals over 30 days against the raw events, one snapshot each
checks=0; bad=0
while kill -0 "$ingest" 2>/dev/null; do
  r=$(psql -X -At -d "$db" <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ;
WITH t AS (SELECT requests, input_tokens, output_tokens, cost FROM meter.totals('app', now() - interval '30 days', now())),
     raw AS (SELECT count(*) AS requests, coalesce(sum(input_tokens), 0) AS input_tokens,
                    coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum(cost), 0) AS cost
               FROM meter.events WHERE tenant = 'app' AND occurred_at >= now() - interval '30 days' AND occurred_at < now())
SELECT (SELECT coalesce(t.requests, 0) = raw.requests AND coalesce(t.input_tokens, 0) = raw.input_tokens
               AND coalesce(t.output_tokens, 0) = raw.output_tokens AND coalesce(t.cost, 0) = raw.cost
          FROM raw LEFT JOIN t ON true)::int;
COMMIT;
SQL
)
  checks=$((checks + 1))
  [ "$(echo "$r" | grep -E '^[01]$' | tail -1)" = 1 ] || bad=$((bad + 1))
  sleep 4
done
wait "$ingest" 2>/dev/null || true
s1=$(date +%s.%N)
# after the last COPY: how long until the watermark covers everything
t0=$(date +%s.%N)
for _ in $(seq 1 120); do
  [ "$(unrolled "count(*)")" = 0 ] && break
  sleep 0.5
done
t1=$(date +%s.%N)
touch "$work/caught-up"
wait "$sampler" 2>/dev/null || true
n=$(psql -X -At -d "$db" -c "SELECT count(*) FROM meter.events")
sort -n "$PGM_RUN/lag-samples" | awk -v n="$n" -v s0="$s0" -v s1="$s1" -v c="$checks" -v b="$bad" -v t0="$t0" -v t1="$t1" '
  { a[NR] = $1 }
  END {
    k = int(NR * 0.95 + 0.5); if (k < 1) k = 1
    printf "events ingested: %d in %.1f s (%.0f events/s)\n", n, s1 - s0, n / (s1 - s0)
    printf "rollup lag over %d samples, one a second: median %.1f s, p95 %.1f s, max %.1f s (target: under 60 s)\n",
           NR, a[int((NR + 1) / 2)], a[k], a[NR]
    printf "after the last COPY: every event rolled up within %.1f s\n", t1 - t0
    printf "reads: %d exactness checks of meter.totals against the raw events, %d differed\n", c, b }'
echo "(samples in $PGM_RUN/lag-samples, in time order)"
