#!/usr/bin/env bash
# run.sh: pg_meter's meter.cost against genai-prices' calcPrice on every
# model of the bundled catalog, in a database of its own. Ends with
# "agreement: N passed, M failed", counting models (a model passes when all
# its random cases agree). A case agrees when both give the same
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
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v cases="$work/cases.jsonl" <<'SQL'
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
-- one test per model: it passes when every case of it agrees
SELECT format('agreement: %s passed, %s failed', count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok)) AS line
  FROM (SELECT provider, model, bool_and(agrees) AS ok FROM verdicts GROUP BY provider, model) m \gset
\echo :line
SQL
