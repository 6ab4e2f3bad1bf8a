-- demo/week.sql: a realistic week of three apps, run by scripts/demo.sh
-- in its own database (prices loaded). What an admin sees at the end of it.
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
\echo
\echo ==================================================================
\echo pg_meter: a week of three apps
\echo ==================================================================
-- (the image prices of fal and Replicate were set by the first part of scripts/demo.sh)

-- coach: a coaching app on Gemini Flash (most calls) and Pro (long answers),
-- 40 users, busy on weekdays, quiet at weekends, growing through the week
INSERT INTO meter.events (tenant, subject, session, provider, model, endpoint, feature, usage, latency_ms, ttft_ms,
                         success, error, request_id, occurred_at)
SELECT 'coach', 'user-' || (1 + (hashint4(i) & 2147483647) % 40), 'c-' || (i / 6),
       'google', CASE WHEN i % 7 = 0 THEN 'gemini-2.5-pro' ELSE 'gemini-2.5-flash' END,
       '/api/coach', CASE WHEN i % 5 = 0 THEN 'weekly-review' ELSE 'chat' END,
       jsonb_build_object('promptTokenCount', 900 + (hashint4(i + 1) & 2047), 'candidatesTokenCount', 150 + (hashint4(i + 2) & 511)),
       600 + (hashint4(i + 3) & 2047), 200 + (hashint4(i + 4) & 255),
       (hashint4(i + 5) & 127) <> 0, CASE WHEN (hashint4(i + 5) & 127) = 0 THEN 'upstream_503' END,
       'coach-' || i, t
  FROM (SELECT i, now() - interval '7 days' + (i / 9000.0) * interval '7 days' AS t FROM generate_series(1, 9000) i) g
 WHERE extract(isodow FROM t) < 6 OR i % 3 = 0;   -- weekends a third as busy

-- chat: an assistant on Claude with prompt caching (a long system prompt
-- read from the cache on every turn after the first of a conversation)
INSERT INTO meter.events (tenant, subject, session, provider, model, endpoint, usage, latency_ms, ttft_ms, occurred_at)
SELECT 'chat', 'acct-' || (1 + i % 25), 'conv-' || (i / 8), 'anthropic', 'claude-sonnet-4-5', '/v1/chat',
       CASE WHEN i % 8 = 0
            THEN jsonb_build_object('input_tokens', 5200, 'cache_creation_input_tokens', 4700, 'output_tokens', 300 + i % 400)
            ELSE jsonb_build_object('input_tokens', 120 + i % 300, 'cache_read_input_tokens', 4700, 'output_tokens', 250 + i % 500) END,
       1500 + (hashint4(i) & 4095), 400 + (hashint4(i + 9) & 511),
       now() - interval '7 days' + (i / 4000.0) * interval '7 days'
  FROM generate_series(1, 4000) i;

-- pixels: an image app, FLUX pro at fal per image, FLUX schnell at Replicate per GPU second
INSERT INTO meter.events (tenant, subject, provider, model, endpoint, usage, latency_ms, occurred_at)
SELECT 'pixels', 'artist-' || (1 + i % 12),
       CASE WHEN i % 3 = 0 THEN 'fal' ELSE 'replicate' END, CASE WHEN i % 3 = 0 THEN 'flux-pro' ELSE 'flux-schnell' END,
       '/generate',
       CASE WHEN i % 3 = 0 THEN jsonb_build_object('images', 1 + i % 4)
            ELSE jsonb_build_object('compute_seconds', 2 + (i % 9) * 0.5) END,
       3000 + (hashint4(i) & 8191), now() - interval '7 days' + (i / 1500.0) * interval '7 days'
  FROM generate_series(1, 1500) i;

-- today: coach's frontend polls /api/chart-commands twice a second for 20
-- minutes from one browser session, where other sessions ask once a minute
SELECT count(meter.record(tenant => 'coach', subject => 'user-7', session => 'browser-9f2', endpoint => '/api/chart-commands',
                          latency_ms => 3 + i % 5, occurred_at => now() - interval '30 minutes' + i * interval '0.5 s'))
       AS polls_recorded
  FROM generate_series(1, 2400) i;
SELECT count(meter.record(tenant => 'coach', subject => 'user-' || (i % 40), session => 'browser-' || (i % 30),
                          endpoint => '/api/chart-commands', latency_ms => 4, occurred_at => now() - interval '6 hours' + i * interval '60 s'))
       AS ordinary_chart_calls
  FROM generate_series(1, 340) i;
-- and a model no catalog prices yet
SELECT (meter.record(tenant => 'chat', subject => 'acct-3', provider => 'anthropic', model => 'claude-experimental-2',
                     usage => '{"input_tokens": 800, "output_tokens": 90}', endpoint => '/v1/chat', latency_ms => 2400)).priced
       AS experimental_model_priced;
SELECT meter.rollup() AS events_rolled_up;

\echo
\echo quotas: the free plan of coach allows 30 requests a minute and 2 USD a day per user
SELECT meter.create_plan('coach', 'free', 'the free tier', is_default => true) IS NULL AS plan_created;
SELECT meter.set_limit(tenant => 'coach', plan => 'free', meter => 'requests', per => '1 minute', max => 30) > 0 AS rate_set,
       meter.set_limit(tenant => 'coach', plan => 'free', meter => 'cost', per => 'day', max => 2, time_zone => 'UTC') > 0 AS budget_set;
-- user-7's browser asks before each of 50 calls in a burst (one statement each)
CREATE TEMP TABLE burst (allowed boolean, status text, retry_after integer);
SELECT 'INSERT INTO burst SELECT allowed, status, retry_after FROM meter.reserve(''coach'', ''user-7'', ''/api/coach'')'
  FROM generate_series(1, 50) \gexec
SELECT count(*) FILTER (WHERE allowed) AS allowed, count(*) FILTER (WHERE NOT allowed) AS refused,
       min(retry_after) FILTER (WHERE NOT allowed) AS retry_after_s
  FROM burst;

\echo
\echo a price correction mid-week: coach negotiated Gemini 2.5 Pro at 1.00/8.00 USD per million from Wednesday
SELECT meter.set_price('google', 'gemini-2.5-pro', '{"input_mtok": 1.00, "output_mtok": 8.00}',
                       valid_from => date_trunc('day', now() - interval '3 days'), note => 'negotiated rate') > 0 AS price_corrected;
CALL meter.reprice(provider => 'google', model => 'gemini-2.5-pro', since => date_trunc('day', now() - interval '3 days'),
                   until => now() + interval '1 minute', events => NULL, old_total => NULL, new_total => NULL, reprice_id => NULL);

\echo
\echo provider balances as the providers report them: fal and Replicate twice (fal also took a 0.37 USD fee),
\echo Anthropic once before a top-up of 200 USD
SELECT count(meter.record_balance(t, p, b, now() - ago)) AS first_reports
  FROM (VALUES ('pixels', 'fal', 120.00, interval '5 days'), ('pixels', 'replicate', 40.00, interval '6 days'),
               ('chat', 'anthropic', 500.00, interval '4 days')) v(t, p, b, ago);
-- the second report: the first minus what was spent between (plus a fee, plus a top-up)
SELECT count(meter.record_balance(v.t, v.p, b.balance_usd - coalesce(s.spent, 0) + v.adjust, now() - v.ago)) AS second_reports
  FROM (VALUES ('pixels', 'fal', interval '1 day', -0.37), ('pixels', 'replicate', interval '2 days', 0),
               ('chat', 'anthropic', interval '12 hours', 200)) v(t, p, ago, adjust)
  JOIN meter.balances b ON b.tenant = v.t AND b.provider = v.p,
       LATERAL (SELECT sum(e.cost) AS spent FROM meter.events e
                 WHERE e.tenant = v.t AND e.provider = v.p AND e.occurred_at >= b.at AND e.occurred_at < now() - v.ago) s;

\echo alert rules for every tenant
SELECT count(meter.set_alert(t, k, v)) AS rules
  FROM unnest(ARRAY['coach', 'chat', 'pixels']) t,
       (VALUES ('anomaly', NULL::numeric), ('quota_hit', NULL), ('unpriced_model', NULL), ('runway_below', 14),
               ('daily_cost_above', 25), ('success_rate_below', 0.9)) r(k, v);
LISTEN meter_alerts;
SELECT fired, firing FROM meter.evaluate_alerts();

\echo
\echo ---- coach: the last 7 days ----
SELECT requests, success_rate, unique_subjects, cost, potential_cost, round(p50_ms) AS p50_ms, round(p95_ms) AS p95_ms,
       round(ttft_p95_ms) AS ttft_p95_ms
  FROM meter.summary('coach', now() - interval '7 days', now() + interval '1 minute');
SELECT d->>'day' AS day, d->>'requests' AS requests, d->>'cost' AS cost
  FROM meter.summary('coach', now() - interval '7 days', now() + interval '1 minute'), jsonb_array_elements(per_day) d;
\echo top users by cost:
SELECT rank, subject, requests, cost, round(100 * share, 1) AS pct
  FROM meter.top_subjects('coach', now() - interval '7 days', now() + interval '1 minute', by => 'cost', n => 5);
\echo user-7, with its plan and limits:
SELECT u.requests, u.cost, u.plan, u.blocked, l->>'meter' AS meter, l->>'per' AS per, l->>'max' AS max,
       l->>'used' AS used, l->>'remaining' AS remaining
  FROM meter.subject_usage('coach', 'user-7', date_trunc('day', now()), now() + interval '1 minute') u,
       jsonb_array_elements(u.limits) l;
\echo projection (this month and the next):
SELECT month, spent, projected_total, flat_total, method FROM meter.projection('coach', baseline => '7 days');
\echo anomalies of the last day:
SELECT kind, coalesce(session, subject, model) AS who, endpoint, observed, normal, unit, ratio, what, advice
  FROM meter.anomalies('coach');

\echo
\echo ---- chat: prompt caching (tokens written to and read from the cache, priced at their own rates) ----
SELECT requests, input_tokens, cache_write_tokens, cache_read_tokens, output_tokens, cost, unpriced
  FROM meter.summary('chat', now() - interval '7 days', now() + interval '1 minute');

\echo
\echo ---- runway ----
SELECT 'pixels' AS tenant, provider, estimated_balance, round(burn_per_day, 4) AS burn_per_day, days_left,
       reported_spend, computed_spend, drift FROM meter.runway('pixels')
UNION ALL
SELECT 'chat', provider, estimated_balance, round(burn_per_day, 4), days_left, reported_spend, computed_spend, drift
  FROM meter.runway('chat');

\echo
\echo ---- alerts that fired (sent on NOTIFY meter_alerts) ----
SELECT tenant, kind, key, message FROM meter.active_alerts ORDER BY tenant, kind, key;
