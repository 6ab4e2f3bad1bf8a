#!/usr/bin/env bash
# cost_profile.sh: where meter.cost's time goes. Run bench/cost.sh first (it
# builds the database this reads).
#
# Usage: bench/cost_profile.sh   (N=200000 calls, REPS=5; PERF=0 skips perf)
#
# 1. The same N calls priced from three forms of the same usage, in one
#    backend, microseconds per call over the scan (median of REPS):
#      raw        the workload's objects as the providers' APIs return them
#      minimal    only the members that are priced (what bench/cost.sh's
#                 workload held before 2026-11-24)
#      normalized pg_meter's normalized form (meter.normalize_usage of raw)
#    and, for scale, a trivial C function on the same jsonb (usage ? 'x':
#    detoast and call overhead only).
# 2. Per model, raw objects: meter.cost time over the same filtered scan.
# 3. With perf installed: a sampled profile of meter.cost over one million
#    raw calls (call graphs from DWARF), the share of each step of meter_cost.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"  # median
cd "$PGM_ROOT"
db=${BENCH_DB:-pg_meter_bench}
n=${N:-200000}
reps=${REPS:-5}
q() { psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 "$@"; }
# ms_of SQL: the statement's wall and backend CPU milliseconds, one backend,
# after a first meter.cost has compiled the session's catalog
ms_of() {
    psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 <<SQL | awk '/^cpu /{c[++n] = $2} /^Time: /{w = $2} END {printf "%s %.3f\n", w, (c[2] - c[1]) / 1e6}'
SET max_parallel_workers_per_gather = 0;
SELECT meter.cost('openai', 'gpt-4o', '{"input_tokens": 1}') AS warm, pg_backend_pid() AS pid \\gset
\\setenv BPID :pid
\\! echo cpu \$(cut -d' ' -f1 /proc/\$BPID/schedstat)
\\timing on
$1;
\\timing off
\\! echo cpu \$(cut -d' ' -f1 /proc/\$BPID/schedstat)
SQL
}
q -c "SELECT 1 FROM bench_workload LIMIT 1" >/dev/null 2>&1 || { echo "run bench/cost.sh first (no bench_workload in $db)"; exit 1; }

echo "== cost_profile.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $n calls, load average $(cut -d' ' -f1-3 /proc/loadavg)"
q <<SQL
DROP TABLE IF EXISTS profile_raw, profile_min, profile_norm;
CREATE UNLOGGED TABLE profile_raw AS SELECT * FROM bench_workload WHERE i <= $n ORDER BY i;
CREATE UNLOGGED TABLE profile_min AS
SELECT i, provider, model, at,
       CASE WHEN usage ? 'prompt_tokens' THEN
                jsonb_build_object('prompt_tokens', usage->'prompt_tokens', 'completion_tokens', usage->'completion_tokens')
                || CASE WHEN usage ? 'prompt_tokens_details'
                        THEN jsonb_build_object('prompt_tokens_details', jsonb_build_object('cached_tokens', usage->'prompt_tokens_details'->'cached_tokens'))
                        ELSE '{}' END
            WHEN usage ? 'promptTokenCount' THEN usage - 'totalTokenCount' - 'promptTokensDetails' - 'cacheTokensDetails'
            ELSE usage - 'cache_creation' - 'service_tier' END AS usage
  FROM profile_raw;
CREATE UNLOGGED TABLE profile_norm AS
SELECT i, provider, model, at, meter.normalize_usage(provider, usage) AS usage FROM profile_raw;
VACUUM ANALYZE profile_raw;
VACUUM ANALYZE profile_min;
VACUUM ANALYZE profile_norm;
SQL
same=$(q -c "SELECT (SELECT sum(meter.cost(provider, model, usage, at)) FROM profile_raw) = (SELECT sum(meter.cost(provider, model, usage, at)) FROM profile_min)
                AND (SELECT sum(meter.cost(provider, model, usage, at)) FROM profile_raw) = (SELECT sum(meter.cost(provider, model, usage, at)) FROM profile_norm)")
echo "the three forms price to the same total: $same"
q -F' ' -c "SELECT 'average usage JSON, bytes: raw', round(avg(length(r.usage::text))), 'minimal', round(avg(length(m.usage::text))), 'normalized', round(avg(length(z.usage::text)))
              FROM profile_raw r JOIN profile_min m USING (i) JOIN profile_norm z USING (i)"
echo "normalized example: $(q -c "SELECT usage FROM profile_norm WHERE model = 'gpt-4o' LIMIT 1")"

echo
echo "== us per call over the scan (one backend, median of $reps)"
for t in profile_raw profile_min profile_norm; do
    sc=(); co=(); tr=()
    for r in $(seq 1 "$reps"); do
        sc+=("$(ms_of "SELECT sum(length(provider) + length(model)), count(usage), max(at) FROM $t")")
        tr+=("$(ms_of "SELECT sum(length(provider) + length(model)), count(usage ? 'x'), max(at) FROM $t")")
        co+=("$(ms_of "SELECT sum(meter.cost(provider, model, usage, at)) FROM $t")")
    done
    col() { local k=$1; shift; printf '%s\n' "$@" | awk -v k="$k" '{print $k}' | median; }
    awk -v t="$t" -v s="$(col 1 "${sc[@]}")" -v x="$(col 1 "${tr[@]}")" -v c="$(col 1 "${co[@]}")" \
        -v s2="$(col 2 "${sc[@]}")" -v x2="$(col 2 "${tr[@]}")" -v c2="$(col 2 "${co[@]}")" -v n="$n" 'BEGIN {
        printf "%-13s scan %.3f us/row; usage ? x %+.3f; meter.cost %.3f us/call over the scan (%.3f with it); cpu: %.3f over the scan, %.3f with it\n",
               t, s * 1000 / n, (x - s) * 1000 / n, (c - s) * 1000 / n, c * 1000 / n, (c2 - s2) * 1000 / n, c2 * 1000 / n }'
done

echo
echo "== per model, raw objects: meter.cost us per call over the same filtered scan (median of $reps)"
q <<'SQL' 2>&1 | sed 's/^WARNING:  //'
SET max_parallel_workers_per_gather = 0;
DO $$
DECLARE
    r record; t0 timestamptz; k int; x numeric; cnt bigint;
    base float8[]; cost float8[];
BEGIN
    FOR r IN SELECT provider, model, count(*) AS n FROM profile_raw GROUP BY 1, 2 ORDER BY 1, 2 LOOP
        base := '{}'; cost := '{}';
        FOR k IN 1 .. 5 LOOP
            t0 := clock_timestamp();
            SELECT count(usage), sum(length(provider)) INTO cnt, x FROM profile_raw WHERE provider = r.provider AND model = r.model;
            base := base || extract(epoch FROM clock_timestamp() - t0)::float8;
            t0 := clock_timestamp();
            SELECT sum(meter.cost(provider, model, usage, at)) INTO x FROM profile_raw WHERE provider = r.provider AND model = r.model;
            cost := cost || extract(epoch FROM clock_timestamp() - t0)::float8;
        END LOOP;
        RAISE WARNING '%', format('%-11s %-21s %6s calls  %s us/call', r.provider, r.model, r.n,
            round((((SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY v) FROM unnest(cost) v)
                  - (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY v) FROM unnest(base) v)) * 1e6 / r.n)::numeric, 3));
    END LOOP;
END $$;
SQL

echo
echo "== per model, the PL/pgSQL reference (bench_ref.cost) on the first 1,000 calls of each model, us per call"
q <<'SQL' 2>&1 | sed 's/^WARNING:  //'
DO $$
DECLARE
    r record; t0 timestamptz; x numeric; el float8;
BEGIN
    PERFORM bench_ref.cost('openai', 'gpt-4o', '{"input_tokens": 1}');   -- compile the functions
    FOR r IN SELECT w.provider, w.model,
                    (SELECT m.position FROM meter.catalog_models m
                      WHERE m.provider_id = w.provider AND m.valid_to = 'infinity'
                        AND m.model_id = (meter.price(w.provider, w.model, '{"input_tokens": 1}')).model
                      ORDER BY m.position LIMIT 1) AS pos
               FROM (SELECT DISTINCT provider, model FROM profile_raw) w ORDER BY 1, 2 LOOP
        CREATE TEMP TABLE IF NOT EXISTS profile_ref_one (LIKE profile_raw);
        TRUNCATE profile_ref_one;
        INSERT INTO profile_ref_one SELECT * FROM profile_raw WHERE provider = r.provider AND model = r.model ORDER BY i LIMIT 1000;
        t0 := clock_timestamp();
        SELECT sum(bench_ref.cost(provider, model, usage, at)) INTO x FROM profile_ref_one;
        el := extract(epoch FROM clock_timestamp() - t0);
        RAISE WARNING '%', format('%-11s %-21s model at position %3s of its provider: %s us/call', r.provider, r.model, r.pos,
                                  round((el * 1e6 / 1000)::numeric, 1));
    END LOOP;
END $$;
SQL

if [[ "${PERF:-1}" != 0 ]] && command -v perf >/dev/null; then
    echo
    echo "== perf: meter.cost over one million raw calls, share of the backend's samples (children included)"
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    chmod 755 "$out"
    psql -X -q -At -d "$db" -c 'SET max_parallel_workers_per_gather = 0' -c "\\o $out/pid" -c 'SELECT pg_backend_pid()' -c '\o' \
          -c 'SELECT pg_sleep(1)' \
          -c 'SELECT sum(meter.cost(provider, model, usage, at)) FROM bench_workload' \
          -c 'SELECT sum(meter.cost(provider, model, usage, at)) FROM bench_workload' >/dev/null &
    bg=$!
    for _ in $(seq 50); do [[ -s "$out/pid" ]] && break; sleep 0.1; done
    pid=$(tr -dc 0-9 < "$out/pid")
    sleep 1.2
    # the first statement's first calls compile the catalog; sample 4 s after that
    { perf record -q -F 999 --call-graph dwarf,16384 -e cpu-clock -p "$pid" -o "$out/perf.data" -- sleep 4 || true; } >/dev/null 2>&1
    wait "$bg"
    perf report -i "$out/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' |
        awk '{c = $1; s = $2; $1 = $2 = $3 = ""; sub(/^ +/, ""); sub(/ +- +- *$/, ""); print c, s, $0}' |
        grep -E ' (meter_cost|\(anonymous namespace\)::read_call|pgm::pg::pm_flatten|numeric_int4_opt_error|numeric_scale|DirectFunctionCall1Coll|JsonbIteratorNext|pg_detoast_datum|\(anonymous namespace\)::run_price|pgm::pg::pm_unflatten|pgm::pg::build|pgm::Catalog::price|pgm::Catalog::quote|pgm::Catalog::resolve|pgm::Catalog::read_usage|pgm::shape_of|pgm::extract|pgm::follow|pgm::normalize_direct|pgm::quantity_of|pgm::Decimal::parse|pgm::compute_cost|pgm::Amount::to_money|pgm::Amount::add_scaled|pgm::json::Value::~Value|int64_div_fast_to_numeric|malloc|_int_free|operator new|heap_getnextslot|ExecInterpExpr|ExecAgg)$' |
        awk 'BEGIN {printf "%9s %9s  %s\n", "children", "self", "symbol"} {printf "%9s %9s  %s\n", $1, $2, $3 " " $4 " " $5}'
fi
