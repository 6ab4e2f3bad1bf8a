-- Loading catalogs: genai-prices' shape, versions that keep history,
-- LiteLLM's price JSON, user prices, provenance.
\set VERBOSITY default

-- nothing loaded yet: a clear error, not a zero
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"prompt_tokens": 1, "completion_tokens": 1}')$$);

\set catalog `cat test/core/data/catalog.json`
SELECT source, effective_from, providers, models, models_added, models_changed, models_removed
  FROM meter.load_prices(:'catalog'::jsonb, note => 'fixture');
SELECT meter.cost('openai', 'gpt-4o', '{"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}}');

-- a newer catalog with a changed price keeps the old price for the past
SELECT source, providers, models, models_added, models_changed, models_removed
  FROM meter.load_prices(jsonb_set(:'catalog'::jsonb, '{1,models,1,prices,input_mtok}', '5'),
                         effective_from => '2026-06-01 00:00+00', note => 'gpt-4o input doubled');
SELECT at, meter.cost('openai', 'gpt-4o', '{"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}}', at)
  FROM (VALUES ('2026-05-31 23:59:59+00'::timestamptz), ('2026-06-01 00:00+00')) AS t(at);
SELECT p.price_version <> q.price_version AS new_version_named
  FROM meter.price('openai', 'gpt-4o', '{"input_tokens": 1, "output_tokens": 1}', '2026-05-01+00') p,
       meter.price('openai', 'gpt-4o', '{"input_tokens": 1, "output_tokens": 1}', '2026-07-01+00') q;
SELECT provider, model, prices->'input_mtok' AS input_mtok, valid_from, valid_to
  FROM meter.price_versions WHERE provider = 'openai' AND model = 'gpt-4o' ORDER BY version;
-- loads go forward in time only
SELECT pm_err($$SELECT meter.load_prices('[]', effective_from => '2026-01-01+00')$$);
-- malformed catalogs are refused before anything is written
SELECT pm_err($$SELECT meter.load_prices('{"id": "x"}')$$);
-- NULL, an empty catalog, or one in force from infinity would remove or
-- freeze every price: refused
SELECT pm_err($$SELECT meter.load_prices(NULL)$$);
SELECT pm_err($$SELECT meter.load_prices('[]')$$);
SELECT pm_err($$SELECT meter.load_prices('[{"id": "x", "models": [{"id": "m", "prices": {"input_mtok": 1}}]}]', 'infinity')$$);
SELECT pm_err($$SELECT meter.load_litellm_prices('{}')$$);
SELECT pm_err($$SELECT meter.load_prices('[{"id": "x", "models": [{"id": "m", "match": {"regex": "("}, "prices": {"input_mtok": 1}}]}]')$$);
SELECT pm_err($$SELECT meter.load_prices('[{"id": "x", "models": [{"id": "m", "match": {"equals": "m"}, "prices": {"input_mtok": -1}}]}]')$$);
SELECT count(*) AS loads FROM meter.catalog_loads;

-- LiteLLM's price JSON: standard, batch, flex and priority prices, exactly
\set litellm `cat test/fixtures/litellm.json`
SELECT source, providers, models, models_added FROM meter.load_litellm_prices(:'litellm'::jsonb);
SELECT tier, meter.cost('openai', 'gpt-4o', '{"input_tokens": 1000000, "output_tokens": 1000000}', service_tier => tier)
  FROM unnest(ARRAY['standard', 'batch', 'priority']) AS tier;
SELECT meter.cost('openai', 'o3', '{"input_tokens": 1000000, "cache_read_tokens": 500000, "output_tokens": 0}', service_tier => 'flex');
SELECT meter.cost('gemini', 'gemini-2.5-pro', '{"input_tokens": 300000, "output_tokens": 1000}');
SELECT meter.cost('fal_ai', 'flux-pro', '{"images": 4}');
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o-mini', '{"input_tokens": 1, "output_tokens": 1}', service_tier => 'batch')$$);
SELECT pm_err($$SELECT meter.load_litellm_prices('[1]')$$);

-- user prices win over catalogs, in their validity range
SELECT meter.set_price('openai', 'gpt-4o', '{"input_mtok": 2, "output_mtok": 8}',
                       valid_from => '2026-09-01+00', note => 'negotiated rate') > 0 AS set;
SELECT at, (meter.price('openai', 'gpt-4o', '{"input_tokens": 1000000, "output_tokens": 1000000}', at)).price_source,
       meter.cost('openai', 'gpt-4o', '{"input_tokens": 1000000, "output_tokens": 1000000}', at)
  FROM (VALUES ('2026-08-31+00'::timestamptz), ('2026-09-02+00')) AS t(at);
-- dated model names reach the override through the catalog id
SELECT meter.cost('openai', 'gpt-4o-2026-09-01', '{"input_tokens": 1000000, "output_tokens": 0}', '2026-09-02+00');
-- private models priced per image and per second of compute
SELECT meter.set_price('replicate', 'flux-schnell', '{"per_image": 0.003, "per_compute_second": 0.000725}') > 0 AS set;
SELECT meter.cost('replicate', 'flux-schnell', '{"images": 2, "compute_seconds": 3.5}');
SELECT pm_err($$SELECT meter.set_price('x', 'y', '{"input_mtokens": 1}')$$);
SELECT pm_err($$SELECT meter.set_price('x', 'y', '{"cache_read_mtok": 1}')$$);
SELECT pm_err($$SELECT meter.set_price('x', 'y', '[1]')$$);
SELECT pm_err($$SELECT meter.set_price('', 'y', '{"input_mtok": 1}')$$);
SELECT pm_err($$SELECT meter.set_price('x', 'y', '{"input_mtok": 1}', valid_from => '2026-01-02', valid_until => '2026-01-01')$$);
SELECT pm_err($$SELECT meter.set_price('x', 'y', '{"input_mtok": 1}', service_tier => 'cheap')$$);
SELECT pm_err($$SELECT meter.set_price('x', 'y', '{"input_mtok": 1}', minimums => '{"parsecs": 1}')$$);
-- the meters a price may name
SELECT meter, price_key, per, direction, whole_units FROM meter.meters
 WHERE meter IN ('input_tokens', 'cache_write_1h_tokens', 'audio_seconds', 'requests', 'images', 'compute_seconds') ORDER BY meter;
