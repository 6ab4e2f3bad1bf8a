-- The event log: record, record_batch, plain INSERT and COPY; priced at
-- ingest, idempotent on (tenant, request_id), unknown models kept unpriced,
-- non-LLM requests counted, bad input refused.
\set VERBOSITY default
SET TimeZone = 'UTC';
-- catalog.sql loaded the fixture catalog; pin the times so the prices do not move
\set t '''2026-01-15 12:00+00'''

SELECT * FROM meter.record(tenant => 'coach', subject => 'user-1', session => 's-1', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}}',
    endpoint => '/api/chat', feature => 'coach', latency_ms => 812, ttft_ms => 190, request_id => 'req-1', occurred_at => :t,
    metadata => '{"ab": "b"}');
-- a retry of the same request counts once and says so, with the first answer
SELECT cost, potential_cost, duplicate, priced FROM meter.record(tenant => 'coach', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}}',
    request_id => 'req-1', occurred_at => :t);
-- the same request id in another tenant is another request
SELECT duplicate FROM meter.record(tenant => 'other', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"input_tokens": 1, "output_tokens": 1}', request_id => 'req-1', occurred_at => :t);
-- a cache hit costs nothing and keeps what it would have cost
SELECT cost, potential_cost FROM meter.record(tenant => 'coach', provider => 'anthropic', model => 'claude-sonnet-4-6',
    usage => '{"input_tokens": 100, "output_tokens": 300}', cached => true, occurred_at => :t);
-- an unknown model is recorded, unpriced and flagged, never costed at 0
SELECT cost, potential_cost, duplicate, priced FROM meter.record(tenant => 'coach', provider => 'openai', model => 'gpt-next',
    usage => '{"prompt_tokens": 10, "completion_tokens": 2}', occurred_at => :t);
-- a request that called no model is counted and timed
SELECT cost, priced FROM meter.record(tenant => 'coach', endpoint => '/health', latency_ms => 3, occurred_at => :t);
-- failures are events too
SELECT cost, priced FROM meter.record(tenant => 'coach', provider => 'google', model => 'gemini-2.5-flash',
    usage => '{"promptTokenCount": 50, "candidatesTokenCount": 0}', success => false, error => 'timeout',
    error_message => 'upstream timed out', occurred_at => :t);

-- a JSON array from an edge function
SELECT * FROM meter.record_batch('[
  {"tenant": "coach", "provider": "anthropic", "model": "claude-sonnet-4-6", "usage": {"input_tokens": 10, "output_tokens": 5}, "request_id": "b-1", "occurred_at": "2026-01-15T12:00:00Z"},
  {"tenant": "coach", "provider": "anthropic", "model": "claude-sonnet-4-6", "usage": {"input_tokens": 10, "output_tokens": 5}, "request_id": "b-1", "occurred_at": "2026-01-15T12:00:00Z"},
  {"tenant": "coach", "endpoint": "/api/chart-commands", "session": "s-9", "latency_ms": 12, "occurred_at": "2026-01-15T12:00:01Z"}]');

-- any client can INSERT or COPY; the row is priced and deduplicated all the same
INSERT INTO meter.events (tenant, provider, model, usage, request_id, occurred_at)
VALUES ('coach', 'google', 'gemini-2.5-flash', '{"promptTokenCount": 50, "candidatesTokenCount": 10, "thoughtsTokenCount": 20}', 'ins-1', :t),
       ('coach', 'google', 'gemini-2.5-flash', '{"promptTokenCount": 50, "candidatesTokenCount": 10, "thoughtsTokenCount": 20}', 'ins-1', :t);
COPY meter.events (tenant, provider, model, usage, request_id, occurred_at) FROM STDIN;
coach	deepseek	deepseek-chat	{"prompt_tokens": 1000000, "completion_tokens": 0}	copy-1	2026-01-15 20:00:00+00
coach	deepseek	deepseek-chat	{"prompt_tokens": 1000000, "completion_tokens": 0}	copy-1	2026-01-15 20:00:00+00
coach	openai	gpt-4o-mini	{"input_tokens": 1000000, "output_tokens": 0}	req-1	2026-01-15 12:00:00+00
\.

-- a row that carries an earlier transaction's id is restored data (pg_restore):
-- kept exactly as it was, neither repriced nor claimed again
INSERT INTO meter.events (tenant, provider, model, usage, cost, potential_cost, priced, request_id, occurred_at, txid)
VALUES ('restored', 'openai', 'gpt-4o', '{"input_tokens": 1, "output_tokens": 1}', 0.5, 0.5, true, 'rest-1', :t, 3);
SELECT cost, priced, request_key IS NULL AS not_claimed FROM meter.events WHERE tenant = 'restored';

SELECT tenant, subject, provider, model, endpoint, usage, cached, cost, potential_cost, priced, unpriced_reason,
       success, error, request_id, latency_ms
  FROM meter.events ORDER BY event_id;
-- the price version of every priced event is a row of meter.price_versions
SELECT count(*) FILTER (WHERE priced AND model IS NOT NULL) AS priced_llm_events,
       count(*) FILTER (WHERE price_version IN (SELECT version FROM meter.price_versions)) AS with_known_version
  FROM meter.events;
-- every request id is recorded once
SELECT tenant, request_id, count(*) FROM meter.events WHERE request_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2;

-- the token meters of the normalized usage are columns too (cached input included)
SELECT request_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, usage
  FROM meter.events WHERE request_id IN ('req-1', 'ins-1') AND tenant = 'coach';

-- partitions: a month gets its own, rows of other months stay reachable
SELECT meter.create_partition('2027-03-10+00');
SELECT meter.create_partition('2027-03-20+00');
SELECT (meter.record(tenant => 'coach', endpoint => '/health', occurred_at => '2027-03-15+00')).priced;
SELECT tableoid::regclass, count(*) FROM meter.events GROUP BY 1 ORDER BY 1;
-- a retry counts once whichever partition the first one landed in: the
-- first in March 2027, retries dated in January 2026 (default partition) and
-- again in March, by record, INSERT and COPY
SELECT duplicate FROM meter.record(tenant => 'coach', endpoint => '/x', request_id => 'moved-1', occurred_at => '2027-03-15+00');
SELECT duplicate FROM meter.record(tenant => 'coach', endpoint => '/x', request_id => 'moved-1', occurred_at => :t);
INSERT INTO meter.events (tenant, endpoint, request_id, occurred_at) VALUES ('coach', '/x', 'moved-1', :t);
COPY meter.events (tenant, endpoint, request_id, occurred_at) FROM STDIN;
coach	/x	moved-1	2027-03-01 00:00:00+00
coach	/x	moved-2	2026-01-15 00:00:00+00
\.
SELECT request_id, tableoid::regclass, count(*) FROM meter.events WHERE request_id LIKE 'moved-%' GROUP BY 1, 2 ORDER BY 1;
-- every partition needs the request index: one without it is refused clearly
CREATE TABLE meter.events_2027_05 PARTITION OF meter.events FOR VALUES FROM ('2027-05-01+00') TO ('2027-06-01+00');
SELECT pm_err($$SELECT meter.record(tenant => 'coach', endpoint => '/x', request_id => 'no-index', occurred_at => '2027-05-02+00')$$);
-- nor does an index that leaves some keys out
CREATE INDEX events_2027_05_some ON meter.events_2027_05 USING hash (request_key) WHERE tenant = 'coach';
SELECT pm_err($$SELECT meter.record(tenant => 'coach', endpoint => '/x', request_id => 'no-index', occurred_at => '2027-05-02+00')$$);
-- a btree on every key serves as well as the hash index of create_partition
CREATE INDEX events_2027_05_request ON meter.events_2027_05 (request_key) WHERE request_key IS NOT NULL;
SELECT duplicate FROM meter.record(tenant => 'coach', endpoint => '/x', request_id => 'btree-1', occurred_at => '2027-05-02+00');
SELECT duplicate FROM meter.record(tenant => 'coach', endpoint => '/x', request_id => 'btree-1', occurred_at => :t);
SELECT pg_get_indexdef('meter.events_2027_03_request'::regclass) ~ 'USING hash' AS hash_index;
-- a partition whose request index counts no entry is not probed, but any
-- writer's entry counts: one moved there with pg_meter's trigger off (as a
-- logical replica applies rows) is found by a retry all the same
SELECT meter.create_partition('2027-09-01+00');
SELECT duplicate FROM meter.record(tenant => 'coach', endpoint => '/x', request_id => 'replica-1', occurred_at => :t);
SET session_replication_role = replica;
UPDATE meter.events SET occurred_at = '2027-09-02+00' WHERE request_id = 'replica-1';
RESET session_replication_role;
SELECT duplicate FROM meter.record(tenant => 'coach', endpoint => '/x', request_id => 'replica-1', occurred_at => :t);
SELECT tableoid::regclass, count(*) FROM meter.events WHERE request_id = 'replica-1' GROUP BY 1;
DELETE FROM meter.events WHERE request_id = 'replica-1';
DROP TABLE meter.events_2027_09;
-- the request indexes a statement keeps open from row to row are closed
-- when it ends: the same transaction may then drop a partition, after an
-- INSERT of many rows and after a COPY
BEGIN;
INSERT INTO meter.events (tenant, endpoint, request_id, occurred_at)
SELECT 'coach', '/x', 'open-' || i, '2027-05-03+00' FROM generate_series(1, 3) i;
COPY meter.events (tenant, endpoint, request_id, occurred_at) FROM STDIN;
coach	/x	open-4	2027-05-03 00:00:00+00
coach	/x	open-1	2027-05-03 00:00:00+00
\.
SELECT count(*) AS open_events FROM meter.events WHERE request_id LIKE 'open-%';
DROP TABLE meter.events_2027_05;
COMMIT;
-- a PL/pgSQL expression calls meter.record outside any executor: what it
-- keeps open is closed before the next utility statement, so DDL on the
-- partitions runs in the same transaction
DO $$
DECLARE
    r meter.recorded;
BEGIN
    r := meter.record(tenant => 'coach', endpoint => '/x', request_id => 'expr-1', occurred_at => '2026-01-15+00');
    PERFORM meter.create_partition('2027-07-01+00');
    DROP TABLE meter.events_2027_07;
    r := meter.record(tenant => 'coach', endpoint => '/x', request_id => 'expr-1', occurred_at => '2027-03-05+00');
    RAISE NOTICE 'retry counted again: %', NOT r.duplicate;
END $$;
DELETE FROM meter.events WHERE request_id = 'expr-1';
-- a statement refused inside a savepoint after its first row was claimed
-- (the second row's usage cannot be read) rolls back alone; the statements
-- after it are still deduplicated against every partition
DO $$
BEGIN
    FOR i IN 1..3 LOOP
        BEGIN
            INSERT INTO meter.events (tenant, provider, model, endpoint, usage, request_id, occurred_at)
            VALUES ('coach', 'openai', 'gpt-4o', '/x', '{"prompt_tokens": 1, "completion_tokens": 1}', 'sp-' || i, '2026-01-15+00'),
                   ('coach', 'openai', 'gpt-4o', '/x', CASE WHEN i = 2 THEN '{"prompt_tokens": "x"}' ELSE '{"prompt_tokens": 2, "completion_tokens": 1}' END::jsonb,
                    'sp-' || i || 'b', '2026-01-15+00');
        EXCEPTION WHEN others THEN
            RAISE NOTICE 'statement %: %', i, SQLERRM;
        END;
    END LOOP;
END $$;
INSERT INTO meter.events (tenant, endpoint, request_id, occurred_at)
VALUES ('coach', '/x', 'sp-1', '2027-03-04+00'), ('coach', '/x', 'sp-2', '2027-03-04+00'), ('coach', '/x', 'sp-3b', '2026-01-16+00');
SELECT request_id, tableoid::regclass FROM meter.events WHERE request_id LIKE 'sp-%' ORDER BY 1;
DELETE FROM meter.events WHERE request_id LIKE 'sp-%';

-- a column of the user's (or a trigger, a policy, a check) makes meter.record
-- go through the INSERT, so that the user's default applies; priced the same
ALTER TABLE meter.events ADD COLUMN app_version text DEFAULT 'v1';
SELECT cost, duplicate, priced FROM meter.record(tenant => 'cols', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"prompt_tokens": 1000, "completion_tokens": 200}', request_id => 'col-1', occurred_at => :t);
SELECT cost, duplicate FROM meter.record(tenant => 'cols', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"prompt_tokens": 1000, "completion_tokens": 200}', request_id => 'col-1', occurred_at => '2027-03-02+00');
SELECT app_version, input_tokens, output_tokens, request_key IS NOT NULL AS keyed FROM meter.events WHERE tenant = 'cols';
ALTER TABLE meter.events DROP COLUMN app_version;
-- and after the column is gone (a dropped column left behind), directly again
SELECT cost, duplicate FROM meter.record(tenant => 'cols', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"prompt_tokens": 1000, "completion_tokens": 200}', request_id => 'col-2', occurred_at => :t);
SELECT count(*) AS cols_events FROM meter.events WHERE tenant = 'cols';
-- the trigger prices a row in place when the executor hands it over as
-- values (an INSERT or COPY into a partition of the parent's columns), and
-- forms a new row otherwise: a partition made after a column was dropped
-- from the parent (its columns are numbered apart: the row is converted),
-- or another BEFORE INSERT trigger that reads the row after pg_meter's.
-- Every way gives the same priced, keyed, normalized row.
SELECT meter.create_partition('2027-06-10+00');
INSERT INTO meter.events (tenant, provider, model, usage, request_id, occurred_at)
VALUES ('shape', 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200}', 'sh-1', :t),
       ('shape', 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200}', 'sh-2', '2027-06-10+00'),
       ('shape', 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200}', 'sh-1', '2027-06-11+00'),
       -- already normalized: kept as given; the same names with a fraction
       -- or an exponent, or one meter more: normalized
       ('shape', 'openai', 'gpt-4o-mini', '{"output_tokens": 200, "input_tokens": 1000}', 'sh-5', :t),
       ('shape', 'openai', 'gpt-4o-mini', '{"input_tokens": 1000.0, "output_tokens": 2e2}', 'sh-6', :t),
       ('shape', 'openai', 'gpt-4o-mini', '{"input_tokens": 1000, "output_tokens": 200, "prompt_tokens_details": {"cached_tokens": 0}}', 'sh-7', :t)
RETURNING request_id, tableoid::regclass, cost, input_tokens, output_tokens, usage, request_key IS NOT NULL AS keyed, price_version IS NOT NULL AS versioned;
CREATE FUNCTION pg_temp.after_priced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.metadata := jsonb_build_object('seen_cost', NEW.cost);
    RETURN NEW;
END $$;
CREATE TRIGGER zz_after_priced BEFORE INSERT ON meter.events FOR EACH ROW EXECUTE FUNCTION pg_temp.after_priced();
INSERT INTO meter.events (tenant, provider, model, usage, request_id, occurred_at)
VALUES ('shape', 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200}', 'sh-3', :t),
       ('shape', 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200}', 'sh-4', '2027-06-10+00'),
       ('shape', 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200}', 'sh-2', :t)
RETURNING request_id, tableoid::regclass, cost, metadata, input_tokens, request_key IS NOT NULL AS keyed;
DROP TRIGGER zz_after_priced ON meter.events;
SELECT count(*) AS shape_events, sum(cost) AS shape_cost FROM meter.events WHERE tenant = 'shape';
DELETE FROM meter.events WHERE tenant = 'shape';
DROP TABLE meter.events_2027_06;
-- a statement that drops the other trigger after its first row still runs
-- it (the executor's copy of the trigger list) for the later rows: each of
-- them sees the priced row (before, pg_meter's trigger went by the
-- relcache, priced the second row in place and freed the tuple the dropped
-- trigger then read and the executor freed again: the server crashed)
CREATE TRIGGER zz_after_priced BEFORE INSERT ON meter.events FOR EACH ROW EXECUTE FUNCTION pg_temp.after_priced();
CREATE FUNCTION pg_temp.drop_after_priced(i int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF i = 2 THEN DROP TRIGGER zz_after_priced ON meter.events; END IF;
    RETURN 'shape';
END $$;
BEGIN;
INSERT INTO meter.events (tenant, provider, model, usage, occurred_at)
SELECT pg_temp.drop_after_priced(i), 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200}', :t
  FROM generate_series(1, 3) i
RETURNING tenant, cost, metadata, input_tokens, txid IS NOT NULL AS has_txid;
INSERT INTO meter.events (tenant, provider, model, usage, occurred_at)
VALUES ('shape', 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000, "completion_tokens": 200}', :t)
RETURNING cost, metadata;
ROLLBACK;
DROP TRIGGER zz_after_priced ON meter.events;  -- back with the rollback
-- a deferred unique constraint needs the executor's after-trigger queue: the
-- INSERT path, and the constraint holds at commit
ALTER TABLE meter.events_default ADD CONSTRAINT events_default_id_deferred UNIQUE (event_id) DEFERRABLE INITIALLY DEFERRED;
SELECT cost, duplicate FROM meter.record(tenant => 'cols', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"prompt_tokens": 1000, "completion_tokens": 200}', request_id => 'col-3', occurred_at => :t);
ALTER TABLE meter.events_default DROP CONSTRAINT events_default_id_deferred;
SELECT count(*) AS cols_events FROM meter.events WHERE tenant = 'cols';

-- many statements with request ids in one transaction hold one key lock at
-- its end, the last new key's (each row releases the previous key), and
-- warn about nothing
BEGIN;
SELECT count(meter.record(tenant => 'locks', endpoint => '/x', request_id => 'l-' || i, occurred_at => :t)) FROM generate_series(1, 3) i;
SELECT (meter.record(tenant => 'locks', endpoint => '/x', request_id => 'l-4', occurred_at => :t)).duplicate;
SELECT (meter.record(tenant => 'locks', endpoint => '/x', request_id => 'l-5', occurred_at => :t)).duplicate;
SAVEPOINT s1;
INSERT INTO meter.events (tenant, endpoint, request_id, occurred_at) VALUES ('locks', '/x', 'l-6', :t);
RELEASE SAVEPOINT s1;
SELECT (meter.record(tenant => 'locks', endpoint => '/x', request_id => 'l-1', occurred_at => :t)).duplicate AS l1_again;
SELECT (meter.record(tenant => 'locks', endpoint => '/x', request_id => 'l-7', occurred_at => :t)).duplicate;
SELECT count(*) AS key_locks FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 20557 AND pid = pg_backend_pid();
COMMIT;
SELECT count(*) AS locks_events FROM meter.events WHERE tenant = 'locks';

-- a txid given by anyone but the table's owner is replaced: the row is
-- priced and keyed like any other (only a restore keeps rows as they were)
CREATE ROLE pgm_events_app NOLOGIN;
GRANT INSERT, SELECT ON meter.events TO pgm_events_app;
GRANT USAGE ON SEQUENCE meter.event_id_seq TO pgm_events_app;
SET ROLE pgm_events_app;
INSERT INTO meter.events (tenant, provider, model, usage, cost, priced, request_id, occurred_at, txid)
VALUES ('app-role', 'openai', 'gpt-4o-mini', '{"prompt_tokens": 1000000, "completion_tokens": 0}', 0, true, 'ar-1', :t, 3);
SELECT (meter.record(tenant => 'app-role', endpoint => '/x', request_id => 'ar-1', occurred_at => :t)).duplicate AS ar_1_again;
RESET ROLE;
SELECT cost, priced, txid <> 3 AS txid_replaced, request_key IS NOT NULL AS keyed FROM meter.events WHERE tenant = 'app-role';
REVOKE ALL ON meter.events FROM pgm_events_app;
REVOKE ALL ON SEQUENCE meter.event_id_seq FROM pgm_events_app;
DROP ROLE pgm_events_app;

-- an event recorded after meter.rollup() in the same transaction would be
-- counted as rolled up by the watermark: refused
BEGIN;
SELECT meter.rollup() >= 0 AS rolled;
SELECT pm_err($$SELECT meter.record(tenant => 'coach', endpoint => '/x', occurred_at => '2026-01-15 12:00+00')$$);
SELECT pm_err($$INSERT INTO meter.events (tenant, endpoint) VALUES ('coach', '/x')$$);
ROLLBACK;

-- partitions are UTC months whatever the session's time zone
SET TimeZone = 'Europe/Berlin';
SELECT meter.create_partition('2027-10-15+00');
SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'events_2027_10';
SET TimeZone = 'UTC';
DROP TABLE meter.events_2027_10;

-- a column pg_meter writes, changed to another type, is refused clearly
ALTER TABLE meter.events ALTER COLUMN latency_ms TYPE bigint;
SELECT pm_err($$SELECT meter.record(tenant => 'coach', endpoint => '/x', occurred_at => '2026-01-15 12:00+00')$$);
ALTER TABLE meter.events ALTER COLUMN latency_ms TYPE integer;

-- bad input is refused with a clear error, naming the field
SELECT pm_err($$SELECT meter.record(tenant => 'coach', provider => 'openai', model => 'gpt-4o', usage => '{"prompt_tokens": -5, "completion_tokens": 1}')$$);
SELECT pm_err($$SELECT meter.record(tenant => 'coach', provider => 'openai', model => 'gpt-4o', usage => '[1]')$$);
SELECT pm_err($$SELECT meter.record(tenant => NULL, endpoint => '/x')$$);
SELECT pm_err($$SELECT meter.record(tenant => '', endpoint => '/x')$$);
SELECT pm_err($$SELECT meter.record(tenant => 'coach', endpoint => '/x', latency_ms => -1)$$);
SELECT pm_err($$SELECT meter.record_batch('{"tenant": "coach"}')$$);
SELECT pm_err($$INSERT INTO meter.events (tenant, provider, model, usage) VALUES ('coach', 'openai', 'gpt-4o', '{"prompt_tokens": 1.5, "completion_tokens": 1}')$$);
-- a label longer than 512 bytes would not fit the rollups' keys: refused
-- by every way in, naming the field; 512 bytes in each label all at once
-- still roll up
SELECT pm_err($$SELECT meter.record(tenant => 'coach', endpoint => repeat('e', 513))$$);
SELECT pm_err($$SELECT meter.record(tenant => repeat('t', 513))$$);
SELECT pm_err($$SELECT meter.record(tenant => 'coach', subject => repeat('s', 600))$$);
SELECT pm_err($$INSERT INTO meter.events (tenant, feature) VALUES ('coach', repeat('f', 513))$$);
SELECT pm_err($$INSERT INTO meter.events (tenant, session) VALUES ('coach', repeat('s', 513))$$);
SELECT pm_err($$INSERT INTO meter.events (tenant, provider, endpoint) VALUES ('coach', repeat('p', 513), '/x')$$);
SELECT pm_err($$SELECT meter.record_batch(('[{"tenant": "coach", "endpoint": "/x"}, {"tenant": "coach", "model": "' || repeat('m', 513) || '"}]')::jsonb)$$);
BEGIN;
SELECT (meter.record(tenant => 'long-' || repeat('t', 507), subject => repeat('s', 512), session => repeat('x', 512),
                     provider => repeat('p', 512), model => repeat('m', 512), endpoint => repeat('e', 512),
                     feature => repeat('f', 512), occurred_at => :t)).priced AS long_labels_priced;
SELECT meter.rollup() > 0 AS long_labels_rolled_up;
ROLLBACK;
-- an event at infinity belongs to no hour: refused
SELECT pm_err($$SELECT meter.record(tenant => 'coach', endpoint => '/x', occurred_at => 'infinity')$$);
SELECT pm_err($$INSERT INTO meter.events (tenant, endpoint, occurred_at) VALUES ('coach', '/x', '-infinity')$$);
-- record_batch takes the keys of meter.record and no other
SELECT pm_err($$SELECT meter.record_batch('[{"tenant": "coach", "endpoint": "/x"}, {"tenant": "coach", "modle": "gpt-4o"}]')$$);
-- a refused event leaves nothing behind, not even its request id
SELECT pm_err($$SELECT meter.record(tenant => 'coach', provider => 'openai', model => 'gpt-4o', usage => '{"prompt_tokens": "x"}', request_id => 'bad-1')$$);
SELECT duplicate AS bad_1_seen_before FROM meter.record(tenant => 'coach', provider => 'openai', model => 'gpt-4o',
    usage => '{"prompt_tokens": 1, "completion_tokens": 1}', request_id => 'bad-1', occurred_at => :t);
