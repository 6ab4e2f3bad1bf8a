#!/usr/bin/env bash
# run.sh: pg_meter's meter.cost against genai-prices' calcPrice on every
# model of the bundled catalog, and meter.normalize_usage against its
# extractUsage on every usage extractor, in a database of its own. Ends with
# "agreement: N passed, M failed", counting models (a model passes when all
# its random cases agree) and extractors (every synthetic response of that
# provider and API flavor normalizes to the same meters). A case agrees when both give the same
# cost within calcPrice's floating-point error (|pg - js| <= 1e-11 +
# 1e-12 * |js|: doubles carry ~16 significant digits and pg_meter rounds
# once to 1e-12 USD), or when both refuse to price it.
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
cd "$PGM_ROOT"
db=pg_meter_agreement
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
psql -X -q -d "$db" -c "SET client_min_messages = warning; CREATE EXTENSION pg_meter" >/dev/null
scripts/load-prices -d "$db" >/dev/null
psql -X -q -At -d "$db" -c "SELECT json_agg(json_build_object('meter', meter, 'price_key', price_key, 'whole_units', whole_units, 'dimensions', dimensions)) FROM meter.meters" > "$work/meters.json"
node test/agreement/cases.mjs "$work/meters.json" "${AGREEMENT_CASES_PER_MODEL:-6}" > "$work/cases.jsonl"
node test/agreement/extract.mjs > "$work/extract.jsonl"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v cases="$work/cases.jsonl" -v extract="$work/extract.jsonl" <<'SQL'
CREATE TEMP TABLE cases (c jsonb);
\set copy '\\copy cases FROM ' :'cases'
:copy
CREATE FUNCTION pg_temp.try_cost(p text, m text, u jsonb, at timestamptz, OUT cost numeric, OUT err text) LANGUAGE plpgsql AS $$
BEGIN
    cost := meter.cost(p, m, u, at);
EXCEPTION WHEN OTHERS THEN
    err := SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TEMP TABLE results AS
SELECT c->>'provider' AS provider, c->>'model' AS model, c->'usage' AS usage, (c->>'at')::timestamptz AS at,
       (c->>'js')::numeric AS js, r.cost AS pg, r.err
  FROM cases, LATERAL pg_temp.try_cost(c->>'provider', c->>'model', c->'usage', (c->>'at')::timestamptz) r;
CREATE TEMP VIEW verdicts AS
SELECT *, CASE WHEN js IS NULL THEN pg IS NULL
               ELSE pg IS NOT NULL AND abs(pg - js) <= 1e-11 + 1e-12 * abs(js) END AS agrees
  FROM results;
\pset footer off
SELECT count(DISTINCT provider || '/' || model) AS models, count(*) AS cases,
       count(*) FILTER (WHERE js IS NULL) AS both_should_refuse,
       max(abs(pg - js)) FILTER (WHERE js IS NOT NULL AND pg IS NOT NULL) AS max_abs_difference
  FROM verdicts;
SELECT provider, model, usage, at, js, pg, err FROM verdicts WHERE NOT agrees ORDER BY provider, model LIMIT 20;
-- usage extraction: meter.normalize_usage against extractUsage, for every
-- extractor of the catalog (whole responses and bare usage objects)
CREATE TEMP TABLE extract_cases (c jsonb);
\set copy '\\copy extract_cases FROM ' :'extract'
:copy
CREATE FUNCTION pg_temp.try_normalize(p text, u jsonb, f text, OUT got jsonb, OUT err text) LANGUAGE plpgsql AS $$
BEGIN
    got := meter.normalize_usage(p, u, f);
EXCEPTION WHEN OTHERS THEN
    err := SQLSTATE || ': ' || SQLERRM;
END $$;
-- the API flavor named, as genai-prices needs it; and chosen by shape
CREATE TEMP TABLE extract_verdicts AS
SELECT c->>'provider' AS provider, c->>'flavor' AS flavor, c->'response' AS response, c->'usage' AS want, t.got, t.err,
       t.got IS NOT DISTINCT FROM c->'usage' AS agrees,
       a.got IS NOT DISTINCT FROM c->'usage' AS agrees_by_shape
  FROM extract_cases, LATERAL pg_temp.try_normalize(c->>'provider', c->'response', c->>'flavor') t,
       LATERAL pg_temp.try_normalize(c->>'provider', c->'response', NULL) a;
SELECT count(DISTINCT provider || '/' || flavor) AS extractors, count(*) AS extraction_cases,
       count(*) FILTER (WHERE agrees) AS same_usage_flavor_named,
       count(*) FILTER (WHERE agrees_by_shape) AS same_usage_flavor_by_shape FROM extract_verdicts;
-- shapes two flavors share are read with the first flavor of the catalog
SELECT DISTINCT provider, flavor AS flavor_not_chosen_by_shape FROM extract_verdicts WHERE agrees AND NOT agrees_by_shape;
SELECT provider, flavor, left(response::text, 120) AS response, want, got, err FROM extract_verdicts WHERE NOT agrees LIMIT 10;
-- one test per model (every random case agrees) and one per extractor
SELECT format('agreement: %s passed, %s failed', count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok)) AS line
  FROM (SELECT bool_and(agrees) AS ok FROM verdicts GROUP BY provider, model
        UNION ALL
        SELECT bool_and(agrees) FROM extract_verdicts GROUP BY provider, flavor) m \gset
\echo :line
SQL
