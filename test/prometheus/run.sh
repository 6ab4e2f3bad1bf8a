#!/usr/bin/env bash
# run.sh: Debian's prometheus-postgres-exporter against the private cluster
# with integrations/prometheus/queries.yaml, in a database of its own with
# this month's events (rolled up by the rollup job, and a tail), an event of
# last month, unpriced events and a provider balance. It starts the
# exporter on a free local port, as a role with only the rights
# doc/integrations.md grants it, scrapes /metrics, records one more event,
# scrapes again, and checks:
#  - the exporter loaded the file and ran every query without an error
#    (pg_up 1, pg_exporter_user_queries_load_error 0,
#    pg_exporter_last_scrape_error 0, no err= in its log);
#  - every metric the file declares is exported;
#  - each value equals what SQL says: the usage counters of every tenant,
#    provider and model a query over the raw events of this UTC month, the
#    rollup's figures meter.rollup_state and the unrolled events, each
#    job's meter.job_status, the runway meter.runway (float64 against exact
#    numeric: within 1e-9 relative);
#  - the second scrape counts the new event (requests_total of its group is
#    one more) and no counter went down.
# Then it stops the exporter and drops the database. Ends with one line
#     prometheus: N passed, M failed
# (one check per compared value and per condition above).
set -uo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
cd "$PGM_ROOT"
db=pg_meter_prometheus
queries=integrations/prometheus/queries.yaml
work=$(mktemp -d)
passed=0
failed=0
pid=
check() {  # check DESCRIPTION COMMAND...: one check, passed when COMMAND succeeds
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "not ok: $what"
    fi
}
finish() {
    if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP ROLE IF EXISTS pgm_exporter_test" \
        >/dev/null 2>&1
    [[ -n "${PROMETHEUS_KEEP:-}" ]] && cp -r "$work" "$PROMETHEUS_KEEP"
    rm -rf "$work"
    echo "prometheus: $passed passed, $failed failed"
}
trap finish EXIT
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

if ! command -v prometheus-postgres-exporter >/dev/null; then
    failed=1
    echo "prometheus-postgres-exporter is not installed (scripts/setup.sh installs it)"
    exit 1
fi
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
    -c "DROP ROLE IF EXISTS pgm_exporter_test" -c "CREATE DATABASE $db" >/dev/null
sql <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION pg_meter;
SELECT meter.set_price('acme', 'a1', '{"input_mtok": 3, "output_mtok": 15}');
SELECT meter.set_price('acme', 'a2', '{"input_mtok": 0.25, "output_mtok": 1.25, "cache_read_mtok": 0.025}');
-- 600 events of this UTC month (model x9 has no price), rolled up by the job
CREATE FUNCTION pg_temp.events(a int, b int) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(meter.record(tenant => CASE WHEN i % 3 = 0 THEN 'beta' ELSE 'coach' END, subject => 'u' || (i % 7),
         provider => 'acme', model => CASE WHEN i % 10 = 0 THEN 'x9' WHEN i % 2 = 0 THEN 'a1' ELSE 'a2' END,
         usage => jsonb_build_object('input_tokens', 100 + i, 'output_tokens', 7 + i % 30,
                                     'cache_read_tokens', CASE WHEN i % 2 = 1 THEN i % 50 ELSE 0 END),
         cached => i % 11 = 0, success => i % 13 <> 0, latency_ms => 100 + i % 900,
         occurred_at => greatest(date_trunc('month', now(), 'UTC'), now() - i * interval '37 seconds')))
    FROM generate_series(a, b) AS i
$$;
SELECT pg_temp.events(1, 600);
CALL meter.run_job('rollup', for_ => '0 seconds');
-- a tail of 100 events the job has not reached, and one of last month
SELECT pg_temp.events(601, 700);
SELECT meter.record(tenant => 'coach', provider => 'acme', model => 'a1', usage => '{"input_tokens": 9, "output_tokens": 9}',
                    occurred_at => date_trunc('month', now(), 'UTC') - interval '1 hour');
SELECT meter.record_balance('coach', 'acme', 50, now() - interval '3 hours');
-- the exporter's role, with the rights doc/integrations.md grants it
CREATE ROLE pgm_exporter_test LOGIN;
GRANT SELECT ON meter.events, meter.rollup_hourly, meter.rollup_daily, meter.rollup_subject_daily,
                meter.rollup_state, meter._live_usage, meter.grafana_usage_daily,
                meter.job_status, meter.balances TO pgm_exporter_test;
SQL

# a free local port
port=
for p in $(seq $((19187 + PGPORT % 100 * 10)) $((19196 + PGPORT % 100 * 10))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n "$port" ]] || { failed=$((failed + 1)); echo "no free port"; exit 1; }
DATA_SOURCE_NAME="host=$PGHOST port=$PGPORT user=pgm_exporter_test dbname=$db sslmode=disable" \
    prometheus-postgres-exporter --web.listen-address="127.0.0.1:$port" --extend.query-path="$queries" \
    --disable-default-metrics --disable-settings-metrics --no-collector.database --no-collector.bgwriter \
    > "$work/exporter.log" 2>&1 &
pid=$!
scrape() {  # scrape FILE: the pg_ lines of /metrics, without the server label and empty braces
    for _ in $(seq 50); do
        if curl -sf "http://127.0.0.1:$port/metrics" > "$work/raw" 2>/dev/null; then break; fi
        sleep 0.2
    done
    grep -E '^pg_' "$work/raw" | sed -E 's/,?server="[^"]*"//; s/\{,/{/; s/\{\}//' > "$1"
}
scrape "$work/first"

# what SQL says, as "name{labels} value" lines (labels in the exporter's
# order: by name); every value read in one snapshot after the scrape
sql > "$work/expected" <<'SQL'
SELECT format('pg_meter_usage_%s{model="%s",provider="%s",tenant="%s"} %s', v.m, g.model, g.provider, g.tenant, v.x)
  FROM (SELECT tenant, coalesce(provider, '') AS provider, coalesce(model, '') AS model, count(*) AS requests,
               count(*) FILTER (WHERE NOT success) AS errors, count(*) FILTER (WHERE cached) AS cache_hits,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               coalesce(sum(cost), 0) AS cost, coalesce(sum(potential_cost), 0) - coalesce(sum(cost), 0) AS savings,
               count(*) FILTER (WHERE NOT priced) AS unpriced
          FROM meter.events WHERE occurred_at >= date_trunc('month', now(), 'UTC') GROUP BY 1, 2, 3) g,
       LATERAL (VALUES ('requests_total', g.requests::numeric), ('errors_total', g.errors), ('cache_hits_total', g.cache_hits),
                       ('input_tokens_total', g.input_tokens), ('output_tokens_total', g.output_tokens),
                       ('cost_usd_total', g.cost), ('cache_savings_usd_total', g.savings), ('unpriced', g.unpriced)) v(m, x)
UNION ALL
SELECT format('pg_meter_rollup_%s %s', v.m, v.x)
  FROM meter.rollup_state s,
       LATERAL (VALUES ('last_run_timestamp_seconds', extract(epoch FROM s.rolled_at)), ('last_run_events', s.last_events),
                       ('unrolled_events', (SELECT count(*) FROM meter.events e WHERE meter._unrolled(e.txid, s.watermark)))) v(m, x)
UNION ALL
SELECT format('pg_meter_job_%s{job="%s"} %s', v.m, j.job, coalesce(v.x::text, 'NaN'))
  FROM meter.job_status j,
       LATERAL (VALUES ('scheduled', (j.schedule IS NOT NULL)::int), ('running', (j.running_pid IS NOT NULL)::int),
                       ('last_ok', j.last_ok::int), ('runs_total', j.runs), ('failures_total', j.failures),
                       ('skipped_total', j.skipped),
                       ('last_finish_timestamp_seconds', coalesce(extract(epoch FROM j.last_finish), 0))) v(m, x)
UNION ALL
SELECT format('pg_meter_runway_%s{provider="%s",tenant="coach"} %s', v.m, r.provider, coalesce(v.x::text, '+Inf'))
  FROM meter.runway('coach') r,
       LATERAL (VALUES ('days_left', r.days_left), ('estimated_balance_usd', r.estimated_balance),
                       ('burn_usd_per_day', r.burn_per_day), ('balance_timestamp_seconds', extract(epoch FROM r.balance_at))) v(m, x)
ORDER BY 1;
SQL
# a value equals when both are the same word (NaN, +Inf) or within 1e-9 relative
compare() {  # compare EXPECTED SCRAPED: prints "ok KEY" or "not ok KEY want WANT got GOT"
    awk 'NR == FNR { got[$1] = $2; next }
         { w = $2; g = ($1 in got) ? got[$1] : "missing"
           if (g == w || (g != "missing" && w !~ /[a-zA-Z]/ && g !~ /[a-zA-Z]/ &&
                          (g - w <= 1e-9 * (w < 0 ? -w : w) + 1e-12) && (w - g <= 1e-9 * (w < 0 ? -w : w) + 1e-12)))
               print "ok " $1
           else
               print "not ok " $1 " want " w " got " g }' "$2" "$1"
}
compare "$work/expected" "$work/first" > "$work/compared"
while read -r verdict rest; do
    check "$rest" [ "$verdict" = ok ]
done < <(sed -E 's/^ok /ok /; s/^not ok /not_ok /' "$work/compared")

check "the exporter is connected (pg_up 1)" grep -qx 'pg_up 1' "$work/first"
check "the queries file loaded" grep -qE '^pg_exporter_user_queries_load_error\{.*\} 0$' "$work/first"
check "the scrape had no error" grep -qx 'pg_exporter_last_scrape_error 0' "$work/first"
# every metric the file declares is exported (lag_seconds is time, not SQL's)
declared=$(awk '/^pg_meter_[a-z_]+:$/ { ns = substr($1, 1, length($1) - 1) }
                /^    - [a-z_]+:$/ { col = substr($2, 1, length($2) - 1) }
                /usage: "(COUNTER|GAUGE)"/ { print ns "_" col }' "$queries" | sort -u)
for m in $declared; do
    check "$m is exported" grep -qE "^$m(\{| )" "$work/first"
done
lag=$(grep -E '^pg_meter_rollup_lag_seconds ' "$work/first" | awk '{print $2}')
check "the rollup lag is the time since the job's pass (got ${lag:-none})" \
    awk -v x="${lag:-x}" 'BEGIN { exit !(x ~ /^[0-9.e+-]+$/ && x >= 0 && x < 3600) }'

# one more event of a group: the next scrape counts it, from the tail
key='pg_meter_usage_requests_total{model="a1",provider="acme",tenant="coach"}'
sql -c "SELECT meter.record(tenant => 'coach', provider => 'acme', model => 'a1', usage => '{\"input_tokens\": 1, \"output_tokens\": 1}')" >/dev/null
scrape "$work/second"
before=$(grep -F "$key " "$work/first" | awk '{print $2}')
after=$(grep -F "$key " "$work/second" | awk '{print $2}')
check "a new event counts at the next scrape ($key: ${before:-none} then ${after:-none})" \
    awk -v a="${before:-x}" -v b="${after:-x}" 'BEGIN { exit !(a ~ /^[0-9]/ && b == a + 1) }'
check "no counter went down between the scrapes" \
    awk 'NR == FNR { if ($1 ~ /_total(\{|$)/) v[$1] = $2; next }
         ($1 in v) && $2 < v[$1] { bad = 1; print "went down: " $0 } END { exit bad }' "$work/first" "$work/second"
check "the second scrape had no error" grep -qx 'pg_exporter_last_scrape_error 0' "$work/second"
if grep -q 'err=' "$work/exporter.log"; then
    check "the exporter logged no error" false
    grep 'err=' "$work/exporter.log" | head -5
else
    check "the exporter logged no error" true
fi
[[ $failed -eq 0 ]]
