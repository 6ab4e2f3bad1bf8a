-- Rollups and totals: meter.rollup adds each committed event once; totals
-- equal a query over the raw events for any range and grouping, before,
-- during and after rollups, late events included.
\set VERBOSITY default
SET TimeZone = 'UTC';
-- the raw truth, for comparison
CREATE FUNCTION pg_temp.raw(t text, since timestamptz, until timestamptz, by text)
RETURNS TABLE (key text, requests bigint, errors bigint, cache_hits bigint, unpriced bigint, input_tokens numeric,
               output_tokens numeric, cost numeric, potential_cost numeric)
LANGUAGE sql AS $$
  SELECT CASE by WHEN 'subject' THEN subject WHEN 'model' THEN model WHEN 'hour' THEN date_trunc('hour', occurred_at)::text
                 WHEN 'day' THEN date_trunc('day', occurred_at)::text ELSE 'all' END,
         count(*), count(*) FILTER (WHERE NOT success), count(*) FILTER (WHERE cached), count(*) FILTER (WHERE NOT priced),
         coalesce(sum((usage->>'input_tokens')::numeric), 0), coalesce(sum((usage->>'output_tokens')::numeric), 0),
         coalesce(sum(cost), 0), coalesce(sum(potential_cost), 0)
    FROM meter.events WHERE tenant = t AND occurred_at >= since AND occurred_at < until GROUP BY 1
$$;
-- exact: no difference either way, for several ranges and groupings
CREATE FUNCTION pg_temp.exact(t text) RETURNS TABLE (ranges int, differences bigint) LANGUAGE sql AS $$
  WITH cases(since, until, by) AS (VALUES
      ('2026-01-15 00:00+00'::timestamptz, '2026-01-16 00:00+00'::timestamptz, NULL::text),
      ('2026-01-15 10:30+00', '2026-01-15 13:10+00', 'subject'),
      ('2026-01-15 10:00+00', '2026-01-15 12:00+00', 'model'),
      ('2026-01-15 09:59+00', '2026-01-15 10:01+00', 'hour'),
      ('2026-01-14 00:00+00', '2026-01-17 00:00+00', 'day'),
      ('2026-01-15 11:17+00', '2026-01-15 11:43+00', NULL),
      -- edge buckets whose rolled events all lie inside the range are read
      -- whole, others from the log (once the 14:30 event is rolled up, the
      -- 14:00 bucket no longer fits in the first range)
      ('2026-01-15 09:30+00', '2026-01-15 14:20+00', 'model'),
      ('2026-01-15 10:00:30+00', '2026-01-15 14:35+00', NULL),
      ('2026-01-15 10:00:30+00', '2026-01-15 14:10+00', 'subject'),
      ('2026-01-15 10:00:40+00', '2026-01-16 00:00+00', 'subject'),
      -- whole days from the daily rollup, the hours around them from the hourly one
      ('2026-01-14 05:30+00', '2026-01-16 03:10+00', NULL),
      ('2026-01-14 23:59+00', '2026-01-16 00:01+00', 'model'),
      -- hours and days of the events before the span and after it
      ('2026-01-15 10:00:30+00', '2026-01-15 14:35+00', 'hour'),
      ('2026-01-15 11:17+00', '2026-01-15 11:43+00', 'hour'),
      ('2026-01-15 10:00:30+00', '2026-01-15 14:35+00', 'day'),
      ('2026-01-14 23:59+00', '2026-01-16 00:01+00', 'day'),
      -- a cut bucket whose part outside the range is the shorter: its rows
      -- less the rolled events of that part (hours, and subjects' days)
      ('2026-01-15 10:05+00', '2026-01-15 13:50+00', 'model'),
      ('2026-01-15 10:10+00', '2026-01-15 11:55+00', 'hour'),
      ('2026-01-14 03:00+00', '2026-01-15 13:00+00', 'subject'),
      ('2026-01-15 10:25+00', '2026-01-15 10:50+00', NULL))
  SELECT count(*)::int, sum(d)::bigint FROM cases, LATERAL (
      SELECT count(*) AS d FROM (
        (SELECT key, requests, errors, cache_hits, unpriced, input_tokens, output_tokens, cost, potential_cost FROM meter.totals(t, since, until, by)
         EXCEPT ALL SELECT * FROM pg_temp.raw(t, since, until, coalesce(by, 'none')))
        UNION ALL
        (SELECT * FROM pg_temp.raw(t, since, until, coalesce(by, 'none'))
         EXCEPT ALL SELECT key, requests, errors, cache_hits, unpriced, input_tokens, output_tokens, cost, potential_cost FROM meter.totals(t, since, until, by))) x) y
$$;

SELECT count(*) FROM (SELECT meter.record(tenant => 'r', provider => CASE WHEN i % 4 = 0 THEN 'anthropic' ELSE 'openai' END,
        model => CASE WHEN i % 4 = 0 THEN 'claude-sonnet-4-6' WHEN i % 9 = 0 THEN 'gpt-unknown' ELSE 'gpt-4o-mini' END,
        usage => jsonb_build_object('input_tokens', 100 + i, 'output_tokens', i % 13),
        subject => 'u' || (i % 5), cached => i % 11 = 0, success => i % 17 <> 0, latency_ms => 200 + (i * 37) % 900,
        occurred_at => '2026-01-15 10:00+00'::timestamptz + i * interval '37 seconds')
        FROM generate_series(1, 400) AS i) s;
SELECT * FROM pg_temp.exact('r');                 -- nothing rolled up yet: all from the raw tail
SELECT meter.rollup() AS rolled;
SELECT * FROM pg_temp.exact('r');                 -- all from the rollups
SELECT meter.rollup() AS rolled_again;            -- nothing left: harmless
-- new events and a late one for an hour already rolled up
SELECT (meter.record(tenant => 'r', provider => 'openai', model => 'gpt-4o-mini', usage => '{"input_tokens": 7, "output_tokens": 7}',
        subject => 'u1', latency_ms => 5000, occurred_at => '2026-01-15 10:05+00')).priced AS late;
SELECT (meter.record(tenant => 'r', provider => 'openai', model => 'gpt-4o-mini', usage => '{"input_tokens": 9, "output_tokens": 9}',
        subject => 'u9', occurred_at => '2026-01-15 14:30+00')).priced AS fresh;
SELECT * FROM pg_temp.exact('r');                 -- rollups plus the tail
SELECT meter.rollup() AS rolled_late;
SELECT * FROM pg_temp.exact('r');
-- daily rollups (per tenant and per subject) agree with the hourly ones
SELECT (SELECT sum(requests) FROM meter.rollup_daily WHERE tenant = 'r') = (SELECT sum(requests) FROM meter.rollup_hourly WHERE tenant = 'r')
   AND (SELECT sum(cost) FROM meter.rollup_daily WHERE tenant = 'r') = (SELECT sum(cost) FROM meter.rollup_hourly WHERE tenant = 'r')
   AND (SELECT sum(requests) FROM meter.rollup_subject_daily WHERE tenant = 'r') = (SELECT sum(requests) FROM meter.rollup_hourly WHERE tenant = 'r')
   AND (SELECT sum(cost) FROM meter.rollup_subject_daily WHERE tenant = 'r') = (SELECT sum(cost) FROM meter.rollup_hourly WHERE tenant = 'r') AS daily_matches_hourly;
-- latency percentiles from merged sketches stay within 1 % of the raw ones
SELECT q, abs(t.p - e.p) <= 0.01 * e.p AS within_1_percent
  FROM (VALUES (0.5), (0.95), (0.99)) AS v(q),
       LATERAL (SELECT CASE q WHEN 0.5 THEN p50_ms WHEN 0.95 THEN p95_ms ELSE p99_ms END AS p
                  FROM meter.totals('r', '2026-01-15 00:00+00', '2026-01-16 00:00+00')) t,
       LATERAL (SELECT percentile_disc(q) WITHIN GROUP (ORDER BY latency_ms) AS p FROM meter.events WHERE tenant = 'r') e
 ORDER BY q;
-- ... and over a range whose cut hours are read as their rows less the
-- events outside the range (negated sketches merged)
SELECT q, abs(t.p - e.p) <= 0.01 * e.p AS cut_within_1_percent
  FROM (VALUES (0.5), (0.95), (0.99)) AS v(q),
       LATERAL (SELECT CASE q WHEN 0.5 THEN p50_ms WHEN 0.95 THEN p95_ms ELSE p99_ms END AS p
                  FROM meter.totals('r', '2026-01-15 10:05+00', '2026-01-15 13:50+00')) t,
       LATERAL (SELECT percentile_disc(q) WITHIN GROUP (ORDER BY latency_ms) AS p FROM meter.events
                 WHERE tenant = 'r' AND occurred_at >= '2026-01-15 10:05+00' AND occurred_at < '2026-01-15 13:50+00') e
 ORDER BY q;
-- a group whose rolled events of a cut hour all lie outside the range is
-- not a group of it (its row less those events is nothing)
SELECT count(meter.record(tenant => 'rz', provider => 'openai', model => m, usage => '{"input_tokens": 3, "output_tokens": 1}',
                          latency_ms => 100, occurred_at => t))
  FROM (VALUES ('gpt-4o-mini', '2026-01-15 13:02+00'::timestamptz), ('gpt-4o-mini', '2026-01-15 13:40+00'),
               ('gpt-4o', '2026-01-15 13:03+00')) AS v(m, t);
SELECT meter.rollup() > 0 AS rolled_rz;
SELECT key, requests, p50_ms FROM meter.totals('rz', '2026-01-15 13:05+00', '2026-01-15 14:10+00', 'model');
SELECT key, requests, errors, cache_hits, unpriced, cost, potential_cost FROM meter.totals('r', '2026-01-15 00:00+00', '2026-01-16 00:00+00', 'model');
-- bad input
SELECT pm_err($$SELECT * FROM meter.totals('r', '2026-01-16+00', '2026-01-15+00')$$);
SELECT pm_err($$SELECT * FROM meter.totals('r', '2026-01-15+00', '2026-01-16+00', 'weekday')$$);
-- the negated figures a read takes away: a set's sketch merged with the
-- negated sketch of a third of its values holds the other two thirds
-- (bucket counts), and with the negation of all of them nothing (NULL)
WITH v AS (SELECT g, g % 3 = 0 AS away FROM generate_series(1, 600) g),
     parts AS (SELECT meter._measures(true, false, true, 1, 0, 0, 0, 0.5, 0.5, g, NULL) AS m FROM v
               UNION ALL
               SELECT meter._measures_less(true, false, true, 1, 0, 0, 0, 0.5, 0.5, g, NULL) FROM v WHERE away),
     less AS (SELECT sum((m).requests) AS requests, sum((m).cost) AS cost, meter.merge((m).latency) AS s FROM parts)
SELECT l.requests, l.cost, meter.sketch_count(l.s) AS in_sketch,
       bool_and(abs(meter.percentile(l.s, q) - r.p) <= 0.01 * r.p) AS rest_within_1_percent
  FROM less l, (VALUES (0.01), (0.5), (0.95), (1.0)) AS qs(q),
       LATERAL (SELECT percentile_disc(q) WITHIN GROUP (ORDER BY g) AS p FROM generate_series(1, 600) g WHERE g % 3 <> 0) r
 GROUP BY 1, 2, 3;
SELECT meter.merge(s) IS NULL AS nothing_left
  FROM (SELECT (meter._measures(true, false, true, 1, 0, 0, 0, 0, 0, g, NULL)).latency AS s FROM generate_series(1, 50) g
        UNION ALL
        SELECT (meter._measures_less(true, false, true, 1, 0, 0, 0, 0, 0, g, NULL)).latency FROM generate_series(1, 50) g) x;
-- the snapshot tests answer each row by its own snapshots: a call site
-- keeps the last snapshots and answer, and must drop them when a row
-- brings others (snapshots typed in, or stored in a table with a short
-- header), or another transaction
CREATE TEMP TABLE snaps (n int, txid bigint, prev pg_snapshot, cur pg_snapshot);
INSERT INTO snaps VALUES (1, 100, '90:95:', '100:105:'), (2, 100, '90:95:', '100:105:'), (3, 100, '100:105:', '100:105:'),
                         (4, 102, '100:105:', '100:105:102'), (5, 102, '100:105:', '100:105:'), (6, 102, '90:95:', '100:105:'),
                         (7, 96, '90:95:', '100:105:'), (8, 100, '90:95:', '100:105:');
SELECT n, txid, meter._unrolled(txid, prev) AS unrolled_prev, meter._unrolled(txid, cur) AS unrolled_cur,
       meter._rolls(txid, prev, cur) AS rolls
  FROM snaps ORDER BY n;
SELECT t, meter._unrolled(t, w::pg_snapshot) AS unrolled
  FROM (VALUES (1, 100, '100:105:'), (2, 100, '90:95:'), (3, 102, '100:105:102'), (4, 102, '100:105:')) v(n, t, w) ORDER BY n;
-- a large delta is aggregated in parallel: the workers' partial states are
-- serialized, sent to the leader and combined there. Made to happen here
-- with a few thousand events (costs set to nothing), over two tenants,
-- subjects and features with NULLs, three days: the rollup it writes must
-- be the one verify computes without workers, sketches bucket for bucket.
SELECT meter.rollup() >= 0 AS caught_up;
SELECT count(meter.record(tenant => 'par' || (g % 2), subject => CASE WHEN g % 7 = 0 THEN NULL ELSE 'u' || (g % 40) END,
                          provider => 'openai', model => (ARRAY['gpt-4o', 'gpt-4o-mini'])[1 + g % 2],
                          endpoint => 'chat', feature => CASE WHEN g % 5 = 0 THEN NULL ELSE 'f' || (g % 3) END,
                          usage => jsonb_build_object('input_tokens', g % 900, 'output_tokens', g % 70),
                          latency_ms => CASE WHEN g % 11 = 0 THEN NULL ELSE g % 4000 END, ttft_ms => g % 300,
                          success => g % 13 <> 0, occurred_at => '2026-02-01 00:00+00'::timestamptz + g * interval '47 s'))
  FROM generate_series(1, 6000) g;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.plan_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q; END $$;
-- the plan of meter.rollup()'s aggregation: partial aggregates under a Gather
SELECT bool_or(l ~ 'Finalize Aggregate') AND bool_or(l ~ 'Gather') AND bool_or(l ~ 'Partial Aggregate') AS parallel_plan
  FROM pg_temp.plan_lines($$
SELECT meter._rollup(e.tenant, e.subject, e.provider, e.model, e.endpoint, e.feature, e.occurred_at, e.success, e.cached,
                     e.priced, e.input_tokens, e.output_tokens, e.cache_read_tokens, e.cache_write_tokens, e.cost,
                     e.potential_cost, e.latency_ms, e.ttft_ms), pg_current_snapshot()
  FROM meter.events e WHERE e.txid >= 0 AND meter._rolls(e.txid, (SELECT watermark FROM meter.rollup_state), (SELECT pg_current_snapshot()))$$) l;
SELECT meter.rollup() AS rolled_in_parallel;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
SET max_parallel_workers_per_gather = 0;
SELECT count(*) AS differences FROM meter.verify('2026-02-01', '2026-02-05');
SELECT tenant, sum(requests) AS requests, sum(errors) AS errors, count(*) FILTER (WHERE subject IS NULL) AS null_subject_days
  FROM meter.rollup_subject_daily WHERE tenant LIKE 'par%' GROUP BY tenant ORDER BY tenant;
RESET max_parallel_workers_per_gather;
-- gone again, events and rollup rows alike (later files count every rollup row)
DELETE FROM meter.events WHERE tenant LIKE 'par%';
DELETE FROM meter.rollup_hourly WHERE tenant LIKE 'par%';
DELETE FROM meter.rollup_daily WHERE tenant LIKE 'par%';
DELETE FROM meter.rollup_subject_daily WHERE tenant LIKE 'par%';
-- meter._usage keeps its query's plan for the session (meter._usage_run): a
-- partition made after the plan is read all the same, since PostgreSQL's
-- plan cache plans the kept text again when the events' partitions change
SELECT count(*) AS groups FROM meter.totals('kept', '2023-06-01', '2023-07-01', 'model');
SELECT meter.create_partition('2023-06-01') AS partition;
SELECT (meter.record(tenant => 'kept', provider => 'openai', model => 'gpt-4o', usage => '{"input_tokens": 10}',
                     occurred_at => '2023-06-10 12:00+00')).event_id > 0 AS recorded;
SELECT key, requests, input_tokens FROM meter.totals('kept', '2023-06-01', '2023-07-01', 'model');
SELECT meter.rollup() >= 1 AS rolled;
SELECT key, requests, input_tokens FROM meter.totals('kept', '2023-06-01', '2023-07-01', 'model');
DROP TABLE meter.events_2023_06;
DELETE FROM meter.rollup_hourly WHERE tenant = 'kept';
DELETE FROM meter.rollup_daily WHERE tenant = 'kept';
DELETE FROM meter.rollup_subject_daily WHERE tenant = 'kept';
