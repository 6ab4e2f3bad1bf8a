# Rate limits under real concurrency and across restarts: many clients
# reserving at once never admit more than a limit allows (per subject and
# tenant-wide) nor fewer; when the rate buckets in shared memory are full,
# a request is refused (pg_meter.quota_failure = closed) or let through
# (open) with status 'unavailable'; a restart forgets rate state and
# reservations (doc/quotas.md); without pg_meter in
# shared_preload_libraries the extension installs but meter.check says why
# it cannot decide.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# decision fields a test compares: allowed status fail_mode
sub decision {
    my ($node, $call) = @_;
    return $node->safe_psql('postgres', "SELECT d.allowed || ' ' || d.status || ' ' || d.fail_mode FROM $call d");
}

# --- 1. never overshoot under concurrency ----------------------------------
my $node = PostgreSQL::Test::Cluster->new('quotas');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_meter'\nmax_connections = 40\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_meter');
# windows of 1000 days: nothing drains while the test runs
$node->safe_psql('postgres', q{
    SELECT meter.set_limit(tenant => 't', plan => 'p', meter => 'requests', per => '1000 days', max => 100);
    SELECT meter.set_limit(tenant => 't', meter => 'requests', per => '1000 days', max => 150, scope => 'tenant');
    SELECT meter.assign_plan('t', 'u' || i, 'p') FROM generate_series(1, 3) i;
    CREATE TABLE admitted (subject text);
});

$node->pgbench('--no-vacuum --client=16 --jobs=4 --transactions=60', 0,
    [qr{number of transactions actually processed: 960/960}], [qr{^$}],
    'pgbench: 16 clients reserve 960 times for 3 subjects',
    { '005_quotas_three' => q{\set s random(1, 3)
INSERT INTO admitted SELECT 'u' || :s WHERE (meter.reserve('t', 'u' || :s)).allowed;
} });
is($node->safe_psql('postgres', 'SELECT count(*) FROM admitted'), '150',
   'the tenant-wide limit admits exactly 150 of 960 concurrent requests');
my $per = $node->safe_psql('postgres', q{SELECT string_agg(subject || '=' || n, ' ' ORDER BY subject)
    FROM (SELECT subject, count(*) n FROM admitted GROUP BY subject) s});
my $over = $node->safe_psql('postgres', q{SELECT count(*) FROM (SELECT 1 FROM admitted GROUP BY subject HAVING count(*) > 100) s});
is($over, '0', "no subject is admitted more than its 100 ($per)");
is(decision($node, q{meter.check('t', 'u1')}), 'false limited closed', 'afterwards a check is refused');

# only a subject limit: one subject, 320 concurrent requests, exactly 100 in
$node->safe_psql('postgres', q{
    SELECT meter.set_limit(tenant => 't2', plan => 'p', meter => 'requests', per => '1000 days', max => 100);
    SELECT meter.assign_plan('t2', 'solo', 'p');
    TRUNCATE admitted;
});
$node->pgbench('--no-vacuum --client=16 --jobs=4 --transactions=20', 0,
    [qr{number of transactions actually processed: 320/320}], [qr{^$}],
    'pgbench: 16 clients reserve 320 times for one subject',
    { '005_quotas_one' => q{INSERT INTO admitted SELECT 'solo' WHERE (meter.reserve('t2', 'solo')).allowed;
} });
is($node->safe_psql('postgres', 'SELECT count(*) FROM admitted'), '100',
   'a subject limit of 100 admits exactly 100 of 320 concurrent requests');
$node->stop;

# --- 2. fail closed / fail open when the buckets cannot be held ----------
my $small = PostgreSQL::Test::Cluster->new('quotas_small');
$small->init;
$small->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_meter'\npg_meter.rate_cells = 64\n");
$small->start;
$small->safe_psql('postgres', q{
    CREATE EXTENSION pg_meter;
    SELECT meter.create_plan('t', 'guest', is_default => true);
    SELECT meter.set_limit(tenant => 't', plan => 'guest', meter => 'requests', per => '1000 days', max => 1);
});
is($small->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE d.allowed) || ' ' || string_agg(DISTINCT d.status, ',')
                                     FROM generate_series(1, 64) i, LATERAL meter.reserve('t', 'x' || i) d}),
   '64 allowed', '64 distinct subjects fill the 64 slots, each allowed');
is(decision($small, q{meter.reserve('t', 'x65')}), 'false unavailable closed',
   'the 65th distinct subject: unavailable, refused (fail closed by default)');
is($small->safe_psql('postgres', q{SELECT d.reservation IS NULL AND d.reason LIKE '%pg_meter.rate_cells%' FROM meter.reserve('t', 'x66') d}),
   't', 'no reservation, and the reason names pg_meter.rate_cells');
is(decision($small, q{meter.reserve('t', 'x1')}), 'false limited closed', 'a subject with a bucket is still limited');

$small->safe_psql('postgres', q{ALTER SYSTEM SET pg_meter.quota_failure = 'open'});
$small->reload;
$small->poll_query_until('postgres', q{SELECT current_setting('pg_meter.quota_failure') = 'open'})
    or die 'pg_meter.quota_failure did not become open';
is(decision($small, q{meter.reserve('t', 'x67')}), 'true unavailable open',
   'with quota_failure = open, the same request is let through, still marked unavailable');
is(decision($small, q{meter.reserve('t', 'x1')}), 'false limited open',
   'fail open does not lift a limit whose bucket is held');
$small->stop;

# --- 3. a restart forgets rate state and reservations -------------------------
my $rs = PostgreSQL::Test::Cluster->new('quotas_restart');
$rs->init;
$rs->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_meter'\n");
$rs->start;
$rs->safe_psql('postgres', q{
    CREATE EXTENSION pg_meter;
    SELECT meter.set_limit(tenant => 't', subject => 'a', meter => 'requests', per => '1000 days', max => 1);
    SELECT meter.set_limit(tenant => 't', subject => 'b', meter => 'requests', per => '1000 days', max => 1);
});
my $r1 = $rs->safe_psql('postgres', q{SELECT reservation FROM meter.reserve('t', 'a')});
my $r2 = $rs->safe_psql('postgres', q{SELECT reservation FROM meter.reserve('t', 'b')});
like("$r1 $r2", qr/^\d+ \d+$/, 'two reservations before the restart');
is(decision($rs, q{meter.reserve('t', 'a')}), 'false limited closed', 'the limit is exhausted');
$rs->restart;
is($rs->safe_psql('postgres', "SELECT meter.release($r1)"), 'f',
   'after the restart, a reservation made before it is gone: release returns false');
my ($ok_after, $r3) = $rs->safe_psql('postgres', q{SELECT d.allowed || ' ' || d.status || ' ' || d.fail_mode || ' ' || coalesce(d.reservation, 0) FROM meter.reserve('t', 'a') d}) =~ /^(.*) (\d+)$/;
is($ok_after, 'true allowed closed', 'after the restart the exhausted limit allows again (rate state starts empty)');
is($rs->safe_psql('postgres', "SELECT meter.release($r1) OR meter.release($r2)"), 'f',
   'and ids from before the restart still name nothing once new reservations are made')
    or diag("reservation ids before the restart: $r1 $r2; after it: $r3");
is(decision($rs, q{meter.reserve('t', 'a')}), 'false limited closed',
   'the post-restart reservation still holds its bucket');
$rs->stop;

# --- 4. without shared_preload_libraries ----------------------------------
my $plain = PostgreSQL::Test::Cluster->new('quotas_plain');
$plain->init;
$plain->start;
# (psql, not safe_psql: a failure here is a failed test, not the end of the file)
my ($out, $err) = ('', '');
my $ret = $plain->psql('postgres', 'CREATE EXTENSION pg_meter', stdout => \$out, stderr => \$err, on_error_stop => 1);
is($ret, 0, 'CREATE EXTENSION pg_meter works without preloading') or diag($err);
$ret = $plain->psql('postgres', "\\set VERBOSITY verbose\nSELECT meter.check('t', 'u')",
    stdout => \$out, stderr => \$err, on_error_stop => 0);
like($err, qr/ERROR:\s+55000: .*shared_preload_libraries/, 'with SQLSTATE 55000 and a message naming shared_preload_libraries');
$plain->psql('postgres', q{
    CREATE FUNCTION pg_temp.state(q text) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$;
    SELECT pg_temp.state($$SELECT meter.reserve('t', 'u')$$) || ' ' || pg_temp.state($$SELECT meter.release(1)$$)},
    stdout => \$out, stderr => \$err, on_error_stop => 1);
is($out, '55000 55000', 'meter.reserve and meter.release fail the same way (55000)');
$plain->stop;

done_testing();
