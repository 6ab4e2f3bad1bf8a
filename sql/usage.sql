-- What the admin sees: meter.summary, meter.subject_usage,
-- meter.top_subjects, meter.record_balance and meter.runway. Every figure
-- equals a query over the raw events, before and after a rollup, with a
-- tail of events not rolled up yet and a late event.
\set VERBOSITY default
SET TimeZone = 'UTC';
SELECT meter.set_price('acme', 'a1', '{"input_mtok": 3, "output_mtok": 15}') > 0 AS priced;
SELECT meter.set_price('acme', 'a2', '{"input_mtok": 0.25, "output_mtok": 1.25, "cache_read_mtok": 0.025}') > 0 AS priced;
SELECT meter.set_price('zeta', 'z1', '{"input_mtok": 1.1, "output_mtok": 4.4}') > 0 AS priced;

-- 600 events over three days for 7 subjects and guests, two providers
SELECT count(*) FROM (SELECT meter.record(tenant => 'adm',
        subject => CASE WHEN i % 10 = 0 THEN NULL ELSE 'user-' || (i % 7) END,
        provider => CASE WHEN i % 3 = 0 THEN 'zeta' ELSE 'acme' END,
        model => CASE WHEN i % 3 = 0 THEN 'z1' WHEN i % 3 = 1 THEN 'a1' ELSE 'a2' END,
        usage => jsonb_build_object('input_tokens', 100 + i * 7, 'output_tokens', 5 + i % 50,
                                    'cache_read_tokens', CASE WHEN i % 3 = 2 THEN i % 40 ELSE 0 END),
        cached => i % 13 = 0, success => i % 19 <> 0, latency_ms => 100 + (i * 53) % 2900,
        ttft_ms => 20 + (i * 31) % 700, endpoint => CASE WHEN i % 2 = 0 THEN '/chat' ELSE '/poll' END,
        occurred_at => '2026-02-01 06:00+00'::timestamptz + i * interval '7 minutes')
        FROM generate_series(1, 600) AS i) s;

-- the raw truth of a range, for one subject or all
CREATE FUNCTION pg_temp.raw(t text, s text, since timestamptz, until timestamptz)
RETURNS TABLE (requests bigint, successes bigint, failures bigint, unique_subjects bigint, input_tokens numeric,
               output_tokens numeric, cache_read_tokens numeric, cost numeric, potential_cost numeric,
               cache_hits bigint, per_day jsonb)
LANGUAGE sql AS $$
  SELECT count(*), count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success), count(DISTINCT subject),
         coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cache_read_tokens), 0),
         coalesce(sum(cost), 0), coalesce(sum(potential_cost), 0), count(*) FILTER (WHERE cached),
         (SELECT coalesce(jsonb_agg(jsonb_build_object('day', d, 'requests', n, 'errors', f, 'cost', trim_scale(c)::text) ORDER BY d), '[]')
            FROM (SELECT to_char(occurred_at, 'YYYY-MM-DD') d, count(*) n, count(*) FILTER (WHERE NOT success) f,
                         coalesce(sum(cost), 0) c
                    FROM meter.events WHERE tenant = t AND (s IS NULL OR subject = s)
                     AND occurred_at >= since AND occurred_at < until GROUP BY 1) x)
    FROM meter.events WHERE tenant = t AND (s IS NULL OR subject = s) AND occurred_at >= since AND occurred_at < until
$$;
-- differences between meter.summary / subject_usage and the raw events
-- over ranges cut at odd times, whole days, and one empty range
CREATE FUNCTION pg_temp.differences(t text) RETURNS TABLE (ranges int, differences bigint) LANGUAGE sql AS $$
  WITH cases(since, until, s) AS (VALUES
      ('2026-02-01 00:00+00'::timestamptz, '2026-02-05 00:00+00'::timestamptz, NULL::text),
      ('2026-02-01 07:13+00', '2026-02-03 11:02+00', NULL),
      ('2026-02-02 00:00+00', '2026-02-03 00:00+00', NULL),
      ('2026-02-02 13:30+00', '2026-02-02 13:40+00', NULL),
      ('2026-03-01 00:00+00', '2026-03-02 00:00+00', NULL),
      ('2026-02-01 00:00+00', '2026-02-05 00:00+00', 'user-3'),
      ('2026-02-01 09:41+00', '2026-02-02 21:07+00', 'user-5'),
      ('2026-02-01 00:00+00', '2026-02-05 00:00+00', 'nobody'))
  SELECT count(*)::int, sum(d)::bigint FROM cases, LATERAL (
      SELECT count(*) AS d FROM (
        SELECT m.requests, m.successes, m.failures, m.unique_subjects, m.input_tokens, m.output_tokens,
               m.cache_read_tokens, m.cost, m.potential_cost, m.cache_hits, m.per_day
          FROM meter.summary(t, since, until) m WHERE s IS NULL
        UNION ALL
        SELECT m.requests, m.successes, m.failures, (m.requests > 0)::int, m.input_tokens, m.output_tokens,
               m.cache_read_tokens, m.cost, m.potential_cost, m.cache_hits, m.per_day
          FROM meter.subject_usage(t, s, since, until) m WHERE s IS NOT NULL
        EXCEPT ALL
        SELECT * FROM pg_temp.raw(t, s, since, until)) x) y
$$;
-- the top subjects by cost equal a ranking of the raw events
CREATE FUNCTION pg_temp.top_differences(t text, since timestamptz, until timestamptz) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (
    (SELECT rank, subject, requests, cost FROM meter.top_subjects(t, since, until, n => 5)
     EXCEPT ALL
     SELECT (row_number() OVER (ORDER BY sum(cost) DESC, subject))::int, subject, count(*), sum(cost)
       FROM meter.events WHERE tenant = t AND occurred_at >= since AND occurred_at < until AND subject IS NOT NULL
      GROUP BY subject ORDER BY 1 LIMIT 5)) x
$$;

SELECT * FROM pg_temp.differences('adm');            -- all from the raw tail
SELECT pg_temp.top_differences('adm', '2026-02-01', '2026-02-05') AS top_differences;
SELECT meter.rollup() > 0 AS rolled;
SELECT * FROM pg_temp.differences('adm');            -- from the rollups
SELECT pg_temp.top_differences('adm', '2026-02-01 10:10', '2026-02-03 02:00') AS top_differences;
-- a late event for a day already rolled up, and a fresh one: the tail
SELECT (meter.record(tenant => 'adm', subject => 'user-3', provider => 'acme', model => 'a1',
        usage => '{"input_tokens": 1000000, "output_tokens": 1}', latency_ms => 40000,
        occurred_at => '2026-02-01 08:00+00')).cost AS late_cost;
SELECT (meter.record(tenant => 'adm', subject => 'user-9', provider => 'zeta', model => 'z1',
        usage => '{"input_tokens": 10, "output_tokens": 10}', occurred_at => '2026-02-03 23:59+00')).cost AS fresh_cost;
SELECT * FROM pg_temp.differences('adm');            -- rollups plus the tail
SELECT pg_temp.top_differences('adm', '2026-02-01', '2026-02-05') AS top_differences;
-- unique subjects where each end of the range cuts a day or not, a range
-- inside one day, one across a midnight (the days' first_at and last_at
-- decide), and the late event's day
SELECT count(*) AS ranges,
       count(*) FILTER (WHERE m.unique_subjects <> (SELECT count(DISTINCT e.subject) FROM meter.events e
                                                     WHERE e.tenant = 'adm' AND e.occurred_at >= c.since
                                                       AND e.occurred_at < c.until)) AS differences
  FROM (VALUES ('2026-02-02 00:00+00'::timestamptz, '2026-02-02 09:20+00'::timestamptz),
               ('2026-02-02 17:45+00', '2026-02-03 00:00+00'), ('2026-02-01 23:50+00', '2026-02-02 00:10+00'),
               ('2026-02-01 07:55+00', '2026-02-01 08:05+00'), ('2026-02-01 07:59+00', '2026-02-03 23:59+00'),
               ('2026-02-03 23:30+00', '2026-02-04 00:00+00'), ('2026-02-02 12:00+00', '2026-02-02 12:00+00')) c(since, until),
       meter.summary('adm', c.since, c.until) m;

-- what a dashboard shows for the whole range
SELECT requests, successes, failures, success_rate, unique_subjects, input_tokens, output_tokens, cache_read_tokens,
       cost, potential_cost, cache_hits, cache_hit_rate, cache_savings, unpriced
  FROM meter.summary('adm', '2026-02-01', '2026-02-05');
SELECT jsonb_array_length(per_day) AS days, per_day -> 0 AS first_day,
       -- money inside JSON is a string: exact for a client that parses JSON numbers as doubles
       jsonb_typeof(per_day -> 0 -> 'cost') AS cost_type
  FROM meter.summary('adm', '2026-02-01', '2026-02-05');
-- percentiles within 1 % of the exact ones from the raw events
SELECT abs(s.p50_ms / x.p50 - 1) <= 0.01 AS p50_ok, abs(s.p95_ms / x.p95 - 1) <= 0.01 AS p95_ok,
       abs(s.p99_ms / x.p99 - 1) <= 0.01 AS p99_ok, abs(s.ttft_p95_ms / x.t95 - 1) <= 0.01 AS ttft_p95_ok
  FROM meter.summary('adm', '2026-02-01', '2026-02-05') s,
       (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) p50,
               percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) p95,
               percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms) p99,
               percentile_disc(0.95) WITHIN GROUP (ORDER BY ttft_ms) t95
          FROM meter.events WHERE tenant = 'adm') x;
-- an empty range: zeros, no rates, no percentiles
SELECT requests, unique_subjects, cost, success_rate, cache_hit_rate, p50_ms, per_day
  FROM meter.summary('adm', '2027-01-01', '2027-01-02');
SELECT * FROM meter.top_subjects('adm', '2026-02-01', '2026-02-05', by => 'requests', n => 3);
SELECT rank, subject, cost, share FROM meter.top_subjects('adm', '2026-02-01', '2026-02-05');
-- shares of the tenant's whole amount, guests included: the ranked ones and guests add up to 1
SELECT sum(share) + (SELECT meter._rate(count(*), (SELECT count(*) FROM meter.events WHERE tenant = 'adm'))
                       FROM meter.events WHERE tenant = 'adm' AND subject IS NULL) AS whole
  FROM meter.top_subjects('adm', '2026-02-01', '2026-02-05', by => 'requests', n => 100);

-- meter.top_subjects reads exactly only the subjects that can rank: those
-- whose bound (the sums of their months, meter.subject_months, and their
-- events not rolled up yet) reaches the n-th amount. Twelve decoys spend a
-- lot on 2026-04-01 and little inside the ranges; 'quiet' spends only
-- inside them, more than any decoy there, so its bound is the 13th: the
-- first read (n + 10 subjects) misses it and a second must find it. Ties,
-- guests and errors too. Every ranking equals one of the raw events.
INSERT INTO meter.events (tenant, subject, provider, model, usage, success, occurred_at)
SELECT 'rank', CASE WHEN i % 11 = 0 THEN NULL ELSE 'decoy-' || lpad((i % 12)::text, 2, '0') END, 'acme', 'a1',
       jsonb_build_object('input_tokens', 100000 + i, 'output_tokens', 1000), i % 7 <> 0,
       '2026-04-01 00:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 600) i
UNION ALL
SELECT 'rank', 'decoy-' || lpad((i % 12)::text, 2, '0'), 'acme', 'a1',
       jsonb_build_object('input_tokens', 10 + i % 12, 'output_tokens', 5), i % 5 <> 0,
       '2026-04-10 03:00+00'::timestamptz + i * interval '9 minutes'
  FROM generate_series(1, 480) i
UNION ALL
SELECT 'rank', CASE WHEN i % 2 = 0 THEN 'quiet' ELSE 'tie-' || (i % 3) END, 'acme', 'a1',
       jsonb_build_object('input_tokens', 900, 'output_tokens', 300), i % 4 <> 1,
       '2026-04-10 05:30+00'::timestamptz + i * interval '17 minutes'
  FROM generate_series(1, 240) i;
CREATE FUNCTION pg_temp.top_raw(t text, since timestamptz, until timestamptz, by text, n int)
RETURNS TABLE (rank int, subject text, requests bigint, errors bigint, input_tokens numeric, output_tokens numeric,
               cost numeric, potential_cost numeric, share numeric)
LANGUAGE sql AS $$
  WITH s AS (
    SELECT e.subject, count(*) AS requests, count(*) FILTER (WHERE NOT e.success) AS errors,
           sum(e.input_tokens) AS input_tokens, sum(e.output_tokens) AS output_tokens,
           coalesce(sum(e.cost), 0) AS cost, coalesce(sum(e.potential_cost), 0) AS potential_cost
      FROM meter.events e WHERE e.tenant = t AND e.occurred_at >= since AND e.occurred_at < until GROUP BY 1
  ), v AS (
    SELECT s.*, CASE by WHEN 'cost' THEN s.cost WHEN 'requests' THEN s.requests WHEN 'errors' THEN s.errors
                        WHEN 'tokens' THEN s.input_tokens + s.output_tokens ELSE s.output_tokens END AS v FROM s
  )
  SELECT (row_number() OVER (ORDER BY v.v DESC, v.subject))::int, v.subject, v.requests, v.errors, v.input_tokens,
         v.output_tokens, v.cost, v.potential_cost, meter._rate(v.v, (SELECT sum(w.v) FROM v w))
    FROM v WHERE v.subject IS NOT NULL ORDER BY 1 LIMIT n
$$;
CREATE FUNCTION pg_temp.rank_differences() RETURNS TABLE (rankings bigint, differences bigint) LANGUAGE sql AS $$
  SELECT count(*), sum(d) FROM
    (VALUES ('2026-04-10 00:00+00'::timestamptz, '2026-04-12 00:00+00'::timestamptz),
            ('2026-04-10 04:47+00', '2026-04-11 13:13+00'), ('2026-04-01 00:00+00', '2026-05-01 00:00+00'),
            ('2026-04-10 06:00+00', '2026-04-10 09:00+00')) r(since, until),
    unnest(ARRAY['cost', 'requests', 'errors', 'tokens', 'output_tokens']) b(by),
    unnest(ARRAY[1, 3, 20]) k(n),
    LATERAL (SELECT count(*) AS d FROM (
      (SELECT * FROM meter.top_subjects('rank', r.since, r.until, b.by, k.n)
       EXCEPT ALL SELECT * FROM pg_temp.top_raw('rank', r.since, r.until, b.by, k.n))
      UNION ALL
      (SELECT * FROM pg_temp.top_raw('rank', r.since, r.until, b.by, k.n)
       EXCEPT ALL SELECT * FROM meter.top_subjects('rank', r.since, r.until, b.by, k.n))) x) y
$$;
SELECT * FROM pg_temp.rank_differences();  -- all from the log, not rolled up yet
SELECT meter.rollup() > 0 AS rolled;
-- the decoys' bounds are above quiet's, whose amount is the largest
SELECT u.subject, u.bound FROM meter._subject_bounds('rank', '2026-04-10', '2026-04-12', 'cost') b,
       unnest(b.subjects, b.bounds) AS u(subject, bound)
 ORDER BY u.bound DESC, u.subject LIMIT 14;
SELECT rank, subject, requests, cost FROM meter.top_subjects('rank', '2026-04-10', '2026-04-12', n => 3);
SELECT * FROM pg_temp.rank_differences();  -- from the rollups
-- a late event inside the ranges and one after them: the tail
INSERT INTO meter.events (tenant, subject, provider, model, usage, occurred_at)
VALUES ('rank', 'late', 'acme', 'a1', '{"input_tokens": 5000000, "output_tokens": 1}', '2026-04-10 07:00+00'),
       ('rank', 'decoy-03', 'acme', 'a1', '{"input_tokens": 9000000, "output_tokens": 1}', '2026-04-20 07:00+00');
SELECT rank, subject, requests, cost FROM meter.top_subjects('rank', '2026-04-10', '2026-04-12', n => 3);
SELECT * FROM pg_temp.rank_differences();  -- rollups and the tail
SELECT meter.rollup() > 0 AS rolled;
SELECT * FROM pg_temp.rank_differences();
-- a tenant without subjects
SELECT count(*) AS ranked FROM meter.top_subjects('nobody', '2026-04-10', '2026-04-12');
-- month sums written wrong by hand (negative) and a range without usage:
-- every read finds none, and the reads still end
BEGIN;
UPDATE meter.subject_months SET cost = -1 WHERE tenant = 'rank' AND subject NOT LIKE 'decoy-%';
SELECT count(*) AS ranked FROM meter.top_subjects('rank', '2026-04-25', '2026-04-26', n => 1);
ROLLBACK;

-- Subjects over days a range cuts: the whole hours of a cut day come from
-- their summaries (meter.subject_hours, made by the alerts job's step with
-- the callers', from each hour's rolled events), the rest from the rollups
-- and the log. Every figure still equals the raw events'.
SELECT summarized > 0 AS summarized, still_due FROM meter._callers_update(100000);
SELECT count(DISTINCT bucket) AS hours, count(*) FILTER (WHERE subject IS NULL) > 0 AS guests,
       sum(requests) = (SELECT count(*) FROM meter.events WHERE tenant = 'adm') AS every_event
  FROM meter.subject_hours WHERE tenant = 'adm';
-- by subject, and by day and subject, over ranges cut at both ends
CREATE FUNCTION pg_temp.subject_differences(t text, since timestamptz, until timestamptz) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (
    (SELECT u.key, u.requests, u.errors, u.cache_hits, u.input_tokens, u.output_tokens, u.cost, u.potential_cost
       FROM meter._usage(t, since, until, 'subject') u
     UNION ALL
     SELECT u.key, u.requests, u.errors, u.cache_hits, u.input_tokens, u.output_tokens, u.cost, u.potential_cost
       FROM meter._usage(t, since, until, 'day,subject') u)
    EXCEPT ALL
    (SELECT subject, count(*), count(*) FILTER (WHERE NOT success), count(*) FILTER (WHERE cached),
            sum(input_tokens), sum(output_tokens), coalesce(sum(cost), 0), coalesce(sum(potential_cost), 0)
       FROM meter.events WHERE tenant = t AND occurred_at >= since AND occurred_at < until GROUP BY subject
     UNION ALL
     SELECT jsonb_build_array(date_trunc('day', occurred_at)::text, subject)::text, count(*),
            count(*) FILTER (WHERE NOT success), count(*) FILTER (WHERE cached), sum(input_tokens),
            sum(output_tokens), coalesce(sum(cost), 0), coalesce(sum(potential_cost), 0)
       FROM meter.events WHERE tenant = t AND occurred_at >= since AND occurred_at < until
      GROUP BY date_trunc('day', occurred_at), subject)) x
$$;
SELECT pg_temp.subject_differences('adm', '2026-02-01 09:41', '2026-02-03 17:25') AS subject_differences,
       meter._subject_hours_ok('adm', '2026-02-01 10:00', '2026-02-02 00:00') AS start_summarized,
       meter._subject_hours_ok('adm', '2026-02-03 00:00', '2026-02-03 17:00') AS end_summarized;
SELECT * FROM pg_temp.differences('adm');
SELECT pg_temp.top_differences('adm', '2026-02-01 10:10', '2026-02-03 02:00') AS top_differences;
-- an hour an edge cuts near its start (09:07) or its end (17:50): its
-- summary less the rolled events of the part outside the range
SELECT pg_temp.subject_differences('adm', '2026-02-01 09:07', '2026-02-03 17:50') AS subject_differences,
       pg_temp.top_differences('adm', '2026-02-01 09:07', '2026-02-03 17:50') AS top_differences;
-- one subject's percentiles from the cut days' hour sketches: the same
-- buckets as from the log (all summaries gone, in a transaction)
CREATE TEMP TABLE p_hours AS
SELECT p50_ms, p95_ms, p99_ms, ttft_p50_ms, ttft_p95_ms, ttft_p99_ms
  FROM meter.subject_usage('adm', 'user-5', '2026-02-01 09:41', '2026-02-02 21:07');
BEGIN;
DELETE FROM meter.subject_hours;
SELECT (SELECT p FROM p_hours p) = (SELECT p FROM (SELECT p50_ms, p95_ms, p99_ms, ttft_p50_ms, ttft_p95_ms, ttft_p99_ms
                                                      FROM meter.subject_usage('adm', 'user-5', '2026-02-01 09:41',
                                                                               '2026-02-02 21:07')) p) AS same_percentiles,
       (SELECT p99_ms IS NOT NULL FROM p_hours) AS has_percentiles;
ROLLBACK;
-- the summaries are what is read: one changed by hand changes the read;
-- with its hour due again, or its summary gone, the log is read
BEGIN;
UPDATE meter.subject_hours SET requests = requests + 100 WHERE tenant = 'adm' AND subject = 'user-5'
   AND bucket = '2026-02-01 12:00+00';
SELECT * FROM pg_temp.differences('adm');
SAVEPOINT s;
INSERT INTO meter.caller_hours_due VALUES ('adm', '2026-02-01 12:00+00');
SELECT * FROM pg_temp.differences('adm');
ROLLBACK TO s;
DELETE FROM meter.subject_hours WHERE tenant = 'adm' AND bucket = '2026-02-01 12:00+00';
SELECT meter._subject_hours_ok('adm', '2026-02-01 10:00', '2026-02-02 00:00') AS start_summarized;
SELECT * FROM pg_temp.differences('adm');
ROLLBACK;
-- the cut hours' own summaries are read too (user-5 has an event at 09:51
-- and one at 17:23); with the hours due, the log is read
CREATE FUNCTION pg_temp.user5_extra() RETURNS bigint LANGUAGE sql AS $$
  SELECT u.requests - (SELECT count(*) FROM meter.events WHERE tenant = 'adm' AND subject = 'user-5'
                          AND occurred_at >= '2026-02-01 09:07' AND occurred_at < '2026-02-03 17:50')
    FROM meter.subject_usage('adm', 'user-5', '2026-02-01 09:07', '2026-02-03 17:50') u
$$;
BEGIN;
UPDATE meter.subject_hours SET requests = requests + 100 WHERE tenant = 'adm' AND subject = 'user-5'
   AND bucket IN ('2026-02-01 09:00+00', '2026-02-03 17:00+00');
SELECT pg_temp.user5_extra() AS extra_read;
INSERT INTO meter.caller_hours_due VALUES ('adm', '2026-02-01 09:00+00'), ('adm', '2026-02-03 17:00+00');
SELECT pg_temp.user5_extra() AS extra_read;
ROLLBACK;
-- a late event in a summarized hour: from the log until rolled up, then
-- the hour is due (the log again) until the job summarizes it anew; and one
-- in the part of a cut hour outside the range (09:03), never counted
SELECT (meter.record(tenant => 'adm', subject => 'user-5', provider => 'acme', model => 'a1',
        usage => '{"input_tokens": 777, "output_tokens": 7}', latency_ms => 5, success => false,
        occurred_at => '2026-02-01 15:30+00')).cost AS late_cost;
SELECT (meter.record(tenant => 'adm', subject => 'user-5', provider => 'acme', model => 'a1',
        usage => '{"input_tokens": 55, "output_tokens": 5}', occurred_at => '2026-02-01 09:03+00')).cost AS outside_cost;
SELECT * FROM pg_temp.differences('adm');
SELECT pg_temp.subject_differences('adm', '2026-02-01 09:07', '2026-02-03 17:50') AS subject_differences;
SELECT meter.rollup() AS rolled;
SELECT EXISTS (SELECT FROM meter.caller_hours_due WHERE tenant = 'adm' AND bucket = '2026-02-01 15:00+00') AS due;
SELECT * FROM pg_temp.differences('adm');
SELECT pg_temp.subject_differences('adm', '2026-02-01 09:07', '2026-02-03 17:50') AS subject_differences;
SELECT summarized, still_due FROM meter._callers_update(100000);
SELECT * FROM pg_temp.differences('adm');
SELECT pg_temp.subject_differences('adm', '2026-02-01 09:07', '2026-02-03 17:50') AS subject_differences,
       pg_temp.user5_extra() AS extra_read;
SELECT pg_temp.subject_differences('adm', '2026-02-01 09:41', '2026-02-03 17:25') AS subject_differences,
       meter._subject_hours_ok('adm', '2026-02-01 10:00', '2026-02-02 00:00') AS start_summarized;

-- one subject, with its plan and every limit that applies to it now
SELECT meter.create_plan('adm', 'pro') IS NOT NULL AS plan;
SELECT meter.assign_plan('adm', 'user-3', 'pro') IS NOT NULL AS assigned;
SELECT meter.set_limit(tenant => 'adm', plan => 'pro', meter => 'requests', per => '1 minute', max => 60) > 0 AS lim;
SELECT meter.set_limit(tenant => 'adm', meter => 'cost', per => 'month', max => 100, scope => 'tenant') > 0 AS lim;
SELECT requests, cost, plan, team, blocked, blocked_reason, jsonb_array_length(limits) AS limits,
       limits -> 0 ->> 'meter' AS first_meter, limits -> 0 ->> 'max' AS first_max, limits -> 1 ->> 'meter' AS second_meter
  FROM meter.subject_usage('adm', 'user-3', '2026-02-01', '2026-02-05');
-- each limit as meter.quota_status answers it, amounts as exact strings
SELECT l - 'reset_at' - 'limit_id' AS lim, (l ->> 'reset_at')::timestamptz > now() AS resets_later
  FROM meter.subject_usage('adm', 'user-3', '2026-02-01', '2026-02-05'), jsonb_array_elements(limits) l;
SELECT meter.block('adm', 'user-3', 'abuse') IS NOT NULL AS blocked;
SELECT blocked, blocked_reason, jsonb_array_length(limits) AS limits
  FROM meter.subject_usage('adm', 'user-3', '2026-02-01', '2026-02-05');
-- a subject the quotas do not know (no default plan): usage, no limits
SELECT requests > 0 AS has_usage, plan, blocked, limits FROM meter.subject_usage('adm', 'user-5', '2026-02-01', '2026-02-05');

-- balances and runway: spend since the last balance, burn, days left, drift
SELECT now() - interval '3 days' AS t3, now() - interval '2 days' AS t2 \gset
SELECT meter.record_balance('adm', 'acme', 50.00, :'t3') > 0 AS kept;
SELECT meter.record_balance('adm', 'acme', 40.00, :'t2') > 0 AS kept;
SELECT meter.record_balance('adm', 'acme', 39.50, :'t2') = meter.record_balance('adm', 'acme', 39.50, :'t2') AS replaced;
SELECT count(*) AS balances FROM meter.balances WHERE tenant = 'adm';
SELECT meter.record_balance('adm', 'zeta', 5, now() - interval '1 hour') > 0 AS kept;
-- recent spend: 2 events of acme after its last balance, one between its two balances, one zeta
SELECT count(*) FROM (SELECT meter.record(tenant => 'adm', subject => 'user-1', provider => p, model => m,
        usage => jsonb_build_object('input_tokens', 1000000, 'output_tokens', 100000), occurred_at => now() - ago)
        FROM (VALUES ('acme', 'a1', interval '1 day'), ('acme', 'a1', interval '2 hours'),
                     ('acme', 'a2', interval '60 hours'), ('zeta', 'z1', interval '30 minutes')) v(p, m, ago)) s;
SELECT provider, balance_usd, spent_since, estimated_balance, burn_per_day, days_left,
       runs_out_at - now() BETWEEN days_left * interval '1 day' - interval '1 second'
                               AND days_left * interval '1 day' + interval '1 second' AS runs_out_ok,
       previous_balance, reported_spend, computed_spend, drift
  FROM meter.runway('adm');
-- the figures equal the raw events
SELECT r.provider, r.spent_since = (SELECT sum(cost) FROM meter.events WHERE tenant = 'adm' AND provider = r.provider
                                      AND occurred_at >= r.balance_at) AS spent_exact,
       r.computed_spend IS NOT DISTINCT FROM (SELECT coalesce(sum(cost), 0) FROM meter.events WHERE tenant = 'adm'
                                               AND provider = r.provider AND occurred_at >= r.previous_at
                                               AND occurred_at < r.balance_at) OR r.previous_at IS NULL AS computed_exact
  FROM meter.runway('adm') r;
SELECT provider, burn_per_day FROM meter.runway('adm', burn_window => '1 day');
SELECT count(*) AS providers FROM meter.runway('nobody');

-- bad input
SELECT pm_err($$SELECT * FROM meter.summary(NULL, now(), now())$$);
SELECT pm_err($$SELECT * FROM meter.summary('adm', '2026-02-05', '2026-02-01')$$);
-- an infinite bound would walk every month there is: refused at once
SELECT pm_err($$SELECT * FROM meter.summary('adm', '-infinity', 'infinity')$$);
SELECT pm_err($$SELECT * FROM meter.top_subjects('adm', '-infinity', now())$$);
SELECT pm_err($$SELECT * FROM meter.subject_usage('adm', 'u1', now(), 'infinity')$$);
SELECT pm_err($$SELECT * FROM meter.subject_usage('adm', NULL, '2026-02-01', '2026-02-05')$$);
SELECT pm_err($$SELECT * FROM meter.top_subjects('adm', '2026-02-01', '2026-02-05', by => 'latency')$$);
SELECT pm_err($$SELECT * FROM meter.top_subjects('adm', '2026-02-01', '2026-02-05', n => 0)$$);
SELECT pm_err($$SELECT meter.record_balance('adm', NULL, 1)$$);
SELECT pm_err($$SELECT meter.record_balance('adm', 'acme', 'NaN')$$);
SELECT pm_err($$SELECT meter.record_balance('adm', 'acme', 1, '2999-01-01 00:00+00')$$);
SELECT pm_err($$SELECT * FROM meter.runway('adm', burn_window => '0')$$);
SELECT pm_err($$SELECT * FROM meter.runway(NULL)$$);
SELECT pm_err($$SELECT * FROM meter.runway('adm', at => 'infinity')$$);
