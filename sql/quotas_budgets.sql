-- Budgets: calendar windows in a time zone and cost limits, resting on
-- durable counters that every event's transaction writes; reserve, settle,
-- release; what a rollback, a savepoint and a retry count.
\set VERBOSITY default
SET TimeZone = 'UTC';
CREATE FUNCTION pm_b(d meter.decision) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s %s limit=%s %s per %s max=%s used=%s reserved=%s remaining=%s waits_for_reset=%s',
                  CASE WHEN d.allowed THEN 'ALLOW' ELSE 'DENY' END, d.status, d.limit_id, d.meter, d.per, d.max,
                  d.used, d.reserved, d.remaining,
                  CASE WHEN d.retry_after IS NULL THEN '-'
                       ELSE (d.retry_after BETWEEN extract(epoch FROM d.reset_at - now()) - 5
                                               AND extract(epoch FROM d.reset_at - now()) + 5)::text END)
$$;

-- windows start by arithmetic in the budget's time zone: a day of the
-- spring change in Berlin has 23 hours, a month in New York starts at 04:00 UTC
SELECT * FROM meter._budget_window('day', 'Europe/Berlin', NULL, '2026-03-29 12:00+00');
SELECT * FROM meter._budget_window('month', 'America/New_York', NULL, '2026-11-01 03:00+00');
SELECT * FROM meter._budget_window('week', 'UTC', NULL, '2026-11-26 10:00+00');
SELECT * FROM meter._budget_window('year', 'Asia/Kolkata', NULL, '2026-12-31 19:00+00');
SELECT * FROM meter._budget_window(NULL, NULL, interval '1 hour', '2026-11-26 10:59:59.999999+00');

SELECT meter.set_price('openai', 'gpt-b', '{"input_mtok": 2, "output_mtok": 8}');
SELECT meter.create_plan('globex', 'std', is_default => true);
-- events before the budget exists: set_limit counts those of the window
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u1', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 1000, "output_tokens": 1000}');
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u2', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 500, "output_tokens": 0}');
SELECT meter.set_limit(tenant => 'globex', plan => 'std', meter => 'cost', per => 'day', max => 0.05,
                       time_zone => 'Europe/Berlin') AS day_cost;
SELECT limit_id, meter, per, calendar, time_zone, max, budget_period FROM meter.limits WHERE tenant = 'globex';
SELECT pm_b(meter.check('globex', 'u1'));
SELECT pm_b(meter.check('globex', 'u2'));

-- a reservation holds its estimate until the record that names it commits
SELECT reservation AS r1 FROM meter.reserve('globex', 'u1', estimate => '{"cost": 0.02}') \gset
SELECT pm_b(meter.check('globex', 'u1'));
-- more than is left: refused until the day ends in Berlin
SELECT pm_b(meter.reserve('globex', 'u1', estimate => '{"cost": 0.03}'));
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u1', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 2000, "output_tokens": 1000}', reservation => :r1);
SELECT pm_b(meter.check('globex', 'u1'));
-- a release gives an estimate back; an unknown id finds nothing
SELECT reservation AS r2 FROM meter.reserve('globex', 'u1', estimate => '{"cost": 0.01}') \gset
SELECT pm_b(meter.check('globex', 'u1'));
SELECT meter.release(:r2) AS released, meter.release(:r2) AS again;
SELECT pm_b(meter.check('globex', 'u1'));

-- a rolled-back transaction counts nothing, a rolled-back savepoint
-- nothing of what it recorded
BEGIN;
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u2', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 1000, "output_tokens": 0}');
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u2', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 1000, "output_tokens": 0}');
ROLLBACK TO SAVEPOINT s;
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u2', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 1500, "output_tokens": 0}', request_id => 'q-1');
COMMIT;
SELECT pm_b(meter.check('globex', 'u2'));
-- a retry is counted once, by whichever way it comes in
INSERT INTO meter.events (tenant, subject, provider, model, usage, request_id)
VALUES ('globex', 'u2', 'openai', 'gpt-b', '{"input_tokens": 1500, "output_tokens": 0}', 'q-1'),
       ('globex', 'u2', 'openai', 'gpt-b', '{"input_tokens": 2500, "output_tokens": 0}', 'q-2');
SELECT pm_b(meter.check('globex', 'u2'));
-- the counters hold exactly what the committed events say
SELECT e.subject, sum(e.cost) AS events, (SELECT sum(u.amount) FROM meter.budget_usage u
                                           WHERE u.key = meter._budget_key('globex', 'subject', 'cost', NULL,
                                                                           'day@Europe/Berlin', e.subject)) AS counters
  FROM meter.events e WHERE e.tenant = 'globex' GROUP BY e.subject ORDER BY e.subject;

-- used up: even a request that estimates nothing is refused
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u2', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 20500, "output_tokens": 0}');
SELECT pm_b(meter.check('globex', 'u2'));

-- a calendar month of requests for the whole team, and a subject's own
-- larger daily budget overriding its plan's
SELECT meter.set_team('globex', 'u3', 'red'), meter.set_team('globex', 'u4', 'red');
SELECT meter.set_limit(tenant => 'globex', meter => 'requests', per => 'month', max => 2, scope => 'team') AS team_month;
SELECT meter.set_limit(tenant => 'globex', subject => 'u3', meter => 'cost', per => 'day', max => 1,
                       time_zone => 'Europe/Berlin') AS u3_day;
SELECT pm_b(meter.reserve('globex', 'u3'));
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u4', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 1, "output_tokens": 0}');
SELECT pm_b(meter.check('globex', 'u3'));
SELECT pm_b(meter.check('globex', 'u4'));

-- a cost limit over an interval counts fixed windows of it
SELECT meter.set_limit(tenant => 'globex', subject => 'u5', meter => 'cost', per => '1 hour', max => 0.001) AS u5_hour;
SELECT pm_b(meter.check('globex', 'u5', estimate => '{"cost": 0.001}'));
SELECT pm_b(meter.check('globex', 'u5', estimate => '{"cost": 0.0010001}'));

-- a transaction that counted for a budget cannot be prepared (its
-- counters are written as it commits)
BEGIN;
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u1', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 1, "output_tokens": 0}');
PREPARE TRANSACTION 'pm';
SELECT count(*) AS prepared FROM pg_prepared_xacts;

-- an application role that may write events counts them for budgets
-- (the counters are written as their owner) and reads them back
CREATE ROLE pm_budget_app;
GRANT INSERT ON meter.events TO pm_budget_app;
GRANT USAGE ON SEQUENCE meter.event_id_seq TO pm_budget_app;
SET ROLE pm_budget_app;
SELECT cost FROM meter.record(tenant => 'globex', subject => 'u6', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 3000, "output_tokens": 0}');
SELECT pm_b(meter.check('globex', 'u6'));
SELECT count(*) FROM meter.budget_usage;
RESET ROLE;

DELETE FROM meter.events WHERE tenant = 'globex';
REVOKE ALL ON meter.events FROM pm_budget_app;
REVOKE ALL ON SEQUENCE meter.event_id_seq FROM pm_budget_app;
DROP ROLE pm_budget_app;

-- meter.quota_status: every limit that holds a subject, with its live
-- state, each answered on its own as check with no estimate answers it:
-- a plan's rate, a team's and the whole tenant's (windows of 1000 hours
-- drain too slowly to move the figures while the file runs)
SELECT meter.create_plan('initech', 'gold');
SELECT meter.set_limit(tenant => 'initech', plan => 'gold', meter => 'requests', per => '1000 hours', max => 10) AS gold_requests;
SELECT meter.set_limit(tenant => 'initech', meter => 'input_tokens', per => '1000 hours', max => 1000, scope => 'team') AS team_tokens;
SELECT meter.set_limit(tenant => 'initech', meter => 'requests', per => '1000 hours', max => 100, scope => 'tenant') AS tenant_requests;
SELECT meter.assign_plan('initech', 'peter', 'gold'), meter.set_team('initech', 'peter', 'tps');
SELECT limit_id, meter, scope, per, budget_period, plan, max, used, reserved, remaining, allowed
  FROM meter.quota_status('initech', 'peter');
-- the limit check decides by answers the same
SELECT c.limit_id, (c.max, c.used, c.reserved, c.remaining, c.allowed) = (s.max, s.used, s.reserved, s.remaining, s.allowed) AS same_as_check
  FROM meter.check('initech', 'peter') c JOIN meter.quota_status('initech', 'peter') s USING (limit_id);
-- a reservation moves every limit it took from
SELECT reservation AS r5 FROM meter.reserve('initech', 'peter', estimate => '{"input_tokens": 300}') \gset
SELECT limit_id, meter, used, reserved, remaining, allowed FROM meter.quota_status('initech', 'peter');
-- a record that rolls back settles nothing: the team still holds 300
BEGIN;
SELECT cost FROM meter.record(tenant => 'initech', subject => 'peter', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 100, "output_tokens": 10}', reservation => :r5);
ROLLBACK;
SELECT limit_id, meter, used, reserved, remaining, allowed FROM meter.quota_status('initech', 'peter');
-- one that commits gives the team back what the estimate took beyond 100
SELECT cost FROM meter.record(tenant => 'initech', subject => 'peter', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 100, "output_tokens": 10}', reservation => :r5);
SELECT limit_id, meter, used, reserved, remaining, allowed FROM meter.quota_status('initech', 'peter');

-- a budget's row: used is what the committed events cost (USD at scale
-- 12, as check answers it), reset_at the end of its calendar day
SELECT meter.set_limit(tenant => 'initech', plan => 'gold', meter => 'cost', per => 'day', max => 1,
                       time_zone => 'UTC') AS gold_day_cost;
SELECT limit_id, meter, per, budget_period, plan, max, used, reserved, remaining, allowed,
       reset_at = date_trunc('day', now()) + interval '1 day' AS resets_at_midnight
  FROM meter.quota_status('initech', 'peter') WHERE meter = 'cost';
SELECT cost FROM meter.record(tenant => 'initech', subject => 'peter', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 1000, "output_tokens": 0}');
BEGIN;
SELECT cost FROM meter.record(tenant => 'initech', subject => 'peter', provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 400000, "output_tokens": 0}');
ROLLBACK;
SELECT s.limit_id, s.used, s.remaining, s.used = (SELECT sum(e.cost) FROM meter.events e WHERE e.tenant = 'initech') AS used_is_committed_cost
  FROM meter.quota_status('initech', 'peter') s WHERE s.meter = 'cost';
-- a cost estimate held by a reservation shows as reserved
SELECT reservation AS r6 FROM meter.reserve('initech', 'peter', estimate => '{"cost": 0.25}') \gset
SELECT limit_id, used, reserved, remaining, allowed FROM meter.quota_status('initech', 'peter') WHERE meter = 'cost';
SELECT meter.release(:r6) AS released;
-- a blocked subject still lists every limit; check answers blocked
SELECT meter.block('initech', 'peter', 'audit');
SELECT (meter.check('initech', 'peter')).status, (SELECT count(*) FROM meter.quota_status('initech', 'peter')) AS limits_listed;
SELECT meter.unblock('initech', 'peter');
DELETE FROM meter.events WHERE tenant = 'initech';
