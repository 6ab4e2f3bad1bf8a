-- Pricing one call: each provider's usage shape, exact amounts, the
-- breakdown, normalization, and how bad input is answered.
-- (catalog.sql loaded the fixture catalog; times are pinned to 2026-01-15.)
\set VERBOSITY default
SET TimeZone = 'UTC';
\set t '''2026-01-15 12:00+00'''

-- OpenAI chat: cached tokens are inside prompt_tokens
SELECT meter.cost('openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}}', :t);
-- Anthropic: input_tokens excludes cache reads and writes; tiers by the whole prompt
SELECT meter.cost('anthropic', 'claude-sonnet-4-6', '{"input_tokens": 100, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 50, "output_tokens": 300}', :t);
SELECT meter.cost('anthropic', 'claude-sonnet-4-6', '{"input_tokens": 200001, "output_tokens": 1000}', :t);
-- Gemini: thoughts are billed as output
SELECT meter.cost('google', 'gemini-2.5-flash', '{"promptTokenCount": 50, "candidatesTokenCount": 10, "thoughtsTokenCount": 20}', :t);
-- the seed report's 50-token Gemini Flash call: exact, not rounded by 7 %
SELECT meter.cost('google', 'gemini-2.5-flash', '{"input_tokens": 50, "output_tokens": 0}', :t) * 0.075 / 0.3 AS at_0_075_per_mtok,
       round(meter.cost('google', 'gemini-2.5-flash', '{"input_tokens": 50, "output_tokens": 0}', :t) * 0.075 / 0.3, 6) AS as_numeric_10_6;
-- time-of-day prices
SELECT meter.cost('deepseek', 'deepseek-chat', '{"prompt_tokens": 1000000, "completion_tokens": 0}', '2026-01-15 12:00+00') AS day,
       meter.cost('deepseek', 'deepseek-chat', '{"prompt_tokens": 1000000, "completion_tokens": 0}', '2026-01-15 20:00+00') AS night;
-- a 10-second minimum, and an amount that is rounded to the picodollar
SELECT cost, exact FROM meter.price('groq', 'whisper-large-v3', '{"audio_seconds": 3}', :t);
-- no provider: resolved by the model name
SELECT meter.cost(NULL, 'gpt-4o-mini', '{"input_tokens": 1000000, "output_tokens": 0}', :t);
-- NULL usage or model: NULL cost
SELECT meter.cost('openai', 'gpt-4o', NULL, :t) IS NULL AS null_usage, meter.cost('openai', NULL, '{}', :t) IS NULL AS null_model;

-- provenance: which price, which model, which normalized usage
SELECT cost, cost_text, input_cost, output_cost, other_cost, exact, price_source, provider, model, model_name, price_entry, service_tier, usage,
       price_version = (SELECT version FROM meter.catalog_models WHERE model_id = 'claude-sonnet-4-6' AND valid_to = 'infinity') AS version_is_the_row
  FROM meter.price('anthropic', 'claude-sonnet-4-6-20260101', '{"input_tokens": 100, "cache_read_input_tokens": 1000, "output_tokens": 300}', :t);
SELECT price_entry FROM meter.price('anthropic', 'claude-sonnet-4-6', '{"input_tokens": 1, "output_tokens": 1}', '2026-04-01+00');

-- the breakdown explains the total
SELECT * FROM meter.cost_breakdown('anthropic', 'claude-sonnet-4-6',
    '{"input_tokens": 10, "cache_creation_input_tokens": 100, "cache_creation": {"ephemeral_1h_input_tokens": 40}, "output_tokens": 7}', :t);
SELECT sum(amount) = meter.cost('openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}}', :t) AS adds_up
  FROM meter.cost_breakdown('openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}}', :t);

-- normalization
SELECT meter.normalize_usage('anthropic', '{"input_tokens": 100, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 5, "output_tokens": 3}');
SELECT meter.normalize_usage('openai', '{"input_tokens": 900, "input_tokens_details": {"cached_tokens": 100}, "output_tokens": 20, "total_tokens": 920}');
SELECT meter.normalize_usage('google', '{"promptTokenCount": 100, "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 40}], "candidatesTokenCount": 2, "thoughtsTokenCount": 3}');
SELECT meter.normalize_usage('anything', '{"input_tokens": 5, "output_tokens": 1}');
-- the API flavor can be named when a shape could be read two ways
SELECT meter.normalize_usage('openai', '{"input_tokens": 900, "output_tokens": 20, "total_tokens": 920}', 'responses');
SELECT meter.cost('openai', 'gpt-4o', '{"input_tokens": 1000, "output_tokens": 10, "total_tokens": 1010}', :t, api_flavor => 'responses');
SELECT pm_err($$SELECT meter.normalize_usage('openai', '{"prompt_tokens": 5}', 'chatty')$$);
SELECT pm_err($$SELECT meter.normalize_usage('openai', '{"prompt_tokens": 5}', 'responses')$$);

-- sums of exact costs are exact
SELECT sum(meter.cost('google', 'gemini-2.5-flash', jsonb_build_object('input_tokens', 50 + i % 7, 'output_tokens', i % 3), :t)) AS total
  FROM generate_series(1, 10000) AS i;

-- bad input: each kind its own SQLSTATE, the field named, a hint
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"prompt_tokens": -5, "completion_tokens": 1}')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"prompt_tokens": 2.5, "completion_tokens": 1}')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"prompt_tokens": "12", "completion_tokens": 1}')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '[{"prompt_tokens": 12}]')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"completion_tokens": 1, "total": 1}')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"input_tokens": 10, "cache_read_tokens": 20}', '2026-01-15+00')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"cache_read_tokens": 20, "output_tokens": 1}', '2026-01-15+00')$$);
SELECT pm_err($$SELECT meter.cost('nosuch', 'gpt-4o', '{"input_tokens": 1}')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-17', '{"input_tokens": 1}')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"input_tokens": 1}', service_tier => 'cheap')$$);
SELECT pm_err($$SELECT meter.cost('openai', '', '{"input_tokens": 1}')$$);
SELECT pm_err($$SELECT meter.cost('openai', 'gpt-4o', '{"input_tokens": 1e40}')$$);
SELECT pm_err($$SELECT meter.normalize_usage('openai', '"tokens"')$$);

-- A backend reads a provider's models when a name first needs them. A new
-- backend, as a role that may not read the catalog tables: the providers,
-- then anthropic's models, then openai's (found by the model name), read
-- through the owner's functions
\c
SET TimeZone = 'UTC';
CREATE ROLE pgm_pricer NOLOGIN;
SET ROLE pgm_pricer;
SELECT has_table_privilege('meter.catalog_models', 'SELECT') AS reads_the_table,
       meter.cost('anthropic', 'claude-sonnet-4-6', '{"input_tokens": 1000000, "output_tokens": 0}', :t) AS anthropic,
       meter.cost(NULL, 'gpt-4o-mini', '{"input_tokens": 1000000, "output_tokens": 0}', :t) AS by_model_name,
       meter.cost('azure', 'gpt-4o', '{"input_tokens": 1000000, "output_tokens": 0}', :t) AS fallback_to_openai;
RESET ROLE;
DROP ROLE pgm_pricer;
-- a model row changed in this transaction: read again, with the provider
-- read before; the change rolled back: the old price again
BEGIN;
SELECT meter.cost('anthropic', 'claude-sonnet-4-6', '{"input_tokens": 1000000, "output_tokens": 0}', :t) AS before_change;
UPDATE meter.catalog_models SET data = jsonb_set(data, '{prices,0,prices,input_mtok}', '7')
 WHERE model_id = 'claude-sonnet-4-6' AND valid_to = 'infinity';
SELECT meter.cost('anthropic', 'claude-sonnet-4-6', '{"input_tokens": 1000000, "output_tokens": 0}', :t) AS after_change,
       meter.cost('openai', 'gpt-4o-mini', '{"input_tokens": 1000000, "output_tokens": 0}', :t) AS openai_read_again;
ROLLBACK;
SELECT meter.cost('anthropic', 'claude-sonnet-4-6', '{"input_tokens": 1000000, "output_tokens": 0}', :t) AS after_rollback;
-- the SQL side: the model rows of the providers named (none for a name
-- without rows); providers and custom prices without models
SELECT provider, count(*) AS rows, min(kind) AS kind FROM meter._catalog_models(ARRAY['openai', 'nosuch']) GROUP BY provider;
SELECT kind, count(*) FROM meter._catalog_rows() GROUP BY kind ORDER BY kind;
