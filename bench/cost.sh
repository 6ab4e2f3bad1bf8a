#!/usr/bin/env bash
# cost.sh: meter.cost over one million calls in one statement, against the
# same pricing in PL/pgSQL (bench/plpgsql_reference.sql) measured in the
# same run; the time to load the whole genai-prices catalog; and the time
# the first meter.cost of a session takes to compile the catalog.
#
# Usage: bench/cost.sh   (after scripts/setup.sh; works in its own database)
#   ROWS=1000000 REF_ROWS=20000 REPS=5 BENCH_DB=pg_meter_bench
#
# Per-call figures are taken with max_parallel_workers_per_gather = 0: one
# backend, so microseconds per call are CPU time per call and meter.cost and
# the PL/pgSQL reference are compared alike. The parallel figure (the
# server's default plan, three processes on this machine's two cores) is
# printed too, for what a user's query sees.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
source "$(dirname "$0")/../scripts/env.sh"
source "$(dirname "$0")/lib.sh"  # median
cd "$PGM_ROOT"
db=${BENCH_DB:-pg_meter_bench}
rows=${ROWS:-1000000}
ref_rows=${REF_ROWS:-20000}
reps=${REPS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

q() { psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 "$@"; }
# ms_of SQL: runs it in a new session, one backend (no parallel workers),
# with \timing; prints the milliseconds of the statement, wall clock and
# the backend's own CPU time (from /proc/PID/schedstat), which other work
# on the machine does not inflate. $warm runs first in the session: the
# first meter.cost of a session compiles the catalog (timed on its own
# below), and PL/pgSQL compiles a function at its first call.
warm=""
ms_of() {
    psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 <<SQL | awk '/^cpu /{c[++n] = $2} /^Time: /{w = $2} END {printf "%s %.3f\n", w, (c[2] - c[1]) / 1e6}'
SET max_parallel_workers_per_gather = 0;
SELECT pg_backend_pid() AS pid \\gset
$warm
\\setenv BPID :pid
\\! echo cpu \$(cut -d' ' -f1 /proc/\$BPID/schedstat)
\\timing on
$1;
\\timing off
\\! echo cpu \$(cut -d' ' -f1 /proc/\$BPID/schedstat)
SQL
}
ms_of_parallel() {
    psql -X -q -d "$db" -v ON_ERROR_STOP=1 -c "${warm:-SELECT 1}" -c '\timing on' -c "$1" | grep -oE 'Time: [0-9.]+' | tail -1 | awk '{print $2}'
}
# load_ms FILE: times one meter.load_prices of a catalog file (its own transaction)
load_ms() {
    psql -X -q -d "$db" -v ON_ERROR_STOP=1 -v f="$1" <<'SQL' | grep -oE 'Time: [0-9.]+' | awk '{print $2}'
\set catalog `cat :f`
\timing on
SELECT models FROM meter.load_prices(:'catalog'::jsonb);
SQL
}
# first_calls: in a new session, the first meter.cost (which compiles the
# catalog) and the second, in ms
first_calls() {
    local c="SELECT meter.cost('openai', 'gpt-4o', '{\"prompt_tokens\": 1000, \"completion_tokens\": 100}')"
    psql -X -q -d "$db" -c '\timing on' -c "$c" -c "$c" | grep -oE 'Time: [0-9.]+' | awk '{print $2}' | paste -sd' '
}
truncate_catalog() { q -c "TRUNCATE meter.catalog_models, meter.catalog_providers, meter.catalog_loads"; }

echo "== pg_meter bench/cost.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(psql -X -At -d postgres -c 'SHOW server_version')"
echo "pg_meter: commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src pg_meter--0.1.0.sql || echo ' + uncommitted changes'), library md5 $(md5sum "$(pg_config --pkglibdir)/pg_meter.so" | cut -c1-12)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
q -c "SET client_min_messages = warning; CREATE EXTENSION pg_meter" >/dev/null

# the catalog as scripts/load-prices reads it, and a copy in which every
# model differs (a new name), so that loading it closes and rewrites every row
node scripts/catalog/genai-catalog.mjs > "$tmp/catalog.json"
node -e 'const fs = require("fs"); const c = JSON.parse(fs.readFileSync(process.argv[1]));
         for (const p of c) for (const m of p.models) m.name = (m.name || m.id) + " (bench)";
         fs.writeFileSync(process.argv[2], JSON.stringify(c));' "$tmp/catalog.json" "$tmp/catalog-changed.json"
nmodels=$(node -e 'const c = require(process.argv[1]); console.log(c.reduce((a, p) => a + p.models.length, 0))' "$tmp/catalog.json")
nprov=$(node -e 'console.log(require(process.argv[1]).length)' "$tmp/catalog.json")

echo
echo "== catalog load: genai-prices, $nprov providers, $nmodels models ($(wc -c < "$tmp/catalog.json") bytes of JSON)"
first=(); same=(); changed=(); e2e=()
for r in 1 2 3; do
    truncate_catalog
    first+=("$(load_ms "$tmp/catalog.json")")
done
for r in 1 2 3; do same+=("$(load_ms "$tmp/catalog.json")"); done
for r in 1 2 3; do
    t0=$(date +%s%N)
    scripts/load-prices -d "$db" >/dev/null
    e2e+=("$(( ($(date +%s%N) - t0) / 1000000 ))")
done
for r in 1 2 3; do
    # alternate: each load differs from the one before in every model
    if ((r % 2)); then changed+=("$(load_ms "$tmp/catalog-changed.json")"); else changed+=("$(load_ms "$tmp/catalog.json")"); fi
done
m_first=$(printf '%s\n' "${first[@]}" | median)
m_same=$(printf '%s\n' "${same[@]}" | median)
m_changed=$(printf '%s\n' "${changed[@]}" | median)
m_e2e=$(printf '%s\n' "${e2e[@]}" | median)
echo "meter.load_prices, first load (empty tables, every row new):  ${first[*]} ms -> median $m_first ms"
echo "meter.load_prices, same catalog again (compares, writes none): ${same[*]} ms -> median $m_same ms"
echo "meter.load_prices, every model changed (closes and rewrites):  ${changed[*]} ms -> median $m_changed ms"
echo "scripts/load-prices end to end (node reads the package, psql):  ${e2e[*]} ms -> median $m_e2e ms (same catalog)"
versions=$(q -c "SELECT count(*) FROM meter.catalog_models")
fc=(); for r in 1 2 3; do fc+=("$(first_calls)"); done
echo "first meter.cost in a new session / second, catalog with $versions model rows (several versions): ${fc[*]// /\/} ms"

# the pricing bench reads a catalog with one version, loaded once
truncate_catalog
load_ms "$tmp/catalog.json" >/dev/null
fc=(); for r in 1 2 3; do fc+=("$(first_calls)"); done
fc_first=$(printf '%s\n' "${fc[@]}" | awk '{print $1}' | median)
fc_second=$(printf '%s\n' "${fc[@]}" | awk '{print $2}' | median)
echo "first meter.cost in a new session / second, catalog with one version ($nmodels models): ${fc[*]// /\/} ms -> median $fc_first / $fc_second ms"

echo
echo "== workload: $rows calls (bench/workload.sql); the PL/pgSQL reference runs over the first $ref_rows"
t0=$(date +%s%N)
q -v rows="$rows" -f bench/workload.sql >/dev/null
q -c "DROP TABLE IF EXISTS bench_workload_ref" \
  -c "CREATE UNLOGGED TABLE bench_workload_ref AS SELECT * FROM bench_workload WHERE i <= $ref_rows ORDER BY i" \
  -c "VACUUM ANALYZE bench_workload" -c "VACUUM ANALYZE bench_workload_ref" >/dev/null
echo "built in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(q -c "SELECT pg_size_pretty(pg_relation_size('bench_workload'))"), $(q -c "SELECT round(avg(length(usage::text))) FROM bench_workload") bytes of usage JSON per call on average"
q -c "SET client_min_messages = warning" -f bench/plpgsql_reference.sql >/dev/null

# the reference must give the same numbers as meter.cost on every call it is timed on
read -r agree total diffs <<<"$(q -F' ' -c "SELECT count(*) FILTER (WHERE a = b), count(*), count(*) FILTER (WHERE a IS DISTINCT FROM b)
  FROM (SELECT meter.cost(provider, model, usage, at) AS a, bench_ref.cost(provider, model, usage, at) AS b FROM bench_workload_ref) x")"
echo "check: bench_ref.cost = meter.cost on $agree of $total calls (every call of the reference's subset)"
q -F' | ' -c "SELECT count(*) FILTER (WHERE i % 100 = 7) AS long_prompts,
                     count(*) FILTER (WHERE coalesce(usage->'prompt_tokens_details'->>'cached_tokens', usage->>'cache_read_input_tokens', usage->>'cachedContentTokenCount', '0')::int > 0) AS cache_reads,
                     count(*) FILTER (WHERE (usage->>'cache_creation_input_tokens')::int > 0) AS cache_writes,
                     count(*) FILTER (WHERE model = 'gpt-5.6-sol' AND at < '2026-08-21') AS sol_old_price,
                     count(*) FILTER (WHERE model = 'deepseek-chat' AND (at AT TIME ZONE 'UTC')::time >= '00:30' AND (at AT TIME ZONE 'UTC')::time < '16:30') AS deepseek_peak,
                     count(DISTINCT model) AS models
                FROM bench_workload_ref" |
    awk -F' \\| ' '{printf "       covering %s long prompts (tiered prices), %s cache reads, %s cache writes, %s GPT-5.6 Sol calls before its price change, %s DeepSeek peak-hour calls, %s models\n", $1, $2, $3, $4, $5, $6}'
if ((diffs)); then
    echo "MISMATCH: the reference differs on $diffs calls, for example:"
    q -c "SELECT provider, model, usage, at, meter.cost(provider, model, usage, at), bench_ref.cost(provider, model, usage, at)
            FROM bench_workload_ref WHERE meter.cost(provider, model, usage, at) IS DISTINCT FROM bench_ref.cost(provider, model, usage, at) LIMIT 5"
    exit 1
fi

echo
warm="SELECT meter.cost('openai', 'gpt-4o', '{\"input_tokens\": 1}'), bench_ref.cost('openai', 'gpt-4o', '{\"input_tokens\": 1}');"
echo "== timings: median of $reps runs (the reference: of 3), one backend; wall clock and the backend's CPU time"
scan=(); cost=(); par=()
# warm the table, the OS cache and the backend's compiled catalog path
ms_of "SELECT sum(meter.cost(provider, model, usage, at)) FROM bench_workload" >/dev/null
for r in $(seq 1 "$reps"); do
    scan+=("$(ms_of "SELECT sum(length(provider) + length(model)), count(usage), max(at) FROM bench_workload")")
    cost+=("$(ms_of "SELECT sum(meter.cost(provider, model, usage, at)) FROM bench_workload")")
    par+=("$(ms_of_parallel "SELECT sum(meter.cost(provider, model, usage, at)) FROM bench_workload")")
done
rscan=(); rcost=(); ref=()
for r in 1 2 3; do
    rscan+=("$(ms_of "SELECT sum(length(provider) + length(model)), count(usage), max(at) FROM bench_workload_ref")")
    rcost+=("$(ms_of "SELECT sum(meter.cost(provider, model, usage, at)) FROM bench_workload_ref")")
    ref+=("$(ms_of "SELECT sum(bench_ref.cost(provider, model, usage, at)) FROM bench_workload_ref")")
done
# wall and cpu medians of a list of "wall cpu" pairs
wall() { printf '%s\n' "$@" | awk '{print $1}' | median; }
cpu() { printf '%s\n' "$@" | awk '{print $2}' | median; }
echo "runs (wall/cpu ms): scan ${scan[*]// //}; meter.cost ${cost[*]// //}"
echo "                    meter.cost with the parallel plan (wall) ${par[*]}"
echo "                    subset scan ${rscan[*]// //}; subset meter.cost ${rcost[*]// //}; subset PL/pgSQL ${ref[*]// //}"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
awk -v s="$(wall "${scan[@]}")" -v sc="$(cpu "${scan[@]}")" -v c="$(wall "${cost[@]}")" -v cc="$(cpu "${cost[@]}")" \
    -v p="$(printf '%s\n' "${par[@]}" | median)" -v rs="$(wall "${rscan[@]}")" \
    -v rc="$(wall "${rcost[@]}")" -v r="$(wall "${ref[@]}")" -v rcc="$(cpu "${rcost[@]}")" -v rfc="$(cpu "${ref[@]}")" \
    -v n="$rows" -v rn="$ref_rows" -v lf="$m_first" -v ls="$m_same" -v lc="$m_changed" 'BEGIN {
    us = c * 1000 / n; ratio = (r / rn) / (c / n)
    printf "%-36s %10s %10s %12s %12s\n", "", "wall ms", "cpu ms", "wall us/call", "cpu us/call"
    printf "%-36s %10.1f %10.1f %12.3f %12.3f\n", "scan alone, " n " rows", s, sc, s * 1000 / n, sc * 1000 / n
    printf "%-36s %10.1f %10.1f %12.3f %12.3f\n", "meter.cost, " n " calls", c, cc, us, cc * 1000 / n
    printf "%-36s %10.1f %10s %12.3f %12s\n", "meter.cost, parallel plan", p, "", p * 1000 / n, ""
    printf "%-36s %10.1f %10s %12.3f %12s\n", "subset scan, " rn " rows", rs, "", rs * 1000 / rn, ""
    printf "%-36s %10.1f %10.1f %12.3f %12.3f\n", "meter.cost on the subset", rc, rcc, rc * 1000 / rn, rcc * 1000 / rn
    printf "%-36s %10.1f %10.1f %12.2f %12.2f\n", "PL/pgSQL reference on the subset", r, rfc, r * 1000 / rn, rfc * 1000 / rn
    printf "meter.cost over the scan: %.3f us/call (cpu %.3f)\n", (c - s) * 1000 / n, (cc - sc) * 1000 / n
    printf "ratio PL/pgSQL / meter.cost per call: %.0fx (on the same %d calls: %.0fx; cpu: %.0fx)\n",
           ratio, rn, r / rc, (rfc / rn) / (cc / n)
    printf "\n== targets\n"
    printf "meter.cost at most 2 us per call (one backend): %.3f us wall, %.3f us cpu: %s\n", us, cc * 1000 / n, (us <= 2 ? "met" : "NOT MET")
    printf "at least 20x the PL/pgSQL reference:           %.0fx: %s\n", ratio, (ratio >= 20 ? "met" : "NOT MET")
    worst = lf; if (ls > worst) worst = ls; if (lc > worst) worst = lc
    printf "whole catalog load under 1 s:                  %.0f ms at worst (medians): %s\n", worst, (worst < 1000 ? "met" : "NOT MET")
}'
