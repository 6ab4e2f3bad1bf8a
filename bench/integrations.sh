#!/usr/bin/env bash
# integrations.sh: what the Grafana dashboard and the Prometheus queries
# cost over EVENTS events (default 1,000,000: bench/lib.sh's gen_events,
# 2,000 users, three endpoints, five models, the 30 days before the load,
# nine in ten of tenant "app", the others of "other"), rolled up, plus a
# tail of 1,000 fresh events the rollup has not reached, and two balance
# reports of one provider:
#  - the plan of the "Cost per hour by model" panel over the last 24 hours
#    (EXPLAIN ANALYZE: the time filter on the rollup's index), and the plan
#    of the tail inside meter._tail_rows (auto_explain: the txid index);
#  - each query of integrations/grafana/pg_meter.json (macros expanded by
#    integrations/grafana/queries.sql) over the last 24 hours and the last
#    30 days, and each query of integrations/prometheus/queries.yaml: the
#    median of REPS EXPLAIN ANALYZE execution times, warm.
# Usage: bench/integrations.sh   (after scripts/setup.sh; EVENTS=1000000
#        REPS=3 BENCH_DB=pg_meter_integrations; LOAD=0 measures again on
#        the database a previous run left)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$PGM_ROOT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=${BENCH_DB:-pg_meter_integrations}
events=${EVENTS:-1000000}
reps=${REPS:-3}
if [[ ${LOAD:-1} == 1 ]]; then
    fresh_db "$db"
    psql -X -q -d "$db" -c "SELECT meter.create_partition(now()), meter.create_partition(now() - interval '1 month')" >/dev/null
    echo "== loading $events events, rolling them up, and a tail of 1,000"
    t0=$(psql -X -At -d "$db" -c "SELECT now()")
    for ((from = 1; from <= events; from += 1000000)); do
        to=$((from + 999999 < events ? from + 999999 : events))
        psql -X -q -d "$db" -v t0="$t0" -v ON_ERROR_STOP=1 <<SQL
INSERT INTO meter.events (tenant, subject, endpoint, provider, model, usage, cached, latency_ms, success, occurred_at)
SELECT CASE WHEN i % 10 = 0 THEN 'other' ELSE 'app' END, subject, endpoint, provider, model,
       jsonb_build_object('input_tokens', inp, 'output_tokens', outp), cached, ms, success, at
  FROM ($(gen_events "$from" "$to")) g;
SQL
    done
    psql -X -q -d "$db" -c "VACUUM ANALYZE meter.events" -c "SELECT meter.rollup()" \
        -c "ANALYZE meter.rollup_hourly, meter.rollup_daily, meter.rollup_subject_daily" >/dev/null
    psql -X -q -d "$db" -c "SELECT count(meter.record(tenant => 'app', subject => 'user-' || (i % 50), provider => 'openai',
                                   model => 'gpt-4o-mini', usage => jsonb_build_object('input_tokens', 100 + i, 'output_tokens', 20),
                                   latency_ms => 300 + i % 700)) FROM generate_series(1, 1000) AS i" >/dev/null
    # two balance reports, for the runway query
    psql -X -q -d "$db" -c "SELECT meter.record_balance('app', 'openai', 500, now() - interval '2 days'),
                                   meter.record_balance('app', 'openai', 300, now() - interval '1 hour')" >/dev/null
fi
psql -X -q -At -d "$db" -c "SELECT format('%s events, %s hourly rollup rows, %s subject-day rows, %s not rolled up',
                                   (SELECT count(*) FROM meter.events), (SELECT count(*) FROM meter.rollup_hourly),
                                   (SELECT count(*) FROM meter.rollup_subject_daily),
                                   (SELECT coalesce(sum(requests), 0) FROM meter._tail_rows() WHERE g = 1))"

# the exporter's queries as psql statements timed by pg_temp.ms
awk -v reps="$reps" '
    /^pg_meter_[a-z_]+:$/ { name = substr($1, 1, length($1) - 1) }
    /^  query: \|$/ { inq = 1; q = ""; next }
    inq && /^    / { q = q substr($0, 5) "\n"; next }
    inq { printf "SELECT %s AS query, round(pg_temp.ms($pm$%s$pm$, %d), 1) AS ms;\n", "\047" name "\047", q, reps; inq = 0 }
' integrations/prometheus/queries.yaml > "$work/prometheus.sql"

psql -X -q -d "$db" -v dashboard="$PGM_ROOT/integrations/grafana/pg_meter.json" -v reps="$reps" <<SQL
\\i integrations/grafana/queries.sql
-- the median execution time of q over reps runs (EXPLAIN ANALYZE, no per-node timing)
CREATE FUNCTION pg_temp.ms(q text, reps int) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE
    t numeric[] := '{}';
    p json;
BEGIN
    FOR i IN 1..reps LOOP
        EXECUTE 'EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ' || q INTO p;
        t := t || (p -> 0 ->> 'Execution Time')::numeric;
    END LOOP;
    RETURN (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(t) x);
END \$\$;
\\echo == the panel "Cost per hour by model" over the last 24 hours
SELECT pg_temp.grafana(q, now() - interval '24 hours', now(), ARRAY['app']) AS panel FROM dashboard_queries WHERE n = 1 \\gset
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) :panel;
\\echo == the tail inside meter._tail_rows (auto_explain)
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = off;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
SELECT count(*) FROM meter._tail_rows();
RESET auto_explain.log_min_duration;
SET auto_explain.log_min_duration = -1;
\\echo == the dashboard, median of :reps runs (ms)
SELECT n, title, round(pg_temp.ms(pg_temp.grafana(q, now() - interval '24 hours', now(), ARRAY['app']), :reps), 1) AS last_24h,
       round(pg_temp.ms(pg_temp.grafana(q, now() - interval '30 days', now(), ARRAY['app']), :reps), 1) AS last_30_days
  FROM dashboard_queries ORDER BY n;
\\echo == the Prometheus queries, median of :reps runs (ms)
\\i $work/prometheus.sql
SQL
