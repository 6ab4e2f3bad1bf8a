-- bulk_events.sql: the write-path bench's bulk events as COPY text on
-- standard output, :rows of them (psql -v rows=N): one tenant, 2,000 users,
-- five models, request ids b1..bN, times spread over the last 30 days.
-- Loaded by bench/ingest.sh and bench/lag.sh with
--   \copy meter.events (tenant, subject, session, endpoint, provider, model,
--         usage, cached, latency_ms, success, request_id, occurred_at) FROM file
COPY (SELECT 'app', 'user-' || (i % 2000), 'sess-' || (i % 5000), 'chat',
             (ARRAY['anthropic','google','google','openai','openai'])[1 + i % 5],
             (ARRAY['claude-sonnet-4','gemini-2.5-flash','gemini-2.5-pro','gpt-4','gpt-4o-mini'])[1 + i % 5],
             jsonb_build_object('input_tokens', 50 + i % 3950, 'output_tokens', 10 + i % 1190),
             i % 10 = 0, 200 + i % 5800, i % 10 <> 9, 'b' || i,
             now() - (i % (30 * 86400)) * interval '1 second'
        FROM generate_series(1, :rows) AS i) TO STDOUT;
