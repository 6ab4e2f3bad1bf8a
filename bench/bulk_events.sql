-- bulk_events.sql: the write-path bench's bulk events (bulk_rows.sql) as COPY
-- text on standard output (psql -v rows=N). Loaded by bench/ingest.sh and
-- bench/lag.sh with
--   \copy meter.events (tenant, subject, session, endpoint, provider, model,
--         usage, cached, latency_ms, success, request_id, occurred_at) FROM file
\ir bulk_rows.sql
COPY (SELECT * FROM bulk_rows) TO STDOUT;
