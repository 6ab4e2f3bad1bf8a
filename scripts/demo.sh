#!/usr/bin/env bash
# demo.sh: the main job. Sets everything up, loads the genai-prices catalog,
# adds a few custom prices, and prices a realistic set of provider responses.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PGM_ROOT"
bash scripts/setup.sh
# the demo runs in a database of its own, made anew each time
export PGDATABASE=pg_meter_demo
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" >/dev/null 2>&1
psql -X -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_meter" >/dev/null
scripts/load-prices
psql -X -q -v ON_ERROR_STOP=1 -v responses="$(cat demo/responses.json)" <<'SQL'
-- prices the catalog does not carry: an image model, a compute-priced model,
-- and a negotiated batch rate (set once; the newest version wins)
SELECT count(*) AS custom_prices_set FROM (
  SELECT meter.set_price('fal', 'flux-pro', '{"per_image": 0.05}', note => 'fal FLUX.1 [pro]')
  UNION ALL SELECT meter.set_price('replicate', 'flux-schnell', '{"per_compute_second": 0.000725}', note => 'Replicate, per second of GPU')
  UNION ALL SELECT meter.set_price('openai', 'gpt-4o', '{"input_mtok": 1.25, "output_mtok": 5}', service_tier => 'batch', note => 'Batch API: half price')
) s \gset
\pset footer off
\echo
\echo pg_meter: exact cost of sample provider responses
\echo
SELECT r->>'provider' AS provider,
       p.model AS model,
       coalesce((p.usage->>'input_tokens')::bigint, 0) AS input,
       coalesce((p.usage->>'cache_read_tokens')::bigint, 0) AS cache_read,
       coalesce((p.usage->>'cache_write_tokens')::bigint, 0) AS cache_write,
       coalesce((p.usage->>'output_tokens')::bigint, 0) AS output,
       coalesce((p.usage->>'output_reasoning_tokens')::bigint, 0) AS reasoning,
       coalesce(p.usage->>'images', p.usage->>'compute_seconds', '') AS other,
       p.cost AS cost_usd,
       p.price_source || '#' || p.price_version AS price,
       r->>'note' AS note
  FROM jsonb_array_elements(:'responses'::jsonb) AS r,
       LATERAL meter.price(r->>'provider', r->>'model', r->'usage', now(), coalesce(r->>'service_tier', 'standard')) AS p;
\echo
SELECT sum(meter.cost(r->>'provider', r->>'model', r->'usage', now(), coalesce(r->>'service_tier', 'standard'))) AS total_usd_exact
  FROM jsonb_array_elements(:'responses'::jsonb) AS r;
\echo why the cached Claude turn cost what it cost:
SELECT meter, quantity, unit_price, per, amount
  FROM meter.cost_breakdown('anthropic', 'claude-sonnet-4-5-20250929',
       '{"input_tokens": 44, "cache_read_input_tokens": 4735, "output_tokens": 412}') WHERE quantity <> 0;
SQL
echo
echo "The private cluster keeps running: source scripts/env.sh && psql -d $PGDATABASE"
