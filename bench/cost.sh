#!/usr/bin/env bash
# cost.sh: meter.cost over one million calls in one statement, against the
# same pricing in PL/pgSQL (bench/plpgsql_reference.sql) measured in the
# same run; and the time to load the whole genai-prices catalog.
# Usage: bench/cost.sh   (after scripts/setup.sh; uses its own database)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$PGM_ROOT"
db=pg_meter_bench
rows=${ROWS:-1000000}
ref_rows=${REF_ROWS:-20000}
reps=${REPS:-5}
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
psql -X -q -d "$db" -c "SET client_min_messages = warning; CREATE EXTENSION pg_meter" >/dev/null
node scripts/catalog/genai-catalog.mjs > "$PGM_RUN/bench-catalog.json"

# median of a list of numbers
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# ms_of SQL: run it in a fresh session with \timing, print the milliseconds of the last statement
ms_of() { psql -X -q -d "$db" -v ON_ERROR_STOP=1 -c '\timing on' -c "$1" | grep -oE 'Time: [0-9.]+' | tail -1 | awk '{print $2}'; }

echo "== catalog load (genai-prices, $(node -e 'const c=require(process.argv[1]);console.log(c.reduce((a,p)=>a+p.models.length,0))' "$PGM_RUN/bench-catalog.json") models)"
loads=()
for r in $(seq 1 3); do
    # each load is a new catalog version that takes effect at its own time
    t=$(psql -X -q -d "$db" -v ON_ERROR_STOP=1 -v f="$PGM_RUN/bench-catalog.json" <<'SQL' | grep -oE 'Time: [0-9.]+' | awk '{print $2}'
\set catalog `cat :f`
\timing on
SELECT models FROM meter.load_prices(:'catalog'::jsonb);
SQL
)
    loads+=("$t")
done
load_ms=$(printf '%s\n' "${loads[@]}" | median)
echo "load_prices: ${loads[*]} ms -> median $load_ms ms (first load: every row new; later loads compare and keep)"
first=$(psql -X -q -d "$db" -c '\timing on' -c "SELECT meter.cost('openai', 'gpt-4o', '{\"input_tokens\": 1, \"output_tokens\": 1}')" \
             -c "SELECT meter.cost('openai', 'gpt-4o', '{\"input_tokens\": 1, \"output_tokens\": 1}')" | grep -oE 'Time: [0-9.]+' | awk '{print $2}' | paste -sd' ')
echo "first call in a new session (compiles the catalog) vs second call: $first ms"

echo "== workload: $rows calls"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 -v rows="$rows" -f bench/workload.sql >/dev/null
psql -X -q -d "$db" -v ON_ERROR_STOP=1 -f bench/plpgsql_reference.sql >/dev/null
check=$(psql -X -q -At -d "$db" -c "SELECT count(*) FILTER (WHERE meter.cost(provider, model, usage, at) = bench_ref.cost(provider, model, usage, at)) || ' of ' || count(*)
                                        FROM bench_workload WHERE i <= 2000")
echo "PL/pgSQL reference agrees with meter.cost on $check sample calls"

scan=(); cost=(); ref=()
for r in $(seq 1 "$reps"); do
    scan+=("$(ms_of "SELECT sum(length(provider) + length(model)), count(usage) FROM bench_workload")")
    cost+=("$(ms_of "SELECT sum(meter.cost(provider, model, usage, at)) FROM bench_workload")")
done
for r in $(seq 1 3); do
    ref+=("$(ms_of "SELECT sum(bench_ref.cost(provider, model, usage, at)) FROM bench_workload WHERE i <= $ref_rows")")
done
scan_ms=$(printf '%s\n' "${scan[@]}" | median)
cost_ms=$(printf '%s\n' "${cost[@]}" | median)
ref_ms=$(printf '%s\n' "${ref[@]}" | median)
awk -v s="$scan_ms" -v c="$cost_ms" -v r="$ref_ms" -v n="$rows" -v rn="$ref_rows" 'BEGIN {
    printf "scan alone:          %8.1f ms  (%.3f us/row)\n", s, s * 1000 / n
    printf "meter.cost:          %8.1f ms  (%.3f us/call, statement included; %.3f us/call over the scan)\n", c, c * 1000 / n, (c - s) * 1000 / n
    printf "PL/pgSQL reference:  %8.1f ms for %d calls (%.2f us/call)\n", r, rn, r * 1000 / rn
    printf "ratio PL/pgSQL / meter.cost per call: %.1fx\n", (r / rn) / (c / n)
}'
