# Durability of prices: a loaded catalog and user prices survive a crash
# (SIGKILL of the postmaster) and a restart, and price the same calls to the
# same picodollar afterwards; a load that was in flight at the crash leaves
# nothing behind.
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

# a load in flight when the server dies
my $bg = $node->background_psql('postgres');
$bg->query_safe('BEGIN');
$bg->query_safe(q{SELECT meter.set_price('replicate', 'flux-schnell', '{"per_image": 99}')});

my $pid = $node->{_pid};
$node->kill9;
eval { $bg->quit };
# wait for the killed postmaster to be gone before starting again
for (my $i = 0; $i < 300 && kill(0, $pid); $i++) { select(undef, undef, undef, 0.1); }
ok(!kill(0, $pid), 'the server was killed');
$node->start;

my $after = $node->safe_psql('postgres', $q);
is($after, $before, 'committed prices survive the crash exactly; the uncommitted one is gone');

# and the catalog still takes new versions after recovery
$node->safe_psql('postgres', q{SELECT meter.set_price('replicate', 'flux-schnell', '{"per_image": 0.004}')});
is($node->safe_psql('postgres', q{SELECT meter.cost('replicate', 'flux-schnell', '{"images": 7}')}), '0.028',
   'a price set after recovery is used at once');

$node->stop;
done_testing();
