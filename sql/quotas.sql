-- Quotas and rate limits: plans, limits, subjects, blocks; check, reserve,
-- release and the settlement by record; bad input refused with SQLSTATEs.
\set VERBOSITY default
SET TimeZone = 'UTC';
-- decisions print what a 429 needs; retry-after to the nearest 10 s (the
-- seconds the file takes to run would move it by one)
CREATE FUNCTION pm_d(d meter.decision) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s %s limit=%s %s/%s per %s max=%s used=%s remaining=%s retry_after=%s plan=%s%s',
                  CASE WHEN d.allowed THEN 'ALLOW' ELSE 'DENY' END, d.status, d.limit_id, d.meter, d.scope, d.per, d.max,
                  d.used, d.remaining, coalesce((round(d.retry_after / 10.0) * 10)::text, '-'), coalesce(d.plan, '-'),
                  coalesce(' reason=' || d.reason, ''))
$$;

-- configuration
SELECT meter.create_plan('acme', 'free', 'the free tier');
SELECT meter.create_plan('acme', 'pro');
SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '1 minute', max => 3) AS free_rpm;
SELECT meter.set_limit(tenant => 'acme', plan => 'pro', meter => 'requests', per => '1 minute', max => 100) AS pro_rpm;
-- the seed case: at most 2 a minute per session to the polling endpoint, for everyone
SELECT meter.set_limit(tenant => 'acme', meter => 'requests', per => '1 minute', max => 2, scope => 'session',
                       endpoint => '/poll') AS poll_limit;
-- setting the same limit again replaces its maximum and keeps its id
SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '60 seconds', max => 3) AS same_id;
SELECT limit_id, plan, subject, scope, endpoint, meter, per, max FROM meter.limits ORDER BY limit_id;
SELECT meter.assign_plan('acme', 'alice', 'free'), meter.assign_plan('acme', 'bob', 'pro');

-- a burst of the limit, then a refusal with the exact wait (60 s / 3)
SELECT pm_d(meter.reserve('acme', 'alice')) FROM generate_series(1, 4);
-- check takes nothing: it answers as if this one request went ahead
SELECT pm_d(meter.check('acme', 'alice'));
SELECT pm_d(meter.check('acme', 'bob'));
SELECT (meter.check('acme', 'alice')).reset_at - now() BETWEEN interval '59 s' AND interval '60 s' AS resets_within_a_minute;
-- a refusal makes no reservation; an allowed reserve does
SELECT (meter.reserve('acme', 'alice')).reservation IS NULL AS refused_no_id,
       (meter.reserve('acme', 'bob')).reservation > 0 AS allowed_has_id;

-- the polling endpoint, per session; other endpoints and sessions are apart
SELECT pm_d(meter.reserve('acme', 'bob', endpoint => '/poll', session => 's1')) FROM generate_series(1, 3);
SELECT pm_d(meter.reserve('acme', 'bob', endpoint => '/poll', session => 's2'));
SELECT pm_d(meter.reserve('acme', 'bob', endpoint => '/chat', session => 's1'));
-- a session limit does not apply to a request without a session
SELECT pm_d(meter.reserve('acme', 'bob', endpoint => '/poll'));

-- a subject's own limit overrides its plan's limit of the same meter and window
SELECT meter.set_limit(tenant => 'acme', subject => 'carol', meter => 'requests', per => '1 minute', max => 1) AS carol_rpm;
SELECT meter.assign_plan('acme', 'carol', 'free');
SELECT pm_d(meter.reserve('acme', 'carol')) FROM generate_series(1, 2);

-- a team shares one bucket
SELECT meter.set_limit(tenant => 'acme', plan => 'pro', meter => 'requests', per => '1 hour', max => 2, scope => 'team') AS team_rph;
SELECT meter.assign_plan('acme', 'dave', 'pro'), meter.set_team('acme', 'dave', 'red'), meter.set_team('acme', 'bob', 'red');
SELECT pm_d(meter.reserve('acme', 'dave'));
SELECT pm_d(meter.reserve('acme', 'bob'));
SELECT pm_d(meter.reserve('acme', 'dave'));
-- a subject in no team is not held to team limits
SELECT meter.assign_plan('acme', 'erin', 'pro');
SELECT pm_d(meter.reserve('acme', 'erin'));

-- blocks
SELECT meter.block('acme', 'erin', 'card declined');
SELECT pm_d(meter.check('acme', 'erin'));
SELECT pm_d(meter.reserve('acme', 'erin'));
SELECT meter.unblock('acme', 'erin'), meter.unblock('acme', 'erin');
SELECT pm_d(meter.check('acme', 'erin'));
-- blocking a subject never seen registers it
SELECT meter.block('acme', 'mallory', 'abuse');
SELECT pm_d(meter.check('acme', 'mallory'));

-- unknown subjects: an error, unless the tenant has a default plan
SELECT pm_err($$SELECT meter.check('acme', 'zoe')$$);
SELECT meter.create_plan('acme', 'guest', is_default => true);
SELECT meter.set_limit(tenant => 'acme', plan => 'guest', meter => 'requests', per => '1 day', max => 1) AS guest_rpd;
SELECT pm_d(meter.reserve('acme', 'zoe')) FROM generate_series(1, 2);
SELECT pm_d(meter.reserve('acme', 'yan'));  -- a bucket of its own
-- what check reads of a subject, as the admin reads see it: its own row
-- (blocked and why), the default plan for one never assigned or none (a
-- guest), no row for a tenant without a default plan or no tenant
SELECT 'mallory' AS who, * FROM meter._quota_subject('acme', 'mallory')
UNION ALL SELECT 'zoe', * FROM meter._quota_subject('acme', 'zoe')
UNION ALL SELECT 'guest', * FROM meter._quota_subject('acme', NULL)
UNION ALL SELECT 'other tenant', * FROM meter._quota_subject('nobody-here', 'zoe')
UNION ALL SELECT 'no tenant', * FROM meter._quota_subject(NULL, 'zoe');

-- token limits: the estimate is taken at reserve and corrected at commit
-- (a window of 1000 hours drains one token an hour: the figures stay put)
SELECT meter.set_limit(tenant => 'acme', subject => 'tina', meter => 'input_tokens', per => '1000 hours', max => 1000) AS tina_tokens;
SELECT pm_d(meter.reserve('acme', 'tina', estimate => '{"input_tokens": 600}'));
SELECT pm_d(meter.check('acme', 'tina', estimate => '{"input_tokens": 600}'));
SELECT (meter.reserve('acme', 'tina', estimate => '{"input_tokens": 300, "output_tokens": 50}')).reservation AS r \gset
SELECT pm_d(meter.check('acme', 'tina'));
-- the call used 100 input tokens, not 300: the commit gives 200 back
BEGIN;
SELECT duplicate FROM meter.record(tenant => 'acme', subject => 'tina', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"input_tokens": 100, "output_tokens": 20}', reservation => :r);
SELECT pm_d(meter.check('acme', 'tina'));  -- not yet: settled at commit
COMMIT;
SELECT pm_d(meter.check('acme', 'tina'));
-- settled once: releasing it now gives nothing back
SELECT meter.release(:r);
-- a rolled-back record settles nothing; the reservation can still be released
SELECT (meter.reserve('acme', 'tina', estimate => '{"input_tokens": 50}')).reservation AS r2 \gset
BEGIN;
SELECT duplicate FROM meter.record(tenant => 'acme', subject => 'tina', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"input_tokens": 10, "output_tokens": 1}', reservation => :r2);
ROLLBACK;
SELECT pm_d(meter.check('acme', 'tina'));
SELECT meter.release(:r2), meter.release(:r2);
SELECT pm_d(meter.check('acme', 'tina'));
-- a record in a subtransaction that rolls back settles nothing either
SELECT (meter.reserve('acme', 'tina', estimate => '{"input_tokens": 100}')).reservation AS r3 \gset
BEGIN;
SAVEPOINT a;
SELECT duplicate FROM meter.record(tenant => 'acme', subject => 'tina', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"input_tokens": 1, "output_tokens": 1}', reservation => :r3);
ROLLBACK TO a;
COMMIT;
SELECT meter.release(:r3);
-- more than the estimate is charged: later requests wait for it
SELECT (meter.reserve('acme', 'tina', estimate => '{"input_tokens": 10}')).reservation AS r4 \gset
SELECT duplicate FROM meter.record(tenant => 'acme', subject => 'tina', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"input_tokens": 1500, "output_tokens": 1}', reservation => :r4);
SELECT pm_d(meter.check('acme', 'tina'));
-- a record with an unknown reservation is still recorded
SELECT duplicate FROM meter.record(tenant => 'acme', provider => 'openai', model => 'gpt-4o-mini',
    usage => '{"input_tokens": 1, "output_tokens": 1}', reservation => 123456789);
SELECT meter.release(-1), meter.release(0), meter.release(987654321);
-- record_batch settles the reservation an event names, as meter.record
-- does; the batch again: both are duplicates, nothing settled twice
SELECT meter.set_limit(tenant => 'acme', subject => 'tara', meter => 'input_tokens', per => '1000 hours', max => 1000) AS tara_tokens;
SELECT (meter.reserve('acme', 'tara', estimate => '{"input_tokens": 40}')).reservation AS r5 \gset
SELECT pm_d(meter.check('acme', 'tara'));
\set batch '(SELECT jsonb_build_array(jsonb_build_object(''tenant'', ''acme'', ''subject'', ''tara'', ''provider'', ''openai'', ''model'', ''gpt-4o-mini'', ''usage'', ''{"input_tokens": 5, "output_tokens": 1}''::jsonb, ''reservation'', ' :r5 ', ''request_id'', ''rb-settle''), jsonb_build_object(''tenant'', ''acme'', ''subject'', ''tara'', ''provider'', ''openai'', ''model'', ''gpt-4o-mini'', ''usage'', ''{"input_tokens": 5, "output_tokens": 1}''::jsonb, ''request_id'', ''rb-plain'')))'
SELECT * FROM meter.record_batch(:batch);
SELECT pm_d(meter.check('acme', 'tara'));
SELECT meter.release(:r5) AS released_after_settle;
SELECT * FROM meter.record_batch(:batch);

-- a limit of 0 never allows, and no wait helps
SELECT meter.set_limit(tenant => 'acme', subject => 'nina', meter => 'requests', per => '1 second', max => 0) AS nina_zero;
SELECT pm_d(meter.check('acme', 'nina'));
SELECT meter.drop_limit((SELECT limit_id FROM meter.limits WHERE subject = 'nina')), meter.drop_limit(999999);
SELECT pm_d(meter.check('acme', 'nina'));

-- bad input
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'calls', per => '1 minute', max => 1)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => 'fortnightly', max => 1)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '1 month', max => 1)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '-1 minute', max => 1)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '20 years', max => 1)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => 'day', max => 1, time_zone => 'Mars/Olympus')$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '1 hour', max => 1, time_zone => 'UTC')$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'cost', per => 'day', max => 0.0000000000001)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '1 minute', max => 1.5)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '1 minute', max => -1)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', subject => 'alice', meter => 'requests', per => '1 minute', max => 1)$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => 'acme', plan => 'free', meter => 'requests', per => '1 minute', max => 1, scope => 'planet')$$);
SELECT pm_err($$SELECT meter.set_limit(tenant => NULL, plan => 'free', meter => 'requests', per => '1 minute', max => 1)$$);
SELECT pm_err($$SELECT meter.assign_plan('acme', 'alice', 'platinum')$$);
SELECT pm_err($$SELECT meter.block('acme', 'alice', NULL)$$);
SELECT pm_err($$SELECT meter.check(NULL, 'alice')$$);
SELECT pm_err($$SELECT meter.check('acme', NULL)$$);
SELECT pm_err($$SELECT meter.check('acme', 'alice', estimate => '[1]')$$);
SELECT pm_err($$SELECT meter.check('acme', 'alice', estimate => '{"tokens": 5}')$$);
SELECT pm_err($$SELECT meter.check('acme', 'alice', estimate => '{"cost": -0.01}')$$);
SELECT pm_err($$SELECT meter.check('acme', 'alice', estimate => '{"cost": 0.0000000000001}')$$);
SELECT pm_err($$SELECT meter.check('acme', 'alice', estimate => '{"input_tokens": -5}')$$);
SELECT pm_err($$SELECT meter.check('acme', 'alice', estimate => '{"input_tokens": 2.5}')$$);
SELECT pm_err($$SELECT meter.check('acme', 'alice', estimate => '{"input_tokens": "5"}')$$);
SELECT pm_err($$SELECT meter.reserve('acme', 'alice', ttl => interval '0')$$);
SELECT pm_err($$SELECT meter.reserve('acme', 'alice', ttl => interval '8 days')$$);
SELECT pm_err($$SELECT meter.release(NULL)$$);

-- changes reach decisions at once (every backend drops its copy at commit)
SELECT pm_d(meter.check('acme', 'alice'));
SELECT meter.assign_plan('acme', 'alice', 'pro');
SELECT pm_d(meter.check('acme', 'alice'));
SELECT current_setting('pg_meter.quota_failure') AS failure_mode;
-- meter.quota_status lists every limit that holds a request, in the order
-- of their ids, each answered on its own as check answers it: dave's team
-- is used up (the limit check decides by), his plan's rate and the
-- polling endpoint's session limit still pass (the figures of a rate of
-- 100 a minute drain while the file runs: left out)
SELECT pm_d(meter.check('acme', 'dave', endpoint => '/poll', session => 's9'));
SELECT limit_id, meter, scope, per, budget_period, plan, max, allowed,
       CASE WHEN max < 100 THEN used END AS used, reserved, CASE WHEN max < 100 THEN remaining END AS remaining
  FROM meter.quota_status('acme', 'dave', endpoint => '/poll', session => 's9');
-- without an endpoint and a session, the session limit does not hold him
SELECT limit_id, scope FROM meter.quota_status('acme', 'dave');
-- a blocked subject still lists its limits (check answers blocked)
SELECT pm_d(meter.check('acme', 'mallory', endpoint => '/poll', session => 'm1'));
SELECT limit_id, meter, scope, plan, max, used, reserved, remaining, allowed,
       reset_at BETWEEN now() + interval '30 s' AND clock_timestamp() + interval '30 s' AS resets_in_30s
  FROM meter.quota_status('acme', 'mallory', endpoint => '/poll', session => 'm1');
-- errors are check's: NULL tenant or subject 22004, a subject not known 42704
SELECT pm_err($$SELECT * FROM meter.quota_status(NULL, 'alice')$$);
SELECT pm_err($$SELECT * FROM meter.quota_status('acme', NULL)$$);
SELECT pm_err($$SELECT * FROM meter.quota_status('initrode', 'zoe')$$);
SELECT pm_err($$SELECT meter.check('initrode', 'zoe')$$);

-- the events recorded here are not the later files' business
DELETE FROM meter.events WHERE tenant = 'acme';
