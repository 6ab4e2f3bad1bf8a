-- What pg_meter tells the admin before they look: meter.projection,
-- meter.anomalies and the alerts (rules, evaluation, open once, resolved
-- when cleared). Times are fixed, so the figures are exact.
\set VERBOSITY default
SET TimeZone = 'UTC';
-- one input token costs 1 USD: a call's cost is its input tokens
SELECT meter.set_price('wp', 'w1', '{"input_mtok": 1000000}') > 0 AS priced;
SELECT meter.set_price('wp', 'w2', '{"input_mtok": 1000000}') > 0 AS priced;

-- Projection ---------------------------------------------------------------
-- flat: 24 USD a day (a call of 1 USD every hour at :30), 2026-02-18 to now
SELECT count(*) FROM (SELECT meter.record(tenant => 'flat', provider => 'wp', model => 'w1',
        usage => '{"input_tokens": 1}', occurred_at => t)
   FROM generate_series(timestamptz '2026-02-18 00:30', '2026-03-18 11:30', interval '1 hour') t) s;
-- spent in March to 12:00 on the 18th: 17 days and 12 hours of 24 USD
-- (420); the rest of March and all of April at 24 a day
SELECT month, spent, projected_rest, projected_total, flat_total, budget, over_budget, baseline_since, baseline_until
  FROM meter.projection('flat', at => '2026-03-18 12:00+00');
SELECT position('weekday factors Mon 1.00 Tue 1.00' IN method) > 0 AS flat_pattern,
       position('+0.000000 a day per day' IN method) > 0 AS no_trend
  FROM meter.projection('flat', at => '2026-03-18 12:00+00') LIMIT 1;
-- a monthly budget of 700 USD: crossed 280 USD (11 2/3 days) after noon on the 18th
SELECT meter.set_limit(tenant => 'flat', meter => 'cost', per => 'month', max => 700, scope => 'tenant',
                       time_zone => 'UTC') > 0 AS budget_set;
SELECT month, projected_total, budget, budget_share, over_budget, date_trunc('second', over_budget_at) AS over_at
  FROM meter.projection('flat', at => '2026-03-18 12:00+00');

-- weekdays 10 USD, weekends 2 USD, four weeks: the projection keeps the
-- pattern where the flat average does not
SELECT count(*) FROM (SELECT meter.record(tenant => 'week', provider => 'wp', model => 'w1',
        usage => jsonb_build_object('input_tokens', CASE WHEN extract(isodow FROM d) >= 6 THEN 2 ELSE 10 END),
        occurred_at => d + interval '9 hours')
   FROM generate_series(timestamptz '2026-02-16', '2026-03-15', interval '1 day') d) s;
WITH april AS (
    SELECT sum(CASE WHEN extract(isodow FROM d) >= 6 THEN 2 ELSE 10 END) AS truth
      FROM generate_series(timestamptz '2026-04-01', '2026-04-30', interval '1 day') d
)
SELECT p.month, p.projected_total, a.truth, abs(p.projected_total - a.truth) < 0.000001 AS pattern_kept,
       p.flat_total, p.flat_total <> a.truth AS flat_misses
  FROM meter.projection('week', at => '2026-03-16 00:00+00') p, april a WHERE p.month = '2026-04';

-- a growing tenant: 1 USD more each day; next month follows the line
SELECT count(*) FROM (SELECT meter.record(tenant => 'grow', provider => 'wp', model => 'w1',
        usage => jsonb_build_object('input_tokens', 10 + i), occurred_at => timestamptz '2026-02-16 12:00' + i * interval '1 day')
   FROM generate_series(0, 27) i) s;
WITH truth AS (  -- day i costs 10 + i; April 1 is day 44
    SELECT sum(10 + i) AS april FROM generate_series(44, 73) i
)
SELECT p.month, round(p.projected_total, 3) AS projected, t.april, abs(p.projected_total - t.april) < 0.01 AS trend_kept,
       p.flat_total < t.april AS flat_low
  FROM meter.projection('grow', baseline => '28 days', at => '2026-03-16 00:00+00') p, truth t WHERE p.month = '2026-04';
-- a short baseline states that it has no pattern and no trend; a tenant
-- without usage projects 0
SELECT month, projected_total, method FROM meter.projection('grow', baseline => '3 days', at => '2026-03-16 00:00+00');
SELECT month, spent, projected_total, budget, method FROM meter.projection('nobody', at => '2026-03-16 00:00+00');
-- bad input
SELECT pm_err($$SELECT * FROM meter.projection(NULL)$$);
SELECT pm_err($$SELECT * FROM meter.projection('flat', baseline => '2 hours')$$);
SELECT pm_err($$SELECT * FROM meter.projection('flat', baseline => '400 days')$$);
SELECT pm_err($$SELECT * FROM meter.projection('flat', at => 'infinity')$$);
SELECT pm_err($$SELECT * FROM meter.anomalies('flat', '-infinity', 'infinity')$$);

-- Anomalies ------------------------------------------------------------------
-- a week of normal: a call every 10 minutes on /chat, one in 50 failing,
-- 400-520 ms, 1 USD, by 4 users in 20 sessions
SELECT count(*) FROM (SELECT meter.record(tenant => 'an', subject => 'u' || (i % 4), session => 's' || (i % 20),
        provider => 'wp', model => CASE WHEN i % 2 = 0 THEN 'w1' ELSE 'w2' END, endpoint => '/chat',
        usage => '{"input_tokens": 1}', latency_ms => (400 + (i % 7) * 20)::integer, success => i % 50 <> 0,
        error => CASE WHEN i % 50 = 0 THEN 'timeout' END, occurred_at => t)
   FROM generate_series(timestamptz '2026-03-01', '2026-03-08', interval '10 minutes') WITH ORDINALITY g(t, i)) s;
-- the normal week is rolled up (anomalies compare with the daily rollup);
-- what follows stays in the tail at first
SELECT meter.rollup() > 0 AS rolled;
-- the polling storm: session p1 every 0.5 s for 10 minutes; others every 2 minutes
SELECT count(*) FROM (SELECT meter.record(tenant => 'an', subject => 'u1', session => 'p1',
        endpoint => '/api/chart-commands', latency_ms => 5, occurred_at => t)
   FROM generate_series(timestamptz '2026-03-08 10:00', '2026-03-08 10:10', interval '0.5 s') t) s;
SELECT count(*) FROM (SELECT meter.record(tenant => 'an', subject => 'u2', session => 'q' || (i % 3),
        endpoint => '/api/chart-commands', latency_ms => 5, occurred_at => t)
   FROM generate_series(timestamptz '2026-03-08 09:00', '2026-03-08 12:00', interval '2 minutes') WITH ORDINALITY g(t, i)) s;
-- a cost spike at 14:00 (40 calls of 5 USD by u3), w2 slow at 15:00, u3's calls failing at 16:00
SELECT count(*) FROM (SELECT meter.record(tenant => 'an', subject => 'u3', provider => 'wp', model => 'w1',
        endpoint => '/chat', usage => '{"input_tokens": 5}', latency_ms => 500,
        occurred_at => timestamptz '2026-03-08 14:00' + i * interval '1 minute') FROM generate_series(1, 40) i) s;
SELECT count(*) FROM (SELECT meter.record(tenant => 'an', subject => 'u3', provider => 'wp', model => 'w2',
        endpoint => '/chat', usage => '{"input_tokens": 0}', latency_ms => 3000,
        occurred_at => timestamptz '2026-03-08 15:00' + i * interval '2 minutes') FROM generate_series(1, 25) i) s;
SELECT count(*) FROM (SELECT meter.record(tenant => 'an', subject => 'u3', provider => 'wp', model => 'w1',
        endpoint => '/chat', usage => '{"input_tokens": 0}', latency_ms => 100, success => false,
        error => 'rate_limited', occurred_at => timestamptz '2026-03-08 16:00' + i * interval '2 minutes')
   FROM generate_series(1, 25) i) s;
\x on
SELECT * FROM meter.anomalies('an', '2026-03-08', '2026-03-09');
\x off
-- the same once rolled up (the hourly rollup instead of the tail)
SELECT meter.rollup() > 0 AS rolled;
SELECT kind, subject, session, endpoint, model, started_at, ended_at, observed, normal, ratio
  FROM meter.anomalies('an', '2026-03-08', '2026-03-09');
-- the week before was normal; another tenant sees nothing of it
SELECT count(*) AS normal_week FROM meter.anomalies('an', '2026-03-02', '2026-03-08');
SELECT count(*) AS other_tenant FROM meter.anomalies('flat', '2026-03-08', '2026-03-09');
-- one tenant's call plans generically, and leaves the session's setting as it was
SELECT current_setting('plan_cache_mode') AS plan_cache_mode_after;
SELECT pm_err($$SELECT * FROM meter.anomalies(NULL, now() - interval '1 day', now())$$);
SELECT pm_err($$SELECT * FROM meter.anomalies('an', '2026-03-09', '2026-03-08')$$);
SELECT pm_err($$SELECT * FROM meter.anomalies('an', '2026-01-01', '2026-03-08')$$);

-- the polling storms' hours summarized (the alerts job's step): the rollup
-- made its hours due; the findings are the same from the summaries as from
-- the events
CREATE TEMP TABLE an_log AS SELECT * FROM meter.anomalies('an', '2026-03-08', '2026-03-09');
SELECT count(*) > 0 AS hours_due FROM meter.caller_hours_due WHERE tenant = 'an' AND bucket = '2026-03-08 10:00+00';
-- at most max_hours hours a call (every due tenant of each)
SELECT summarized, still_due > 0 AS more_due FROM meter._callers_update(1);
SELECT still_due FROM meter._callers_update(100000);
SELECT count(*) AS due_after FROM meter.caller_hours_due WHERE bucket + interval '1 hour' <= now();
SELECT endpoint, requests, callers, round(median_per_min::numeric, 3) AS median_per_min FROM meter.endpoint_hours
 WHERE tenant = 'an' AND bucket = '2026-03-08 10:00+00' ORDER BY endpoint;
SELECT endpoint, session, subject, requests, empty, first_at, last_at FROM meter.busy_callers
 WHERE tenant = 'an' AND bucket >= '2026-03-08' ORDER BY bucket, endpoint, session;
SELECT count(*) AS differences
  FROM ((SELECT * FROM meter.anomalies('an', '2026-03-08', '2026-03-09') EXCEPT ALL SELECT * FROM an_log)
        UNION ALL (SELECT * FROM an_log EXCEPT ALL SELECT * FROM meter.anomalies('an', '2026-03-08', '2026-03-09'))) d;
-- a summary that no longer holds what the log holds is not used: a late
-- call of p1 (not rolled up yet), then a summary changed by hand
BEGIN;
SELECT (meter.record(tenant => 'an', subject => 'u1', session => 'p1', endpoint => '/api/chart-commands',
                     latency_ms => 5, occurred_at => '2026-03-08 10:10:30')).duplicate;
SELECT observed, what FROM meter.anomalies('an', '2026-03-08', '2026-03-09') WHERE kind = 'polling_storm';
ROLLBACK;
BEGIN;
UPDATE meter.busy_callers SET requests = 5 WHERE tenant = 'an' AND session = 'p1';
UPDATE meter.endpoint_hours SET requests = requests - 1 WHERE tenant = 'an' AND bucket = '2026-03-08 10:00+00'
   AND endpoint = '/api/chart-commands';
SELECT observed, what FROM meter.anomalies('an', '2026-03-08', '2026-03-09') WHERE kind = 'polling_storm';
ROLLBACK;
-- a storm found from its summary alone (the summary is what is read)
BEGIN;
UPDATE meter.busy_callers SET requests = requests + 100 WHERE tenant = 'an' AND session = 'p1';
SELECT observed, what FROM meter.anomalies('an', '2026-03-08', '2026-03-09') WHERE kind = 'polling_storm';
ROLLBACK;
-- bad input to the step
SELECT pm_err($$SELECT * FROM meter._callers_update(NULL)$$);
SELECT pm_err($$SELECT * FROM meter._callers_update(0)$$);

-- meter._caller_hours (C++, src/core/callers.*) states what this grouping
-- in SQL states, hour by hour: callers are sessions, or subjects calling
-- without one; calls with neither are counted but no caller; an endpoint's
-- callers with two calls or more and their median rate; callers with 15
-- calls or more. Tenant cw adds what an has not: two subjects in a session,
-- guests, no endpoint, empty calls (no tokens; cost 0 or unpriced), a
-- second tenant in the same hours
SELECT count(*) FROM (SELECT meter.record(tenant => 'cw', subject => CASE WHEN i % 5 = 0 THEN NULL ELSE 'v' || (i % 3) END,
        session => CASE WHEN i % 4 = 0 THEN NULL ELSE 'c' || (i % 6) END,
        endpoint => CASE WHEN i % 7 = 0 THEN NULL ELSE '/e' || (i % 2) END,
        provider => 'wp', model => CASE WHEN i % 11 = 0 THEN 'unknown-model' ELSE 'w1' END,
        usage => jsonb_build_object('input_tokens', i % 3), occurred_at => timestamptz '2026-03-08 09:00' + i * interval '17 s')
   FROM generate_series(1, 800) i) s;
WITH pairs AS (
    SELECT t.tenant, h.bucket FROM unnest(ARRAY['an', 'cw']) t(tenant),
           generate_series(timestamptz '2026-03-08 08:00', '2026-03-08 16:00', interval '1 hour') h(bucket)
), c AS (
    SELECT e.tenant, p.bucket, e.endpoint, e.session, CASE WHEN e.session IS NULL THEN e.subject END AS who,
           bool_or(e.session IS NOT NULL OR e.subject IS NOT NULL) AS caller, max(e.subject COLLATE "C") AS subject,
           count(*) AS n, coalesce(sum(e.cost), 0) AS cost,
           count(*) FILTER (WHERE coalesce(e.cost, 0) = 0 AND e.input_tokens = 0 AND e.output_tokens = 0) AS empty,
           min(e.occurred_at) AS t1, max(e.occurred_at) AS t2
      FROM pairs p JOIN meter.events e ON e.tenant = p.tenant AND e.occurred_at >= p.bucket
                                      AND e.occurred_at < p.bucket + interval '1 hour'
     GROUP BY 1, 2, 3, 4, 5
), truth AS (
    SELECT c.tenant, c.bucket, c.endpoint, NULL::text AS session, NULL::text AS subject, sum(c.n)::bigint AS requests,
           sum(c.cost) AS cost, NULL::bigint AS empty, NULL::timestamptz AS first_at, NULL::timestamptz AS last_at,
           count(*) FILTER (WHERE c.caller AND c.n >= 2) AS callers,
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY (c.n - 1) / greatest(date_part('epoch', c.t2 - c.t1) / 60, 1.0 / 60))
                 FILTER (WHERE c.caller AND c.n >= 2)::numeric, 9) AS median
      FROM c GROUP BY c.tenant, c.bucket, c.endpoint
    UNION ALL
    SELECT c.tenant, c.bucket, c.endpoint, c.session, c.subject, c.n, NULL, c.empty, c.t1, c.t2, NULL, NULL
      FROM c WHERE c.caller AND c.n >= 15
), got AS (
    SELECT r.tenant, r.bucket, r.endpoint, r.session, r.subject, r.requests, r.cost, r.empty, r.first_at, r.last_at,
           r.callers, round(r.median_per_min::numeric, 9) AS median
      FROM meter._caller_hours(ARRAY(SELECT tenant FROM pairs), ARRAY(SELECT bucket FROM pairs), true) r
)
SELECT (SELECT count(*) FROM truth) AS rows, (SELECT count(*) FROM truth WHERE callers IS NULL) AS busy,
       (SELECT count(*) FROM truth WHERE median IS NOT NULL AND tenant = 'cw') AS cw_medians,
       (SELECT count(*) FROM ((SELECT * FROM truth EXCEPT ALL SELECT * FROM got)
                              UNION ALL (SELECT * FROM got EXCEPT ALL SELECT * FROM truth)) d) AS differences;
-- without p_cost, no cost; NULL or empty arrays, no rows
SELECT count(*) AS rows, count(cost) AS costs
  FROM meter._caller_hours(ARRAY['cw'], ARRAY[timestamptz '2026-03-08 10:00'], false);
SELECT (SELECT count(*) FROM meter._caller_hours(NULL, NULL, true)) AS of_null,
       (SELECT count(*) FROM meter._caller_hours('{}', '{}', true)) AS of_none;

-- meter._runs (C++, src/core/callers.*) states what islands in SQL state: a
-- caller's busy hours that follow each other make one run, whatever order
-- they come in. The busy hours of an and cw above, and some by hand: a gap,
-- an hour without a subject, a NULL endpoint, a second endpoint
CREATE TEMP TABLE busy_t AS
SELECT r.tenant, r.bucket, r.endpoint, r.session, r.subject, r.requests, r.empty, r.first_at, r.last_at
  FROM meter._caller_hours(ARRAY['an', 'cw', 'an', 'cw', 'an', 'cw', 'an', 'cw', 'an', 'cw'],
                           ARRAY(SELECT h FROM generate_series(timestamptz '2026-03-08 08:00', '2026-03-08 12:00',
                                                              interval '1 hour') h, generate_series(1, 2)), false) r
 WHERE r.callers IS NULL
UNION ALL
SELECT 'cw', timestamptz '2026-03-08 00:00' + h * interval '1 hour', e, s, u, 15 + h, h % 3,
       timestamptz '2026-03-08 00:00' + h * interval '1 hour' + interval '1 minute',
       timestamptz '2026-03-08 00:00' + h * interval '1 hour' + interval '59 minutes'
  FROM (VALUES (20, '/e1', 'c1', 'v9'), (21, '/e1', 'c1', NULL), (23, '/e1', 'c1', 'v0'), (21, NULL, 'c1', 'v1'),
               (22, NULL, 'c1', 'v1'), (21, '/e2', NULL, 'c1'), (22, '/e2', NULL, 'c1')) v(h, e, s, u);
WITH truth AS (
    SELECT b.tenant, b.endpoint, b.session, max(b.subject COLLATE "C") AS subject, sum(b.requests)::bigint AS requests,
           sum(b.empty)::bigint AS empty, min(b.first_at) AS first_at, max(b.last_at) AS last_at, count(*) AS hours
      FROM (SELECT b.*, b.bucket - row_number() OVER (PARTITION BY b.tenant, b.endpoint, b.session, b.who
                                                      ORDER BY b.bucket) * interval '1 hour' AS island
              FROM (SELECT t.*, CASE WHEN t.session IS NULL THEN t.subject END AS who FROM busy_t t) b) b
     GROUP BY b.tenant, b.endpoint, b.session, b.who, b.island
), runs AS (
    SELECT r.* FROM unnest((SELECT meter._runs(b.tenant, b.endpoint, b.session, b.subject, b.bucket, b.requests,
                                               b.empty, b.first_at, b.last_at ORDER BY md5(b::text))
                              FROM busy_t b)) r
), got AS (
    SELECT tenant, endpoint, session, subject, requests, empty, first_at, last_at FROM runs
)
SELECT (SELECT count(*) FROM busy_t) AS busy_hours, (SELECT count(*) FROM truth) AS runs,
       (SELECT count(*) FROM truth WHERE hours > 1) AS longer_runs,
       (SELECT count(*) FROM ((SELECT tenant, endpoint, session, subject, requests, empty, first_at, last_at FROM truth
                               EXCEPT ALL SELECT * FROM got)
                              UNION ALL (SELECT * FROM got EXCEPT ALL
                                         SELECT tenant, endpoint, session, subject, requests, empty, first_at, last_at
                                           FROM truth)) d) AS differences,
       -- each run's rate: (calls - 1) over the minutes from first to last, a second at least
       (SELECT count(*) FROM runs r
         WHERE abs(r.per_min - (r.requests - 1) / greatest(extract(epoch FROM r.last_at - r.first_at) / 60, 1.0 / 60))
               > 1e-9 * r.per_min) AS wrong_rates,
       (SELECT min(r.per_min) > 0 FROM runs r) AS rates_positive;
-- no busy hours, no runs; a busy hour must have its figures
SELECT count(*) AS no_runs FROM unnest((SELECT meter._runs(b.tenant, b.endpoint, b.session, b.subject, b.bucket,
                                                           b.requests, b.empty, b.first_at, b.last_at)
                                          FROM busy_t b WHERE false));
SELECT pm_err($$SELECT meter._runs('t', 'e', 's', NULL, NULL, 1, 0, now(), now())$$);

-- Alerts ---------------------------------------------------------------------
SELECT meter.set_alert('an', 'daily_cost_above', 300) AS cost_rule,
       meter.set_alert('an', 'success_rate_below', 0.9) AS success_rule,
       meter.set_alert('an', 'anomaly') AS anomaly_rule,
       meter.set_alert('an', 'unpriced_model') AS unpriced_rule,
       meter.set_alert('flat', 'runway_below', 30) AS runway_rule;
SELECT meter.set_alert('an', 'anomaly') AS same_rule_again;
SELECT rule_id, tenant, kind, threshold FROM meter.alert_rules ORDER BY rule_id;
-- an unpriced model at 16:30, a balance of flat's provider 10 days ago
SELECT (meter.record(tenant => 'an', provider => 'wp', model => 'w-new', usage => '{"input_tokens": 3}',
                     occurred_at => '2026-03-08 16:30')).cost IS NULL AS unpriced;
SELECT meter.record_balance('flat', 'wp', 500, '2026-03-08 00:00') > 0 AS balance;
-- at 16:59: today's cost (201: the spike and a call) is not above 300; the
-- error spike fails the success rate; the latency jump and the error
-- spike are anomalies of the last hour; the unpriced model; flat's runway
SELECT * FROM meter.evaluate_alerts('2026-03-08 16:59');
SELECT alert_id, tenant, kind, key, value, threshold, fired_at, resolved_at FROM meter.alerts ORDER BY alert_id;
SELECT message FROM meter.alerts ORDER BY alert_id;
-- evaluated again while the same things fire: nothing fires twice
SELECT * FROM meter.evaluate_alerts('2026-03-08 16:59:30');
SELECT count(*) AS open, count(*) FILTER (WHERE last_seen_at = '2026-03-08 16:59:30') AS seen_again
  FROM meter.active_alerts;
-- the next day: the spikes and the storm are over; what cleared resolves,
-- the unpriced model stays (24 hours), the runway has run on
SELECT * FROM meter.evaluate_alerts('2026-03-09 12:00');
SELECT alert_id, kind, key, resolved_at FROM meter.alerts ORDER BY alert_id;
-- a daily cost above 50 fires for the new day and resolves at midnight
SELECT meter.set_alert('an', 'daily_cost_above', 50) AS low_cost_rule;
SELECT * FROM meter.evaluate_alerts('2026-03-08 23:00');
SELECT kind, value, threshold, details FROM meter.active_alerts WHERE kind = 'daily_cost_above';
SELECT * FROM meter.evaluate_alerts('2026-03-09 00:30');
SELECT count(*) AS cost_alerts_open FROM meter.active_alerts WHERE kind = 'daily_cost_above';
-- the payload sent on meter_alerts
SELECT meter._alert_payload('fired', a)::jsonb - 'alert_id' - 'rule_id' AS payload
  FROM meter.alerts a WHERE a.kind = 'unpriced_model';
-- a quota hit: a rate of 1 request a minute, refused on the second
SELECT meter.create_plan('an', 'basic', is_default => true) IS NULL AS plan;
SELECT meter.set_limit(tenant => 'an', meter => 'requests', per => '1 minute', max => 1) > 0 AS limit_set;
SELECT meter.set_alert('an', 'quota_hit') > 0 AS quota_rule;
SELECT allowed FROM meter.reserve('an', 'u9');
SELECT allowed, status FROM meter.reserve('an', 'u9');
SELECT allowed, status FROM meter.check('an', 'u9');
SELECT tenant, refusals, last_subject FROM meter._quota_refusals() WHERE tenant = 'an';
SELECT fired >= 1 AS quota_fired FROM meter.evaluate_alerts(now());
SELECT kind, key = 'limit ' || (SELECT max(limit_id) FROM meter.limits WHERE tenant = 'an') AS its_limit,
       details->>'last_subject' AS subject, details->>'refusals' AS refusals
  FROM meter.active_alerts WHERE kind = 'quota_hit';
-- dropping a rule drops its alerts
SELECT meter.drop_alert(rule_id) FROM meter.alert_rules WHERE kind = 'unpriced_model';
SELECT meter.drop_alert(-1) AS absent;
SELECT count(*) AS unpriced_alerts FROM meter.alerts WHERE kind = 'unpriced_model';
-- bad rules
SELECT pm_err($$SELECT meter.set_alert('an', 'tea_time')$$);
SELECT pm_err($$SELECT meter.set_alert(NULL, 'anomaly')$$);
SELECT pm_err($$SELECT meter.set_alert('an', 'daily_cost_above')$$);
SELECT pm_err($$SELECT meter.set_alert('an', 'success_rate_below', 1.5)$$);
SELECT pm_err($$SELECT meter.set_alert('an', 'anomaly', 3)$$);
SELECT pm_err($$SELECT meter.set_alert('an', 'runway_below', 'NaN')$$);
SELECT pm_err($$SELECT meter.evaluate_alerts(NULL)$$);
-- the job
CALL meter.run_job('alerts');
SELECT job, last_ok, last_result ~ '^\d+ caller hours summarized, \d+ due, \d+ fired, \d+ resolved, \d+ firing$' AS result_shape FROM meter.jobs WHERE job = 'alerts';
-- hours are UTC hours in any session zone: at 16:59 UTC a session at
-- +05:30 sees what a UTC one sees (its "hour" began at 16:30 UTC, and the
-- success rate read one hour instead of two)
CREATE TEMP TABLE firing_utc AS SELECT rule_id, key, value FROM meter._firing('2026-03-08 16:59+00');
SET TimeZone = 'Asia/Kolkata';
SELECT (SELECT count(*) FROM firing_utc) AS firing,
       (SELECT count(*) FROM (SELECT rule_id, key, value FROM meter._firing('2026-03-08 16:59+00')
                              EXCEPT ALL TABLE firing_utc) d) AS differ;
SET TimeZone = 'UTC';
-- the week before is 7 UTC days in any session zone, across a change of
-- daylight saving time too: New York moved its clocks on 2026-03-08, and a
-- New York session's "7 days" before 2026-03-09 00:00 UTC began an hour
-- late (168 hours of UTC are 167 of its calendar), losing the baseline's
-- first hour (here a costly one)
SELECT count(*) FROM (SELECT meter.record(tenant => 'dst', provider => 'wp', model => 'w1', usage => '{"input_tokens": 1}',
        endpoint => '/chat', latency_ms => 100, request_id => 'dst-' || i,
        occurred_at => timestamptz '2026-03-02 00:30+00' + i * interval '1 hour') FROM generate_series(0, 167) i) s;
SELECT count(*) FROM (SELECT meter.record(tenant => 'dst', provider => 'wp', model => 'w1', usage => '{"input_tokens": 30}',
        endpoint => '/chat', latency_ms => 100, request_id => 'dst-first-' || i,
        occurred_at => timestamptz '2026-03-02 00:10+00' + i * interval '1 minute') FROM generate_series(0, 9) i) s;
SELECT count(*) FROM (SELECT meter.record(tenant => 'dst', provider => 'wp', model => 'w1', usage => '{"input_tokens": 40}',
        endpoint => '/chat', latency_ms => 100, request_id => 'dst-spike-' || i,
        occurred_at => timestamptz '2026-03-09 05:00+00' + i * interval '1 minute') FROM generate_series(0, 29) i) s;
SELECT meter.rollup() > 0 AS rolled;
CREATE TEMP TABLE dst_utc AS SELECT kind, model, observed, normal FROM meter.anomalies('dst', '2026-03-09', '2026-03-10');
SELECT kind, model, observed, round(normal, 4) AS normal FROM dst_utc;
SET TimeZone = 'America/New_York';
SELECT (SELECT count(*) FROM dst_utc) AS findings,
       (SELECT count(*) FROM (SELECT kind, model, observed, normal FROM meter.anomalies('dst', '2026-03-09', '2026-03-10')
                              EXCEPT ALL TABLE dst_utc) d) AS differ;
SET TimeZone = 'UTC';
-- runway's burn window likewise: 7 days before 2026-03-09 12:00 UTC are
-- 168 hours in a New York session too (they began at 13:00 UTC, an hour
-- late, and left out the 12:30 event); its burn equals the raw events'
SELECT meter.record_balance('dst', 'wp', 100, '2026-03-09 06:00+00') > 0 AS kept;
CREATE TEMP TABLE runway_utc AS
    SELECT provider, burn_per_day, days_left, runs_out_at FROM meter.runway('dst', at => '2026-03-09 12:00+00');
SELECT r.burn_per_day = round((SELECT sum(cost) FROM meter.events WHERE tenant = 'dst'
                                  AND occurred_at >= '2026-03-02 12:00+00' AND occurred_at < '2026-03-09 12:00+00') / 7, 12)
       AS burn_exact
  FROM runway_utc r;
SET TimeZone = 'America/New_York';
SELECT (SELECT count(*) FROM (SELECT provider, burn_per_day, days_left, runs_out_at
                                FROM meter.runway('dst', at => '2026-03-09 12:00+00')
                              EXCEPT ALL TABLE runway_utc) d) AS differ;
SET TimeZone = 'UTC';
