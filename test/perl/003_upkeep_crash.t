# Crash safety of the upkeep: writers, the rollup job and backfills run
# together while the server is killed (SIGKILL) at random moments, several
# times. After every restart meter.verify finds the rollups equal to the
# committed events they cover (no uncommitted event in a rollup, none
# counted twice), every event a writer saw committed is in the log exactly
# once, and after a last rollup the rollups hold every committed event.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upkeep_crash');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_meter'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_meter');
$node->safe_psql('postgres', q{SELECT meter.set_price('iso', 'm', '{"input_mtok": 3, "output_mtok": 15}')});
$node->safe_psql('postgres', q{SELECT meter.create_partition('2026-01-01')});

my $dir = PostgreSQL::Test::Utils::tempdir();
my $range = q{'2026-01-15+00', '2026-01-18+00'};
my @verify = ('postgres', "SELECT count(*) FROM meter.verify($range)");

# writer W of round R: autocommit records, each printing its request id
# once the server has acknowledged its commit
sub writer_script {
    my ($w, $r) = @_;
    my $f = "$dir/w$w-r$r.sql";
    open(my $fh, '>', $f) or die;
    for my $i (1 .. 20000) {
        my $id = "w$w-r$r-$i";
        my $minute = ($w * 7919 + $r * 104729 + $i * 31) % 4320;
        print $fh "SELECT '$id' FROM meter.record(tenant => 't', subject => 'u" . ($i % 17) . "', provider => 'iso', model => 'm', "
          . "usage => '{\"input_tokens\": " . (100 + $i % 900) . ", \"output_tokens\": " . ($i % 50) . "}', "
          . "latency_ms => " . (50 + $i % 2000) . ", request_id => '$id', "
          . "occurred_at => '2026-01-15+00'::timestamptz + interval '$minute minutes');\n";
    }
    close $fh;
    return $f;
}

sub psql_bg {
    my ($args, $out) = @_;
    return IPC::Run::start([ 'psql', '-X', '-At', '-q', '-d', $node->connstr('postgres'), @$args ],
        '<', \undef, '>', $out, '2>', \my $err);
}

my %acked;
my $rolled_at_crash = 0;
srand(20261124);
for my $round (1 .. 4) {
    my (@h, @out);
    for my $w (1 .. 3) {
        my $out = '';
        push @out, \$out;
        push @h, psql_bg([ '-f', writer_script($w, $round) ], \$out);
    }
    # the rollup job, a pass every 0.2 s; and backfills of the range
    push @h, psql_bg([ '-c', q{CALL meter.run_job('rollup', for_ => '60 seconds', every => '0.2 seconds')} ], \my $j);
    my $bf = "$dir/bf.sql";
    open(my $fh, '>', $bf) or die;
    print $fh "CALL meter.backfill($range);\nSELECT pg_sleep(0.3);\n" for 1 .. 200;
    close $fh;
    push @h, psql_bg([ '-f', $bf ], \my $b);

    select(undef, undef, undef, 1.5 + rand(2.5));
    my $pid = $node->{_pid};
    $node->kill9;
    for (my $i = 0; $i < 300 && kill(0, $pid); $i++) { select(undef, undef, undef, 0.1); }
    $_->finish for @h;
    for my $o (@out) {
        $acked{$_}++ for grep { /^w\d+-r\d+-\d+$/ } split /\n/, $$o;
    }
    $node->start;
    is($node->safe_psql(@verify), '0', "round $round: after the crash the rollups equal the committed events they cover");
    $rolled_at_crash = $node->safe_psql('postgres', 'SELECT coalesce(sum(requests), 0) FROM meter.rollup_hourly');
}

ok($rolled_at_crash > 0, "the rollup job had rolled up $rolled_at_crash events when it was killed");
my $n_acked = scalar keys %acked;
ok($n_acked > 1000, "writers saw $n_acked commits across the crashes");
# every acknowledged event is there, once
my $ids = join(',', map { "'$_'" } sort keys %acked);
is($node->safe_psql('postgres', "SELECT count(*) FROM meter.events WHERE request_id IN ($ids)"), $n_acked,
   'every event a writer saw committed survived');
is($node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT request_id) FROM meter.events'), '0',
   'no request is in the log twice');

$node->safe_psql('postgres', 'SELECT meter.rollup()');
is($node->safe_psql(@verify), '0', 'after a last rollup the rollups still equal the events');
is($node->safe_psql('postgres', 'SELECT (SELECT sum(requests) FROM meter.rollup_hourly) = (SELECT count(*) FROM meter.events)'),
   't', 'and they hold every committed event');
is($node->safe_psql('postgres', q{SELECT t.requests = (SELECT count(*) FROM meter.events) AND t.cost = (SELECT sum(cost) FROM meter.events)
                                    FROM meter.totals('t', '2026-01-15+00', '2026-01-18+00') t}),
   't', 'totals equal the raw log to the picodollar');
is($node->safe_psql('postgres', q{SELECT last_ok IS NOT FALSE FROM meter.jobs WHERE job = 'rollup'}), 't',
   'the rollup job did not record a failure');

$node->stop;
done_testing();
