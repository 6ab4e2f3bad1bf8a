-- Upkeep: verify finds every difference and none when exact; backfill
-- repairs; late events land once; reprice changes events and rollups
-- together with an audit row; retention never drops what the rollups do not
-- hold; jobs record their outcome; bad input gets SQLSTATEs.
\set VERBOSITY default
SET TimeZone = 'UTC';
SET client_min_messages = warning;
SELECT meter.create_partition('2025-03-01') AS partition;
SELECT meter.set_price('openai', 'up-model', '{"input_mtok": 3, "output_mtok": 15}') > 0 AS priced;
-- 2,000 events over six days of March 2025, some of them of a model with
-- no price yet, cached, failed, or without latency
INSERT INTO meter.events (tenant, subject, provider, model, endpoint, feature, usage, cached, latency_ms, ttft_ms,
                          success, occurred_at)
SELECT 'up', CASE WHEN i % 9 = 0 THEN NULL ELSE 'user-' || i % 13 END, 'openai',
       CASE WHEN i % 10 = 0 THEN 'up-later' ELSE 'up-model' END, '/chat', CASE WHEN i % 3 = 0 THEN 'bot' END,
       jsonb_build_object('input_tokens', 100 + i % 50, 'output_tokens', 10 + i % 7), i % 8 = 0,
       CASE WHEN i % 17 <> 0 THEN 100 + i % 900 END, i % 300, i % 23 <> 0,
       '2025-03-10 00:00+00'::timestamptz + i * interval '259 seconds'
  FROM generate_series(1, 2000) i;
SELECT meter.rollup() AS rolled;
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');

-- verify sees what does not match: a changed count and cost, a lost row
-- (meter.subject_months follows it: the row is the difference), a row with
-- no events behind it, a sketch that lost a value, a day bit written by hand
UPDATE meter.rollup_hourly SET requests = requests + 1, cost = cost + 0.5
 WHERE tenant = 'up' AND bucket = '2025-03-10 05:00+00' AND model = 'up-model' AND feature IS NULL;
DELETE FROM meter.rollup_subject_daily WHERE tenant = 'up' AND bucket = '2025-03-11' AND subject = 'user-1';
INSERT INTO meter.rollup_daily (tenant, bucket, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced,
       input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost, first_at, last_at)
VALUES ('up', '2025-03-12', 'openai', 'ghost', '/chat', NULL, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, '2025-03-12', '2025-03-12');
UPDATE meter.rollup_daily SET latency = meter.sketch_union(latency, '{"count":1,"zeros":0,"min":5,"max":5,"sum":5,"bins":[[162,1]]}')
 WHERE tenant = 'up' AND bucket = '2025-03-13' AND model = 'up-model' AND feature = 'bot';
UPDATE meter.subject_months SET days = days | (1 << 19) WHERE tenant = 'up' AND month = '2025-03-01' AND subject = 'user-2';
UPDATE meter.subject_months SET cost = cost + 1 WHERE tenant = 'up' AND month = '2025-03-01' AND subject = 'user-3';
SELECT rollup, bucket, subject, model, feature, what, in_rollup, in_events FROM meter.verify('2025-03-01', '2025-04-01');
-- a range is taken as the whole UTC days that cover it (and the sums of their months)
SELECT count(*) AS in_one_hour FROM meter.verify('2025-03-10 05:10+00', '2025-03-10 05:20+00');

-- backfill repairs, and a second run changes nothing; rows that already
-- hold the right figures stay where they are (written are only the
-- damaged ones: one hourly row, the daily ghost and sketch rows, the lost
-- subject-day row)
CREATE TEMP VIEW rollup_places AS
SELECT 'hourly' AS t, ctid::text AS place FROM meter.rollup_hourly
UNION ALL SELECT 'daily', ctid::text FROM meter.rollup_daily
UNION ALL SELECT 'subject_daily', ctid::text FROM meter.rollup_subject_daily;
CREATE TEMP TABLE places_before AS SELECT * FROM rollup_places;
CALL meter.backfill('2025-03-01', '2025-04-01', batch_days => 7);
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
SELECT coalesce(b.t, a.t) AS t, count(*) FILTER (WHERE a.t IS NOT NULL AND b.t IS NOT NULL) AS kept,
       count(*) FILTER (WHERE a.t IS NULL) AS gone, count(*) FILTER (WHERE b.t IS NULL) AS new
  FROM places_before b FULL JOIN rollup_places a ON a.t = b.t AND a.place = b.place
 GROUP BY 1 ORDER BY 1;
TRUNCATE places_before;
INSERT INTO places_before SELECT * FROM rollup_places;
CALL meter.backfill('2025-03-10 12:00+00', '2025-03-11 01:00+00');
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
SELECT count(*) AS moved FROM places_before b FULL JOIN rollup_places a ON a.t = b.t AND a.place = b.place
 WHERE a.t IS NULL OR b.t IS NULL;
SELECT last_ok, last_result, progress FROM meter.job_status WHERE job = 'backfill';

-- backfill leaves events not rolled up yet to the rollup: counted once
INSERT INTO meter.events (tenant, subject, provider, model, endpoint, usage, latency_ms, occurred_at)
VALUES ('up', 'late', 'openai', 'up-model', '/chat', '{"input_tokens": 1000, "output_tokens": 100}', 250, '2025-03-10 05:30+00');
CALL meter.backfill('2025-03-10', '2025-03-11');
SELECT requests FROM meter.rollup_subject_daily WHERE tenant = 'up' AND subject = 'late';
SELECT meter.rollup() AS rolled_late;
SELECT requests FROM meter.rollup_subject_daily WHERE tenant = 'up' AND subject = 'late';
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');

-- verify checks the hours' summaries as well (meter.subject_hours,
-- endpoint_hours, busy_callers: derived from the events by the alerts
-- job) in every hour where they are current. A session polling /poll 20
-- times in one hour makes a busy caller. Until the alerts job has run,
-- every hour is due and none is compared; then none differs
INSERT INTO meter.events (tenant, session, subject, endpoint, latency_ms, occurred_at)
SELECT 'up', 'poll-1', 'user-1', '/poll', 5, '2025-03-14 03:00+00'::timestamptz + i * interval '2 minutes'
  FROM generate_series(1, 20) i;
SELECT meter.rollup() AS rolled_polls;
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
SELECT summarized > 0 AS summarized, still_due FROM meter._callers_update(100000);
SELECT count(*) AS busy FROM meter.busy_callers WHERE tenant = 'up';
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
-- each kind of damage is seen: a subject's changed figures and lost row,
-- a callers count that readers cannot catch (the hour's calls and cost
-- still agree with the rollups), a busy caller's changed last call and a
-- busy caller with no events behind it
UPDATE meter.subject_hours SET requests = requests + 1, cost = cost + 0.25
 WHERE tenant = 'up' AND bucket = '2025-03-10 05:00+00' AND subject = 'user-1';
DELETE FROM meter.subject_hours WHERE tenant = 'up' AND bucket = '2025-03-11 02:00+00' AND subject = 'user-2';
UPDATE meter.endpoint_hours SET callers = callers + 1 WHERE tenant = 'up' AND bucket = '2025-03-14 03:00+00' AND endpoint = '/poll';
UPDATE meter.busy_callers SET last_at = last_at + interval '1 minute' WHERE tenant = 'up' AND session = 'poll-1';
INSERT INTO meter.busy_callers (tenant, bucket, endpoint, session, subject, requests, empty, first_at, last_at)
VALUES ('up', '2025-03-12 00:00+00', '/chat', 'ghost', NULL, 15, 0, '2025-03-12 00:00+00', '2025-03-12 00:14+00');
-- a cost written as 0.50 where the events make 0.5 is the same amount
UPDATE meter.endpoint_hours SET cost = cost + 0.00 WHERE tenant = 'up' AND bucket = '2025-03-12 00:00+00';
SELECT rollup, bucket, subject, session, endpoint, what, in_rollup, in_events
  FROM meter.verify('2025-03-01', '2025-04-01');
-- a backfill rebuilds the rollups only (they are right: nothing changes,
-- no hour is due again); meter.resummarize redoes the summaries
CALL meter.backfill('2025-03-01', '2025-04-01', batch_days => 31);
SELECT count(*) AS differences, count(*) FILTER (WHERE rollup LIKE 'rollup%') AS in_rollups
  FROM meter.verify('2025-03-01', '2025-04-01');
SELECT meter.resummarize('2025-03-01', '2025-04-01') = (SELECT count(DISTINCT (tenant, bucket)) FROM meter.rollup_hourly
                                                         WHERE bucket >= '2025-03-01' AND bucket < '2025-04-01') AS every_hour;
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
SELECT count(*) AS due FROM meter.caller_hours_due WHERE bucket < '2025-04-01';
-- a poll that comes late, not rolled up yet: its hour's callers summary is
-- not compared while the hour has events the rollups do not hold; the
-- rollup makes the hour due, the alerts job summarizes it again
INSERT INTO meter.events (tenant, session, subject, endpoint, latency_ms, occurred_at)
VALUES ('up', 'poll-1', 'user-1', '/poll', 5, '2025-03-14 03:50+00');
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
SELECT meter.rollup() AS rolled_poll;
SELECT count(*) AS due FROM meter.caller_hours_due WHERE bucket < '2025-04-01';
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
SELECT summarized FROM meter._callers_update(100000);
SELECT requests, last_at FROM meter.busy_callers WHERE tenant = 'up' AND session = 'poll-1';
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');

-- meter.subject_months (the days each subject has usage, what
-- meter.summary counts subjects from) follows rollup_subject_daily
-- whoever writes it: the rollup, a rebuild, a row moved or deleted by
-- hand, a TRUNCATE. Two subjects across the end of February, one of them
-- on the last day of a 31-day month too.
CREATE FUNCTION pg_temp.months_differ() RETURNS bigint LANGUAGE sql AS $$
  WITH want AS (
    SELECT tenant, date_trunc('month', bucket) AS month, subject, bit_or(1 << (extract(day FROM bucket)::int - 1)) AS days,
           sum(requests)::bigint AS requests, sum(errors)::bigint AS errors, sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens, sum(cost) AS cost, sum(potential_cost) AS potential_cost
      FROM meter.rollup_subject_daily WHERE subject IS NOT NULL GROUP BY 1, 2, 3
  ), have AS (
    SELECT tenant, month, subject, days, requests, errors, input_tokens, output_tokens, cost, potential_cost
      FROM meter.subject_months
  )
  SELECT count(*) FROM ((SELECT * FROM have EXCEPT ALL SELECT * FROM want)
                        UNION ALL (SELECT * FROM want EXCEPT ALL SELECT * FROM have)) d
$$;
INSERT INTO meter.events (tenant, subject, provider, model, usage, occurred_at)
SELECT 'sm', s, 'openai', 'up-model', '{"input_tokens": 10, "output_tokens": 1}', t
  FROM (VALUES ('ann', '2025-01-31 23:59+00'::timestamptz), ('ann', '2025-02-27 10:00+00'), ('bob', '2025-02-28 23:00+00'),
               ('ann', '2025-03-01 00:00+00'), ('bob', '2025-03-31 12:00+00'), (NULL, '2025-03-02 00:00+00')) v(s, t);
SELECT meter.rollup() AS rolled;
SELECT month, subject, days::bit(31) AS days, requests, cost FROM meter.subject_months WHERE tenant = 'sm' ORDER BY 1, 2; -- day 1 rightmost
SELECT pg_temp.months_differ() AS differ;
-- a second pass updates rows (the sums follow) and adds a day to a month
INSERT INTO meter.events (tenant, subject, provider, model, usage, success, occurred_at)
VALUES ('sm', 'ann', 'openai', 'up-model', '{"input_tokens": 1000, "output_tokens": 7}', false, '2025-03-01 08:00+00'),
       ('sm', 'bob', 'openai', 'up-model', '{"input_tokens": 20, "output_tokens": 2}', true, '2025-03-05 08:00+00');
SELECT meter.rollup() AS rolled;
SELECT month, subject, days::bit(31) AS days, requests, errors, input_tokens, cost FROM meter.subject_months
 WHERE tenant = 'sm' AND month = '2025-03-01' ORDER BY 1, 2;
SELECT pg_temp.months_differ() AS differ;
-- unique subjects over whole days across the month ends, and cut ones
SELECT count(*) AS ranges,
       count(*) FILTER (WHERE m.unique_subjects <> (SELECT count(DISTINCT e.subject) FROM meter.events e
                                                     WHERE e.tenant = 'sm' AND e.occurred_at >= c.since
                                                       AND e.occurred_at < c.until)) AS differences,
       sum(m.unique_subjects) AS counted
  FROM (VALUES ('2025-01-01 00:00+00'::timestamptz, '2025-05-01 00:00+00'::timestamptz),
               ('2025-02-01 00:00+00', '2025-03-01 00:00+00'), ('2025-02-28 00:00+00', '2025-03-02 00:00+00'),
               ('2025-03-01 00:00+00', '2025-03-31 00:00+00'), ('2025-03-01 00:00+00', '2025-04-01 00:00+00'),
               ('2025-01-31 23:59+00', '2025-02-28 00:00+00'), ('2025-02-27 10:01+00', '2025-03-31 12:00+00'),
               ('2025-02-02 00:00+00', '2025-02-27 00:00+00')) c(since, until),
       meter.summary('sm', c.since, c.until) m;
-- by hand: a row moved to another day and another month, a row deleted
UPDATE meter.rollup_subject_daily SET bucket = '2025-04-02' WHERE tenant = 'sm' AND subject = 'bob' AND bucket = '2025-03-31';
DELETE FROM meter.rollup_subject_daily WHERE tenant = 'sm' AND subject = 'ann' AND bucket = '2025-02-27';
SELECT month, subject, days::bit(31) AS days FROM meter.subject_months WHERE tenant = 'sm' ORDER BY 1, 2; -- day 1 rightmost
SELECT pg_temp.months_differ() AS differ;
-- a rebuild puts back what the events say
CALL meter.backfill('2025-01-01', '2025-05-01');
SELECT pg_temp.months_differ() AS differ, count(*) AS differences FROM meter.verify('2025-01-01', '2025-05-01');
BEGIN;
TRUNCATE meter.rollup_subject_daily;
SELECT count(*) AS months_left FROM meter.subject_months;
ROLLBACK;

-- bad input
SELECT pm_err($$CALL meter.backfill('2025-03-02', '2025-03-01')$$);
SELECT pm_err($$CALL meter.backfill(NULL, '2025-03-01')$$);
SELECT pm_err($$CALL meter.backfill('2025-03-01', 'infinity')$$);
SELECT pm_err($$CALL meter.backfill('2025-03-01', '2025-03-02', batch_days => 0)$$);
SELECT pm_err($$SELECT * FROM meter.verify('2025-03-02', '2025-03-01')$$);
SELECT pm_err($$SELECT meter.resummarize('2025-03-02', '2025-03-01')$$);
SELECT pm_err($$SELECT meter.resummarize(NULL, '2025-03-01')$$);
-- a cost that rollups cannot sum exactly is refused, naming the column
BEGIN;
UPDATE meter.events SET cost = 1e-30 WHERE tenant = 'up' AND subject = 'late';
SELECT pm_err($$SELECT count(*) FROM meter.verify('2025-03-10', '2025-03-11')$$);
ROLLBACK;

-- reprice: up-later gets a price; a dry run reports, a real run changes
-- events and rollups together and leaves an audit row
SELECT count(*) FILTER (WHERE NOT priced) AS unpriced FROM meter.events WHERE tenant = 'up';
SELECT meter.set_price('openai', 'up-later', '{"input_mtok": 1, "output_mtok": 2}') > 0 AS priced;
CALL meter.reprice(model => 'up-later', dry_run => true);
SELECT count(*) AS audit_rows FROM meter.reprices;
CALL meter.reprice(model => 'up-later', since => '2025-03-01', until => '2025-04-01');
SELECT events, old_total, new_total, cardinality(old_versions) AS old_versions, cardinality(new_versions) AS new_versions,
       still_unpriced, by_role = current_user AS by_me, finished_at IS NOT NULL AS finished
  FROM meter.reprices ORDER BY reprice_id DESC LIMIT 1;
SELECT count(*) FILTER (WHERE NOT priced) AS unpriced, sum(cost) = (SELECT sum(cost) FROM meter.rollup_daily WHERE tenant = 'up') AS rollups_agree
  FROM meter.events WHERE tenant = 'up';
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
-- repricing what is already right changes nothing
CALL meter.reprice(provider => 'openai', since => '2025-03-01', until => '2025-04-01');
-- a price correction for part of a range reprices that part only
SELECT meter.set_price('openai', 'up-model', '{"input_mtok": 4, "output_mtok": 15}', valid_from => '2025-03-12') > 0 AS corrected;
CALL meter.reprice(model => 'up-model', since => '2025-03-12 06:00+00', until => '2025-03-13');
SELECT count(*) AS differences FROM meter.verify('2025-03-01', '2025-04-01');
SELECT pm_err($$CALL meter.reprice()$$);
SELECT pm_err($$CALL meter.reprice(since => '2025-03-02', until => '2025-03-01')$$);

-- partitions ahead
SELECT count(*) AS months, bool_and(status IN ('created', 'exists')) AS all_there FROM meter.create_partitions(2);
SELECT pm_err($$SELECT meter.create_partitions(-1)$$);

-- retention: events older than the longest retention go with their
-- partition, but only once rolled up; rollups stay
SELECT pm_err($$SELECT meter.set_retention('1 hour')$$);
SELECT pm_err($$SELECT meter.set_retention('1000000 years')$$);  -- the retention job could never compute its cut
SELECT pm_err($$SELECT meter.expire('1000000 years')$$);
SELECT meter.set_retention('400 days', tenant => 'keeper');
INSERT INTO meter.events (tenant, provider, model, occurred_at) VALUES ('up', 'x', '', '2025-03-20');
SELECT waiting <> '{}' AS waits_for_rollup, NOT ('meter.events_2025_03' = ANY (dropped)) AS kept
  FROM meter.apply_retention();
SELECT meter.rollup() > 0 AS rolled;
SELECT meter.set_retention(NULL, tenant => 'keeper');
SELECT 'meter.events_2025_03' = ANY (dropped) AS dropped FROM meter.apply_retention();
SELECT count(*) AS raw_left FROM meter.events WHERE tenant = 'up' AND occurred_at < '2025-04-01';
SELECT requests FROM meter.totals('up', '2025-03-01', '2025-04-01');
-- resolved alerts go after their tenant's retention, open ones stay
SELECT meter.set_alert('up', 'quota_hit') AS up_rule \gset
SELECT meter.set_alert('keeper', 'quota_hit') AS keeper_rule \gset
SELECT meter.set_retention('400 days', tenant => 'keeper');
INSERT INTO meter.alerts (rule_id, tenant, kind, key, message, fired_at, last_seen_at, resolved_at)
VALUES (:up_rule, 'up', 'quota_hit', 'old', 'resolved long ago', now() - interval '200 days', now() - interval '200 days', now() - interval '199 days'),
       (:up_rule, 'up', 'quota_hit', 'recent', 'resolved lately', now() - interval '3 days', now() - interval '3 days', now() - interval '2 days'),
       (:up_rule, 'up', 'quota_hit', 'open', 'still open', now() - interval '300 days', now(), NULL),
       (:keeper_rule, 'keeper', 'quota_hit', 'old', 'kept 400 days', now() - interval '200 days', now() - interval '200 days', now() - interval '199 days');
SELECT alerts_deleted FROM meter.apply_retention();
SELECT tenant, key FROM meter.alerts WHERE tenant IN ('up', 'keeper') ORDER BY tenant, key;
-- the hours' summaries of callers and subjects go with the hours' events:
-- up's of 200 days ago (kept 90 days), not its recent one nor keeper's
SELECT date_trunc('hour', now() - interval '200 days') AS old_hour, date_trunc('hour', now() - interval '2 days') AS new_hour \gset
INSERT INTO meter.subject_hours (tenant, bucket, subject, requests, errors, cache_hits, unpriced, input_tokens,
                                 output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost)
SELECT t, b, 's', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0
  FROM (VALUES ('up', :'old_hour'::timestamptz), ('up', :'new_hour'), ('keeper', :'old_hour')) v(t, b);
INSERT INTO meter.endpoint_hours (tenant, bucket, endpoint, requests, cost, callers)
SELECT t, b, '/e', 1, 0, 0 FROM (VALUES ('up', :'old_hour'::timestamptz), ('up', :'new_hour'), ('keeper', :'old_hour')) v(t, b);
INSERT INTO meter.busy_callers (tenant, bucket, endpoint, session, requests, empty, first_at, last_at)
SELECT t, b, '/e', 'p', 15, 0, b, b FROM (VALUES ('up', :'old_hour'::timestamptz), ('up', :'new_hour'), ('keeper', :'old_hour')) v(t, b);
SELECT alerts_deleted FROM meter.apply_retention();
SELECT 'subject_hours' AS summary, tenant, bucket = :'new_hour' AS recent FROM meter.subject_hours WHERE tenant IN ('up', 'keeper')
UNION ALL
SELECT 'endpoint_hours', tenant, bucket = :'new_hour' FROM meter.endpoint_hours WHERE tenant IN ('up', 'keeper')
UNION ALL
SELECT 'busy_callers', tenant, bucket = :'new_hour' FROM meter.busy_callers WHERE tenant IN ('up', 'keeper')
 ORDER BY 1, 2, 3;
DELETE FROM meter.subject_hours WHERE tenant IN ('up', 'keeper');
DELETE FROM meter.endpoint_hours WHERE tenant IN ('up', 'keeper');
DELETE FROM meter.busy_callers WHERE tenant IN ('up', 'keeper');
-- the retention job drops, commits, then deletes; its outcome tells both
CALL meter.run_job('retention');
SELECT last_ok, last_result ~ '^dropped \{[^}]*\}, waiting \{[^}]*\}, deleted [0-9]+ events, deleted [0-9]+ resolved alerts$' AS reported
  FROM meter.job_status WHERE job = 'retention';
SELECT meter.set_retention(NULL, tenant => 'keeper');
SELECT meter.drop_alert(:up_rule) AND meter.drop_alert(:keeper_rule) AS dropped_rules;
-- (watch.sql numbers rules and alerts from 1)
ALTER TABLE meter.alert_rules ALTER COLUMN rule_id RESTART WITH 1;
ALTER TABLE meter.alerts ALTER COLUMN alert_id RESTART WITH 1;

-- jobs: one outcome each, errors kept; an unknown job is refused
CALL meter.run_job('rollup', for_ => '0 seconds');
CALL meter.run_job('partitions');
CALL meter.run_job('price_unpriced');
CALL meter.run_job('expire');
SELECT job, last_ok, runs, failures, running_pid IS NULL AS idle FROM meter.job_status
 WHERE job IN ('rollup', 'partitions', 'price_unpriced', 'expire') ORDER BY job;
SELECT pm_err($$CALL meter.run_job('vacuum')$$);
-- a failing job records its error
CREATE TEMP TABLE saved_state AS SELECT watermark FROM meter.rollup_state;
UPDATE meter.rollup_state SET watermark = '999999999:999999999:';
CALL meter.run_job('rollup', for_ => '0 seconds');
SELECT last_ok, last_error, failures FROM meter.jobs WHERE job = 'rollup';
UPDATE meter.rollup_state SET watermark = (SELECT watermark FROM saved_state);  -- for the files after this one
-- pg_cron is not in this database: schedule says what to do
SELECT pm_err($$SELECT meter.schedule()$$);
SELECT meter.unschedule() AS removed;

-- a repriced event's change of cost reaches the cost budgets: an unpriced
-- model counts 0 until its price arrives and meter.reprice prices it; a
-- price correction downwards gives the difference back. The counters
-- (meter.budget_usage) and the live cell stay the committed events' cost
SELECT meter.create_plan('repricer', 'std', is_default => true) IS NULL AS plan;
SELECT meter.set_limit(tenant => 'repricer', plan => 'std', meter => 'cost', per => 'day', max => 100) > 0 AS daily_cost;
SELECT meter.set_limit(tenant => 'repricer', meter => 'cost', per => 'month', max => 1000, scope => 'tenant') > 0 AS monthly_cost;
SELECT count(*) AS recorded, bool_and(NOT priced) AS all_unpriced
  FROM (SELECT r.* FROM generate_series(1, 4) i,
        LATERAL meter.record(tenant => 'repricer', subject => 'ann', provider => 'openai', model => 'gpt-rp',
                             usage => '{"input_tokens": 1000000, "output_tokens": 0}', request_id => 'rp-' || i) r) s;
SELECT meter, used FROM meter.quota_status('repricer', 'ann') ORDER BY meter, limit_id;
SELECT meter.set_price('openai', 'gpt-rp', '{"input_mtok": 2.5, "output_mtok": 10}', valid_from => now() - interval '1 hour') > 0 AS priced;
CALL meter.reprice(model => 'gpt-rp', unpriced_only => true, events => NULL, old_total => NULL, new_total => NULL, reprice_id => NULL);
SELECT s.meter, s.used, s.used = (SELECT sum(e.cost) FROM meter.events e WHERE e.tenant = 'repricer') AS used_is_committed_cost
  FROM meter.quota_status('repricer', 'ann') s ORDER BY s.meter, s.limit_id;
SELECT meter.set_price('openai', 'gpt-rp', '{"input_mtok": 1.75, "output_mtok": 10}', valid_from => now() - interval '1 hour') > 0 AS corrected;
CALL meter.reprice(model => 'gpt-rp', events => NULL, old_total => NULL, new_total => NULL, reprice_id => NULL);
SELECT s.meter, s.used, s.used = (SELECT sum(e.cost) FROM meter.events e WHERE e.tenant = 'repricer') AS used_is_committed_cost
  FROM meter.quota_status('repricer', 'ann') s ORDER BY s.meter, s.limit_id;
-- the durable counters say the same (what a restart fills the cells from)
SELECT trim_scale(sum(u.amount) / 2) AS counted, (SELECT sum(e.cost) FROM meter.events e WHERE e.tenant = 'repricer') AS events_cost
  FROM meter.budget_usage u
 WHERE u.ident IN (SELECT meter._budget_key(l.tenant, l.scope, l.meter, l.endpoint, l.budget_period, NULL)
                     FROM meter.limits l WHERE l.tenant = 'repricer');
-- a dry run counts nothing
CALL meter.reprice(model => 'gpt-rp', dry_run => true, events => NULL, old_total => NULL, new_total => NULL, reprice_id => NULL);
SELECT sum(used) AS still FROM meter.quota_status('repricer', 'ann');
-- meter.expire drops the counters of budget windows that ended more than
-- keep ago (the current windows' stay: the cells still read them)
INSERT INTO meter.budget_usage (key, ident, window_start, window_end, shard, amount)
SELECT u.key, u.ident, u.window_start - interval '10 days', u.window_end - interval '10 days', u.shard, 1
  FROM meter.budget_usage u
 WHERE u.ident IN (SELECT meter._budget_key(l.tenant, l.scope, l.meter, l.endpoint, l.budget_period, NULL)
                     FROM meter.limits l WHERE l.tenant = 'repricer')
 ORDER BY u.window_end LIMIT 1;  -- the day's counter, as it was ten days ago
SELECT count(*) FILTER (WHERE window_end < now() - interval '7 days') AS ended, count(*) AS counters
  FROM meter.budget_usage u
 WHERE u.ident IN (SELECT meter._budget_key(l.tenant, l.scope, l.meter, l.endpoint, l.budget_period, NULL)
                     FROM meter.limits l WHERE l.tenant = 'repricer');
SELECT meter.expire() >= 1 AS purged;
SELECT count(*) FILTER (WHERE window_end < now() - interval '7 days') AS ended, count(*) AS counters
  FROM meter.budget_usage u
 WHERE u.ident IN (SELECT meter._budget_key(l.tenant, l.scope, l.meter, l.endpoint, l.budget_period, NULL)
                     FROM meter.limits l WHERE l.tenant = 'repricer');
SELECT s.meter, s.used FROM meter.quota_status('repricer', 'ann') s ORDER BY s.meter, s.limit_id;
SELECT pm_err($$SELECT meter.expire(NULL)$$);
SELECT pm_err($$SELECT meter.expire('-1 day')$$);
DELETE FROM meter.events WHERE tenant = 'repricer';
