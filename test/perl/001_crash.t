# Durability: a loaded catalog, user prices, recorded events and rollups
# survive a crash (SIGKILL of the postmaster) and a restart; prices are the
# same to the picodollar, every committed event counts exactly once (in the
# rollups and in totals), request ids still deduplicate, and whatever was in
# flight at the crash leaves nothing behind.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{PGM_ROOT} or die "PGM_ROOT is not set";
my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_meter'\n");
$node->start;

my $catalog = slurp_file("$root/test/core/data/catalog.json");
$catalog =~ s/'/''/g;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_meter');
$node->safe_psql('postgres', "SELECT meter.load_prices('$catalog')");
$node->safe_psql('postgres', q{SELECT meter.set_price('replicate', 'flux-schnell', '{"per_image": 0.003}')});

my $q = q{SELECT meter.cost('anthropic', 'claude-sonnet-4-6', '{"input_tokens": 100, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 50, "output_tokens": 300}', '2026-01-15+00')
          || ' ' || meter.cost('replicate', 'flux-schnell', '{"images": 7}')
          || ' ' || (SELECT count(*) FROM meter.price_versions)};
my $before = $node->safe_psql('postgres', $q);
is($before, '0.0052875 0.021 10', 'prices before the crash');

# committed events, some rolled up
$node->safe_psql('postgres', q{SELECT count(meter.record(tenant => 't', provider => 'replicate', model => 'flux-schnell',
    usage => '{"images": 1}', request_id => 'c' || i, occurred_at => '2026-01-15 10:00+00'::timestamptz + i * interval '1 minute'))
    FROM generate_series(1, 50) i});
$node->safe_psql('postgres', 'SELECT meter.rollup()');
$node->safe_psql('postgres', q{SELECT count(meter.record(tenant => 't', provider => 'replicate', model => 'flux-schnell',
    usage => '{"images": 1}', request_id => 'd' || i, occurred_at => '2026-01-15 12:00+00')) FROM generate_series(1, 10) i});

# a price change and an event in flight when the server dies
my $bg = $node->background_psql('postgres');
$bg->query_safe('BEGIN');
$bg->query_safe(q{SELECT meter.set_price('replicate', 'flux-schnell', '{"per_image": 99}')});
$bg->query_safe(q{SELECT meter.record(tenant => 't', provider => 'replicate', model => 'flux-schnell', usage => '{"images": 1}', request_id => 'x1', occurred_at => '2026-01-15 12:00+00')});

my $pid = $node->{_pid};
$node->kill9;
eval { $bg->quit };
# wait for the killed postmaster to be gone before starting again
for (my $i = 0; $i < 300 && kill(0, $pid); $i++) { select(undef, undef, undef, 0.1); }
ok(!kill(0, $pid), 'the server was killed');
$node->start;

my $after = $node->safe_psql('postgres', $q);
is($after, $before, 'committed prices survive the crash exactly; the uncommitted one is gone');

# every committed event once, the in-flight one not at all, totals exact
is($node->safe_psql('postgres', q{SELECT count(*) || ' ' || (sum(cost) = 0.18) FROM meter.events WHERE tenant = 't'}), '60 true',
   'committed events survive the crash; the in-flight one is gone');
is($node->safe_psql('postgres', q{SELECT (meter.record(tenant => 't', provider => 'replicate', model => 'flux-schnell', usage => '{"images": 1}', request_id => 'c7')).duplicate
                                   || ' ' || (meter.record(tenant => 't', provider => 'replicate', model => 'flux-schnell', usage => '{"images": 1}', request_id => 'x1', occurred_at => '2026-01-15 12:00+00')).duplicate}),
   'true false', 'a retry of a committed request is a duplicate; the lost one records');
$node->safe_psql('postgres', 'SELECT meter.rollup()');
is($node->safe_psql('postgres', q{SELECT requests || ' ' || cost FROM meter.totals('t', '2026-01-15+00', '2026-01-16+00')}),
   '61 0.183', 'after a rollup past the crash, totals count every committed event once');
is($node->safe_psql('postgres', q{SELECT sum(requests) FROM meter.rollup_hourly WHERE tenant = 't'}), '61',
   'the rollups hold each committed event exactly once');

# and the catalog still takes new versions after recovery
$node->safe_psql('postgres', q{SELECT meter.set_price('replicate', 'flux-schnell', '{"per_image": 0.004}')});
is($node->safe_psql('postgres', q{SELECT meter.cost('replicate', 'flux-schnell', '{"images": 7}')}), '0.028',
   'a price set after recovery is used at once');

$node->stop;
done_testing();
