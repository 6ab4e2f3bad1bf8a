#!/usr/bin/env bash
# demo.sh: the main job. Sets everything up, loads the genai-prices catalog,
# adds a few custom prices, prices a realistic set of provider responses,
# then records six hours of a coaching app's calls (retries, polls, an
# unpriced model), rolls them up and reads totals that equal the raw log;
# then a week of three apps (demo/week.sql): quotas hit, a price corrected
# mid-week, balances, and the admin's summary, top users, projection,
# runway, anomalies and the alerts that fired.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PGM_ROOT"
bash scripts/setup.sh
# the demo runs in a database of its own, made anew each time
export PGDATABASE=pg_meter_demo
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" >/dev/null 2>&1
psql -X -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_meter" >/dev/null
scripts/load-prices
psql -X -q -v ON_ERROR_STOP=1 -v responses="$(cat demo/responses.json)" <<'SQL'
-- prices the catalog does not carry: an image model, a compute-priced model,
-- and a negotiated batch rate (set once; the newest version wins)
SELECT count(*) AS custom_prices_set FROM (
  SELECT meter.set_price('fal', 'flux-pro', '{"per_image": 0.05}', note => 'fal FLUX.1 [pro]')
  UNION ALL SELECT meter.set_price('replicate', 'flux-schnell', '{"per_compute_second": 0.000725}', note => 'Replicate, per second of GPU')
  UNION ALL SELECT meter.set_price('openai', 'gpt-4o', '{"input_mtok": 1.25, "output_mtok": 5}', service_tier => 'batch', note => 'Batch API: half price')
) s \gset
\pset footer off
\echo
\echo pg_meter: exact cost of sample provider responses
\echo
SELECT r->>'provider' AS provider,
       p.model AS model,
       coalesce((p.usage->>'input_tokens')::bigint, 0) AS input,
       coalesce((p.usage->>'cache_read_tokens')::bigint, 0) AS cache_read,
       coalesce((p.usage->>'cache_write_tokens')::bigint, 0) AS cache_write,
       coalesce((p.usage->>'output_tokens')::bigint, 0) AS output,
       coalesce((p.usage->>'output_reasoning_tokens')::bigint, 0) AS reasoning,
       coalesce(p.usage->>'images', p.usage->>'compute_seconds', '') AS other,
       p.cost AS cost_usd,
       p.price_source || '#' || p.price_version AS price,
       r->>'note' AS note
  FROM jsonb_array_elements(:'responses'::jsonb) AS r,
       LATERAL meter.price(r->>'provider', r->>'model', r->'usage', now(), coalesce(r->>'service_tier', 'standard')) AS p;
\echo
SELECT sum(meter.cost(r->>'provider', r->>'model', r->'usage', now(), coalesce(r->>'service_tier', 'standard'))) AS total_usd_exact
  FROM jsonb_array_elements(:'responses'::jsonb) AS r;
\echo why the cached Claude turn cost what it cost:
SELECT meter, quantity, unit_price, per, amount
  FROM meter.cost_breakdown('anthropic', 'claude-sonnet-4-5-20250929',
       '{"input_tokens": 44, "cache_read_input_tokens": 4735, "output_tokens": 412}') WHERE quantity <> 0;
SQL

# the write path: a coaching app's last six hours, recorded, rolled up and read
psql -X -q -v ON_ERROR_STOP=1 -v responses="$(cat demo/responses.json)" <<'SQL'
\pset footer off
\echo
\echo pg_meter: a coaching app's last six hours: every call recorded, priced, rolled up
-- 300 model calls of three users (the sample responses in turn; every ninth
-- answered from the app's response cache, so it costs nothing), a /health
-- check and a chart endpoint polled by one session, one call of a model no
-- catalog prices yet, and a client that retries a request it already sent
SELECT count(*) AS calls_recorded FROM (
  SELECT meter.record(tenant => 'coach-app', subject => 'user-' || (i % 3 + 1), session => 's-' || (i % 7),
                      provider => r->>'provider', model => r->>'model', usage => r->'usage',
                      service_tier => coalesce(r->>'service_tier', 'standard'), cached => i % 9 = 0,
                      endpoint => '/api/chat', feature => CASE WHEN i % 4 = 0 THEN 'summary' ELSE 'coach' END,
                      latency_ms => 300 + (i * 7919) % 4000, ttft_ms => 120 + (i * 31) % 400,
                      success => i % 50 <> 0, error => CASE WHEN i % 50 = 0 THEN 'timeout' END,
                      request_id => 'req-' || i, occurred_at => now() - interval '6 hours' + i * interval '72 seconds')
    FROM generate_series(1, 300) AS i,
         LATERAL (SELECT r FROM jsonb_array_elements(:'responses'::jsonb) WITH ORDINALITY AS x(r, n)
                   WHERE n = 1 + i % jsonb_array_length(:'responses'::jsonb)) AS pick) s;
SELECT count(*) AS polls_recorded FROM (
  SELECT meter.record(tenant => 'coach-app', session => 's-poll', endpoint => CASE WHEN i % 10 = 0 THEN '/health' ELSE '/api/chart-commands' END,
                      latency_ms => 4 + i % 9, occurred_at => now() - interval '6 hours' + i * interval '9 seconds')
    FROM generate_series(1, 2400) AS i) s;
SELECT priced, cost FROM meter.record(tenant => 'coach-app', subject => 'user-1',
    provider => 'openai', model => 'gpt-7-preview', usage => '{"prompt_tokens": 900, "completion_tokens": 120}',
    endpoint => '/api/chat', latency_ms => 2100, request_id => 'req-new-model');
SELECT model, unpriced_reason FROM meter.events WHERE tenant = 'coach-app' AND request_id = 'req-new-model';
\echo a retry of req-42 is told it was a duplicate, with the first answer:
SELECT event_id, cost, duplicate FROM meter.record(tenant => 'coach-app', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"prompt_tokens": 1, "completion_tokens": 1}', request_id => 'req-42');
SELECT meter.rollup() AS events_rolled_up;
-- calls that arrive after the rollup: totals add them from the log
SELECT count(meter.record(tenant => 'coach-app', subject => 'user-2', provider => 'google', model => 'gemini-2.5-flash',
                          usage => '{"promptTokenCount": 1830, "candidatesTokenCount": 402}', endpoint => '/api/chat',
                          latency_ms => 950, request_id => 'late-' || i)) AS recorded_after_rollup
  FROM generate_series(1, 5) AS i;
\echo
\echo last six hours by model (rollups plus what is not rolled up yet):
SELECT coalesce(key, '(no model)') AS model, requests, errors, cache_hits, unpriced, input_tokens, output_tokens, cost,
       potential_cost, round(p50_ms) AS p50_ms, round(p95_ms) AS p95_ms
  FROM meter.totals('coach-app', now() - interval '6 hours', now() + interval '1 minute', 'model');
\echo by user:
SELECT coalesce(key, '(guest)') AS subject, requests, cost, round(p95_ms) AS p95_ms
  FROM meter.totals('coach-app', now() - interval '6 hours', now() + interval '1 minute', 'subject');
\echo the same totals straight from the raw log, to the picodollar:
SELECT count(*) AS requests, sum(cost) AS cost, sum(potential_cost) AS potential_cost, count(*) FILTER (WHERE NOT priced) AS unpriced
  FROM meter.events WHERE tenant = 'coach-app' AND occurred_at >= now() - interval '6 hours' AND occurred_at < now() + interval '1 minute';
\echo
\echo upkeep: the new model gets its price; the job that prices unpriced events runs (pg_cron would, every ten minutes),
\echo and the events and their rollups move together:
SELECT meter.set_price('openai', 'gpt-7-preview', '{"input_mtok": 5, "output_mtok": 20}') > 0 AS price_set;
CALL meter.run_job('rollup', for_ => '0 seconds');
CALL meter.run_job('price_unpriced');
SELECT job, last_ok, last_result FROM meter.job_status WHERE job IN ('rollup', 'price_unpriced') ORDER BY job;
SELECT events, old_total, new_total, new_versions FROM meter.reprices ORDER BY reprice_id DESC LIMIT 1;
\echo meter.verify compares every rollup row with the raw events it covers (no row: exact):
SELECT count(*) AS differences FROM meter.verify(now() - interval '1 day', now() + interval '1 day');
SQL

# the main job's end: a realistic week of three apps, and what the admin sees
psql -X -q -v ON_ERROR_STOP=1 -f demo/week.sql
echo
echo "---- the admin dashboard of each app (meter.dashboard_html, one query, one self-contained page) ----"
for app in coach chat pixels; do
    page="$PGM_RUN/dashboard-$app.html"
    psql -X -At -v ON_ERROR_STOP=1 \
        -c "SELECT meter.dashboard_html('$app', now() - interval '7 days', now() + interval '1 minute')" > "$page"
    echo "$app: $page ($(wc -c < "$page") bytes; open it in a browser)"
done
echo
echo "The private cluster keeps running: source scripts/env.sh && psql -d $PGDATABASE"
