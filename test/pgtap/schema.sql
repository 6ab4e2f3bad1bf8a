-- Schema, privileges and dump registration of pg_meter's catalog.
BEGIN;
SELECT plan(45);

SELECT has_schema('meter');
SELECT has_table('meter', 'catalog_loads', 'catalog loads are recorded');
SELECT has_table('meter', 'catalog_providers', 'providers are versioned');
SELECT has_table('meter', 'catalog_models', 'model prices are versioned');
SELECT has_table('meter', 'custom_prices', 'user prices have a table');
SELECT has_view('meter', 'price_versions', 'every price version is listed');
SELECT has_view('meter', 'meters', 'the meters are listed');
SELECT has_function('meter', 'cost', ARRAY['text', 'text', 'jsonb', 'timestamp with time zone', 'text', 'text']);
SELECT has_function('meter', 'price', ARRAY['text', 'text', 'jsonb', 'timestamp with time zone', 'text', 'text']);
SELECT has_function('meter', 'cost_breakdown', ARRAY['text', 'text', 'jsonb', 'timestamp with time zone', 'text', 'text']);
SELECT has_function('meter', 'normalize_usage', ARRAY['text', 'jsonb', 'text']);
SELECT has_function('meter', 'load_prices', ARRAY['jsonb', 'timestamp with time zone', 'text']);
SELECT has_function('meter', 'load_litellm_prices', ARRAY['jsonb', 'timestamp with time zone', 'text']);
SELECT has_function('meter', 'set_price', ARRAY['text', 'text', 'jsonb', 'timestamp with time zone', 'timestamp with time zone', 'text', 'jsonb', 'text']);
SELECT has_type('meter', 'sketch', 'latency sketches have a type');
SELECT has_table('meter', 'events', 'the event log exists');
SELECT has_index('meter', 'events_default', 'events_default_request', 'request ids are indexed in every partition, for idempotency');
SELECT has_function('meter', 'record_batch', ARRAY['jsonb']);
SELECT ok((SELECT relkind = 'p' FROM pg_class WHERE oid = 'meter.events'::regclass), 'the event log is partitioned');
SELECT has_function('meter', 'percentile', ARRAY['meter.sketch', 'double precision']);
SELECT has_table('meter', 'rollup_hourly', 'hourly rollups per tenant and model');
SELECT has_table('meter', 'rollup_daily', 'daily rollups per tenant and model');
SELECT has_table('meter', 'rollup_subject_daily', 'daily rollups per subject');
SELECT is((SELECT l.lanname::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = 'meter.record'::regproc),
          'c', 'meter.record is C (no PL/pgSQL on the hot path)');
-- every partition meter.create_partition makes carries the indexes the write path and the upkeep rely on
SELECT is(meter.create_partition('2031-02-10+00'), 'events_2031_02', 'create_partition names the month''s partition');
SELECT is((SELECT array_agg(indexrelid::regclass::text ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 'meter.events_2031_02'::regclass),
          ARRAY['meter.events_2031_02_request', 'meter.events_2031_02_time', 'meter.events_2031_02_txid', 'meter.events_2031_02_unpriced'],
          'a new partition has its request, time, transaction and unpriced indexes');
SELECT ok((SELECT aggcombinefn <> 0 FROM pg_aggregate WHERE aggfnoid = 'meter.sketch(double precision)'::regprocedure),
          'the sketch aggregate can run in parallel (it has a combine function)');
SELECT volatility_is('meter', 'cost', ARRAY['text', 'text', 'jsonb', 'timestamp with time zone', 'text', 'text'], 'stable');

-- every function pins its search_path or is C (hostile-schema safe)
SELECT is((SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'meter' AND p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c')
              AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog%', false)
              AND p.prokind = 'f'), 0::bigint, 'every SQL and PL/pgSQL function sets search_path');

-- user data is dumped by pg_dump
SELECT is((SELECT count(*) FROM pg_extension e, unnest(e.extconfig) AS c(oid) WHERE e.extname = 'pg_meter'),
          26::bigint, 'catalog tables, the event log''s default partition, rollups, their watermark, the reprice audit, retention settings, plans, subjects, limits, budget counters, provider balances, alert rules, alerts and sequences are registered with pg_extension_config_dump');

-- privileges: any role prices; only the owner changes prices
CREATE ROLE pgm_tap_app NOLOGIN;
SELECT ok(has_function_privilege('pgm_tap_app', 'meter.cost(text, text, jsonb, timestamptz, text, text)', 'EXECUTE'), 'an application role may price');
SELECT ok(NOT has_function_privilege('pgm_tap_app', 'meter.load_prices(jsonb, timestamptz, text)', 'EXECUTE'), 'an application role may not load catalogs');
SELECT ok(NOT has_function_privilege('pgm_tap_app', 'meter.set_price(text, text, jsonb, timestamptz, timestamptz, text, jsonb, text)', 'EXECUTE'), 'an application role may not set prices');
SELECT ok(NOT has_function_privilege('pgm_tap_app', 'meter._rollup_mark()', 'EXECUTE') AND NOT has_function_privilege('pgm_tap_app', 'meter.rollup()', 'EXECUTE'),
          'an application role may not run rollups');

-- an unprivileged role prices through the SECURITY DEFINER catalog reader
SELECT meter.set_price('tap-provider', 'tap-model', '{"input_mtok": 4, "output_mtok": 8}');
SET LOCAL ROLE pgm_tap_app;
SELECT is(meter.cost('tap-provider', 'tap-model', '{"input_tokens": 500000, "output_tokens": 250000}'), 4.0::numeric,
          'an application role gets the exact cost');
SELECT throws_ok($$INSERT INTO meter.custom_prices (provider, model, prices) VALUES ('a', 'b', '{}')$$, '42501', NULL,
                 'an application role cannot write prices directly');
RESET ROLE;

-- quotas: an application role checks and reserves (through the SECURITY
-- DEFINER readers of the limits) but cannot change limits, plans or blocks
SELECT ok(NOT has_function_privilege('pgm_tap_app', 'meter.set_limit(text, text, text, numeric, text, text, text, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('pgm_tap_app', 'meter.assign_plan(text, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('pgm_tap_app', 'meter.block(text, text, text)', 'EXECUTE'),
          'an application role may not set limits, plans or blocks');
SELECT meter.set_limit(tenant => 'tap', subject => 'u1', meter => 'requests', per => '1000 days', max => 1);
SET LOCAL ROLE pgm_tap_app;
SELECT is((SELECT allowed FROM meter.reserve('tap', 'u1')), true, 'an application role reserves');
SELECT is((SELECT status FROM meter.check('tap', 'u1')), 'limited', 'and its reservation counts');
SELECT throws_ok($$UPDATE meter.limits SET max = 100$$, '42501', NULL, 'an application role cannot write limits directly');
RESET ROLE;

-- budgets: an application role that may write events counts them for
-- budgets and reads them back, without any right on the counters
SELECT meter.set_limit(tenant => 'tap', subject => 'u2', meter => 'cost', per => 'day', max => 10);
GRANT INSERT ON meter.events TO pgm_tap_app;
GRANT USAGE ON SEQUENCE meter.event_id_seq TO pgm_tap_app;
SET LOCAL ROLE pgm_tap_app;
SELECT is((SELECT cost FROM meter.record(tenant => 'tap', subject => 'u2', provider => 'tap-provider', model => 'tap-model',
                                         usage => '{"input_tokens": 500000, "output_tokens": 250000}')),
          4.0::numeric, 'an application role records a priced event');
SELECT throws_ok($$SELECT * FROM meter.budget_usage$$, '42501', NULL, 'an application role cannot read the counters directly');
RESET ROLE;
SELECT ok(has_function_privilege('pgm_tap_app', 'meter.quota_status(text, text, text, text)', 'EXECUTE'),
          'an application role may list a subject''s quota status, as it may check');
SET LOCAL ROLE pgm_tap_app;
SELECT results_eq($$SELECT meter, max, used, reserved, remaining, allowed FROM meter.quota_status('tap', 'u2')$$,
                  $$VALUES ('cost', 10::numeric, 0::numeric, 0::numeric, 10::numeric, true)$$,
                  'an application role lists the budget with meter.quota_status, its cell filled from the counters as their owner');
SELECT is((SELECT used FROM meter.check('tap', 'u2')), 0::numeric,
          'and reads the budget, which counts the event only when its transaction commits (this file never commits)');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
