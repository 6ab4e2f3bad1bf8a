-- bulk_rows.sql: the write-path bench's bulk events, :rows of them (psql -v
-- rows=N), as the temporary view bulk_rows: one tenant, 2,000 users, five
-- models, request ids b1..bN, times spread over the last 30 days (generated
-- as the peer's rows are). Included by bulk_events.sql (COPY text) and
-- bulk_insert_select.sql (INSERT ... SELECT).
CREATE TEMP VIEW bulk_rows AS
SELECT 'app'::text AS tenant, 'user-' || (i % 2000) AS subject, 'sess-' || (i % 5000) AS session, 'chat'::text AS endpoint,
       (ARRAY['anthropic','google','google','openai','openai'])[1 + i % 5] AS provider,
       (ARRAY['claude-sonnet-4','gemini-2.5-flash','gemini-2.5-pro','gpt-4','gpt-4o-mini'])[1 + i % 5] AS model,
       jsonb_build_object('input_tokens', 50 + i % 3950, 'output_tokens', 10 + i % 1190) AS usage,
       i % 10 = 0 AS cached, 200 + i % 5800 AS latency_ms, i % 10 <> 9 AS success, 'b' || i AS request_id,
       now() - (i % (30 * 86400)) * interval '1 second' AS occurred_at
  FROM generate_series(1, :rows) AS i;
