-- workload.sql: :rows provider responses of ten common models, each with
-- the usage object its API returns (OpenAI chat with its details, DeepSeek's
-- cache hit/miss counts, OpenRouter, Mistral, Anthropic with cache reads
-- and writes, Gemini with modality details and thoughts), random token
-- counts, cache hits on a third of the calls, cache writes on a seventh of
-- the Anthropic ones, and one call in a hundred with a long prompt
-- (200,000-400,000 tokens, where tiered prices change). Calls are spread
-- over 2026-08-01 .. 2026-11-24 at every time of day, so DeepSeek's
-- time-of-day prices and GPT-5.6 Sol's price change of 2026-08-21 both
-- apply to part of them.
DROP TABLE IF EXISTS bench_workload;
CREATE UNLOGGED TABLE bench_workload AS
SELECT i, m.provider, m.model,
       CASE m.shape
         WHEN 'openai' THEN jsonb_build_object(
             'prompt_tokens', t.inp, 'completion_tokens', t.outp, 'total_tokens', t.inp + t.outp,
             'prompt_tokens_details', jsonb_build_object('cached_tokens', t.cached, 'audio_tokens', 0),
             'completion_tokens_details', jsonb_build_object('reasoning_tokens', least(t.think, t.outp), 'audio_tokens', 0,
                 'accepted_prediction_tokens', 0, 'rejected_prediction_tokens', 0))
         WHEN 'openrouter' THEN jsonb_build_object(
             'prompt_tokens', t.inp, 'completion_tokens', t.outp, 'total_tokens', t.inp + t.outp,
             'prompt_tokens_details', jsonb_build_object('cached_tokens', t.cached),
             'completion_tokens_details', jsonb_build_object('reasoning_tokens', 0))
         WHEN 'mistral' THEN jsonb_build_object(
             'prompt_tokens', t.inp, 'completion_tokens', t.outp, 'total_tokens', t.inp + t.outp)
         WHEN 'deepseek' THEN jsonb_build_object(
             'prompt_tokens', t.inp, 'completion_tokens', t.outp, 'total_tokens', t.inp + t.outp,
             'prompt_tokens_details', jsonb_build_object('cached_tokens', t.cached),
             'prompt_cache_hit_tokens', t.cached, 'prompt_cache_miss_tokens', t.inp - t.cached)
         WHEN 'anthropic' THEN jsonb_build_object(
             'input_tokens', t.inp - t.cached - t.written, 'output_tokens', t.outp,
             'cache_read_input_tokens', t.cached, 'cache_creation_input_tokens', t.written,
             'cache_creation', jsonb_build_object('ephemeral_5m_input_tokens', t.written, 'ephemeral_1h_input_tokens', 0),
             'service_tier', 'standard')
         ELSE jsonb_build_object(                    -- Gemini's usageMetadata
             'promptTokenCount', t.inp, 'candidatesTokenCount', t.outp, 'thoughtsTokenCount', t.think,
             'totalTokenCount', t.inp + t.outp + t.think,
             'promptTokensDetails', jsonb_build_array(jsonb_build_object('modality', 'TEXT', 'tokenCount', t.inp)))
           || CASE WHEN t.cached > 0 THEN jsonb_build_object('cachedContentTokenCount', t.cached,
                  'cacheTokensDetails', jsonb_build_array(jsonb_build_object('modality', 'TEXT', 'tokenCount', t.cached)))
              ELSE '{}' END
       END AS usage,
       timestamptz '2026-08-01 00:00+00' + ((hashint4(i + 3) & 2147483647) % (115 * 86400)) * interval '1 second' AS at
  FROM generate_series(1, :rows) AS i,
       LATERAL (SELECT (hashint4(i) & 2147483647) % 10 AS k) AS pick,
       LATERAL (VALUES
         (0, 'openai', 'gpt-4o-mini', 'openai'), (1, 'openai', 'gpt-4o', 'openai'), (2, 'openai', 'gpt-5.6-sol', 'openai'),
         (3, 'anthropic', 'claude-sonnet-4-5', 'anthropic'), (4, 'anthropic', 'claude-haiku-4-5', 'anthropic'),
         (5, 'google', 'gemini-2.5-flash', 'gemini'), (6, 'google', 'gemini-2.5-pro', 'gemini'),
         (7, 'mistral', 'mistral-large-latest', 'mistral'), (8, 'deepseek', 'deepseek-chat', 'deepseek'),
         (9, 'openrouter', 'openai/gpt-4o-mini', 'openrouter')) AS m(n, provider, model, shape),
       LATERAL (SELECT CASE WHEN i % 100 = 7 THEN 200000 + (hashint4(i + 1) & 2147483647) % 200000
                            ELSE 50 + (hashint4(i + 1) & 2147483647) % 8000 END AS inp,
                       1 + (hashint4(i + 2) & 2147483647) % 1500 AS outp,
                       (hashint4(i + 4) & 2147483647) % 4 AS r4) AS raw,
       LATERAL (SELECT raw.inp, raw.outp,
                       CASE WHEN i % 3 = 0 THEN raw.inp / 2 ELSE 0 END AS cached,
                       CASE WHEN i % 7 = 0 AND m.shape = 'anthropic' THEN raw.inp / 4 ELSE 0 END AS written,
                       CASE WHEN m.model IN ('gemini-2.5-flash', 'gemini-2.5-pro', 'gpt-5.6-sol') AND raw.r4 > 0
                            THEN (hashint4(i + 5) & 2147483647) % 2000 ELSE 0 END AS think) AS t
 WHERE m.n = pick.k;
ANALYZE bench_workload;
