-- Latency sketches: text and binary forms, aggregates, merging, percentiles
-- within 1 % of the exact values, parallel aggregation, bad input.
\set VERBOSITY default

-- text form round trip
SELECT '{"count":3,"zeros":1,"min":0,"max":20,"sum":30,"bins":[[139,1],[300,1]]}'::meter.sketch;
SELECT meter.sketch(v) FROM (VALUES (0.0), (10.0), (20.0), (NULL)) AS t(v);
SELECT meter.sketch(v) IS NULL AS empty_is_null FROM (VALUES (NULL::float8)) AS t(v);

-- latencies with a long tail: percentiles against the exact percentile_disc
CREATE TABLE sk_latency AS
SELECT i, (i % 4) AS part,
       CASE WHEN i % 101 = 0 THEN 0 ELSE round(exp(5.5 + 1.2 * sqrt(-2 * ln((i % 997 + 1) / 998.0)) * cos(2 * pi() * (i % 991) / 991.0))) END::float8 AS ms
  FROM generate_series(1, 200000) AS i;
SELECT q, exact, round(est::numeric, 3) AS est, abs(est - exact) <= 0.01 * exact AS within_1_percent
  FROM (SELECT q, percentile_disc(q) WITHIN GROUP (ORDER BY ms) AS exact,
               (SELECT meter.percentile(meter.sketch(ms), q) FROM sk_latency) AS est
          FROM sk_latency, unnest(ARRAY[0.5, 0.9, 0.95, 0.99, 0.999]) AS q GROUP BY q) s
 ORDER BY q;

-- merging the sketches of parts equals the sketch of the whole
SELECT (SELECT meter.merge(s) FROM (SELECT meter.sketch(ms) AS s FROM sk_latency GROUP BY part) p)::text
     = (SELECT meter.sketch(ms) FROM sk_latency)::text AS merge_equals_whole;
SELECT meter.sketch_count(meter.sketch(ms)) FROM sk_latency;

-- parallel aggregation (partial states, serialized, combined) gives the same sketch
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE sk_serial AS SELECT meter.sketch(ms)::text AS s FROM sk_latency;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT meter.sketch(ms) FROM sk_latency;
SELECT (SELECT meter.sketch(ms) FROM sk_latency)::text = (SELECT s FROM sk_serial) AS parallel_equals_serial;
RESET ALL;

-- binary COPY round trip
CREATE TABLE sk_store (part int, s meter.sketch);
INSERT INTO sk_store SELECT part, meter.sketch(ms) FROM sk_latency GROUP BY part;
COPY sk_store TO '/tmp/pg_meter_sketch.bin' WITH (FORMAT binary);
CREATE TABLE sk_back (LIKE sk_store);
COPY sk_back FROM '/tmp/pg_meter_sketch.bin' WITH (FORMAT binary);
SELECT count(*) AS same FROM sk_store a JOIN sk_back b USING (part) WHERE a.s::text = b.s::text;

-- bad input
SELECT pm_err($$SELECT meter.sketch(v) FROM (VALUES (-1.0)) t(v)$$);
SELECT pm_err($$SELECT meter.sketch(v) FROM (VALUES ('NaN'::float8)) t(v)$$);
SELECT pm_err($$SELECT meter.percentile(meter.sketch(ms), 1.5) FROM sk_latency$$);
SELECT pm_err($$SELECT '{"count":2,"zeros":0,"min":1,"max":1,"sum":1,"bins":[[1,1]]}'::meter.sketch$$);
SELECT pm_err($$SELECT '{"count":1,"zeros":0,"min":1,"max":1,"sum":1,"bins":[[1,1]],'::meter.sketch$$);
SELECT meter.percentile('{"count":0,"zeros":0,"min":0,"max":0,"sum":0,"bins":[]}', 0.5) IS NULL AS empty_percentile_is_null;
DROP TABLE sk_latency, sk_store, sk_back;
