#!/usr/bin/env bash
# quota.sh: quotas and rate limits against the seed-style peer, in one run,
# 8 clients, synchronous_commit on:
#  - a rate-limit check: meter.check vs SELECT 1 (the round trip, the
#    floor) and vs the peer's check_quota (a counter row read);
#  - one metered call: meter.reserve, then meter.record(..., reservation)
#    that settles it, vs the peer's check_quota, then track.
# 2,000 users (zipfian, as the peer's scripts), each on a plan with a rate
# of requests and one of input tokens a minute, plus a tenant-wide rate;
# the limits are high enough that nearly every request passes (a refusal is
# cheaper than a pass). Usage: bench/quota.sh   (after scripts/setup.sh;
# DURATION=15)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"
cd "$PGM_ROOT"
db=pg_meter_quota
duration=${DURATION:-15}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fresh_db "$db" peer
psql -X -q -d "$db" <<'SQL' >/dev/null
SELECT meter.create_partition(now());
SELECT meter.create_plan('app', 'standard', is_default => true);
SELECT meter.set_limit(tenant => 'app', plan => 'standard', meter => 'requests', per => '1 minute', max => 100000);
SELECT meter.set_limit(tenant => 'app', plan => 'standard', meter => 'input_tokens', per => '1 minute', max => 1000000000);
SELECT meter.set_limit(tenant => 'app', meter => 'requests', per => '1 second', max => 1000000, scope => 'tenant');
SELECT meter.assign_plan('app', 'user-' || i, 'standard') FROM generate_series(1, 2000) i;
-- the peer's quota rows exist for every user (its check inserts a missing one)
SELECT peer.check_quota('user-' || i) FROM generate_series(1, 2000) i;
SQL

# the floor of the check: a C function with meter.check's arguments that
# answers "allowed" in a meter.decision without reading anything
# (bench/floor/pg_meter_bench_floor.c), called the same way
make -s -C bench/floor install >/dev/null
psql -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE SCHEMA floor;
CREATE FUNCTION floor.check(tenant text, subject text, endpoint text DEFAULT NULL, session text DEFAULT NULL,
                            estimate jsonb DEFAULT NULL) RETURNS meter.decision
    LANGUAGE c VOLATILE AS '$libdir/pg_meter_bench_floor', 'floor_check';
SQL
cat > "$work/floor.pgbench" <<'EOF'
\set u random_zipfian(1, 2000, 1.1)
SELECT allowed FROM floor.check('app', 'user-' || (:u)::int);
EOF
cat > "$work/check.pgbench" <<'EOF'
\set u random_zipfian(1, 2000, 1.1)
SELECT allowed FROM meter.check('app', 'user-' || (:u)::int);
EOF
{ peer_sets; cat <<'EOF'
SELECT coalesce(reservation, 0) AS rid FROM meter.reserve('app', 'user-' || (:u)::int, endpoint => 'chat',
  estimate => jsonb_build_object('input_tokens', (:i)::int + 100)) \gset
SELECT event_id FROM meter.record(tenant => 'app', subject => 'user-' || (:u)::int, session => 'sess-' || (:u)::int, endpoint => 'chat',
  provider => (ARRAY['anthropic','google','google','openai','openai'])[(:m)::int],
  model => (ARRAY['claude-sonnet-4','gemini-2.5-flash','gemini-2.5-pro','gpt-4','gpt-4o-mini'])[(:m)::int],
  usage => jsonb_build_object('input_tokens', (:i)::int, 'output_tokens', (:o)::int), cached => (:c)::int = 0,
  latency_ms => (:ms)::int, success => (:c)::int <> 9, reservation => :rid);
EOF
} > "$work/reserve_record.pgbench"
run() { pgbench -n -M prepared -c 8 -j 2 -T "$duration" -f "$1" "$db" 2>&1 | grep -oE 'tps = [0-9.]+' | awk '{print $3}'; }
echo "== 8 clients, ${duration}s each"
one=$(run ../shared/peer/select1.pgbench)
peer_check=$(run ../shared/peer/check.pgbench)
check=$(run "$work/check.pgbench")
floor=$(run "$work/floor.pgbench")
peer_track=$(run ../shared/peer/track.pgbench)
rr=$(run "$work/reserve_record.pgbench")
passed=$(psql -X -At -d "$db" -c "SELECT count(*) FROM meter.events")
awk -v one="$one" -v pc="$peer_check" -v c="$check" -v pt="$peer_track" -v rr="$rr" -v f="$floor" 'BEGIN {
  printf "SELECT 1                          %8.0f tps\n", one
  printf "peer check_quota                  %8.0f tps\n", pc
  printf "meter.check                       %8.0f tps  = %.2fx SELECT 1, %.2fx peer check_quota\n", c, c / one, c / pc
  printf "floor: a check that reads nothing %8.0f tps  = %.2fx SELECT 1; meter.check = %.2fx it\n", f, f / one, c / f
  printf "peer check_quota + track          %8.0f calls/s\n", pt
  printf "meter.reserve + record (settle)   %8.0f calls/s  = %.2fx peer check + track\n", rr, rr / pt }'
echo "events recorded by the reserve + record run: $passed"

# the same statements in one backend, without the network: a PL/pgSQL loop
# runs each 200,000 times (a statement's executor is started each time)
echo "== one backend, microseconds a statement (PL/pgSQL loop of 200,000)"
for stmt in "SELECT true INTO x" \
            "SELECT allowed INTO x FROM floor.check('app', 'user-' || (1 + i % 2000))" \
            "SELECT allowed INTO x FROM meter.check('app', 'user-' || (1 + i % 2000))" \
            "SELECT (floor.check('app', 'user-' || (1 + i % 2000))).allowed INTO x" \
            "SELECT (meter.check('app', 'user-' || (1 + i % 2000))).allowed INTO x"; do
  ms=$(ms_of "DO \$\$ DECLARE x boolean; BEGIN FOR i IN 1..200000 LOOP $stmt; END LOOP; END \$\$")
  awk -v ms="$ms" -v s="$stmt" 'BEGIN { printf "%6.2f us  %s\n", ms * 1000 / 200000, s }'
done
