-- The C++/PostgreSQL error bridge: every failure inside C++ reaches SQL as
-- an ereport with a real SQLSTATE, and C++ destructors run before it.
\set VERBOSITY default
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text; m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN s || ': ' || m || coalesce(' | detail: ' || nullif(d, ''), '') || coalesce(' | hint: ' || nullif(h, ''), '');
END $$;

SELECT meter._bridge_selftest('ok');
SELECT pg_temp.err($$SELECT meter._bridge_selftest('core')$$);       -- PM001 with detail and hint
SELECT pg_temp.err($$SELECT meter._bridge_selftest('bad_alloc')$$);  -- 53200
SELECT pg_temp.err($$SELECT meter._bridge_selftest('std')$$);        -- XX000
SELECT pg_temp.err($$SELECT meter._bridge_selftest('unknown')$$);    -- XX000
SELECT pg_temp.err($$SELECT meter._bridge_selftest('pg')$$);         -- the PostgreSQL error, as it was: 22P02
-- every C++ object was destroyed before each error left C++
SELECT meter._bridge_selftest('destroyed');
-- the backend is still healthy after all of that
SELECT meter._bridge_selftest('ok');
