# Budgets under real concurrency, crashes and restarts: many clients that
# reserve a cost estimate and record it in one transaction never spend more
# than a budget allows, and spend all of it; plain records without a
# reservation count all the same; the durable counters (meter.budget_usage)
# always equal the committed events; after SIGKILL and a restart the spent
# amount is exact, reservations and uncommitted events are gone; an expired
# reservation hands its estimate back; budget cells seeded from the counters
# while commits go on count every commit exactly once (doc/quotas.md).
# One transaction may count for more budget cells than a backend may hold
# LWLocks (its commit enters their stripes one at a time).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep);

my $node = PostgreSQL::Test::Cluster->new('budgets');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_meter'\nmax_connections = 60\n");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_meter;
    -- 5000 input tokens cost exactly 0.01 USD, 2500 exactly 0.005
    SELECT meter.set_price('openai', 'gpt-b', '{"input_mtok": 2, "output_mtok": 8}');
    CREATE TABLE decisions (tenant text, allowed boolean, status text, reservation bigint);
});

# Budgets count calendar days in a time zone. So that no day ends while the
# test runs, every budget counts days in the Etc/GMT zone where it is now
# noon (offsets from -11 to +12 hours all exist).
my $utc_hour = $node->safe_psql('postgres', q{SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int});
my $off = 12 - $utc_hour;
my $tz = $off == 0 ? 'Etc/GMT' : $off > 0 ? "Etc/GMT-$off" : 'Etc/GMT+' . (-$off);
ok($node->safe_psql('postgres', "SELECT extract(hour FROM now() AT TIME ZONE '$tz') BETWEEN 11 AND 13") eq 't',
   "budgets count days in $tz, where it is now about noon");

# used and reserved of the limit that decides a check (no estimate)
sub held {
    my ($tenant, $subject) = @_;
    return $node->safe_psql('postgres',
        "SELECT trim_scale(d.used) || ' ' || trim_scale(d.reserved) FROM meter.check('$tenant', '$subject') d");
}

# the cost of a tenant's committed events (all in today's window)
sub spent {
    my ($tenant, $where) = @_;
    $where //= 'true';
    return $node->safe_psql('postgres',
        "SELECT trim_scale(coalesce(sum(cost), 0)) FROM meter.events WHERE tenant = '$tenant' AND ($where)");
}

# what the durable counters of a limit hold, over all whom it counts for
sub counters {
    my ($limit_id) = @_;
    return $node->safe_psql('postgres', qq{
        SELECT trim_scale(coalesce(sum(u.amount), 0))
          FROM meter.limits l
          JOIN meter.budget_usage u
            ON u.ident = meter._budget_key(l.tenant, l.scope, l.meter, l.endpoint, l.budget_period, NULL)
         WHERE l.limit_id = $limit_id});
}

# a pgbench transaction: reserve 0.01 USD; if allowed, record a call that
# cost exactly that, settling the reservation; every decision is kept
sub reserve_script {
    my ($tenant, $subjects) = @_;
    return qq{\\set s random(1, $subjects)
BEGIN;
WITH d AS (SELECT * FROM meter.reserve('$tenant', 'r' || :s, estimate => '{"cost": 0.01}')),
     k AS (INSERT INTO decisions SELECT '$tenant', d.allowed, d.status, d.reservation FROM d)
SELECT coalesce(d.reservation, 0) AS res, CASE WHEN d.allowed THEN 1 ELSE 0 END AS ok FROM d \\gset
\\if :ok
SELECT 1 FROM meter.record(tenant => '$tenant', subject => 'r' || :s, provider => 'openai', model => 'gpt-b',
                           usage => '{"input_tokens": 5000, "output_tokens": 0}', reservation => :res);
\\endif
COMMIT;
};
}

# a tenant on a default plan with a tenant-wide budget of 0.50 USD a day;
# returns the budget's limit_id
sub half_dollar_budget {
    my ($tenant) = @_;
    $node->safe_psql('postgres', qq{
        SELECT meter.create_plan('$tenant', 'std', is_default => true);
        SELECT meter.set_limit(tenant => '$tenant', meter => 'cost', per => 'day', max => 0.50,
                               time_zone => '$tz', scope => 'tenant');
    });
    return $node->safe_psql('postgres', qq{SELECT limit_id FROM meter.limits WHERE tenant = '$tenant'});
}

# --- 1. never overshoot a cost budget, and spend all of it ----------------
my $b1 = half_dollar_budget('b1');
$node->pgbench('--no-vacuum --client=16 --jobs=4 --transactions=15', 0,
    [qr{number of transactions actually processed: 240/240}], [qr{^$}],
    'pgbench: 16 clients reserve 0.01 USD and record it, 240 times, against a budget of 0.50 USD',
    { '006_budgets_reserve' => reserve_script('b1', 20) });
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || count(*) FILTER (WHERE allowed) || ' '
                                         || string_agg(DISTINCT status, ',' ORDER BY status)
                                    FROM decisions WHERE tenant = 'b1'}),
   '240 50 allowed,limited', '240 decisions: exactly 50 allowed, every other one limited');
my $b1_spent = spent('b1');
ok($node->safe_psql('postgres', "SELECT $b1_spent <= 0.50") eq 't', "the committed events cost $b1_spent, not more than the budget of 0.50");
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || trim_scale(sum(cost)) FROM meter.events WHERE tenant = 'b1'}),
   '50 0.5', 'every admitted reservation was recorded: 50 events, 0.50 USD, the whole budget');
is(counters($b1), $b1_spent, 'the durable counters hold what the committed events cost');
is($node->safe_psql('postgres', qq{
       SELECT trim_scale(sum(u.amount)) FROM meter.budget_usage u
        WHERE u.key = meter._budget_key('b1', 'tenant', 'cost', NULL, 'day\@$tz', 'b1')}),
   '0.5', "the tenant's own counter (meter._budget_key(..., 'day\@$tz', 'b1')) holds 0.50");
is(held('b1', 'r1'), '0.5 0', 'meter.check: used 0.50, nothing reserved (every reservation settled)');
is($node->safe_psql('postgres', q{SELECT d.allowed || ' ' || d.status FROM meter.reserve('b1', 'r1', estimate => '{"cost": 0.000001}') d}),
   'false limited', 'a used-up budget refuses even a millionth of a dollar');

# --- 2. plain records beside reservations count all the same ---------------
my $b2 = half_dollar_budget('b2');
$node->pgbench('--no-vacuum --client=12 --jobs=4 --transactions=25', 0,
    [qr{number of transactions actually processed: 300/300}], [qr{^$}],
    'pgbench: 12 clients, half the transactions reserve and record, half record without a reservation',
    {
        '006_budgets_mixed_reserve@1' => reserve_script('b2', 10),
        # 0.005 USD, and 1234 input + 567 output tokens = 0.007004 USD
        '006_budgets_mixed_plain@1' => q{\set s random(1, 10)
SELECT 1 FROM meter.record(tenant => 'b2', subject => 'p' || :s, provider => 'openai', model => 'gpt-b',
                           usage => '{"input_tokens": 2500, "output_tokens": 0}');
SELECT 1 FROM meter.record(tenant => 'b2', subject => 'p' || :s, provider => 'openai', model => 'gpt-b',
                           usage => '{"input_tokens": 1234, "output_tokens": 567}');
},
    });
my $b2_spent = spent('b2');
my $b2_admitted = $node->safe_psql('postgres', q{SELECT count(*) FROM decisions WHERE tenant = 'b2' AND allowed});
is($node->safe_psql('postgres', q{SELECT count(*) FROM meter.events WHERE tenant = 'b2' AND subject LIKE 'r%'}),
   $b2_admitted, "each of the $b2_admitted admitted reservations was recorded once");
ok($b2_admitted > 0 && $b2_admitted <= 50, "admitted reservations ($b2_admitted x 0.01) stay within the budget of 0.50");
ok($node->safe_psql('postgres', "SELECT $b2_spent > 0.50") eq 't',
   "the plain records were not held by the budget: $b2_spent spent in all");
is(counters($b2), $b2_spent, 'the durable counters hold every committed event, with or without a reservation');
is(held('b2', 'p1'), "$b2_spent 0", 'meter.check: used is what the events cost, nothing reserved');

# --- 3. a crash loses nothing that committed, keeps nothing that did not ---
$node->safe_psql('postgres', qq{
    SELECT meter.create_plan('b3', 'std', is_default => true);
    SELECT meter.set_limit(tenant => 'b3', plan => 'std', meter => 'cost', per => 'day', max => 1000,
                           time_zone => '$tz');
    -- a check answers for the limit with the smallest share left: the
    -- subject's, for a subject with events; for z, with a subject budget of
    -- its own so large that it never has less left, the tenant's
    SELECT meter.set_limit(tenant => 'b3', meter => 'cost', per => 'day', max => 1000000000,
                           time_zone => '$tz', scope => 'tenant');
    SELECT meter.set_limit(tenant => 'b3', subject => 'z', meter => 'cost', per => 'day', max => 1000000000000,
                           time_zone => '$tz');
    SELECT count(meter.record(tenant => 'b3', subject => 'a', provider => 'openai', model => 'gpt-b',
                              usage => jsonb_build_object('input_tokens', 1000 * i, 'output_tokens', 7 * i)))
      FROM generate_series(1, 10) i;
});
my ($b3_subject, $b3_tenant) = split /\n/, $node->safe_psql('postgres', q{SELECT limit_id FROM meter.limits WHERE tenant = 'b3' AND subject IS NULL ORDER BY limit_id});
my $res3 = $node->safe_psql('postgres', q{SELECT reservation FROM meter.reserve('b3', 'a', estimate => '{"cost": 0.25}', ttl => '1 hour')});
like($res3, qr/^\d+$/, 'a reservation of 0.25 USD before the crash');
is(held('b3', 'a'), spent('b3') . ' 0.25', 'before the crash: used is what the events cost, 0.25 reserved');

# writers committing as fast as they can when the server is killed
my $stress = $node->basedir . '/006_budgets_crash.sql';
append_to_file($stress, q{\set s random(1, 50)
SELECT 1 FROM meter.record(tenant => 'b3', subject => 'w' || :s, provider => 'openai', model => 'gpt-b',
                           usage => jsonb_build_object('input_tokens', 1000 + :s, 'output_tokens', :s));
});
my ($pb_out, $pb_err) = ('', '');
my $writers = IPC::Run::start(
    [ 'pgbench', '--no-vacuum', '--client=8', '--jobs=4', '--time=30', '-f', $stress,
      '-h', $node->host, '-p', $node->port, 'postgres' ],
    '<', \undef, '>', \$pb_out, '2>', \$pb_err);
# and a transaction that recorded an event (settling the reservation) and a
# plain one, open when the server dies
my $bg = $node->background_psql('postgres');
$bg->query_safe('BEGIN');
$bg->query_safe(qq{SELECT meter.record(tenant => 'b3', subject => 'a', provider => 'openai', model => 'gpt-b',
                                       usage => '{"input_tokens": 100000, "output_tokens": 0}', reservation => $res3)});
$bg->query_safe(q{SELECT meter.record(tenant => 'b3', subject => 'a', provider => 'openai', model => 'gpt-b',
                                      usage => '{"input_tokens": 150000, "output_tokens": 0}', request_id => 'open-1')});
$node->poll_query_until('postgres', q{SELECT count(*) > 200 FROM meter.events WHERE tenant = 'b3' AND subject LIKE 'w%'})
    or die 'the writers record nothing';
my $pid = $node->{_pid};
$node->kill9;
eval { $bg->quit };
$writers->finish;
for (my $i = 0; $i < 300 && kill(0, $pid); $i++) { sleep 0.1; }
ok(!kill(0, $pid), 'the server was killed (SIGKILL) while 8 clients were committing');
$node->start;

my $b3_spent = spent('b3');
is($node->safe_psql('postgres', q{SELECT count(*) FROM meter.events WHERE tenant = 'b3' AND subject = 'a'}), '10',
   'the open transaction left no event');
is(counters($b3_tenant), $b3_spent, 'after the crash the counters of the tenant budget equal the committed events');
is(counters($b3_subject), $b3_spent, 'and the counters of the subject budget (summed over subjects)');
is($node->safe_psql('postgres', q{
       SELECT count(*) FROM (SELECT e.subject, sum(e.cost) AS events,
                                    (SELECT sum(u.amount) FROM meter.budget_usage u
                                      WHERE u.key = meter._budget_key('b3', 'subject', 'cost', NULL,
                                                                      (SELECT DISTINCT budget_period FROM meter.limits
                                                                        WHERE tenant = 'b3' AND scope = 'subject'),
                                                                      e.subject)) AS counters
                               FROM meter.events e WHERE e.tenant = 'b3' GROUP BY e.subject) x
        WHERE x.events IS DISTINCT FROM x.counters}),
   '0', 'each subject\'s counter equals its committed events');
is(held('b3', 'a'), spent('b3', q{subject = 'a'}) . ' 0',
   'meter.check after the restart: used exactly the committed events of the subject; the reservation is gone');
my $busiest = $node->safe_psql('postgres', q{SELECT subject FROM meter.events WHERE tenant = 'b3' AND subject LIKE 'w%'
                                                GROUP BY subject ORDER BY count(*) DESC, subject LIMIT 1});
is(held('b3', $busiest), spent('b3', "subject = '$busiest'") . ' 0', "the same for a subject of the writers ($busiest)");
is($node->safe_psql('postgres', "SELECT meter.release($res3)"), 'f', 'the reservation from before the crash cannot be released');
$node->safe_psql('postgres', qq{SELECT meter.record(tenant => 'b3', subject => 'a', provider => 'openai', model => 'gpt-b',
                                usage => '{"input_tokens": 5000, "output_tokens": 0}', reservation => $res3)});
is(held('b3', 'a'), spent('b3', q{subject = 'a'}) . ' 0',
   'a record naming the lost reservation is counted once, and reserves nothing back');
is(counters($b3_tenant), spent('b3'), 'and reaches the counters');
is($node->safe_psql('postgres', q{SELECT d.scope || ' ' || (d.used = (SELECT sum(cost) FROM meter.events WHERE tenant = 'b3'))
                                         || ' ' || d.reserved
                                    FROM meter.check('b3', 'z') d}),
   'tenant true 0', 'the tenant budget, seeded after the restart, holds the exact total of the tenant, nothing reserved');

# --- 4. an expired reservation hands its estimate back -----------------------
$node->safe_psql('postgres', qq{
    SELECT meter.set_limit(tenant => 'b4', subject => 'u', meter => 'cost', per => 'day', max => 0.10,
                           time_zone => '$tz');
});
my $res4 = $node->safe_psql('postgres', q{SELECT reservation FROM meter.reserve('b4', 'u', estimate => '{"cost": 0.06}', ttl => '1 second')});
like($res4, qr/^\d+$/, 'a reservation of 0.06 USD for 1 second');
is(held('b4', 'u'), '0 0.06', 'it holds 0.06');
is($node->safe_psql('postgres', q{SELECT d.allowed || ' ' || d.status FROM meter.reserve('b4', 'u', estimate => '{"cost": 0.06}') d}),
   'false limited', 'a second 0.06 does not fit beside it');
# a transaction that settles a reservation, still open when it expires
my $res4b = $node->safe_psql('postgres', q{SELECT reservation FROM meter.reserve('b4', 'u', estimate => '{"cost": 0.04}', ttl => '1 second')});
like($res4b, qr/^\d+$/, 'a second reservation, of 0.04 USD for 1 second (0.10 held in all)');
my $bg4 = $node->background_psql('postgres');
$bg4->query_safe('BEGIN');
$bg4->query_safe(qq{SELECT meter.record(tenant => 'b4', subject => 'u', provider => 'openai', model => 'gpt-b',
                                        usage => '{"input_tokens": 5000, "output_tokens": 0}', reservation => $res4b)});
sleep 2.5;
is(held('b4', 'u'), '0 0', 'after 2.5 s both have expired: the next check finds nothing reserved');
$bg4->query_safe('COMMIT');
$bg4->quit;
is(held('b4', 'u'), '0.01 0', 'the record settling the expired reservation commits: used 0.01, nothing given back twice');
$node->safe_psql('postgres', qq{SELECT meter.record(tenant => 'b4', subject => 'u', provider => 'openai', model => 'gpt-b',
                                usage => '{"input_tokens": 10000, "output_tokens": 0}', reservation => $res4)});
is(held('b4', 'u'), '0.03 0', 'a record naming the other expired reservation still counts');
is($node->safe_psql('postgres', "SELECT meter.release($res4) OR meter.release($res4b)"), 'f',
   'expired reservations cannot be released');
is($node->safe_psql('postgres', q{SELECT d.allowed || ' ' || trim_scale(d.remaining)
                                    FROM meter.reserve('b4', 'u', estimate => '{"cost": 0.07}') d}),
   'true 0', 'the whole rest of the budget (0.07) can be reserved again');
is(held('b4', 'u'), '0.03 0.07', 'and is held');

# --- 5. seeding the cells while commits go on --------------------------------
# 2000 subjects with a budget of their own (b5), and a tenant budget (b6);
# events recorded before the restart are in the counters the cells are
# seeded from after it
$node->safe_psql('postgres', qq{
    SELECT meter.create_plan('b5', 'std', is_default => true);
    SELECT meter.set_limit(tenant => 'b5', plan => 'std', meter => 'cost', per => 'day', max => 1000,
                           time_zone => '$tz');
    SELECT meter.create_plan('b6', 'std', is_default => true);
    SELECT meter.set_limit(tenant => 'b6', meter => 'cost', per => 'day', max => 100000,
                           time_zone => '$tz', scope => 'tenant');
});
# (in transactions of 100 events)
$node->safe_psql('postgres', join '', map { qq{
    SELECT count(meter.record(tenant => 'b' || (5 + i % 2), subject => 'u' || (i % 2000 + 1), provider => 'openai',
                              model => 'gpt-b', usage => jsonb_build_object('input_tokens', i, 'output_tokens', 3)))
      FROM generate_series($_ * 100 + 1, $_ * 100 + 100) i;} } 0 .. 29);
$node->restart;
my $rec = $node->basedir . '/006_budgets_seed.sql';
append_to_file($rec, q{\set s random(1, 2000)
\set n random(1, 100000)
SELECT 1 FROM meter.record(tenant => 'b5', subject => 'u' || :s, provider => 'openai', model => 'gpt-b',
                           usage => jsonb_build_object('input_tokens', :n, 'output_tokens', :s));
SELECT 1 FROM meter.record(tenant => 'b6', subject => 'u' || :s, provider => 'openai', model => 'gpt-b',
                           usage => jsonb_build_object('input_tokens', :n, 'output_tokens', 1));
});
($pb_out, $pb_err) = ('', '');
my $recorders = IPC::Run::start(
    [ 'pgbench', '--no-vacuum', '--client=10', '--jobs=4', '--time=5', '-f', $rec,
      '-h', $node->host, '-p', $node->port, 'postgres' ],
    '<', \undef, '>', \$pb_out, '2>', \$pb_err);
$node->poll_query_until('postgres', q{SELECT count(*) > 1600 FROM meter.events WHERE tenant = 'b5'})
    or die 'the recorders record nothing';
$node->pgbench('--no-vacuum --client=6 --jobs=3 --time=3', 0,
    [qr{number of transactions actually processed: [1-9]}], [qr{^$}],
    'pgbench: 6 clients check the 2000 subjects and the tenant while 10 others record (the cells are seeded under commits)',
    { '006_budgets_checks' => q{\set s random(1, 2000)
SELECT 1 FROM meter.check('b5', 'u' || :s);
SELECT 1 FROM meter.check('b6', 'u' || :s);
} });
$recorders->finish;
like($pb_out, qr{number of transactions actually processed: \d+}, 'the recorders ran to the end') or diag($pb_err);
my ($after_restart) = $pb_out =~ /number of transactions actually processed: (\d+)/;
note("recorders: $after_restart transactions after the restart");
is($node->safe_psql('postgres', q{
       SELECT count(*) || ' ' || count(*) FILTER (WHERE d.used IS DISTINCT FROM coalesce(e.cost, 0))
         FROM generate_series(1, 2000) i
         LEFT JOIN (SELECT subject, sum(cost) AS cost FROM meter.events WHERE tenant = 'b5' GROUP BY subject) e
                ON e.subject = 'u' || i,
              LATERAL meter.check('b5', 'u' || i) d}),
   '2000 0', 'each of the 2000 subject budgets holds exactly what its committed events cost');
is($node->safe_psql('postgres', q{SELECT d.used = (SELECT sum(cost) FROM meter.events WHERE tenant = 'b6')
                                    FROM meter.check('b6', 'u1') d}),
   't', 'the tenant budget holds exactly what all its committed events cost');
my $b5 = $node->safe_psql('postgres', q{SELECT limit_id FROM meter.limits WHERE tenant = 'b5'});
my $b6 = $node->safe_psql('postgres', q{SELECT limit_id FROM meter.limits WHERE tenant = 'b6'});
is(counters($b5) . ' ' . counters($b6), spent('b5') . ' ' . spent('b6'), 'and the counters equal the events');

# --- 6. one transaction counting for many budget keys ------------------------
# A commit enters the stripe of every budget cell it counts for (src/pg/
# quotas.cpp, enter_stripes); 3000 subjects in one transaction need nearly
# all of the 1024 stripes, far more than the 200 LWLocks a backend may hold
# at once, and every one of them is counted.
my ($ret, $out, $err) = $node->psql('postgres', q{
    SELECT count(meter.record(tenant => 'b5', subject => 'batch' || i, provider => 'openai', model => 'gpt-b',
                              usage => '{"input_tokens": 5000, "output_tokens": 0}'))
      FROM generate_series(1, 3000) i});
is($ret . ' ' . $err, '0 ', 'events of 3000 subjects with a budget each commit in one transaction');
is($node->safe_psql('postgres', q{
       SELECT count(*) FILTER (WHERE d.used = 0.01), count(*) FILTER (WHERE d.used <> 0.01)
         FROM generate_series(1, 3000) i, LATERAL meter.check('b5', 'batch' || i) d}),
   '3000|0', 'and each of their budgets holds exactly its event');

$node->stop;
done_testing();
