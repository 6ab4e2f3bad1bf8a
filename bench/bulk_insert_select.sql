-- bulk_insert_select.sql: the write-path bench's bulk events (bulk_rows.sql)
-- by INSERT ... SELECT, the other bulk way in (psql -v rows=N).
\ir bulk_rows.sql
INSERT INTO meter.events (tenant, subject, session, endpoint, provider, model, usage, cached, latency_ms, success, request_id, occurred_at)
SELECT * FROM bulk_rows;
