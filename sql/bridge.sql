-- The C++/PostgreSQL error bridge: every failure inside C++ reaches SQL as
-- an ereport with a real SQLSTATE, and C++ destructors run before it.
\set VERBOSITY default

SELECT meter._bridge_selftest('ok');
SELECT pm_err($$SELECT meter._bridge_selftest('core')$$);       -- PM001 with detail and hint
SELECT pm_err($$SELECT meter._bridge_selftest('bad_alloc')$$);  -- 53200
SELECT pm_err($$SELECT meter._bridge_selftest('std')$$);        -- XX000
SELECT pm_err($$SELECT meter._bridge_selftest('overflow')$$);   -- 22003
SELECT pm_err($$SELECT meter._bridge_selftest('unknown')$$);    -- XX000
SELECT pm_err($$SELECT meter._bridge_selftest('pg')$$);         -- the PostgreSQL error, as it was: 22P02
-- every C++ object was destroyed before each error left C++
SELECT meter._bridge_selftest('destroyed');
-- the backend is still healthy after all of that
SELECT meter._bridge_selftest('ok');
