#!/usr/bin/env bash
# alerts.sh: one run of the alerts job over many tenants, against the
# peer's hand-written equivalent of its cheapest rule, in one run.
#  - TENANTS tenants (default 1,000), EVENTS events (default 1,000,000)
#    spread over the last 8 days (so the anomaly rule has its trailing
#    week), priced at ingest and rolled up, then 2,000 fresh events not
#    rolled up (the tail the job must add); a tenth of the tenants call an
#    unpriced model, one tenant has a polling session; the callers of
#    every hour summarized as the alerts job's first step does (timed,
#    and one hour of every tenant again);
#  - every tenant has all six rules: daily cost above 50 USD, success rate
#    below 95 %, quota hit, anomaly, runway under 30 days (with a balance),
#    unpriced model;
#  - median of REPS runs of meter.evaluate_alerts() (each in a new session;
#    the first run fires, later ones find the same alerts open);
#  - the peer: today's cost and success rate per tenant from its raw log
#    (the daily-cost and success-rate rules alone).
# Usage: bench/alerts.sh   (after scripts/setup.sh; TENANTS=1000 EVENTS=1000000 REPS=7)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$PGM_ROOT"
db=${BENCH_DB:-pg_meter_alerts}
tenants=${TENANTS:-1000}
events=${EVENTS:-1000000}
reps=${REPS:-7}
fresh_db "$db" peer
psql -X -q -d "$db" -c "SELECT meter.create_partition(now()), meter.create_partition(now() - interval '1 month')" >/dev/null
echo "== loading $events events of $tenants tenants over 8 days"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE g AS
SELECT 't-' || (i % $tenants) AS tenant, 'user-' || (hashint4(i) & 63) AS subject,
       (ARRAY['chat', 'chat', 'summarize', 'search'])[1 + (hashint4(i + 7) & 3)] AS endpoint,
       CASE WHEN i % $tenants % 10 = 0 AND i % 97 = 0 THEN 'acme' ELSE 'openai' END AS provider,
       CASE WHEN i % $tenants % 10 = 0 AND i % 97 = 0 THEN 'brand-new-model' ELSE 'gpt-4o-mini' END AS model,
       50 + (hashint4(i + 1) & 2147483647) % 3950 AS inp, 10 + (hashint4(i + 2) & 2147483647) % 1190 AS outp,
       150 + (hashint4(i + 4) & 2147483647) % 2850 AS ms, (hashint4(i + 5) & 63) <> 0 AS success,
       now() - (i::float8 / $events) * interval '8 days' AS at
  FROM generate_series(1, $events) i;
INSERT INTO meter.events (tenant, subject, endpoint, provider, model, usage, latency_ms, success, occurred_at)
SELECT tenant, subject, endpoint, provider, model, jsonb_build_object('input_tokens', inp, 'output_tokens', outp), ms, success, at FROM g;
INSERT INTO peer.api_usage_logs (user_id, session_id, endpoint, provider, model, input_tokens, output_tokens, total_tokens,
                                 cost_usd, duration_ms, success, created_at, metadata)
SELECT subject, subject, endpoint, provider, model, inp, outp, inp + outp, (inp * 0.15 + outp * 0.6) / 1000000.0, ms, success, at,
       jsonb_build_object('tenant', tenant) FROM g;
CREATE INDEX ON peer.api_usage_logs ((metadata->>'tenant'), created_at);
SELECT meter.rollup() > 0;
-- a session polling every half second for five minutes, and a fresh tail
SELECT count(meter.record(tenant => 't-1', subject => 'user-1', session => 'poller', endpoint => '/api/chart-commands',
                          occurred_at => now() - interval '5 minutes' + i * interval '0.5 s')) FROM generate_series(1, 600) i;
SELECT count(meter.record(tenant => 't-' || (i % $tenants), subject => 'user-' || (i % 50), provider => 'openai', model => 'gpt-4o-mini',
                          usage => jsonb_build_object('input_tokens', 100 + i, 'output_tokens', 20), latency_ms => 300 + i % 700))
  FROM generate_series(1, 2000) i;
SELECT count(*) FROM (SELECT meter.set_alert(t, 'daily_cost_above', 50), meter.set_alert(t, 'success_rate_below', 0.95),
                             meter.set_alert(t, 'quota_hit'), meter.set_alert(t, 'anomaly'),
                             meter.set_alert(t, 'runway_below', 30), meter.set_alert(t, 'unpriced_model'),
                             meter.record_balance(t, 'openai', 20, now() - interval '2 days')
                        FROM (SELECT 't-' || i AS t FROM generate_series(0, $tenants - 1) i) x) s;
VACUUM ANALYZE;
SQL
# the job's first step: the callers of every hour of the 8 days summarized
# (24 hours a run, as the job does), then one hour's again, what the step
# does once an hour in steady state (every tenant of the hour just over)
c0=$(date +%s.%N)
callers_catch_up
c1=$(date +%s.%N)
step_q="INSERT INTO meter.caller_hours_due SELECT DISTINCT tenant, bucket FROM meter.rollup_hourly
         WHERE bucket = date_trunc('hour', now(), 'UTC') - interval '1 hour'; SELECT * FROM meter._callers_update(24)"
st=$(for ((k = 0; k < reps; k++)); do ms_of "$step_q"; done | median)
awk -v a="$c0" -v b="$c1" -v t="$tenants" -v st="$st" 'BEGIN {
  printf "callers by hour of the 8 days (meter._callers_update, 24 hours a call): %.1f s\n", b - a
  printf "one hour of %d tenants summarized again (the step in steady state): %.1f ms (median)\n", t, st }'
psql -X -q -d "$db" -c "SELECT 'first run: ' || fired || ' fired, ' || firing || ' firing' FROM meter.evaluate_alerts()" -At
psql -X -q -At -d "$db" -c "SELECT kind || ': ' || count(*) FROM meter.active_alerts GROUP BY kind ORDER BY kind"
q="SELECT * FROM meter.evaluate_alerts()"
m=$(for ((k = 0; k < reps; k++)); do ms_of "$q"; done | median)
peer_q="SELECT metadata->>'tenant', sum(cost_usd), avg(success::int) FROM peer.api_usage_logs WHERE created_at >= date_trunc('day', now(), 'UTC') GROUP BY 1"
p=$(for ((k = 0; k < reps; k++)); do ms_of "$peer_q"; done | median)
awk -v a="$m" -v b="$p" -v t="$tenants" 'BEGIN {
  printf "meter.evaluate_alerts over %d tenants (6 rules each): %.1f ms (median)\n", t, a
  printf "peer: today'"'"'s cost and success rate per tenant from the raw log: %.1f ms; ratio pg_meter/peer %.2fx\n", b, a / b }'
