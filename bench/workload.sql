-- workload.sql: :rows provider responses of ten common models in their own
-- usage shapes, with random token counts and cache hits.
DROP TABLE IF EXISTS bench_workload;
CREATE UNLOGGED TABLE bench_workload AS
SELECT i,
       m.provider, m.model,
       CASE m.shape
         WHEN 'chat' THEN jsonb_build_object('prompt_tokens', t.inp, 'completion_tokens', t.outp,
                                             'prompt_tokens_details', jsonb_build_object('cached_tokens', t.cached))
         WHEN 'anthropic' THEN jsonb_build_object('input_tokens', t.inp - t.cached, 'output_tokens', t.outp,
                                                  'cache_read_input_tokens', t.cached, 'cache_creation_input_tokens', 0)
         ELSE jsonb_build_object('promptTokenCount', t.inp, 'candidatesTokenCount', t.outp, 'thoughtsTokenCount', t.cached % 300)
       END AS usage,
       timestamptz '2026-11-01 00:00+00' + (i % 86400) * interval '1 second' AS at
  FROM generate_series(1, :rows) AS i,
       LATERAL (SELECT (hashint4(i) & 2147483647) % 10 AS k) AS pick,
       LATERAL (VALUES
         (0, 'openai', 'gpt-4o-mini', 'chat'), (1, 'openai', 'gpt-4o', 'chat'), (2, 'openai', 'gpt-4.1-mini', 'chat'),
         (3, 'anthropic', 'claude-sonnet-4-5', 'anthropic'), (4, 'anthropic', 'claude-haiku-4-5', 'anthropic'),
         (5, 'google', 'gemini-2.5-flash', 'gemini'), (6, 'google', 'gemini-2.5-pro', 'gemini'),
         (7, 'mistral', 'mistral-large-latest', 'chat'), (8, 'deepseek', 'deepseek-chat', 'chat'),
         (9, 'openrouter', 'openai/gpt-4o-mini', 'chat')) AS m(n, provider, model, shape),
       LATERAL (SELECT 50 + (hashint4(i + 1) & 2147483647) % 8000 AS inp,
                       (hashint4(i + 2) & 2147483647) % 1500 AS outp) AS raw,
       LATERAL (SELECT raw.inp, raw.outp, CASE WHEN i % 3 = 0 THEN raw.inp / 2 ELSE 0 END AS cached) AS t
 WHERE m.n = pick.k;
ANALYZE bench_workload;
