# pg_dump keeps pg_meter's prices: catalog versions, custom prices and the
# version sequence survive a dump and restore into a new database, and the
# restored database prices every call exactly as the original did; and the
# admin's configuration and observations (limits, blocks, budget counters,
# balances, alert rules and open alerts, the reprice audit) survive too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{PGM_ROOT} or die "PGM_ROOT is not set";
my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_meter'");  # limits' live cells
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
$node->safe_psql('src', q{SELECT meter.record(tenant => 't', subject => 'amy', provider => 'openai', model => 'gpt-4o', usage => '{"input_tokens": 1000, "output_tokens": 10}', request_id => 'a', occurred_at => '2026-01-15 10:00+00')});
$node->safe_psql('src', q{SELECT meter.record(tenant => 't', subject => 'bo', provider => 'replicate', model => 'flux-schnell', usage => '{"images": 2}', request_id => 'b', occurred_at => '2025-06-01 10:00+00')});
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
            UNION ALL SELECT string_agg(subject || ':' || to_char(month AT TIME ZONE 'UTC', 'YYYY-MM') || ':' || days
                                        || ':' || requests || ':' || cost, ',' ORDER BY subject)
                        FROM meter.subject_months
            UNION ALL SELECT 'subjects:' || unique_subjects FROM meter.summary('t', '2025-01-01+00', '2027-01-01+00')
            UNION ALL SELECT count(request_key)::text FROM meter.events) s};
my $before = $node->safe_psql('src', $q);
# (meter.subject_months is not dumped: restoring rollup_subject_daily fills its bits and sums)
like($before, qr/amy:2026-01:16384:1:[0-9.]+,bo:2025-06:1:1:[0-9.]+ .*subjects:2/, 'the subjects\' days and month sums before the dump');

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

# what the admin configured and what pg_meter observed survives too: plans,
# limits, subjects and blocks, budget counters, balances, alert rules and
# open alerts, the reprice audit; and the restored alerts stay open (an
# evaluation does not fire them again)
$node->safe_psql('src', q{SELECT meter.create_plan('t', 'pro')});
$node->safe_psql('src', q{SELECT meter.assign_plan('t', 'ann', 'pro')});
$node->safe_psql('src', q{SELECT meter.set_limit(tenant => 't', plan => 'pro', meter => 'cost', per => 'month', max => 50)});
$node->safe_psql('src', q{SELECT meter.block('t', 'bob', 'chargeback')});
$node->safe_psql('src', q{SELECT meter.record(tenant => 't', subject => 'ann', provider => 'openai', model => 'gpt-4o', usage => '{"input_tokens": 5000, "output_tokens": 50}', request_id => 'd')});
$node->safe_psql('src', q{SELECT meter.record(tenant => 't', provider => 'openai', model => 'gpt-unknown', usage => '{"input_tokens": 5, "output_tokens": 5}', request_id => 'e')});
$node->safe_psql('src', q{SELECT meter.record_balance('t', 'openai', 100.25, now() - interval '2 days')});
$node->safe_psql('src', q{SELECT meter.record_balance('t', 'openai', 99.5, now() - interval '1 day')});
$node->safe_psql('src', q{SELECT meter.set_alert('t', 'unpriced_model')});
$node->safe_psql('src', q{SELECT meter.set_alert('t', 'daily_cost_above', 1000)});
is($node->safe_psql('src', q{SELECT fired FROM meter.evaluate_alerts()}), '1', 'an alert fires before the dump');
$node->safe_psql('src', q{CALL meter.reprice(model => 'gpt-4o', since => '2026-01-01+00', until => '2026-02-01+00')});

my $state = q{SELECT string_agg(x, E'\n' ORDER BY x) FROM (
    SELECT 'plan ' || tenant || ' ' || plan AS x FROM meter.plans
    UNION ALL SELECT 'limit ' || tenant || ' ' || coalesce(plan, '-') || ' ' || meter || ' ' || max FROM meter.limits
    UNION ALL SELECT 'subject ' || tenant || ' ' || subject || ' ' || coalesce(plan, '-') || ' ' || coalesce(blocked_reason, '-')
      FROM meter.subjects
    UNION ALL SELECT 'budget ' || sum(amount) FROM meter.budget_usage
    UNION ALL SELECT 'balance ' || balance_id || ' ' || provider || ' ' || balance_usd FROM meter.balances
    UNION ALL SELECT 'rule ' || rule_id || ' ' || kind || ' ' || coalesce(threshold::text, '-') FROM meter.alert_rules
    UNION ALL SELECT 'alert ' || alert_id || ' ' || kind || ' ' || key || ' ' || (resolved_at IS NULL) FROM meter.alerts
    UNION ALL SELECT 'reprice ' || reprice_id || ' ' || events || ' ' || old_total || ' ' || new_total FROM meter.reprices) s};
my $state_before = $node->safe_psql('src', $state);
like($state_before, qr/balance .* 99\.5/, 'the state to compare has balances');
like($state_before, qr/alert \d+ unpriced_model openai\/gpt-unknown true/, 'and an open alert');

my $dump2 = $node->basedir . '/src2.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump2 ], 'pg_dump with limits, balances and alerts');
$node->safe_psql('postgres', 'CREATE DATABASE dst2');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('dst2'), $dump2 ], 'pg_restore of them');
is($node->safe_psql('dst2', $state), $state_before,
   'plans, limits, subjects and blocks, budget counters, balances, alert rules, alerts and the reprice audit are restored');
is($node->safe_psql('dst2', q{SELECT fired || ' ' || firing FROM meter.evaluate_alerts()}), '0 1',
   'the restored open alert is not fired again');
is($node->safe_psql('dst2', q{SELECT (meter.check('t', 'bob')).status}), 'blocked', 'the block holds after the restore');
is($node->safe_psql('dst2', q{SELECT used = (SELECT sum(cost) FROM meter.events WHERE subject = 'ann') FROM meter.quota_status('t', 'ann')}),
   't', "ann's cost budget fills from the restored counters: the events' cost");
cmp_ok($node->safe_psql('dst2', q{SELECT meter.record_balance('t', 'openai', 99, now())}), '>',
       $node->safe_psql('src', q{SELECT max(balance_id) FROM meter.balances}), 'balance ids continue after the restored ones');
cmp_ok($node->safe_psql('dst2', q{SELECT meter.set_alert('t', 'anomaly')}), '>',
       $node->safe_psql('src', q{SELECT max(rule_id) FROM meter.alert_rules}), 'alert rule ids continue after the restored ones');

$node->stop;
done_testing();
