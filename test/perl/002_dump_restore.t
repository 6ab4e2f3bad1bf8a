# pg_dump keeps pg_meter's prices: catalog versions, custom prices and the
# version sequence survive a dump and restore into a new database, and the
# restored database prices every call exactly as the original did.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{PGM_ROOT} or die "PGM_ROOT is not set";
my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

my $catalog = slurp_file("$root/test/core/data/catalog.json");
$catalog =~ s/'/''/g;
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pg_meter');
$node->safe_psql('src', "SELECT meter.load_prices('$catalog')");
$node->safe_psql('src', q{SELECT meter.load_prices(jsonb_set('} . $catalog . q{'::jsonb, '{1,models,1,prices,input_mtok}', '5'), effective_from => '2026-06-01+00')});
$node->safe_psql('src', q{SELECT meter.set_price('replicate', 'flux-schnell', '{"per_image": 0.003}')});
# events in the default partition and in a month partition, some rolled up
$node->safe_psql('src', q{SELECT meter.create_partition('2026-01-15+00')});
$node->safe_psql('src', q{SELECT meter.record(tenant => 't', provider => 'openai', model => 'gpt-4o', usage => '{"input_tokens": 1000, "output_tokens": 10}', request_id => 'a', occurred_at => '2026-01-15 10:00+00')});
$node->safe_psql('src', q{SELECT meter.record(tenant => 't', provider => 'replicate', model => 'flux-schnell', usage => '{"images": 2}', request_id => 'b', occurred_at => '2025-06-01 10:00+00')});
$node->safe_psql('src', q{SELECT meter.rollup()});
$node->safe_psql('src', q{SELECT meter.record(tenant => 't', endpoint => '/health', request_id => 'c', occurred_at => '2026-01-15 11:00+00')});

my $q = q{SELECT string_agg(x, ' ' ORDER BY x) FROM (
            SELECT meter.cost('openai', 'gpt-4o', '{"input_tokens": 1000000, "output_tokens": 0}', at)::text AS x
              FROM unnest(ARRAY['2026-01-01+00', '2026-07-01+00']::timestamptz[]) AS at
            UNION ALL SELECT meter.cost('replicate', 'flux-schnell', '{"images": 7}')::text
            UNION ALL SELECT count(*)::text FROM meter.price_versions
            UNION ALL SELECT count(*)::text FROM meter.catalog_loads
            UNION ALL SELECT string_agg(key || ':' || requests || ':' || cost, ',') FROM meter.totals('t', '2025-01-01+00', '2027-01-01+00', 'model')
            UNION ALL SELECT count(*)::text FROM meter.rollup_hourly
            UNION ALL SELECT count(request_key)::text FROM meter.events) s};
my $before = $node->safe_psql('src', $q);

my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump of a database with pg_meter');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('dst'), $dump ], 'pg_restore into a new database');

is($node->safe_psql('dst', $q), $before, 'the restored database has every price version, event, rollup and request id, and prices the same');
# a retry of a request recorded before the dump is still a duplicate
is($node->safe_psql('dst', q{SELECT (meter.record(tenant => 't', provider => 'openai', model => 'gpt-4o', usage => '{"input_tokens": 1, "output_tokens": 1}', request_id => 'a')).duplicate}),
   't', 'idempotency survives the dump');

# new versions continue after the restored ones (the sequence was dumped)
my $max = $node->safe_psql('dst', 'SELECT max(version) FROM meter.price_versions');
my $next = $node->safe_psql('dst', q{SELECT meter.set_price('x', 'y', '{"input_mtok": 1}')});
cmp_ok($next, '>', $max, 'a price set after the restore gets a new version number');

$node->stop;
done_testing();
