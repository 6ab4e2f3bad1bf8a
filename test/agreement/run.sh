#!/usr/bin/env bash
# run.sh: pg_meter's meter.cost against genai-prices' calcPrice (the npm
# package @pydantic/genai-prices in scripts/catalog) on every model of the
# bundled catalog, and meter.normalize_usage against its extractUsage on every
# usage extractor.
#
# cases.mjs generates deterministic random usages for every model (tier
# boundaries, cache tokens, price-constraint boundaries) with calcPrice's
# total; they are loaded into a temp table and priced by meter.cost in one
# statement, at the same timestamp. A case agrees when
#     |pg - js| <= 1e-11 + 1e-12 * |js|
# calcPrice sums a handful of double products count * price / per, all
# non-negative, so its relative error is a few units of 2^-53 (~1e-16) per
# operation, under 1e-14 in all; 1e-12 relative leaves two orders of
# magnitude of margin and still catches a wrong price, tier, entry or
# quantity (the cheapest unit in the catalog costs 2e-9 USD: one token at
# $0.002/Mtok, so being one unit off is 200 times the tolerance).
# The absolute 1e-11 covers pg_meter's rounding to 1e-12 USD and totals
# near zero.
#
# Runs in a database of its own (created, loaded with scripts/load-prices,
# dropped), so custom prices or other catalog loads elsewhere cannot
# interfere; AGREEMENT_DB=name uses an existing database with the catalog
# loaded instead. AGREEMENT_CASES_PER_MODEL (default 6) sets the random
# cases per model, AGREEMENT_SEED the generator's seed (default 20261124).
#
# Prints each disagreement (up to 20) and ends with one line
#     agreement: N passed, M failed
# counting cases (cost cases plus extraction cases); exits 1 when M > 0.
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
cd "$PGM_ROOT"
t0=$(date +%s.%N)
work=$(mktemp -d)
own_db=
cleanup() {
    if [[ -n $own_db ]]; then
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $own_db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "$1" >&2
    echo "agreement: 0 passed, 1 failed"
    exit 1
}

db=${AGREEMENT_DB:-}
if [[ -z $db ]]; then
    own_db=pg_meter_agreement_$$
    db=$own_db
    PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -d postgres \
        -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null ||
        fail "cannot create database $db"
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SET client_min_messages = warning; CREATE EXTENSION pg_meter" >/dev/null ||
        fail "cannot create extension pg_meter in $db"
    scripts/load-prices -d "$db" >/dev/null || fail "cannot load the genai-prices catalog into $db"
fi

node test/agreement/cases.mjs "${AGREEMENT_CASES_PER_MODEL:-6}" "${AGREEMENT_SEED:-20261124}" > "$work/cases.jsonl" 2> "$work/cases.log" ||
    { cat "$work/cases.log" >&2; fail "cases.mjs failed"; }
node test/agreement/extract.mjs > "$work/extract.jsonl" 2> "$work/extract.log" ||
    { cat "$work/extract.log" >&2; fail "extract.mjs failed"; }
cat "$work/cases.log" "$work/extract.log"
t1=$(date +%s.%N)

if ! psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v cases="$work/cases.jsonl" -v extract="$work/extract.jsonl" \
        > "$work/out.txt" 2>&1 <<'SQL'
\pset footer off
-- one JSON object a line; CSV with quote and delimiter bytes JSON never holds,
-- so that the lines are read verbatim
CREATE TEMP TABLE cases (c jsonb);
\set copy '\\copy cases FROM ' :'cases' ' WITH (FORMAT csv, QUOTE E''\\x01'', DELIMITER E''\\x02'')'
:copy
CREATE FUNCTION pg_temp.try_cost(p text, m text, u jsonb, at timestamptz, OUT cost numeric, OUT err text)
LANGUAGE plpgsql AS $$
BEGIN
    cost := meter.cost(p, m, u, at);
EXCEPTION WHEN OTHERS THEN
    err := SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TEMP TABLE results AS
SELECT c->>'provider' AS provider, c->>'model' AS model, c->>'model_id' AS model_id, c->>'kind' AS kind,
       c->'usage' AS usage, (c->>'at')::timestamptz AS at, (c->>'js_total')::numeric AS js, r.cost AS pg, r.err
  FROM cases, LATERAL pg_temp.try_cost(c->>'provider', c->>'model', c->'usage', (c->>'at')::timestamptz) r;
CREATE TEMP VIEW verdicts AS
SELECT *, pg - js AS diff,
       coalesce(pg IS NOT NULL AND abs(pg - js) <= 1e-11 + 1e-12 * abs(js), false) AS agrees
  FROM results;
\echo
\echo == meter.cost against calcPrice
SELECT count(DISTINCT provider || '/' || model_id) AS models_covered, count(*) AS cases,
       count(*) FILTER (WHERE kind = 'tier') AS tier_boundary_cases,
       count(*) FILTER (WHERE kind = 'time') AS constraint_boundary_cases,
       count(*) FILTER (WHERE js = 0) AS zero_cost_cases,
       max(abs(pg - js)) AS max_abs_diff,
       round(max(abs(pg - js) / (1e-11 + 1e-12 * abs(js))), 4) AS max_diff_per_tolerance
  FROM verdicts;
SELECT count(*) FILTER (WHERE agrees) AS cost_pass, count(*) FILTER (WHERE NOT agrees) AS cost_fail FROM verdicts \gset
\echo disagreements: :cost_fail
SELECT provider, model, usage, at, js, pg, diff, err
  FROM verdicts WHERE NOT agrees ORDER BY provider, model, at LIMIT 20;

-- usage extraction: meter.normalize_usage against extractUsage, for every
-- extractor of the catalog (whole responses and bare usage objects)
CREATE TEMP TABLE extract_cases (c jsonb);
\set copy '\\copy extract_cases FROM ' :'extract' ' WITH (FORMAT csv, QUOTE E''\\x01'', DELIMITER E''\\x02'')'
:copy
CREATE FUNCTION pg_temp.try_normalize(p text, u jsonb, f text, OUT got jsonb, OUT err text) LANGUAGE plpgsql AS $$
BEGIN
    got := meter.normalize_usage(p, u, f);
EXCEPTION WHEN OTHERS THEN
    err := SQLSTATE || ': ' || SQLERRM;
END $$;
-- the API flavor named, as genai-prices needs it; and chosen by shape (informative)
CREATE TEMP TABLE extract_verdicts AS
SELECT c->>'provider' AS provider, c->>'flavor' AS flavor, c->'response' AS response, c->'usage' AS want, t.got, t.err,
       t.got IS NOT DISTINCT FROM c->'usage' AS agrees,
       a.got IS NOT DISTINCT FROM c->'usage' AS agrees_by_shape
  FROM extract_cases, LATERAL pg_temp.try_normalize(c->>'provider', c->'response', c->>'flavor') t,
       LATERAL pg_temp.try_normalize(c->>'provider', c->'response', NULL) a;
\echo
\echo == meter.normalize_usage against extractUsage
SELECT count(DISTINCT provider || '/' || flavor) AS extractors, count(*) AS extraction_cases,
       count(*) FILTER (WHERE agrees) AS same_usage_flavor_named,
       count(*) FILTER (WHERE agrees_by_shape) AS same_usage_flavor_by_shape FROM extract_verdicts;
SELECT count(*) FILTER (WHERE agrees) AS extract_pass, count(*) FILTER (WHERE NOT agrees) AS extract_fail
  FROM extract_verdicts \gset
\echo disagreements: :extract_fail
SELECT provider, flavor, left(response::text, 120) AS response, want, got, err
  FROM extract_verdicts WHERE NOT agrees ORDER BY provider, flavor LIMIT 20;
\echo
\echo counts :cost_pass :cost_fail :extract_pass :extract_fail
SQL
then
    cat "$work/out.txt"
    fail "psql failed"
fi
grep -v '^counts ' "$work/out.txt"
read -r _ cost_pass cost_fail extract_pass extract_fail < <(grep '^counts ' "$work/out.txt")
t2=$(date +%s.%N)
echo "cost cases: $cost_pass passed, $cost_fail failed; extraction cases: $extract_pass passed, $extract_fail failed"
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "time: %.1f s (database and cases %.1f s, pricing and comparing %.1f s)\n", c - a, b - a, c - b }'
passed=$((cost_pass + extract_pass))
failed=$((cost_fail + extract_fail))
echo "agreement: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
