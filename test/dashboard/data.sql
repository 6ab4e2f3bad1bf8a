-- data.sql: a small, realistic tenant for the dashboard test: two weeks up
-- to now of 4,000 calls to five models of three providers by 40 users
-- (skewed, a few heavy ones), guests, a heavy user with a hostile name, errors,
-- cache hits; most rolled up, the last hour not (the tail); plans, limits,
-- a refused user and a blocked one; provider balances for runway.
SET client_min_messages = warning;
SELECT meter.set_price('openai', 'gpt-4o', '{"input_mtok": 2.5, "output_mtok": 10, "cache_read_mtok": 1.25}');
SELECT meter.set_price('openai', 'gpt-4o-mini', '{"input_mtok": 0.15, "output_mtok": 0.6, "cache_read_mtok": 0.075}');
SELECT meter.set_price('anthropic', 'claude-sonnet-4-5', '{"input_mtok": 3, "output_mtok": 15, "cache_read_mtok": 0.3}');
SELECT meter.set_price('google', 'gemini-2.5-flash', '{"input_mtok": 0.3, "output_mtok": 2.5}');
SELECT meter.set_price('google', 'gemini-2.5-pro', '{"input_mtok": 1.25, "output_mtok": 10}');

-- row i: a user picked by a cubed uniform (user-1 is the heaviest), a
-- model, tokens, latency and outcome from hashes of i, a time spread over
-- the 14 days before now, busier in daytime
INSERT INTO meter.events (tenant, subject, endpoint, provider, model, usage, cached, latency_ms, success, occurred_at)
SELECT 'acme-app',
       CASE WHEN i % 23 = 0 THEN NULL WHEN i % 12 = 0 THEN '<script>alert("x")</script>'
            ELSE 'user-' || (1 + (((hashint4(i) & 2147483647) / 2147483647.0) ^ 3 * 39)::int) END,
       (ARRAY['/chat', '/chat', '/summarize', '/search'])[1 + (hashint4(i + 7) & 3)],
       m.provider, m.model,
       jsonb_build_object('input_tokens', 200 + (hashint4(i + 1) & 2147483647) % 6000,
                          'output_tokens', 20 + (hashint4(i + 2) & 2147483647) % 900,
                          'cache_read_tokens', CASE WHEN m.provider <> 'google' THEN (hashint4(i + 3) & 2147483647) % 200 ELSE 0 END),
       (hashint4(i + 4) & 15) = 0,
       150 + (hashint4(i + 5) & 2147483647) % 4000 + CASE WHEN m.model LIKE '%pro%' OR m.model LIKE 'claude%' THEN 900 ELSE 0 END,
       (hashint4(i + 6) & 31) <> 0,
       now() - interval '1 hour' - (i / 4000.0) * interval '14 days' + ((hashint4(i + 8) & 2147483647) % 3600) * interval '1 second'
  FROM generate_series(1, 4000) AS i,
       LATERAL (SELECT (ARRAY['openai', 'openai', 'anthropic', 'google', 'google'])[1 + i % 5] AS provider,
                       (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5', 'gemini-2.5-flash', 'gemini-2.5-pro'])[1 + i % 5] AS model) m;
SELECT meter.rollup();
-- the last hour, not rolled up
SELECT count(meter.record(tenant => 'acme-app', subject => 'user-' || (1 + i % 7), provider => 'openai',
                          model => 'gpt-4o-mini', endpoint => '/chat', latency_ms => 300 + i * 7,
                          usage => jsonb_build_object('input_tokens', 500 + i, 'output_tokens', 80),
                          success => i % 11 <> 0, occurred_at => now() - i * interval '20 seconds'))
  FROM generate_series(1, 150) AS i;

SELECT meter.create_plan('acme-app', 'free', 'the free tier', is_default => true);
SELECT meter.create_plan('acme-app', 'pro');
SELECT meter.assign_plan('acme-app', 'user-1', 'pro'), meter.assign_plan('acme-app', 'user-2', 'pro');
SELECT meter.set_limit(tenant => 'acme-app', plan => 'free', meter => 'requests', per => '1 minute', max => 20);
SELECT meter.set_limit(tenant => 'acme-app', plan => 'pro', meter => 'requests', per => '1 minute', max => 200);
SELECT meter.set_limit(tenant => 'acme-app', plan => 'pro', meter => 'cost', per => 'month', max => 500);
SELECT meter.set_limit(tenant => 'acme-app', subject => 'user-3', meter => 'requests', per => '1 minute', max => 0);
SELECT meter.set_limit(tenant => 'acme-app', meter => 'cost', per => 'day', max => 1000, scope => 'tenant');
SELECT meter.block('acme-app', 'mallory', 'polled /chat 40 times a second');
SELECT meter.record_balance('acme-app', 'openai', 120, now() - interval '10 days');
SELECT meter.record_balance('acme-app', 'openai', 100, now() - interval '3 days');
SELECT meter.record_balance('acme-app', 'anthropic', 4, now() - interval '1 day');
