# meter.schedule() in a cluster with pg_cron: it installs the named jobs,
# a second call (with another rollup schedule) leaves the same set, the
# scheduled rollup really runs and rolls events up, and meter.unschedule()
# removes them all.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('schedule');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_cron,pg_meter'\n"
    . "cron.database_name = 'postgres'\n"
    . "cron.host = '" . $node->host . "'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_meter');

my $jobs = q{SELECT string_agg(jobname || ' ' || schedule || ' ' || command, E'\n' ORDER BY jobname) FROM cron.job};
$node->safe_psql('postgres', 'SELECT meter.schedule()');
my $first = $node->safe_psql('postgres', $jobs);
is($first, join("\n",
    q{pg_meter_alerts * * * * * CALL meter.run_job('alerts')},
    q{pg_meter_expire 27 1 * * * CALL meter.run_job('expire')},
    q{pg_meter_partitions 7 0 * * * CALL meter.run_job('partitions')},
    q{pg_meter_price_unpriced */10 * * * * CALL meter.run_job('price_unpriced')},
    q{pg_meter_retention 17 1 * * * CALL meter.run_job('retention')},
    q{pg_meter_rollup * * * * * CALL meter.run_job('rollup')}), 'schedule installs the six named jobs');
$node->safe_psql('postgres', q{SELECT meter.schedule(rollup => '*/2 * * * *')});
$node->safe_psql('postgres', 'SELECT meter.schedule()');
is($node->safe_psql('postgres', $jobs), $first, 'calling it again replaces the jobs instead of adding more');
is($node->safe_psql('postgres', q{SELECT string_agg(job || '=' || schedule, ' ' ORDER BY job) FROM meter.job_status WHERE schedule IS NOT NULL}),
   'alerts=* * * * * expire=27 1 * * * partitions=7 0 * * * price_unpriced=*/10 * * * * retention=17 1 * * * rollup=* * * * *',
   'meter.job_status shows each job\'s schedule');

# events, then wait for pg_cron's next minute: the job rolls them up
$node->safe_psql('postgres', q{SELECT count(meter.record(tenant => 't', provider => 'x', model => '', occurred_at => now()))
                                 FROM generate_series(1, 25)});
my $rolled = 0;
for (my $i = 0; $i < 150 && $rolled != 25; $i++) {
    sleep 1;
    $rolled = $node->safe_psql('postgres', q{SELECT coalesce(sum(requests), 0) FROM meter.rollup_hourly});
}
is($rolled, '25', 'the scheduled rollup ran and rolled the events up');
like($node->safe_psql('postgres', q{SELECT runs || ' ' || (last_start IS NOT NULL) FROM meter.jobs WHERE job = 'rollup'}),
     qr/^\d+ true$/, 'its run is in meter.jobs');

is($node->safe_psql('postgres', 'SELECT meter.unschedule()'), '6', 'unschedule removes the six jobs');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0', 'and none is left');

$node->stop;
done_testing();
