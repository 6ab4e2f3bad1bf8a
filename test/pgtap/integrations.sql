-- The Grafana views: their columns, and their privileges: nothing granted
-- to PUBLIC, read with the caller's rights like the read functions, so a
-- dashboard role given the usage tables and the views reads what the owner
-- reads (the tail included), and one without a table's right reads nothing.
BEGIN;
SELECT plan(13);

SELECT has_view('meter', 'grafana_usage_hourly', 'usage per hour for Grafana');
SELECT has_view('meter', 'grafana_usage_daily', 'usage per day for Grafana');
SELECT has_view('meter', 'grafana_subject_daily', 'usage per subject and day for Grafana');
SELECT columns_are('meter', 'grafana_usage_hourly',
    ARRAY['time', 'tenant', 'provider', 'model', 'endpoint', 'feature', 'requests', 'errors', 'cache_hits', 'unpriced',
          'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'tokens', 'cost', 'potential_cost',
          'cache_savings', 'latency', 'ttft', 'p50_ms', 'p95_ms', 'p99_ms'], 'the hourly view''s columns');
SELECT col_type_is('meter', 'grafana_usage_daily', 'time', 'timestamp with time zone', 'time is a timestamptz, as Grafana wants');
SELECT col_type_is('meter', 'grafana_subject_daily', 'cost', 'numeric', 'money is numeric');
SELECT is((SELECT count(*) FROM pg_class
            WHERE oid IN ('meter._live_usage'::regclass, 'meter.grafana_usage_hourly'::regclass,
                          'meter.grafana_usage_daily'::regclass, 'meter.grafana_subject_daily'::regclass)
              AND reloptions @> ARRAY['security_invoker=true']),
          4::bigint, 'every view reads with the caller''s rights');

CREATE ROLE pgm_tap_grafana NOLOGIN;
SELECT ok(NOT has_table_privilege('pgm_tap_grafana', 'meter.grafana_usage_hourly', 'SELECT')
          AND NOT has_table_privilege('pgm_tap_grafana', 'meter.grafana_subject_daily', 'SELECT'),
          'nothing is granted to PUBLIC: the views show every tenant');
-- one event, not rolled up: the views find it in the tail
SELECT meter.record(tenant => 'tap-grafana', subject => 'u1', provider => 'tap-g', model => 'tap-m',
                    usage => '{"input_tokens": 5, "output_tokens": 1}', latency_ms => 120,
                    occurred_at => '2026-05-01 10:17+00');
SET LOCAL ROLE pgm_tap_grafana;
SELECT throws_ok($$SELECT * FROM meter.grafana_usage_hourly$$, '42501', NULL, 'a role without rights reads nothing');
RESET ROLE;

GRANT SELECT ON meter.events, meter.rollup_hourly, meter.rollup_daily, meter.rollup_subject_daily, meter.rollup_state,
                meter._live_usage, meter.grafana_usage_hourly, meter.grafana_usage_daily, meter.grafana_subject_daily
   TO pgm_tap_grafana;
SET LOCAL ROLE pgm_tap_grafana;
SELECT results_eq($$SELECT time, requests, tokens FROM meter.grafana_usage_hourly WHERE tenant = 'tap-grafana'$$,
                  $$VALUES ('2026-05-01 10:00+00'::timestamptz, 1::bigint, 6::numeric)$$,
                  'the dashboard''s role reads the hour, from the tail');
SELECT results_eq($$SELECT subject, requests FROM meter.grafana_subject_daily
                     WHERE tenant = 'tap-grafana' AND time BETWEEN '2026-05-01T00:00:00Z' AND '2026-05-02T00:00:00Z'$$,
                  $$VALUES ('u1', 1::bigint)$$, 'and the subject''s day');
SELECT lives_ok($$SELECT * FROM meter.totals('tap-grafana', '2026-05-01', '2026-05-02')$$,
                'the same rights read meter.totals');
RESET ROLE;
REVOKE SELECT ON meter.events FROM pgm_tap_grafana;
SET LOCAL ROLE pgm_tap_grafana;
SELECT throws_ok($$SELECT * FROM meter.grafana_usage_daily$$, '42501', NULL,
                 'the views give nothing the tables do not: without the events, no view');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
