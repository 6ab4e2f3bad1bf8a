-- Integrations: the Grafana views equal the raw events bucket by bucket,
-- before a rollup (all from the tail), after it, and with a late and a
-- fresh event; a filter on time reaches the rollups' indexes; and every
-- query of the dashboard (integrations/grafana/pg_meter.json), with
-- Grafana's macros expanded as Grafana expands them, runs and returns the
-- columns its panel needs. In a database of its own, so that its rollups
-- leave the other files' events alone.
\set VERBOSITY default
SELECT current_database() AS regress_db \gset
\getenv abs_srcdir PG_ABS_SRCDIR
SET client_min_messages = warning;
DROP DATABASE IF EXISTS pgm_integrations;
RESET client_min_messages;
CREATE DATABASE pgm_integrations;
\c pgm_integrations
SET client_min_messages = warning;
CREATE EXTENSION pg_meter;
RESET client_min_messages;
SET TimeZone = 'UTC';
SELECT meter.set_price('acme', 'a1', '{"input_mtok": 3, "output_mtok": 15}') > 0 AS priced;
SELECT meter.set_price('acme', 'a2', '{"input_mtok": 0.25, "output_mtok": 1.25, "cache_read_mtok": 0.025}') > 0 AS priced;

-- 500 events over three days for two tenants, subjects and guests, two
-- endpoints and features, cached, failed and unpriced ones (model x9)
SELECT count(*) FROM (SELECT meter.record(tenant => CASE WHEN i % 5 = 0 THEN 'beta' ELSE 'coach' END,
        subject => CASE WHEN i % 9 = 0 THEN NULL ELSE 'user-' || (i % 6) END,
        provider => 'acme', model => CASE WHEN i % 11 = 0 THEN 'x9' WHEN i % 2 = 0 THEN 'a1' ELSE 'a2' END,
        usage => jsonb_build_object('input_tokens', 100 + i * 7, 'output_tokens', 5 + i % 50,
                                    'cache_read_tokens', CASE WHEN i % 2 = 1 THEN i % 40 ELSE 0 END),
        endpoint => CASE WHEN i % 3 = 0 THEN '/poll' ELSE '/chat' END, feature => CASE WHEN i % 4 = 0 THEN 'coach' END,
        cached => i % 13 = 0, success => i % 17 <> 0, latency_ms => 100 + (i * 53) % 2900, ttft_ms => 20 + (i * 31) % 700,
        occurred_at => '2026-03-01 05:00+00'::timestamptz + i * interval '8 minutes 3 seconds')
        FROM generate_series(1, 500) AS i) s;

-- the raw truth at each grain: g and the groups as in meter._live_usage,
-- buckets cut in UTC whatever the session's zone
CREATE TYPE pg_temp.usage_row AS (g int, "time" timestamptz, tenant text, subject text, provider text, model text,
    endpoint text, feature text, requests bigint, errors bigint, cache_hits bigint, unpriced bigint,
    input_tokens numeric, output_tokens numeric, cache_read_tokens numeric, cache_write_tokens numeric, tokens numeric,
    cost numeric, potential_cost numeric, cache_savings numeric, latencies bigint, p50_ms float8, p95_ms float8,
    p99_ms float8);
CREATE FUNCTION pg_temp.raw(g int) RETURNS SETOF pg_temp.usage_row
LANGUAGE sql AS $$
  SELECT g, date_trunc(CASE g WHEN 1 THEN 'hour' ELSE 'day' END, e.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
         e.tenant, CASE g WHEN 2 THEN e.subject END, CASE WHEN g <> 2 THEN e.provider END,
         CASE WHEN g <> 2 THEN e.model END, CASE WHEN g <> 2 THEN e.endpoint END, CASE WHEN g <> 2 THEN e.feature END,
         count(*), count(*) FILTER (WHERE NOT e.success), count(*) FILTER (WHERE e.cached),
         count(*) FILTER (WHERE NOT e.priced), sum(e.input_tokens), sum(e.output_tokens), sum(e.cache_read_tokens),
         sum(e.cache_write_tokens), sum(e.input_tokens + e.output_tokens), coalesce(sum(e.cost), 0),
         coalesce(sum(e.potential_cost), 0), coalesce(sum(e.potential_cost), 0) - coalesce(sum(e.cost), 0),
         count(e.latency_ms), meter.percentile(meter.sketch(e.latency_ms), 0.5),
         meter.percentile(meter.sketch(e.latency_ms), 0.95), meter.percentile(meter.sketch(e.latency_ms), 0.99)
    FROM meter.events e GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
$$;
-- what a view shows for one of Grafana's ranges (time BETWEEN a AND b)
CREATE FUNCTION pg_temp.shown(g int, a timestamptz, b timestamptz) RETURNS SETOF pg_temp.usage_row LANGUAGE sql AS $$
  SELECT 1, "time", tenant, NULL, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced,
         input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, tokens, cost, potential_cost,
         cache_savings, coalesce(meter.sketch_count(latency), 0), p50_ms, p95_ms, p99_ms
    FROM meter.grafana_usage_hourly WHERE g = 1 AND "time" BETWEEN a AND b
  UNION ALL
  SELECT 3, "time", tenant, NULL, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced,
         input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, tokens, cost, potential_cost,
         cache_savings, coalesce(meter.sketch_count(latency), 0), p50_ms, p95_ms, p99_ms
    FROM meter.grafana_usage_daily WHERE g = 3 AND "time" BETWEEN a AND b
  UNION ALL
  SELECT 2, "time", tenant, subject, NULL, NULL, NULL, NULL, requests, errors, cache_hits, unpriced,
         input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, tokens, cost, potential_cost,
         cache_savings, coalesce(meter.sketch_count(latency), 0), p50_ms, p95_ms, p99_ms
    FROM meter.grafana_subject_daily WHERE g = 2 AND "time" BETWEEN a AND b
$$;
-- rows that differ either way (every column, percentiles included: merged
-- sketches equal the sketch of all the values), per view, over Grafana
-- ranges cut at odd times, on bucket starts (both ends are inside), one
-- hour, the whole data and an empty range
CREATE FUNCTION pg_temp.differences() RETURNS TABLE (view text, ranges int, rows bigint, differences bigint)
LANGUAGE sql AS $$
  WITH cases(a, b) AS (VALUES
      ('2026-03-01 00:00+00'::timestamptz, '2026-03-05 00:00+00'::timestamptz),
      ('2026-03-01 07:13+00', '2026-03-02 11:02+00'),
      ('2026-03-02 00:00+00', '2026-03-03 00:00+00'),
      ('2026-03-02 13:00+00', '2026-03-02 13:00+00'),
      ('2026-03-02 13:30+00', '2026-03-02 15:40+00'),
      ('2026-04-01 00:00+00', '2026-04-02 00:00+00')),
  views(g, view) AS (VALUES (1, 'grafana_usage_hourly'), (3, 'grafana_usage_daily'), (2, 'grafana_subject_daily'))
  SELECT v.view, count(*)::int, sum(n)::bigint, sum(d)::bigint FROM views v, cases c, LATERAL (
      SELECT (SELECT count(*) FROM pg_temp.shown(v.g, c.a, c.b)) AS n, count(*) AS d FROM (
        (SELECT * FROM pg_temp.shown(v.g, c.a, c.b)
         EXCEPT ALL SELECT * FROM pg_temp.raw(v.g) r WHERE r."time" BETWEEN c.a AND c.b)
        UNION ALL
        (SELECT * FROM pg_temp.raw(v.g) r WHERE r."time" BETWEEN c.a AND c.b
         EXCEPT ALL SELECT * FROM pg_temp.shown(v.g, c.a, c.b))) x) y
   GROUP BY v.view ORDER BY v.view
$$;

SELECT * FROM pg_temp.differences();                   -- all from the tail
SELECT meter.rollup() AS rolled;
SELECT * FROM pg_temp.differences();                   -- all from the rollups
-- a late event for an hour already rolled up, and a fresh one: rollup rows
-- plus the tail of the same bucket
SELECT (meter.record(tenant => 'coach', subject => 'user-3', provider => 'acme', model => 'a1', endpoint => '/chat',
        usage => '{"input_tokens": 1000000, "output_tokens": 1}', latency_ms => 40000,
        occurred_at => '2026-03-01 08:00+00')).cost AS late_cost;
SELECT (meter.record(tenant => 'coach', subject => 'user-9', provider => 'acme', model => 'a2',
        usage => '{"input_tokens": 10, "output_tokens": 10}', occurred_at => '2026-03-03 23:59+00')).cost AS fresh_cost;
SELECT * FROM pg_temp.differences();                   -- rollups plus the tail
SELECT requests, cost, p99_ms FROM meter.grafana_usage_hourly
 WHERE time = '2026-03-01 08:00+00' AND tenant = 'coach' AND model = 'a1' AND endpoint = '/chat' AND feature IS NULL;
-- buckets are UTC hours and days in any session zone (India is UTC+5:30)
SET TimeZone = 'Asia/Kolkata';
SELECT * FROM pg_temp.differences();
SELECT (SELECT array_agg(DISTINCT to_char(time AT TIME ZONE 'UTC', 'HH24:MI')) FROM meter.grafana_usage_daily) AS days_start_utc,
       (SELECT array_agg(DISTINCT to_char(time AT TIME ZONE 'UTC', 'MI:SS')) FROM meter.grafana_usage_hourly) AS hours_start_utc,
       (SELECT array_agg(DISTINCT to_char(time, 'HH24:MI')) FROM meter.grafana_usage_daily) AS days_start_here;
SET TimeZone = 'UTC';

-- a filter on time is pushed through the grouping into each rollup's
-- index (here forced, the tables being small), and the tail is added
CREATE FUNCTION pg_temp.plan(q text) RETURNS TABLE (line text) LANGUAGE plpgsql AS $$
BEGIN
    SET LOCAL enable_seqscan = off;
    SET LOCAL DateStyle = 'ISO';
    RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q;
END $$;
SELECT v AS view,
       bool_or(line ~ 'Index Cond: .*bucket >= ''2026-03-02 00:00:00\+00''.*bucket <= ''2026-03-02 06:00:00\+00''')
           AS bucket_index,
       bool_or(line ~ 'Function Scan on _tail_rows') AS tail,
       count(*) FILTER (WHERE line ~ 'Seq Scan on rollup_(hourly|daily|subject_daily)') AS rollup_scans
  FROM unnest(ARRAY['meter.grafana_usage_hourly', 'meter.grafana_usage_daily', 'meter.grafana_subject_daily']) v,
       pg_temp.plan(format($q$SELECT * FROM %s WHERE time BETWEEN '2026-03-02T00:00:00Z' AND '2026-03-02T06:00:00Z'
                                AND tenant IN ('coach')$q$, v))
 GROUP BY v ORDER BY v;

-- The dashboard: every panel's query and every variable's, with Grafana's
-- macros expanded as Grafana's PostgreSQL data source does for a range
-- (integrations/grafana/queries.sql).
\set dashboard :abs_srcdir/integrations/grafana/pg_meter.json
\i :abs_srcdir/integrations/grafana/queries.sql
-- runs a query as a view: its columns and types, and how many rows it gives
CREATE FUNCTION pg_temp.run(q text, OUT columns text, OUT rows bigint) LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'CREATE TEMP VIEW grafana_query AS ' || q;
    SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) INTO columns
      FROM pg_attribute WHERE attrelid = 'grafana_query'::regclass AND attnum > 0;
    EXECUTE 'SELECT count(*) FROM grafana_query' INTO rows;
    DROP VIEW grafana_query;
END $$;

SELECT count(*) AS queries, count(*) FILTER (WHERE q ~ '\$__timeFilter\(time\)' AND q ~ '\$tenant') AS with_time_and_tenant,
       count(*) FILTER (WHERE format = 'time_series') AS time_series
  FROM dashboard_queries;
-- each query over the data's days for both tenants: no macro or variable
-- left, rows back, and a time series starts with "time" (timestamptz), then
-- a text "metric" or numbers only
SELECT n, title, format, position('$' IN x.q) = 0 AS expanded, r.rows > 0 AS has_rows,
       format <> 'time_series' OR (r.columns ~ '^time timestamp with time zone(, metric text)?(, \w+ (numeric|bigint|double precision))+$')
           AS chartable,
       r.columns
  FROM dashboard_queries d,
       LATERAL (SELECT pg_temp.grafana(d.q, '2026-03-01 00:00+00', '2026-03-04 00:00+00', ARRAY['coach', 'beta']) AS q) x,
       LATERAL pg_temp.run(x.q) r
 ORDER BY n;
-- and what they show equals the raw events: requests and errors per hour,
-- cost per hour and model, for one tenant over a range cut at odd times;
-- the tenants of the range
CREATE FUNCTION pg_temp.keep(name text, q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TEMP TABLE %I AS %s', name, q);
END $$;
SELECT pg_temp.keep('panel_' || n, pg_temp.grafana(q, '2026-03-01 06:10+00', '2026-03-02 17:20+00', ARRAY['coach']))
  FROM dashboard_queries WHERE n IN (1, 2) OR title = 'variable tenant';
CREATE TEMP VIEW raw_hours AS
SELECT date_trunc('hour', occurred_at) AS time, provider || '/' || model AS metric, count(*) AS requests,
       count(*) FILTER (WHERE NOT success) AS errors, coalesce(sum(cost), 0) AS cost
  FROM meter.events WHERE tenant = 'coach' AND occurred_at >= '2026-03-01 07:00+00' AND occurred_at < '2026-03-02 18:00+00'
 GROUP BY 1, 2;
SELECT (SELECT count(*) FROM panel_2) AS hours,
       (SELECT count(*) FROM (SELECT * FROM panel_2 EXCEPT ALL
                              SELECT time, sum(requests), sum(errors) FROM raw_hours GROUP BY 1) x) AS requests_differences,
       (SELECT count(*) FROM ((SELECT * FROM panel_1 EXCEPT ALL SELECT time, metric, cost FROM raw_hours)
                              UNION ALL (SELECT time, metric, cost FROM raw_hours EXCEPT ALL SELECT * FROM panel_1)) x)
           AS cost_differences,
       (SELECT string_agg(tenant, ', ') FROM "panel_102") AS tenants;

\c :regress_db
DROP DATABASE pgm_integrations;
