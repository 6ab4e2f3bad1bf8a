\echo Use "CREATE EXTENSION pg_meter" to load this file. \quit

-- pg_meter 0.1.0: the price catalog, usage normalization and exact cost.
-- Every object lives in schema meter; every function pins search_path.

-------------------------------------------------------------------------------
-- Catalog storage. Rows are versioned (valid_from, valid_to): a reload never
-- rewrites a price in force before it, so history reprices correctly. The
-- version number of a row is the provenance that a priced call names.
-------------------------------------------------------------------------------

CREATE SEQUENCE meter.price_version_seq AS bigint;

CREATE TABLE meter.catalog_loads (
    load_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL CHECK (source IN ('genai-prices', 'litellm')),
    effective_from  timestamptz NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    loaded_by       name NOT NULL DEFAULT current_user,
    providers       integer NOT NULL,
    models          integer NOT NULL,
    models_added    integer NOT NULL,
    models_changed  integer NOT NULL,
    models_removed  integer NOT NULL,
    note            text
);
COMMENT ON TABLE meter.catalog_loads IS 'One row per catalog load: when it took effect, who loaded it and what changed.';

CREATE TABLE meter.catalog_providers (
    version     bigint PRIMARY KEY DEFAULT nextval('meter.price_version_seq'),
    source      text NOT NULL,
    provider_id text NOT NULL,
    position    integer NOT NULL,
    data        jsonb NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz NOT NULL DEFAULT 'infinity',
    load_id     bigint NOT NULL REFERENCES meter.catalog_loads,
    CHECK (valid_from < valid_to)
);
CREATE UNIQUE INDEX catalog_providers_current ON meter.catalog_providers (source, provider_id) WHERE valid_to = 'infinity';
COMMENT ON TABLE meter.catalog_providers IS 'Versioned provider definitions (match rules, fallbacks, usage extractors) from loaded catalogs.';

CREATE TABLE meter.catalog_models (
    version      bigint PRIMARY KEY DEFAULT nextval('meter.price_version_seq'),
    source       text NOT NULL,
    provider_id  text NOT NULL,
    model_id     text NOT NULL,
    service_tier text NOT NULL DEFAULT 'standard' CHECK (service_tier IN ('standard', 'batch', 'flex', 'priority')),
    position     integer NOT NULL,
    data         jsonb NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz NOT NULL DEFAULT 'infinity',
    load_id      bigint NOT NULL REFERENCES meter.catalog_loads,
    CHECK (valid_from < valid_to)
);
CREATE UNIQUE INDEX catalog_models_current ON meter.catalog_models (source, provider_id, model_id, service_tier, position) WHERE valid_to = 'infinity';
CREATE INDEX catalog_models_lookup ON meter.catalog_models (provider_id, model_id);
COMMENT ON TABLE meter.catalog_models IS 'Versioned model prices from loaded catalogs; data is the catalog''s model object (match rule, prices, conditional prices).';

CREATE TABLE meter.custom_prices (
    version      bigint PRIMARY KEY DEFAULT nextval('meter.price_version_seq'),
    provider     text NOT NULL CHECK (provider = lower(btrim(provider)) AND provider <> ''),
    model        text NOT NULL CHECK (model = lower(btrim(model)) AND model <> ''),
    service_tier text NOT NULL DEFAULT 'standard' CHECK (service_tier IN ('standard', 'batch', 'flex', 'priority')),
    prices       jsonb NOT NULL,
    minimums     jsonb,
    valid_from   timestamptz NOT NULL DEFAULT '-infinity',
    valid_to     timestamptz NOT NULL DEFAULT 'infinity',
    note         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL DEFAULT current_user,
    CHECK (valid_from < valid_to)
);
CREATE INDEX custom_prices_lookup ON meter.custom_prices (provider, model, service_tier);
COMMENT ON TABLE meter.custom_prices IS 'Prices set by users (negotiated rates, private models, image and compute prices); they win over every catalog.';

-- pg_dump keeps the rows of these tables (they hold user data).
SELECT pg_catalog.pg_extension_config_dump('meter.catalog_loads', '');
SELECT pg_catalog.pg_extension_config_dump('meter.catalog_providers', '');
SELECT pg_catalog.pg_extension_config_dump('meter.catalog_models', '');
SELECT pg_catalog.pg_extension_config_dump('meter.custom_prices', '');
SELECT pg_catalog.pg_extension_config_dump('meter.price_version_seq', '');
SELECT pg_catalog.pg_extension_config_dump('meter.catalog_loads_load_id_seq', '');

-- Every backend keeps a compiled copy of the catalog; a change to these
-- tables invalidates it everywhere (see src/pg/catalog_cache.cpp).
CREATE FUNCTION meter._invalidate_caches() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'meter_invalidate_caches';
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.catalog_providers
    FOR EACH STATEMENT EXECUTE FUNCTION meter._invalidate_caches();
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.catalog_models
    FOR EACH STATEMENT EXECUTE FUNCTION meter._invalidate_caches();
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.custom_prices
    FOR EACH STATEMENT EXECUTE FUNCTION meter._invalidate_caches();

-- _catalog_rows returns the catalog's providers (kind 1) and custom prices
-- (kind 3) for the C++ compiler, in the order it reads them (a custom
-- price's prices in data); _catalog_models returns the model rows (kind 2)
-- of some providers, which a backend reads when a name first needs them, so
-- its first priced call compiles one provider's models, not the catalog's
-- (src/pg/catalog_cache.cpp). The glue turns each jsonb into the core's
-- values directly: no text in between. Both run as the extension owner so
-- that any role allowed to price can.
CREATE FUNCTION meter._catalog_rows()
    RETURNS TABLE (kind integer, version bigint, source text, provider text, model text, service_tier text,
                   data jsonb, minimums jsonb, note text, valid_from timestamptz, valid_to timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT r.kind, r.version, r.source, r.provider, r.model, r.service_tier, r.data, r.minimums, r.note, r.valid_from,
       r.valid_to
  FROM (SELECT 1 AS kind, p.source AS o1, p.position AS o2, p.version, p.source, NULL::text AS provider,
               NULL::text AS model, NULL::text AS service_tier, p.data, NULL::jsonb AS minimums, NULL::text AS note,
               p.valid_from, p.valid_to
          FROM meter.catalog_providers p
        UNION ALL
        SELECT 3, '', 0, c.version, NULL, c.provider, c.model, c.service_tier, c.prices, c.minimums, c.note,
               c.valid_from, c.valid_to
          FROM meter.custom_prices c) r
 ORDER BY r.kind, r.o1, r.o2, r.version
$$;
CREATE FUNCTION meter._catalog_models(p_providers text[])
    RETURNS TABLE (kind integer, version bigint, source text, provider text, model text, service_tier text,
                   data jsonb, minimums jsonb, note text, valid_from timestamptz, valid_to timestamptz)
    LANGUAGE sql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT 2, m.version, m.source, m.provider_id, NULL::text, m.service_tier, m.data, NULL::jsonb, NULL::text,
       m.valid_from, m.valid_to
  FROM meter.catalog_models m
 WHERE m.provider_id = ANY (p_providers)
 ORDER BY m.source, m.provider_id, m.position, m.version
$$;
-- open to every role: they reveal only prices, which meter.price_versions shows too
GRANT EXECUTE ON FUNCTION meter._catalog_rows() TO PUBLIC;
GRANT EXECUTE ON FUNCTION meter._catalog_models(text[]) TO PUBLIC;

CREATE FUNCTION meter._check_catalog(catalog jsonb) RETURNS integer
    LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_check_catalog';
CREATE FUNCTION meter._check_prices(prices jsonb, minimums jsonb) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_check_prices';

-------------------------------------------------------------------------------
-- Loading catalogs
-------------------------------------------------------------------------------

-- _apply_catalog writes one source's providers (genai-prices' shape) as a new
-- catalog version effective from a time, closing the rows it replaces.
CREATE FUNCTION meter._apply_catalog(p_source text, p_catalog jsonb, p_effective_from timestamptz, p_note text)
    RETURNS meter.catalog_loads
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_last   timestamptz;
    v_eff    timestamptz;
    v_load   meter.catalog_loads;
    v_added  integer;
    v_changed integer;
    v_removed integer;
BEGIN
    IF p_catalog IS NULL THEN
        RAISE EXCEPTION 'catalog must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM meter._check_catalog(p_catalog);
    IF jsonb_array_length(p_catalog) = 0 THEN
        RAISE EXCEPTION 'the catalog names no provider' USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'A load closes every row it does not name: an empty one would remove every price of the source.';
    END IF;
    IF p_effective_from = 'infinity' THEN
        RAISE EXCEPTION 'effective_from must be a finite time' USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'A load in force from infinity would never apply, and no later load could follow it.';
    END IF;
    -- one load at a time per database; readers are never blocked
    LOCK TABLE meter.catalog_models IN SHARE ROW EXCLUSIVE MODE;
    SELECT max(effective_from) INTO v_last FROM meter.catalog_loads WHERE source = p_source;
    v_eff := coalesce(p_effective_from, CASE WHEN v_last IS NULL THEN '-infinity'::timestamptz ELSE now() END);
    IF v_last IS NOT NULL AND v_eff <= v_last THEN
        RAISE EXCEPTION 'catalog effective time % is not after the last % load (%)', v_eff, p_source, v_last
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Catalog versions are kept in time order so that history keeps its prices.',
                  HINT = 'Pass a later effective_from, or omit it to take effect now.';
    END IF;

    CREATE TEMP TABLE IF NOT EXISTS pg_meter_new_providers (provider_id text, position int, data jsonb) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS pg_meter_new_models (provider_id text, model_id text, service_tier text, position int, data jsonb) ON COMMIT DROP;
    TRUNCATE pg_meter_new_providers, pg_meter_new_models;
    INSERT INTO pg_meter_new_providers
        SELECT lower(btrim(p->>'id')), (o - 1)::int, p - 'models'
          FROM jsonb_array_elements(p_catalog) WITH ORDINALITY AS x(p, o);
    INSERT INTO pg_meter_new_models
        SELECT lower(btrim(p->>'id')), m->>'id', coalesce(m->>'service_tier', 'standard'), (mo - 1)::int, m
          FROM jsonb_array_elements(p_catalog) AS x(p),
               jsonb_array_elements(p->'models') WITH ORDINALITY AS y(m, mo);

    INSERT INTO meter.catalog_loads (source, effective_from, providers, models, models_added, models_changed, models_removed, note)
    VALUES (p_source, v_eff, (SELECT count(*) FROM pg_meter_new_providers), (SELECT count(*) FROM pg_meter_new_models), 0, 0, 0, p_note)
    RETURNING * INTO v_load;

    -- providers: close what changed or vanished, insert what is new or changed
    UPDATE meter.catalog_providers c SET valid_to = v_eff
     WHERE c.source = p_source AND c.valid_to = 'infinity'
       AND NOT EXISTS (SELECT 1 FROM pg_meter_new_providers n
                        WHERE n.provider_id = c.provider_id AND n.position = c.position AND n.data = c.data);
    INSERT INTO meter.catalog_providers (source, provider_id, position, data, valid_from, load_id)
    SELECT p_source, n.provider_id, n.position, n.data, v_eff, v_load.load_id
      FROM pg_meter_new_providers n
     WHERE NOT EXISTS (SELECT 1 FROM meter.catalog_providers c
                        WHERE c.source = p_source AND c.valid_to = 'infinity' AND c.provider_id = n.provider_id);

    -- models, likewise; counts say what a person would call added/changed/removed
    SELECT count(*) FILTER (WHERE c.version IS NULL),
           count(*) FILTER (WHERE c.version IS NOT NULL AND c.data <> n.data)
      INTO v_added, v_changed
      FROM pg_meter_new_models n
      LEFT JOIN LATERAL (SELECT version, data FROM meter.catalog_models c
                          WHERE c.source = p_source AND c.valid_to = 'infinity' AND c.provider_id = n.provider_id
                            AND c.model_id = n.model_id AND c.service_tier = n.service_tier
                          ORDER BY c.position LIMIT 1) c ON true;
    SELECT count(*) INTO v_removed FROM meter.catalog_models c
     WHERE c.source = p_source AND c.valid_to = 'infinity'
       AND NOT EXISTS (SELECT 1 FROM pg_meter_new_models n
                        WHERE n.provider_id = c.provider_id AND n.model_id = c.model_id AND n.service_tier = c.service_tier);
    UPDATE meter.catalog_models c SET valid_to = v_eff
     WHERE c.source = p_source AND c.valid_to = 'infinity'
       AND NOT EXISTS (SELECT 1 FROM pg_meter_new_models n
                        WHERE n.provider_id = c.provider_id AND n.model_id = c.model_id AND n.service_tier = c.service_tier
                          AND n.position = c.position AND n.data = c.data);
    INSERT INTO meter.catalog_models (source, provider_id, model_id, service_tier, position, data, valid_from, load_id)
    SELECT p_source, n.provider_id, n.model_id, n.service_tier, n.position, n.data, v_eff, v_load.load_id
      FROM pg_meter_new_models n
     WHERE NOT EXISTS (SELECT 1 FROM meter.catalog_models c
                        WHERE c.source = p_source AND c.valid_to = 'infinity' AND c.provider_id = n.provider_id
                          AND c.model_id = n.model_id AND c.service_tier = n.service_tier AND c.position = n.position);

    UPDATE meter.catalog_loads SET models_added = v_added, models_changed = v_changed, models_removed = v_removed
     WHERE load_id = v_load.load_id
    RETURNING * INTO v_load;
    RETURN v_load;
END
$$;
REVOKE ALL ON FUNCTION meter._apply_catalog(text, jsonb, timestamptz, text) FROM PUBLIC;

CREATE FUNCTION meter.load_prices(catalog jsonb, effective_from timestamptz DEFAULT NULL, note text DEFAULT NULL)
    RETURNS meter.catalog_loads
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    RETURN meter._apply_catalog('genai-prices', catalog, effective_from, note);
COMMENT ON FUNCTION meter.load_prices(jsonb, timestamptz, text) IS
    'Loads a genai-prices provider array as a new catalog version; the first load is in force for all past times, later ones from effective_from (default now()).';
REVOKE ALL ON FUNCTION meter.load_prices(jsonb, timestamptz, text) FROM PUBLIC;

-- _litellm_provider maps LiteLLM's provider names to catalog provider ids.
CREATE FUNCTION meter._litellm_provider(p text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE
        WHEN p IN ('gemini', 'vertex_ai') OR p LIKE 'vertex_ai-%' OR p LIKE 'vertex_ai_%' THEN 'google'
        WHEN p IN ('bedrock', 'bedrock_converse') THEN 'aws'
        WHEN p = 'xai' THEN 'x-ai'
        WHEN p = 'together_ai' THEN 'together'
        WHEN p = 'azure_ai' THEN 'azure'
        WHEN p = 'fireworks_ai' THEN 'fireworks'
        WHEN p = 'text-completion-openai' THEN 'openai'
        ELSE lower(p) END;

-- _litellm_mtok turns a per-token price into a per-million price, exactly
-- (numeric arithmetic; 2.5e-06 becomes 2.5).
CREATE FUNCTION meter._litellm_mtok(v jsonb, per numeric DEFAULT 1000000) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN jsonb_typeof(v) = 'number' THEN to_jsonb(trim_scale((v::text)::numeric * per)) END;

-- _litellm_prices builds one service tier's price object from a LiteLLM entry;
-- suffix is '' (standard), '_batches', '_flex' or '_priority'.
CREATE FUNCTION meter._litellm_prices(e jsonb, suffix text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT nullif(jsonb_strip_nulls(jsonb_build_object(
    'input_mtok', CASE WHEN e ? ('input_cost_per_token_above_200k_tokens') AND suffix = ''
                       THEN jsonb_build_object('base', meter._litellm_mtok(e->'input_cost_per_token'),
                            'tiers', jsonb_build_array(jsonb_build_object('start', 200000, 'price', meter._litellm_mtok(e->'input_cost_per_token_above_200k_tokens'))))
                       ELSE meter._litellm_mtok(e->('input_cost_per_token' || suffix)) END,
    'output_mtok', CASE WHEN e ? ('output_cost_per_token_above_200k_tokens') AND suffix = ''
                       THEN jsonb_build_object('base', meter._litellm_mtok(e->'output_cost_per_token'),
                            'tiers', jsonb_build_array(jsonb_build_object('start', 200000, 'price', meter._litellm_mtok(e->'output_cost_per_token_above_200k_tokens'))))
                       ELSE meter._litellm_mtok(e->('output_cost_per_token' || suffix)) END,
    'cache_read_mtok', meter._litellm_mtok(e->('cache_read_input_token_cost' || suffix)),
    'cache_write_mtok', CASE WHEN suffix = '' THEN meter._litellm_mtok(e->'cache_creation_input_token_cost') END,
    'cache_write_1h_mtok', CASE WHEN suffix = '' AND e ? 'cache_creation_input_token_cost' THEN meter._litellm_mtok(e->'cache_creation_input_token_cost_above_1hr') END,
    'input_audio_mtok', CASE WHEN suffix = '' THEN meter._litellm_mtok(e->'input_cost_per_audio_token') END,
    'output_audio_mtok', CASE WHEN suffix = '' THEN meter._litellm_mtok(e->'output_cost_per_audio_token') END,
    'per_image', CASE WHEN suffix = '' THEN meter._litellm_mtok(e->'output_cost_per_image', 1) END,
    'per_compute_second', CASE WHEN suffix = '' THEN meter._litellm_mtok(coalesce(e->'output_cost_per_second', e->'input_cost_per_second'), 1) END
)), '{}'::jsonb)
$$;

CREATE FUNCTION meter.load_litellm_prices(catalog jsonb, effective_from timestamptz DEFAULT NULL, note text DEFAULT NULL)
    RETURNS meter.catalog_loads
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_providers jsonb;
BEGIN
    IF jsonb_typeof(catalog) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'LiteLLM catalog must be a JSON object keyed by model name'
            USING ERRCODE = 'sql_json_object_not_found',
                  DETAIL = format('The value is a JSON %s.', coalesce(jsonb_typeof(catalog), 'null')),
                  HINT = 'Pass the contents of LiteLLM''s model_prices_and_context_window.json.';
    END IF;
    -- every (model, service tier) with prices becomes a model in the
    -- genai-prices shape; a prefixed name also matches without its prefix
    WITH entries AS (
        SELECT k AS name, e, meter._litellm_provider(e->>'litellm_provider') AS provider
          FROM jsonb_each(catalog) AS x(k, e)
         WHERE jsonb_typeof(e) = 'object' AND e ? 'litellm_provider' AND k <> 'sample_spec'
    ), tiers AS (
        SELECT provider, name, t.tier, meter._litellm_prices(e, t.suffix) AS prices
          FROM entries,
               (VALUES ('standard', ''), ('batch', '_batches'), ('flex', '_flex'), ('priority', '_priority')) AS t(tier, suffix)
    ), models AS (
        SELECT provider, jsonb_agg(jsonb_build_object(
                   'id', name, 'name', name, 'service_tier', tier,
                   'match', jsonb_build_object('or', jsonb_build_array(
                        jsonb_build_object('equals', name),
                        jsonb_build_object('equals', substr(name, strpos(name, '/') + 1)))),
                   'prices', prices) ORDER BY name, tier) AS models
          FROM tiers WHERE prices IS NOT NULL AND prices ? 'input_mtok' OR prices ? 'per_image' OR prices ? 'per_compute_second'
         GROUP BY provider
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', provider, 'name', provider, 'models', models) ORDER BY provider), '[]')
      INTO v_providers FROM models;
    RETURN meter._apply_catalog('litellm', v_providers, effective_from, note);
END
$$;
COMMENT ON FUNCTION meter.load_litellm_prices(jsonb, timestamptz, text) IS
    'Loads LiteLLM''s model price JSON (standard, batch, flex and priority prices) as a catalog version.';
REVOKE ALL ON FUNCTION meter.load_litellm_prices(jsonb, timestamptz, text) FROM PUBLIC;

-------------------------------------------------------------------------------
-- User prices
-------------------------------------------------------------------------------

CREATE FUNCTION meter.set_price(provider text, model text, prices jsonb,
                                valid_from timestamptz DEFAULT '-infinity',
                                valid_until timestamptz DEFAULT 'infinity',
                                service_tier text DEFAULT 'standard',
                                minimums jsonb DEFAULT NULL,
                                note text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version bigint;
BEGIN
    IF coalesce(btrim(provider), '') = '' OR coalesce(btrim(model), '') = '' THEN
        RAISE EXCEPTION 'provider and model must be given'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the provider and model as your application reports them.';
    END IF;
    IF prices IS NULL THEN
        RAISE EXCEPTION 'prices must be given' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass prices per meter, e.g. {"input_mtok": 3, "output_mtok": 15}.';
    END IF;
    IF service_tier IS NULL OR service_tier NOT IN ('standard', 'batch', 'flex', 'priority') THEN
        RAISE EXCEPTION 'unknown service tier "%"', service_tier USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use standard, batch, flex or priority.';
    END IF;
    IF valid_from IS NULL OR valid_until IS NULL OR valid_from >= valid_until THEN
        RAISE EXCEPTION 'price validity is empty' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('valid_from %s is not before valid_until %s.', valid_from, valid_until);
    END IF;
    PERFORM meter._check_prices(prices, minimums);
    INSERT INTO meter.custom_prices (provider, model, service_tier, prices, minimums, valid_from, valid_to, note)
    VALUES (lower(btrim(provider)), lower(btrim(model)), service_tier, prices, minimums, valid_from, valid_until, note)
    RETURNING version INTO v_version;
    RETURN v_version;
END
$$;
COMMENT ON FUNCTION meter.set_price(text, text, jsonb, timestamptz, timestamptz, text, jsonb, text) IS
    'Sets a price for a provider and model (or a catalog model id) over a validity range; returns its price version. User prices win over catalogs; the newest version in force wins.';
REVOKE ALL ON FUNCTION meter.set_price(text, text, jsonb, timestamptz, timestamptz, text, jsonb, text) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Pricing
-------------------------------------------------------------------------------

CREATE FUNCTION meter.cost(provider text, model text, usage jsonb,
                           at timestamptz DEFAULT now(), service_tier text DEFAULT 'standard',
                           api_flavor text DEFAULT NULL)
    RETURNS numeric
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'meter_cost';
COMMENT ON FUNCTION meter.cost(text, text, jsonb, timestamptz, text, text) IS
    'Exact cost in USD of one call (to 1e-12 USD) from the provider''s raw usage object or pg_meter''s normalized form, at the price in force at "at".';

CREATE TYPE meter.priced AS (
    cost            numeric,
    cost_text       text,
    input_cost      numeric,
    output_cost     numeric,
    other_cost      numeric,
    exact           boolean,
    price_version   bigint,
    price_source    text,
    provider        text,
    model           text,
    model_name      text,
    price_entry     integer,
    service_tier    text,
    usage           jsonb
);

CREATE FUNCTION meter.price(provider text, model text, usage jsonb,
                            at timestamptz DEFAULT now(), service_tier text DEFAULT 'standard',
                           api_flavor text DEFAULT NULL)
    RETURNS meter.priced
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'meter_price';
COMMENT ON FUNCTION meter.price(text, text, jsonb, timestamptz, text, text) IS
    'Cost of one call with its provenance: the price version and source used, the model it resolved to, and the normalized usage.';

CREATE FUNCTION meter.cost_breakdown(provider text, model text, usage jsonb,
                                     at timestamptz DEFAULT now(), service_tier text DEFAULT 'standard',
                           api_flavor text DEFAULT NULL)
    RETURNS TABLE (meter text, quantity numeric, unit_price numeric, per bigint, price_key text,
                   tier_applied boolean, amount numeric, direction text)
    LANGUAGE c STABLE PARALLEL SAFE ROWS 6
    AS 'MODULE_PATHNAME', 'meter_cost_breakdown';
COMMENT ON FUNCTION meter.cost_breakdown(text, text, jsonb, timestamptz, text, text) IS
    'One row per priced meter: the quantity billed at that meter''s price (cached tokens taken out of input, for example), the price per "per" units, and the amount.';

CREATE FUNCTION meter.normalize_usage(provider text, usage jsonb, api_flavor text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'meter_normalize_usage';
COMMENT ON FUNCTION meter.normalize_usage(text, jsonb, text) IS
    'The normalized meters of a provider''s raw usage object (input_tokens counts every input token, cached ones included).';

CREATE FUNCTION meter._meters()
    RETURNS TABLE (meter text, price_key text, per bigint, direction text, whole_units boolean, dimensions jsonb)
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'meter_meters';
CREATE VIEW meter.meters AS SELECT * FROM meter._meters();
COMMENT ON VIEW meter.meters IS 'Every meter pg_meter prices: its usage key, the price key that prices it, the quantity a price is quoted per, and its dimensions (a meter counts every meter whose dimensions include its own).';

-- price_versions: every price version that a priced call may name.
CREATE VIEW meter.price_versions AS
SELECT m.version, m.source, m.provider_id AS provider, m.model_id AS model, m.service_tier,
       m.data->'prices' AS prices, m.valid_from, m.valid_to, l.loaded_at AS created_at, l.loaded_by AS created_by, l.note
  FROM meter.catalog_models m JOIN meter.catalog_loads l USING (load_id)
UNION ALL
SELECT c.version, 'custom', c.provider, c.model, c.service_tier, c.prices, c.valid_from, c.valid_to, c.created_at, c.created_by, c.note
  FROM meter.custom_prices c;
COMMENT ON VIEW meter.price_versions IS 'Every stored price version (catalog and custom) with its validity: the answer to "why did this call cost that".';

-------------------------------------------------------------------------------
-- Privileges: pricing is open to every role; changing prices is not.
-------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA meter TO PUBLIC;
GRANT SELECT ON meter.meters, meter.price_versions, meter.catalog_loads TO PUBLIC;

-- _bridge_selftest makes one kind of failure happen inside the C++ bridge
-- (core, bad_alloc, std, unknown, pg) for the regression tests.
CREATE FUNCTION meter._bridge_selftest(kind text) RETURNS text
    LANGUAGE c STRICT VOLATILE AS 'MODULE_PATHNAME', 'meter_bridge_selftest';
REVOKE ALL ON FUNCTION meter._bridge_selftest(text) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Latency sketches: a mergeable quantile sketch with a guaranteed relative
-- error (DDSketch-style). Percentiles over any range merge sketches instead
-- of scanning raw latencies, and stay within 1 % of the exact values.
-------------------------------------------------------------------------------

CREATE TYPE meter.sketch;
CREATE FUNCTION meter.sketch_in(cstring) RETURNS meter.sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_in';
CREATE FUNCTION meter.sketch_out(meter.sketch) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_out';
CREATE FUNCTION meter.sketch_recv(internal) RETURNS meter.sketch
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_recv';
CREATE FUNCTION meter.sketch_send(meter.sketch) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_send';
CREATE TYPE meter.sketch (
    INPUT = meter.sketch_in,
    OUTPUT = meter.sketch_out,
    RECEIVE = meter.sketch_recv,
    SEND = meter.sketch_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = extended
);
COMMENT ON TYPE meter.sketch IS 'A mergeable latency sketch: percentiles within 1 % relative error; text form is JSON.';

CREATE FUNCTION meter._sketch_add(internal, double precision) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_add';
CREATE FUNCTION meter._sketch_merge_add(internal, meter.sketch) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_merge_add';
CREATE FUNCTION meter._sketch_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_combine';
CREATE FUNCTION meter._sketch_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_serialize';
CREATE FUNCTION meter._sketch_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_deserialize';
CREATE FUNCTION meter._sketch_final(internal) RETURNS meter.sketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_final';

CREATE AGGREGATE meter.sketch(double precision) (
    SSPACE = 512,  -- a few dozen buckets: lets the planner hash many groups
    SFUNC = meter._sketch_add,
    STYPE = internal,
    FINALFUNC = meter._sketch_final,
    COMBINEFUNC = meter._sketch_combine,
    SERIALFUNC = meter._sketch_serialize,
    DESERIALFUNC = meter._sketch_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE meter.sketch(double precision) IS 'Builds a latency sketch from values (NULLs are skipped; negative values are refused).';

CREATE AGGREGATE meter.merge(meter.sketch) (
    SSPACE = 512,  -- a few dozen buckets: lets the planner hash many groups
    SFUNC = meter._sketch_merge_add,
    STYPE = internal,
    FINALFUNC = meter._sketch_final,
    COMBINEFUNC = meter._sketch_combine,
    SERIALFUNC = meter._sketch_serialize,
    DESERIALFUNC = meter._sketch_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE meter.merge(meter.sketch) IS 'Merges sketches: the result equals the sketch of all their values.';

CREATE FUNCTION meter.percentile(sketch meter.sketch, q double precision) RETURNS double precision
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_percentile';
COMMENT ON FUNCTION meter.percentile(meter.sketch, double precision) IS
    'The q-quantile (percentile_disc convention) within 1 % relative error; NULL for an empty sketch.';
CREATE FUNCTION meter.sketch_count(sketch meter.sketch) RETURNS bigint
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_count';

-------------------------------------------------------------------------------
-- The event log: one row per API call, priced at ingest by the C++ core,
-- idempotent on (tenant, request_id), time-partitioned.
-------------------------------------------------------------------------------

-- CACHE: a backend takes 100 ids at a time, so most events take one from
-- its own memory instead of locking the sequence's page (3 % of a COPY of
-- 200,000 events, and the page all writing backends share; bench/README.md).
-- Ids stay unique and grow within a session, with gaps between sessions.
CREATE SEQUENCE meter.event_id_seq AS bigint CACHE 100;

CREATE TABLE meter.events (
    event_id        bigint NOT NULL DEFAULT nextval('meter.event_id_seq'),
    tenant          text NOT NULL,
    subject         text,
    session         text,
    provider        text,
    model           text,
    endpoint        text,
    feature         text,
    usage           jsonb,
    input_tokens    bigint NOT NULL DEFAULT 0,
    output_tokens   bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    cached          boolean NOT NULL DEFAULT false,
    service_tier    text NOT NULL DEFAULT 'standard',
    cost            numeric,
    potential_cost  numeric,
    price_version   bigint,
    priced          boolean NOT NULL DEFAULT false,
    unpriced_reason text,
    latency_ms      integer,  -- zero or more (the trigger refuses a negative one)
    ttft_ms         integer,
    success         boolean NOT NULL DEFAULT true,
    error           text,
    error_message   text,
    request_id      text,
    request_key     bigint,
    metadata        jsonb,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    received_at     timestamptz NOT NULL DEFAULT now(),
    txid            bigint NOT NULL  -- set on the way in; kept only for restores by the owner
) PARTITION BY RANGE (occurred_at);
COMMENT ON TABLE meter.events IS 'One row per API call: who, what, normalized usage, exact cost and potential cost, the price version used, latency, outcome. Insert or COPY into it directly, or call meter.record.';
COMMENT ON COLUMN meter.events.potential_cost IS 'What the call would have cost without a cache hit; a cached response costs 0 and keeps this.';
COMMENT ON COLUMN meter.events.usage IS 'The normalized usage: every meter the provider reported, under pg_meter''s names (input_tokens counts cached input too).';
COMMENT ON COLUMN meter.events.input_tokens IS 'Input tokens from the normalized usage (cached ones included), as a column for rollups and dashboards; also output_tokens, cache_read_tokens, cache_write_tokens.';
COMMENT ON COLUMN meter.events.request_key IS 'A 64-bit hash of (tenant, request_id), indexed in every partition: how a retry is found whichever partition the first one is in.';
COMMENT ON COLUMN meter.events.txid IS 'The writing transaction (an xid8 as bigint, indexed, so that the events not rolled up yet are found without a scan), for exactly-once rollups.';

-- where an event goes when no partition of its month exists: never lost
CREATE TABLE meter.events_default PARTITION OF meter.events DEFAULT;
-- indexes live on each partition, not on the parent: a parent index owned
-- by the extension would make pg_restore create every partition's index
-- twice. Times and transaction ids grow with insertion, so their btrees
-- take appends at the right edge (about 5 % of single-event throughput
-- for both). They were BRIN: cheaper to write, but after a bulk load with
-- autosummarize and a VACUUM, one placeholder summary was left in the
-- index, and PostgreSQL 15's BRIN scans then returned every range after it
-- (1,756 of 2,006 in that partition): a 30-day summary over ten million
-- events went from 11 ms to 1.4 s until a REINDEX (bench/README.md).
CREATE INDEX events_default_time ON meter.events_default (occurred_at);
CREATE INDEX events_default_txid ON meter.events_default (txid);
-- request ids, deduplicated across partitions by the trigger
-- (src/pg/request_ids.hpp); every partition needs it. A hash index: the
-- keys are random, and a probe or an insert reads one bucket page where a
-- btree descends through random pages (200,000 events by COPY: 2.10 s
-- with a btree, 1.96 s with a hash index, bench/README.md)
CREATE INDEX events_default_request ON meter.events_default USING hash (request_key) WHERE request_key IS NOT NULL;
-- unpriced events, found without a scan by the job that prices them later
CREATE INDEX events_default_unpriced ON meter.events_default (occurred_at) WHERE NOT priced;

SELECT pg_catalog.pg_extension_config_dump('meter.events_default', '');
SELECT pg_catalog.pg_extension_config_dump('meter.event_id_seq', '');

CREATE FUNCTION meter._event_before_insert() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'meter_event_before_insert';
CREATE TRIGGER event_priced BEFORE INSERT ON meter.events
    FOR EACH ROW EXECUTE FUNCTION meter._event_before_insert();

-- create_partition makes the month partition of the events that holds a
-- time (the month must have no event in the default partition yet).
CREATE FUNCTION meter.create_partition(month timestamptz) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'  -- month bounds are UTC midnights whatever the session's zone
AS $$
DECLARE
    v_from timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    v_name text := format('events_%s', to_char(v_from AT TIME ZONE 'UTC', 'YYYY_MM'));
BEGIN
    IF to_regclass(format('meter.%I', v_name)) IS NOT NULL THEN
        RETURN v_name;
    END IF;
    EXECUTE format('CREATE TABLE meter.%I PARTITION OF meter.events FOR VALUES FROM (%L) TO (%L)',
                   v_name, v_from, v_from + interval '1 month');
    EXECUTE format('CREATE INDEX %I ON meter.%I (occurred_at)', v_name || '_time', v_name);
    EXECUTE format('CREATE INDEX %I ON meter.%I (txid)', v_name || '_txid', v_name);
    EXECUTE format('CREATE INDEX %I ON meter.%I USING hash (request_key) WHERE request_key IS NOT NULL', v_name || '_request', v_name);
    EXECUTE format('CREATE INDEX %I ON meter.%I (occurred_at) WHERE NOT priced', v_name || '_unpriced', v_name);
    RETURN v_name;
END $$;
COMMENT ON FUNCTION meter.create_partition(timestamptz) IS 'Creates the monthly partition of meter.events for a time (UTC months); returns its name.';
REVOKE ALL ON FUNCTION meter.create_partition(timestamptz) FROM PUBLIC;

CREATE TYPE meter.recorded AS (
    event_id        bigint,
    cost            numeric,
    potential_cost  numeric,
    duplicate       boolean,
    priced          boolean,
    price_version   bigint
);

CREATE FUNCTION meter.record(tenant text,
                             provider text DEFAULT NULL,
                             model text DEFAULT NULL,
                             usage jsonb DEFAULT NULL,
                             subject text DEFAULT NULL,
                             session text DEFAULT NULL,
                             endpoint text DEFAULT NULL,
                             feature text DEFAULT NULL,
                             cached boolean DEFAULT false,
                             latency_ms integer DEFAULT NULL,
                             ttft_ms integer DEFAULT NULL,
                             success boolean DEFAULT true,
                             error text DEFAULT NULL,
                             error_message text DEFAULT NULL,
                             request_id text DEFAULT NULL,
                             occurred_at timestamptz DEFAULT now(),
                             metadata jsonb DEFAULT NULL,
                             service_tier text DEFAULT 'standard',
                             reservation bigint DEFAULT NULL)
    RETURNS meter.recorded
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'meter_record';
COMMENT ON FUNCTION meter.record(text, text, text, jsonb, text, text, text, text, boolean, integer, integer, boolean, text, text, text, timestamptz, jsonb, text, bigint) IS
    'Records one API call, priced at its own time; returns the event id, cost, potential cost, whether it was a duplicate of an earlier request id, and whether it was priced. With reservation => id, the commit settles that reservation of meter.reserve with the call''s actual tokens.';

-- _batch_events: record_batch's events as typed rows, with the keys of
-- meter.record (an absent key is NULL)
CREATE FUNCTION meter._batch_events(events jsonb)
    RETURNS TABLE (tenant text, provider text, model text, usage jsonb, subject text, session text, endpoint text,
                   feature text, cached boolean, latency_ms integer, ttft_ms integer, success boolean, error text,
                   error_message text, request_id text, occurred_at timestamptz, metadata jsonb, service_tier text,
                   reservation bigint)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT r.* FROM jsonb_array_elements(events) AS e(v),
       jsonb_to_record(e.v) AS r(tenant text, provider text, model text, usage jsonb, subject text, session text,
                                 endpoint text, feature text, cached boolean, latency_ms integer, ttft_ms integer,
                                 success boolean, error text, error_message text, request_id text,
                                 occurred_at timestamptz, metadata jsonb, service_tier text, reservation bigint)
$$;

CREATE FUNCTION meter.record_batch(events jsonb, OUT inserted bigint, OUT duplicates bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_total bigint;
    v_bad record;
    v_settled bigint := 0;
    v_ev record;
BEGIN
    IF jsonb_typeof(events) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'events must be a JSON array of event objects'
            USING ERRCODE = 'sql_json_array_not_found',
                  DETAIL = format('The value is a JSON %s.', coalesce(jsonb_typeof(events), 'null')),
                  HINT = 'Pass [{"tenant": "...", "provider": "...", "model": "...", "usage": {...}}, ...].';
    END IF;
    -- a key meter.record does not take is a mistake, not a field to drop:
    -- a misspelt "modle" would record a call of no model at no cost
    SELECT e.i - 1 AS i, k.key INTO v_bad
      FROM jsonb_array_elements(events) WITH ORDINALITY AS e(v, i)
     CROSS JOIN LATERAL jsonb_object_keys(CASE WHEN jsonb_typeof(e.v) = 'object' THEN e.v ELSE '{}' END) AS k(key)
     WHERE k.key NOT IN ('tenant', 'provider', 'model', 'usage', 'subject', 'session', 'endpoint', 'feature', 'cached',
                         'latency_ms', 'ttft_ms', 'success', 'error', 'error_message', 'request_id', 'occurred_at',
                         'metadata', 'service_tier', 'reservation')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event % has an unknown key "%"', v_bad.i, v_bad.key USING ERRCODE = 'invalid_parameter_value',
              HINT = 'The keys are those of meter.record: tenant, provider, model, usage, subject, session, endpoint, '
                     'feature, cached, latency_ms, ttft_ms, success, error, error_message, request_id, occurred_at, '
                     'metadata, service_tier, reservation.';
    END IF;
    v_total := jsonb_array_length(events);
    -- an event that settles a reservation goes through meter.record, which
    -- settles it at commit; the others in one INSERT
    FOR v_ev IN SELECT * FROM meter._batch_events(events) x WHERE x.reservation IS NOT NULL LOOP
        IF NOT (meter.record(tenant => v_ev.tenant, provider => v_ev.provider, model => v_ev.model,
                             usage => v_ev.usage, subject => v_ev.subject, session => v_ev.session,
                             endpoint => v_ev.endpoint, feature => v_ev.feature,
                             cached => coalesce(v_ev.cached, false), latency_ms => v_ev.latency_ms,
                             ttft_ms => v_ev.ttft_ms, success => coalesce(v_ev.success, true), error => v_ev.error,
                             error_message => v_ev.error_message, request_id => v_ev.request_id,
                             occurred_at => coalesce(v_ev.occurred_at, now()), metadata => v_ev.metadata,
                             service_tier => coalesce(v_ev.service_tier, 'standard'),
                             reservation => v_ev.reservation)).duplicate THEN
            v_settled := v_settled + 1;
        END IF;
    END LOOP;
    INSERT INTO meter.events (tenant, provider, model, usage, subject, session, endpoint, feature, cached, latency_ms,
                              ttft_ms, success, error, error_message, request_id, occurred_at, metadata, service_tier)
    SELECT x.tenant, x.provider, x.model, x.usage, x.subject, x.session, x.endpoint, x.feature, coalesce(x.cached, false),
           x.latency_ms, x.ttft_ms, coalesce(x.success, true), x.error, x.error_message, x.request_id,
           coalesce(x.occurred_at, now()), x.metadata, coalesce(x.service_tier, 'standard')
      FROM meter._batch_events(events) x
     WHERE x.reservation IS NULL;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    inserted := inserted + v_settled;
    duplicates := v_total - inserted;
END $$;
COMMENT ON FUNCTION meter.record_batch(jsonb) IS 'Records a JSON array of events (the keys of meter.record; another key is refused) in one statement, an event with a reservation through meter.record so that it settles it; returns how many were inserted and how many were retries already recorded.';

-------------------------------------------------------------------------------
-- Rollups: hourly and daily aggregates, applied asynchronously by
-- meter.rollup() exactly once per event (transaction-snapshot watermark),
-- and read by meter.totals() together with the not-yet-rolled tail of the
-- raw log, so that answers are exact at every moment.
-------------------------------------------------------------------------------

CREATE FUNCTION meter.sketch_union(a meter.sketch, b meter.sketch) RETURNS meter.sketch
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_union';
COMMENT ON FUNCTION meter.sketch_union(meter.sketch, meter.sketch) IS 'The sketch of the values of both (either may be NULL).';

-- Three rollups, chosen by what they cost to keep and what reads need:
-- hourly and daily per tenant, provider, model, endpoint and feature (a
-- tenant's 30-day summary reads 30 daily rows per group plus the hours of
-- the edge days), and daily per tenant and subject (per-user dashboards;
-- kept for years; its other dimensions are NULL, so that all three share
-- one row shape). A subject-by-hour rollup would hold about one row per event
-- for a tenant with many users, costing as much as the log itself.
-- first_at and last_at bound the event times a row holds, so that reads
-- use a bucket cut by the range whenever all its events are inside it.
CREATE TABLE meter.rollup_hourly (
    tenant             text NOT NULL,
    bucket             timestamptz NOT NULL,
    provider           text,
    model              text,
    endpoint           text,
    feature            text,
    requests           bigint NOT NULL,
    errors             bigint NOT NULL,
    cache_hits         bigint NOT NULL,
    unpriced           bigint NOT NULL,
    input_tokens       numeric NOT NULL,
    output_tokens      numeric NOT NULL,
    cache_read_tokens  numeric NOT NULL,
    cache_write_tokens numeric NOT NULL,
    cost               numeric NOT NULL,
    potential_cost     numeric NOT NULL,
    latency            meter.sketch,
    ttft               meter.sketch,
    first_at           timestamptz NOT NULL,
    last_at            timestamptz NOT NULL,
    CONSTRAINT rollup_hourly_key UNIQUE NULLS NOT DISTINCT (tenant, bucket, provider, model, endpoint, feature)
) WITH (toast_tuple_target = 8160);  -- sketches stay inline and uncompressed: reads merge them without pglz
CREATE TABLE meter.rollup_daily (LIKE meter.rollup_hourly INCLUDING DEFAULTS,
    CONSTRAINT rollup_daily_key UNIQUE NULLS NOT DISTINCT (tenant, bucket, provider, model, endpoint, feature))
    WITH (toast_tuple_target = 8160);
CREATE TABLE meter.rollup_subject_daily (LIKE meter.rollup_hourly INCLUDING DEFAULTS, subject text,
    CONSTRAINT rollup_subject_daily_key UNIQUE NULLS NOT DISTINCT (tenant, bucket, subject, provider, model, endpoint, feature))
    WITH (toast_tuple_target = 8160);
-- rebuilds (backfill, reprice) replace the rows of a range of days
CREATE INDEX rollup_hourly_bucket ON meter.rollup_hourly (bucket);
CREATE INDEX rollup_daily_bucket ON meter.rollup_daily (bucket);
CREATE INDEX rollup_subject_daily_bucket ON meter.rollup_subject_daily (bucket);
-- one subject's days (meter.subject_usage)
CREATE INDEX rollup_subject_daily_subject ON meter.rollup_subject_daily (tenant, subject, bucket);
COMMENT ON TABLE meter.rollup_hourly IS 'Hourly aggregates of meter.events per tenant, provider, model, endpoint and feature (UTC hours); read them through meter.totals, which adds what is not rolled up yet.';
COMMENT ON TABLE meter.rollup_daily IS 'Daily aggregates of meter.events per tenant, provider, model, endpoint and feature (UTC days), kept after raw events are dropped.';
COMMENT ON TABLE meter.rollup_subject_daily IS 'Daily aggregates of meter.events per tenant and subject (UTC days; provider, model, endpoint and feature are NULL): what per-user reads sum.';

-- subject_months: per subject and UTC month, on which days it has a row in
-- rollup_subject_daily (bit d - 1 of days for day d) and the sums of those
-- rows' figures that subjects are ranked by. meter.summary counts a range's
-- subjects from the bits: a row per subject and month instead of one per
-- subject and day, and a narrow one (2,000 subjects over 30 days: about
-- 4,000 rows of 80 bytes instead of 60,000 of 1 kB with their sketches).
-- meter.top_subjects bounds each subject from the sums: every figure is
-- zero or more, so a subject's amount over a range is at most the sum of
-- its months that the range touches (and its events not rolled up yet).
-- It is derived: triggers on rollup_subject_daily keep it equal to that
-- table whoever writes it (the rollup job, backfill, reprice, a restore
-- from pg_dump), so pg_dump leaves it out.
CREATE TABLE meter.subject_months (
    tenant         text NOT NULL,
    month          timestamptz NOT NULL,  -- 00:00 UTC on the month's first day
    subject        text NOT NULL,
    days           integer NOT NULL CHECK (days <> 0),
    requests       bigint NOT NULL,
    errors         bigint NOT NULL,
    input_tokens   numeric NOT NULL,
    output_tokens  numeric NOT NULL,
    cost           numeric NOT NULL,
    potential_cost numeric NOT NULL,
    PRIMARY KEY (tenant, month, subject)
);
COMMENT ON TABLE meter.subject_months IS 'Per subject and UTC month: on which days it has usage (bit d - 1 of days for day d) and the sums of its requests, errors, tokens, cost and potential cost; kept equal to meter.rollup_subject_daily by its triggers. meter.summary counts unique subjects from it; meter.top_subjects bounds subjects with it.';

-- _subject_months_fix sets the subject_months rows of the (tenant, month,
-- subject) keys of the given rows to what rollup_subject_daily holds now:
-- a set bit for every day with a row and the sums of those rows, no row
-- for a month without one. Recomputed rather than patched, so that it is
-- right after any write.
CREATE FUNCTION meter._subject_months_fix(p_tenants text[], p_buckets timestamptz[], p_subjects text[])
    RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
    WITH k AS (
        SELECT DISTINCT k.tenant, date_trunc('month', k.bucket) AS month, k.subject
          FROM unnest(p_tenants, p_buckets, p_subjects) AS k(tenant, bucket, subject)
         WHERE k.subject IS NOT NULL AND k.tenant IS NOT NULL AND isfinite(k.bucket)
    ), cur AS MATERIALIZED (
        SELECT k.tenant, k.month, k.subject, s.*
          FROM k, LATERAL (
              SELECT bit_or(1 << (date_part('day', r.bucket)::integer - 1)) AS days, sum(r.requests)::bigint AS requests,
                     sum(r.errors)::bigint AS errors, sum(r.input_tokens) AS input_tokens,
                     sum(r.output_tokens) AS output_tokens, sum(r.cost) AS cost, sum(r.potential_cost) AS potential_cost
                FROM meter.rollup_subject_daily r
               WHERE r.tenant = k.tenant AND r.subject = k.subject
                 AND r.bucket >= k.month AND r.bucket < k.month + interval '1 month') s
    ), gone AS (
        DELETE FROM meter.subject_months m USING cur c
         WHERE c.days IS NULL AND m.tenant = c.tenant AND m.month = c.month AND m.subject = c.subject
    )
    INSERT INTO meter.subject_months AS m (tenant, month, subject, days, requests, errors, input_tokens, output_tokens,
                                           cost, potential_cost)
    SELECT c.tenant, c.month, c.subject, c.days, c.requests, c.errors, c.input_tokens, c.output_tokens, c.cost,
           c.potential_cost
      FROM cur c WHERE c.days IS NOT NULL
    ON CONFLICT (tenant, month, subject) DO UPDATE
       SET days = EXCLUDED.days, requests = EXCLUDED.requests, errors = EXCLUDED.errors,
           input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens, cost = EXCLUDED.cost,
           potential_cost = EXCLUDED.potential_cost
     WHERE (m.days, m.requests, m.errors, m.input_tokens, m.output_tokens, m.cost, m.potential_cost)
           IS DISTINCT FROM (EXCLUDED.days, EXCLUDED.requests, EXCLUDED.errors, EXCLUDED.input_tokens,
                             EXCLUDED.output_tokens, EXCLUDED.cost, EXCLUDED.potential_cost)
$$;
REVOKE ALL ON FUNCTION meter._subject_months_fix(text[], timestamptz[], text[]) FROM PUBLIC;

-- _span_months: the UTC months of the whole days [d1, d2) (UTC midnights)
-- and, for each, the bits of subject_months.days that are days of the span.
-- A function in FROM, so that a month's bits are worked out once and not for
-- every subject's row they filter.
CREATE FUNCTION meter._span_months(d1 timestamptz, d2 timestamptz) RETURNS TABLE (month timestamptz, bits bigint)
    LANGUAGE sql STABLE
    ROWS 2
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
    SELECT o.month, ((1::bigint << (b.hi - b.lo)) - 1) << b.lo
      FROM generate_series(date_trunc('month', d1), d2 - interval '1 day', interval '1 month') AS o(month),
           -- day numbers from 0; bits past the month's last day are never set in days
           LATERAL (SELECT greatest(0, (extract(epoch FROM d1 - o.month) / 86400)::integer) AS lo,
                           least(31, (extract(epoch FROM d2 - o.month) / 86400)::integer) AS hi) b
     WHERE b.hi > b.lo
$$;

-- _subject_months_diff: the (tenant, month, subject) keys whose day bits for
-- the whole days [d1, d2) differ between subject_months (have) and the rows
-- of rollup_subject_daily (want), and with p_sums also those whose sums
-- differ (sums are of whole months: every month the span touches is read
-- whole; have_sums and want_sums are given only then); what meter.verify
-- reports and a rebuild sets right.
CREATE FUNCTION meter._subject_months_diff(d1 timestamptz, d2 timestamptz, p_sums boolean DEFAULT false)
    RETURNS TABLE (tenant text, month timestamptz, subject text, have bigint, want bigint, have_sums text,
                   want_sums text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
    WITH o AS MATERIALIZED (SELECT s.month, s.bits FROM meter._span_months(d1, d2) s)
    SELECT coalesce(h.tenant, w.tenant), coalesce(h.month, w.month), coalesce(h.subject, w.subject),
           coalesce(h.days, 0), coalesce(w.days, 0),
           -- the sums only where they differ (as numbers: 0.50 = 0.5)
           CASE WHEN h.sums IS DISTINCT FROM w.sums THEN h.sums::text END,
           CASE WHEN h.sums IS DISTINCT FROM w.sums THEN w.sums::text END
      FROM (SELECT m.tenant, m.month, m.subject, m.days & o.bits AS days,
                   CASE WHEN p_sums THEN (m.requests, m.errors, m.input_tokens, m.output_tokens, m.cost,
                                          m.potential_cost) END AS sums
              FROM o JOIN meter.subject_months m ON m.month = o.month
             WHERE p_sums OR (m.days & o.bits) <> 0) h
      FULL JOIN (SELECT w.tenant, w.month, w.subject, w.days & o.bits AS days, w.sums
                   -- the span's days' rows, or (for sums) its months' whole
                   FROM (SELECT r.tenant, date_trunc('month', r.bucket) AS month, r.subject,
                                bit_or(1::bigint << (date_part('day', r.bucket)::integer - 1)) AS days,
                                -- (FILTER: not even summed without p_sums, a rebuild's every day)
                                CASE WHEN p_sums THEN (sum(r.requests) FILTER (WHERE p_sums)::bigint,
                                                       sum(r.errors) FILTER (WHERE p_sums)::bigint,
                                                       sum(r.input_tokens) FILTER (WHERE p_sums),
                                                       sum(r.output_tokens) FILTER (WHERE p_sums),
                                                       sum(r.cost) FILTER (WHERE p_sums),
                                                       sum(r.potential_cost) FILTER (WHERE p_sums)) END AS sums
                           FROM meter.rollup_subject_daily r
                          WHERE r.bucket >= CASE WHEN p_sums THEN date_trunc('month', d1) ELSE d1 END
                            AND r.bucket < CASE WHEN p_sums THEN date_trunc('month', d2 - interval '1 day')
                                                                 + interval '1 month' ELSE d2 END
                            AND r.subject IS NOT NULL
                          GROUP BY 1, 2, 3) w
                   JOIN o ON o.month = w.month) w
        ON w.tenant = h.tenant AND w.month = h.month AND w.subject = h.subject
     WHERE coalesce(h.days, 0) <> coalesce(w.days, 0) OR h.sums IS DISTINCT FROM w.sums
$$;

-- _subject_months_sync: the triggers, one call a statement, with the rows
-- as transition tables (a day's rebuild inserts 2,000 rows; a rollup pass
-- updates the rows of the subjects it saw). An inserted row sets its day's
-- bit and adds its figures; an updated row adds what it gained to its
-- month; a deleted row, or an update that moves rows to other days or
-- subjects, has its subject's month worked out again (another row may hold
-- the same day).
CREATE FUNCTION meter._subject_months_sync() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'  -- months and days of UTC (once a statement)
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM meter.subject_months;
    ELSIF TG_OP = 'INSERT' THEN
        -- a new row is a day with a row: its bit is set, whatever else holds
        INSERT INTO meter.subject_months AS m (tenant, month, subject, days, requests, errors, input_tokens,
                                               output_tokens, cost, potential_cost)
        SELECT n.tenant, n.month, n.subject, bit_or(n.bit), sum(n.requests), sum(n.errors), sum(n.input_tokens),
               sum(n.output_tokens), sum(n.cost), sum(n.potential_cost)
          FROM (SELECT n.*, date_trunc('month', n.bucket) AS month, 1 << (date_part('day', n.bucket)::integer - 1) AS bit
                  FROM new_rows n WHERE n.subject IS NOT NULL AND n.tenant IS NOT NULL AND isfinite(n.bucket)) n
         GROUP BY 1, 2, 3
        ON CONFLICT (tenant, month, subject) DO UPDATE
           SET days = m.days | EXCLUDED.days, requests = m.requests + EXCLUDED.requests,
               errors = m.errors + EXCLUDED.errors, input_tokens = m.input_tokens + EXCLUDED.input_tokens,
               output_tokens = m.output_tokens + EXCLUDED.output_tokens, cost = m.cost + EXCLUDED.cost,
               potential_cost = m.potential_cost + EXCLUDED.potential_cost;
    ELSIF TG_OP = 'UPDATE' THEN
        -- what each month gained: its new rows less its old ones
        UPDATE meter.subject_months m
           SET requests = m.requests + d.requests, errors = m.errors + d.errors,
               input_tokens = m.input_tokens + d.input_tokens, output_tokens = m.output_tokens + d.output_tokens,
               cost = m.cost + d.cost, potential_cost = m.potential_cost + d.potential_cost
          FROM (SELECT x.tenant, date_trunc('month', x.bucket) AS month, x.subject, sum(x.requests) AS requests,
                       sum(x.errors) AS errors, sum(x.input_tokens) AS input_tokens,
                       sum(x.output_tokens) AS output_tokens, sum(x.cost) AS cost,
                       sum(x.potential_cost) AS potential_cost
                  FROM (SELECT n.tenant, n.bucket, n.subject, n.requests, n.errors, n.input_tokens, n.output_tokens,
                               n.cost, n.potential_cost
                          FROM new_rows n
                        UNION ALL
                        SELECT o.tenant, o.bucket, o.subject, -o.requests, -o.errors, -o.input_tokens,
                               -o.output_tokens, -o.cost, -o.potential_cost
                          FROM old_rows o) x
                 WHERE x.subject IS NOT NULL AND x.tenant IS NOT NULL AND isfinite(x.bucket)
                 GROUP BY 1, 2, 3) d
         WHERE m.tenant = d.tenant AND m.month = d.month AND m.subject = d.subject
           AND (d.requests, d.errors, d.input_tokens, d.output_tokens, d.cost, d.potential_cost)
               IS DISTINCT FROM (0, 0, 0, 0, 0, 0);
        -- days that lost or gained a row: their months worked out again
        PERFORM meter._subject_months_fix(array_agg(k.tenant), array_agg(k.bucket), array_agg(k.subject))
           FROM ((SELECT o.tenant, o.bucket, o.subject FROM old_rows o
                  EXCEPT SELECT n.tenant, n.bucket, n.subject FROM new_rows n)
                 UNION
                 (SELECT n.tenant, n.bucket, n.subject FROM new_rows n
                  EXCEPT SELECT o.tenant, o.bucket, o.subject FROM old_rows o)) k
         HAVING count(*) > 0;
    ELSE
        PERFORM meter._subject_months_fix(array_agg(o.tenant), array_agg(o.bucket), array_agg(o.subject))
           FROM old_rows o WHERE o.subject IS NOT NULL HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER subject_months_insert AFTER INSERT ON meter.rollup_subject_daily
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION meter._subject_months_sync();
CREATE TRIGGER subject_months_update AFTER UPDATE ON meter.rollup_subject_daily
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION meter._subject_months_sync();
CREATE TRIGGER subject_months_delete AFTER DELETE ON meter.rollup_subject_daily
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION meter._subject_months_sync();
CREATE TRIGGER subject_months_truncate AFTER TRUNCATE ON meter.rollup_subject_daily
    FOR EACH STATEMENT EXECUTE FUNCTION meter._subject_months_sync();

-- rollup_state: the snapshot up to which events are in the rollups. An
-- event is rolled up exactly once: when its transaction is visible in the
-- new snapshot and was not in the previous one.
CREATE TABLE meter.rollup_state (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    watermark  pg_snapshot NOT NULL,
    rolled_at  timestamptz,
    last_events bigint NOT NULL DEFAULT 0
);
-- the row is made by the first rollup (so that pg_dump keeps it and a
-- restore does not load it twice)
SELECT pg_catalog.pg_extension_config_dump('meter.rollup_state', '');
SELECT pg_catalog.pg_extension_config_dump('meter.rollup_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('meter.rollup_daily', '');
SELECT pg_catalog.pg_extension_config_dump('meter.rollup_subject_daily', '');

-- _check_watermark refuses to go on when the watermark comes from a
-- cluster whose transaction ids are ahead of this one (a dump restored into
-- another server): comparing them would miscount silently.
CREATE FUNCTION meter._check_watermark() RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w pg_snapshot;
BEGIN
    SELECT watermark INTO w FROM meter.rollup_state;
    IF w IS NOT NULL AND pg_snapshot_xmax(pg_current_snapshot()) < pg_snapshot_xmin(w) THEN
        RAISE EXCEPTION 'the rollup watermark is ahead of this server''s transactions'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The watermark starts at transaction %s; this server is at %s. The data was probably restored from another server.',
                                  pg_snapshot_xmin(w), pg_snapshot_xmax(pg_current_snapshot())),
                  HINT = 'Rebuild the rollups from the raw events before rolling up or reading totals.';
    END IF;
END $$;

-- _unrolled: is transaction txid not covered by the watermark snapshot?
CREATE FUNCTION meter._unrolled(txid bigint, watermark pg_snapshot) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_unrolled';
-- _rolls: is txid visible in cur and not in prev (the events of one pass)?
CREATE FUNCTION meter._rolls(txid bigint, prev pg_snapshot, cur pg_snapshot) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_rolls';

-- _tail_from: the lowest transaction id an event not rolled up yet can
-- carry (the watermark's xmin; 0 before the first rollup), as a bound the
-- txid index serves. Watermarks only move forward, so a bound read in an
-- earlier snapshot is never too high. STABLE, so that the planner reads its
-- value when it estimates "txid >= meter._tail_from()" in a query that is
-- not planned for one value (meter._tail_rows, and meter._usage's query,
-- whose generic plan is kept for the session): the tail is small, and the
-- estimate picks the txid index rather than a scan of the events.
CREATE FUNCTION meter._tail_from() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN coalesce((SELECT pg_snapshot_xmin(s.watermark)::text::bigint FROM meter.rollup_state s), 0);

-- _rollup_mark: this transaction rolls up; an event it records afterwards
-- would be counted as done by the watermark, so it is refused.
CREATE FUNCTION meter._rollup_mark() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'meter_rollup_mark';
REVOKE ALL ON FUNCTION meter._rollup_mark() FROM PUBLIC;

-- _rollup: events into rollup rows at every grain in one pass (the C++
-- core's aggregator, src/core/rollup.hpp): what rollup(), _rebuild() and
-- verify() unnest. g tells the grains apart: 1 hourly, 2 per subject and
-- day, 3 daily. Sums are exact (integers, money at 24 decimals).
CREATE TYPE meter._rollup_row AS (
    g                  integer,
    tenant             text,
    bucket             timestamptz,
    subject            text,
    provider           text,
    model              text,
    endpoint           text,
    feature            text,
    requests           bigint,
    errors             bigint,
    cache_hits         bigint,
    unpriced           bigint,
    input_tokens       numeric,
    output_tokens      numeric,
    cache_read_tokens  numeric,
    cache_write_tokens numeric,
    cost               numeric,
    potential_cost     numeric,
    latency            meter.sketch,
    ttft               meter.sketch,
    first_at           timestamptz,
    last_at            timestamptz
);
CREATE FUNCTION meter._rollup_add(internal, text, text, text, text, text, text, timestamptz, boolean, boolean,
                                  boolean, bigint, bigint, bigint, bigint, numeric, numeric, integer, integer)
    RETURNS internal LANGUAGE c CALLED ON NULL INPUT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_rollup_add';
CREATE FUNCTION meter._rollup_final(internal) RETURNS meter._rollup_row[]
    LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_rollup_final';
-- a large delta is aggregated by parallel workers, each into a partial
-- state that it sends to the leader as bytes (bench/README.md, session 25)
CREATE FUNCTION meter._rollup_serial(internal) RETURNS bytea
    LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_rollup_serial';
CREATE FUNCTION meter._rollup_deserial(bytea, internal) RETURNS internal
    LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_rollup_deserial';
CREATE FUNCTION meter._rollup_combine(internal, internal) RETURNS internal
    LANGUAGE c CALLED ON NULL INPUT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_rollup_combine';
CREATE AGGREGATE meter._rollup(tenant text, subject text, provider text, model text, endpoint text, feature text,
                               occurred_at timestamptz, success boolean, cached boolean, priced boolean,
                               input_tokens bigint, output_tokens bigint, cache_read_tokens bigint,
                               cache_write_tokens bigint, cost numeric, potential_cost numeric,
                               latency_ms integer, ttft_ms integer) (
    SFUNC = meter._rollup_add,
    STYPE = internal,
    FINALFUNC = meter._rollup_final,
    COMBINEFUNC = meter._rollup_combine,
    SERIALFUNC = meter._rollup_serial,
    DESERIALFUNC = meter._rollup_deserial,
    PARALLEL = SAFE
);

-- _measures: one group's figures from its events (the core's Measures, as
-- the rollup's aggregator sums them): what the reads sum the log with, one
-- transition per event instead of twelve aggregates. Events with a NULL
-- latency or ttft are not in that sketch: a read that needs no sketch
-- passes NULL for both.
CREATE TYPE meter._measures AS (
    requests           bigint,
    errors             bigint,
    cache_hits         bigint,
    unpriced           bigint,
    input_tokens       numeric,
    output_tokens      numeric,
    cache_read_tokens  numeric,
    cache_write_tokens numeric,
    cost               numeric,
    potential_cost     numeric,
    latency            meter.sketch,
    ttft               meter.sketch
);
CREATE FUNCTION meter._measures_add(internal, boolean, boolean, boolean, bigint, bigint, bigint, bigint, numeric,
                                    numeric, integer, integer)
    RETURNS internal LANGUAGE c CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'meter_measures_add';
CREATE FUNCTION meter._measures_final(internal) RETURNS meter._measures
    LANGUAGE c AS 'MODULE_PATHNAME', 'meter_measures_final';
CREATE AGGREGATE meter._measures(success boolean, cached boolean, priced boolean, input_tokens bigint,
                                 output_tokens bigint, cache_read_tokens bigint, cache_write_tokens bigint,
                                 cost numeric, potential_cost numeric, latency_ms integer, ttft_ms integer) (
    SSPACE = 1024,  -- the figures and two sketches of a few dozen buckets (C++ memory the executor does not count)
    SFUNC = meter._measures_add,
    STYPE = internal,
    FINALFUNC = meter._measures_final
);
-- _measures_less: the same, negated (every sum and sketch count): what a
-- read takes away from a rollup row for the row's events outside its range
-- (meter.merge of a sketch and its values' negated sketch leaves the rest).
CREATE FUNCTION meter._measures_less_final(internal) RETURNS meter._measures
    LANGUAGE c AS 'MODULE_PATHNAME', 'meter_measures_less_final';
CREATE AGGREGATE meter._measures_less(success boolean, cached boolean, priced boolean, input_tokens bigint,
                                      output_tokens bigint, cache_read_tokens bigint, cache_write_tokens bigint,
                                      cost numeric, potential_cost numeric, latency_ms integer, ttft_ms integer) (
    SSPACE = 1024,
    SFUNC = meter._measures_add,
    STYPE = internal,
    FINALFUNC = meter._measures_less_final
);

-- _lock_rollups takes the rollups for this transaction: rollup(), the
-- rebuilds of backfill() and reprice(), and retention take it, so that one
-- changes them at a time. Read events in a later statement than this one:
-- its snapshot then holds every event the watermark covers.
CREATE FUNCTION meter._lock_rollups() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO meter.rollup_state (watermark) VALUES ('1:1:') ON CONFLICT DO NOTHING;
    PERFORM 1 FROM meter.rollup_state FOR UPDATE;
    PERFORM meter._check_watermark();
END $$;
REVOKE ALL ON FUNCTION meter._lock_rollups() FROM PUBLIC;

CREATE FUNCTION meter.rollup() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
DECLARE
    v_events bigint;
    v_from bigint;
    v_rows meter._rollup_row[];
    v_snap pg_snapshot;
BEGIN
    PERFORM meter._rollup_mark();
    -- one run at a time; a second waits and then finds what is left
    PERFORM meter._lock_rollups();
    v_from := meter._tail_from();
    -- The delta, aggregated at the three grains in one pass by
    -- meter._rollup, in a statement of its own that reads and writes
    -- nothing else: a statement that writes gets no parallel workers, and
    -- a large delta (a bulk load) is aggregated by two in 0.7 of the time
    -- (bench/README.md, session 25). The snapshot that read the events is
    -- the one pg_current_snapshot() returns in the same statement: it
    -- becomes the watermark below. (The two snapshots of the filter are
    -- init-plan parameters, read once: a join with them would leave the
    -- planner guessing the delta's size.)
    EXECUTE format($q$
        SELECT meter._rollup(e.tenant, e.subject, e.provider, e.model, e.endpoint, e.feature, e.occurred_at,
                             e.success, e.cached, e.priced, e.input_tokens, e.output_tokens,
                             e.cache_read_tokens, e.cache_write_tokens, e.cost, e.potential_cost,
                             e.latency_ms, e.ttft_ms),
               pg_current_snapshot()
          FROM meter.events e
         WHERE e.txid >= %1$s  -- the same bound as a constant, so the txid index serves it
           AND meter._rolls(e.txid, (SELECT watermark FROM meter.rollup_state), (SELECT pg_current_snapshot()))
    $q$, v_from) INTO v_rows, v_snap;
    -- all three grains merge into the stored rows the same way; nothing
    -- else moves the watermark meanwhile (the lock above)
    EXECUTE format($q$
    WITH agg AS MATERIALIZED (
        SELECT r.* FROM unnest($1) r
    ), hourly AS (
        INSERT INTO meter.rollup_hourly AS r
        SELECT %1$s FROM agg WHERE g = 1
        ON CONFLICT ON CONSTRAINT rollup_hourly_key DO UPDATE SET %3$s
        RETURNING 1
    ), daily AS (
        INSERT INTO meter.rollup_daily AS r
        SELECT %1$s FROM agg WHERE g = 3
        ON CONFLICT ON CONSTRAINT rollup_daily_key DO UPDATE SET %3$s
        RETURNING 1
    ), subject_daily AS (
        INSERT INTO meter.rollup_subject_daily AS r (%2$s)
        SELECT %2$s FROM agg WHERE g = 2
        ON CONFLICT ON CONSTRAINT rollup_subject_daily_key DO UPDATE SET %3$s
        RETURNING 1
    ), moved AS (
        UPDATE meter.rollup_state s SET watermark = $2, rolled_at = now(),
               last_events = (SELECT coalesce(sum(requests), 0) FROM agg WHERE g = 1) + 0 * (SELECT count(*) FROM hourly)
                             + 0 * (SELECT count(*) FROM daily) + 0 * (SELECT count(*) FROM subject_daily)
         RETURNING s.last_events
    )
    SELECT last_events FROM moved
    $q$,
    -- the columns of a rollup row, in the hourly and daily tables' order
    'tenant, bucket, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced, input_tokens, '
    'output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost, latency, ttft, first_at, last_at',
    -- and with the subject
    'tenant, bucket, subject, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced, input_tokens, '
    'output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost, latency, ttft, first_at, last_at',
    -- how a batch's aggregates add to a stored row
    'requests = r.requests + EXCLUDED.requests, errors = r.errors + EXCLUDED.errors, '
    'cache_hits = r.cache_hits + EXCLUDED.cache_hits, unpriced = r.unpriced + EXCLUDED.unpriced, '
    'input_tokens = r.input_tokens + EXCLUDED.input_tokens, output_tokens = r.output_tokens + EXCLUDED.output_tokens, '
    'cache_read_tokens = r.cache_read_tokens + EXCLUDED.cache_read_tokens, '
    'cache_write_tokens = r.cache_write_tokens + EXCLUDED.cache_write_tokens, '
    'cost = r.cost + EXCLUDED.cost, potential_cost = r.potential_cost + EXCLUDED.potential_cost, '
    'latency = meter.sketch_union(r.latency, EXCLUDED.latency), ttft = meter.sketch_union(r.ttft, EXCLUDED.ttft), '
    'first_at = least(r.first_at, EXCLUDED.first_at), last_at = greatest(r.last_at, EXCLUDED.last_at)')
    INTO v_events USING v_rows, v_snap;
    RETURN v_events;
END $$;
COMMENT ON FUNCTION meter.rollup() IS 'Adds every event committed since the last run to the hourly and daily rollups, exactly once; returns how many. Harmless when there is nothing to do.';
REVOKE ALL ON FUNCTION meter.rollup() FROM PUBLIC;

-- _check_range refuses an infinite bound, and a range whose start is after
-- its end (22023): a read over -infinity..infinity would walk every month or
-- day there is. NULL bounds are the caller's to judge. Times print in the
-- caller's zone.
CREATE FUNCTION meter._check_range(since timestamptz, until timestamptz) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT isfinite(since) OR NOT isfinite(until) THEN
        RAISE EXCEPTION 'since and until must be finite times' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since > until THEN
        RAISE EXCEPTION 'since (%) is after until (%)', since, until USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- _usage_run: meter._usage's query (its text, then $1 .. $12) run with a
-- generic plan kept for the session, one per text (src/pg/kept_plans.cpp)
CREATE FUNCTION meter._usage_run(query text, p_tenant text, since timestamptz, h1 timestamptz, h2 timestamptz,
                                 until timestamptz, d1 timestamptz, d2 timestamptz, p_subjects text[],
                                 n1 timestamptz, n2 timestamptz, lo timestamptz, hi timestamptz)
    RETURNS TABLE (key text, requests bigint, errors bigint, cache_hits bigint, unpriced bigint,
                   input_tokens numeric, output_tokens numeric, cache_read_tokens numeric,
                   cache_write_tokens numeric, cost numeric, potential_cost numeric,
                   latency meter.sketch, ttft meter.sketch)
    LANGUAGE c STABLE
    -- generic whatever the caller's setting (a plan for each call's values
    -- is what planning every call cost)
    SET plan_cache_mode = force_generic_plan
    -- a generic plan takes a range's rollup rows for a couple (its bounds
    -- are parameters) and sorted the wide rows (4 KB sketches) to group
    -- them: 0.9 ms for a month's 435 daily rows, where hashing is linear;
    -- the cost of a sort that stays (the final ORDER BY) disabled would
    -- take the plan past the JIT's threshold
    SET enable_sort = off
    SET jit = off
    AS 'MODULE_PATHNAME', 'meter_usage_run';

-- _usage: what every read function stands on. A tenant's usage over
-- [since, until), one row per group (by as for meter.totals), of the
-- subjects in p_subjects when it is given; latency and ttft are the merged sketches
-- (NULL when p_sketches is false, for reads that need no percentile). by
-- may name two keys, 'day,model': the key is then a JSON array of the two
-- keys' texts, '["2026-02-01 00:00:00+00", "gpt-4o"]' (one read of the
-- same rollups; subject pairs with day only, its rollup being by day).
CREATE FUNCTION meter._usage(p_tenant text, since timestamptz, until timestamptz, by text DEFAULT NULL,
                             p_subjects text[] DEFAULT NULL, p_sketches boolean DEFAULT true)
    RETURNS TABLE (key text, requests bigint, errors bigint, cache_hits bigint, unpriced bigint,
                   input_tokens numeric, output_tokens numeric, cache_read_tokens numeric,
                   cache_write_tokens numeric, cost numeric, potential_cost numeric,
                   latency meter.sketch, ttft meter.sketch)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    v_tenant text := p_tenant;
    v_by text := lower(coalesce(_usage.by, 'none'));
    v_parts text[] := string_to_array(replace(v_by, ' ', ''), ',');
    v_part text;
    v_r text[] := '{}';           -- the key columns (k1, k2) over rollup rows
    v_e text[] := '{}';           -- ... and over events
    v_c text[] := '{}';           -- ... and over the events of one range inside a bucket (%1$s: its start)
    v_text text := 'parts.k1::text';  -- a group's key as text, made once a group
    v_order text := 'parts.k1';   -- groups in the order of their keys (one key as its type)
    v_only text := '';            -- the subject filter, when one is given
    v_grain text := 'hour';       -- the finest rollup the grouping can read
    v_fine text := 'rollup_hourly';
    v_coarse text := 'rollup_daily';  -- read for whole days inside the span
    r_key text;
    e_key text;
    c_key text;
    b1 timestamptz;
    b2 timestamptz;
    h1 timestamptz;
    h2 timestamptz;
    d1 timestamptz;
    d2 timestamptz;
    n1 timestamptz := since;      -- [n1, since) and [until, n2): rolled events taken away from
    n2 timestamptz := until;      -- the rows of the cut buckets read whole (empty unless so)
    lo timestamptz;               -- [lo, h1) and [h2, hi): whole hours of cut days from
    hi timestamptz;               -- meter.subject_hours (empty unless so)
    x timestamptz;
    v_group text;                 -- GROUP BY of the parts
    v_branch text;                -- a part from the log (a format: see below)
    v_events text;                -- the parts from the log
    v_rolled text := ' AND (e.txid < pg_snapshot_xmin((SELECT w FROM wm))::text::bigint'
                     ' OR NOT meter._unrolled(e.txid, (SELECT w FROM wm)))';
    v_figures text;
BEGIN
    IF v_tenant IS NULL OR since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'tenant, since and until must be given' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM meter._check_range(since, until);
    IF cardinality(v_parts) NOT IN (1, 2)
       OR (cardinality(v_parts) = 2 AND (v_parts[1] = v_parts[2] OR 'none' = ANY (v_parts)
                                         OR ('subject' = ANY (v_parts) AND NOT 'day' = ANY (v_parts)))) THEN
        RAISE EXCEPTION 'cannot group totals by "%"', _usage.by USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use subject, provider, model, endpoint, feature, hour, day, or NULL for one row; or two different '
                   'keys separated by a comma (subject with day only).';
    END IF;
    FOREACH v_part IN ARRAY v_parts LOOP
        CASE v_part
            WHEN 'none' THEN r_key := '''all'''; e_key := '''all''';
            -- times are grouped as times (and turned into text once a group)
            WHEN 'hour' THEN r_key := 'r.bucket'; e_key := 'date_trunc(''hour'', e.occurred_at)'; v_coarse := NULL;
            WHEN 'day' THEN r_key := 'date_trunc(''day'', r.bucket)'; e_key := 'date_trunc(''day'', e.occurred_at)';
            WHEN 'provider', 'model', 'endpoint', 'feature' THEN r_key := format('r.%I', v_part); e_key := format('e.%I', v_part);
            WHEN 'subject' THEN
                -- subjects are rolled up by day
                r_key := 'r.subject'; e_key := 'e.subject'; v_grain := 'day'; v_fine := 'rollup_subject_daily'; v_coarse := NULL;
            ELSE
                RAISE EXCEPTION 'cannot group totals by "%"', _usage.by USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Use subject, provider, model, endpoint, feature, hour, day, or NULL for one row.';
        END CASE;
        v_r := v_r || format('%s AS k%s', r_key, cardinality(v_r) + 1);
        v_e := v_e || format('%s AS k%s', e_key, cardinality(v_e) + 1);
        -- the events before the span and after it each lie inside one bucket
        -- of the grain (see the span below), so their hour and day are their
        -- range's start's: one group the planner knows of, not a sort by the
        -- time of every event (2 of the cut hour's 6.6 ms)
        c_key := CASE WHEN v_part IN ('hour', 'day') THEN format('date_trunc(%L, %%1$s)', v_part) ELSE e_key END;
        v_c := v_c || format('%s AS k%s', c_key, cardinality(v_c) + 1);
    END LOOP;
    IF cardinality(v_parts) = 2 THEN
        -- rows and events are grouped by the two keys as they are; each group's
        -- JSON text is made once, in the sum of the parts (and ordered by it)
        v_text := 'jsonb_build_array(parts.k1::text, parts.k2::text)::text';
        v_order := '1';
    END IF;
    IF p_subjects IS NOT NULL THEN
        IF 'hour' = ANY (v_parts) THEN
            RAISE EXCEPTION 'cannot group one subject''s usage by hour' USING ERRCODE = 'invalid_parameter_value',
                DETAIL = 'Subjects are rolled up by day.';
        ELSIF v_parts && ARRAY['provider', 'model', 'endpoint', 'feature'] THEN
            RAISE EXCEPTION 'cannot group one subject''s usage by "%"', _usage.by USING ERRCODE = 'invalid_parameter_value',
                DETAIL = 'A subject''s days are rolled up per tenant and subject only.';
        END IF;
        -- the given subjects: their rows are rolled up by day
        v_grain := 'day'; v_fine := 'rollup_subject_daily'; v_coarse := NULL;
        v_only := ' AND %1$s.subject = ANY ($8)';
    END IF;
    PERFORM meter._check_watermark();
    -- [h1, h2) is the span read from the rollups: whole buckets inside the
    -- range, widened by an edge bucket whose rolled events all lie inside it
    -- (an hour cut by "until = now()" usually is). Inside the span, whole
    -- days [d1, d2) come from the daily rollup and the other hours from the
    -- hourly one; events in the span not rolled up yet come from the log
    -- (the tail); events outside it, from the log directly. So every event
    -- in [since, until) counts once. The span starts at b1 or at the bucket
    -- after it, and ends at b2 or the bucket after it (at h1 when the range
    -- lies inside one bucket), so the events before it lie in since's
    -- bucket and those after it in until's.
    b1 := date_trunc(v_grain, since);
    b2 := date_trunc(v_grain, until);
    h1 := CASE WHEN b1 = since THEN b1 ELSE b1 + ('1 ' || v_grain)::interval END;
    h2 := b2;
    -- (of one subject, its own row decides: another subject's earlier
    -- events do not make its day a cut one)
    IF h1 > b1 THEN
        EXECUTE format('SELECT CASE WHEN coalesce(bool_and(r.first_at >= $2), true) THEN $3 ELSE $4 END
                          FROM meter.%I r WHERE r.tenant = $1 AND r.bucket = $3%s', v_fine,
                       CASE WHEN p_subjects IS NOT NULL THEN ' AND r.subject = ANY ($5)' END)
            INTO h1 USING v_tenant, since, b1, h1, p_subjects;
    END IF;
    IF b2 < until THEN
        EXECUTE format('SELECT CASE WHEN coalesce(bool_and(r.last_at < $2), true) THEN $3 + $5 ELSE $4 END
                          FROM meter.%I r WHERE r.tenant = $1 AND r.bucket = $3%s', v_fine,
                       CASE WHEN p_subjects IS NOT NULL THEN ' AND r.subject = ANY ($6)' END)
            INTO h2 USING v_tenant, until, b2, h2, ('1 ' || v_grain)::interval, p_subjects;
    END IF;
    IF h2 < h1 THEN h2 := h1; END IF;
    -- Subjects by day: the whole hours of a cut day come from their
    -- summaries (meter.subject_hours: the hour's rolled events by subject)
    -- when every one of those hours has a current summary. The hour the
    -- range's edge cuts comes from the log, or, when its part outside the
    -- range is the shorter one and it has a current summary too, from its
    -- summary less the rolled events of that part ([n1, since) and
    -- [until, n2), as for a cut bucket below): the log is read for at most
    -- half an hour at each end. (Not for a range inside one day: it is read
    -- from the log as before.)
    IF b1 < b2 AND v_fine = 'rollup_subject_daily' THEN
        IF h1 > since THEN
            x := date_trunc('hour', since);
            IF x < since AND since - x < x + interval '1 hour' - since AND meter._subject_hours_ok(v_tenant, x, h1) THEN
                lo := x;
                n1 := x;
            ELSE
                IF x < since THEN x := x + interval '1 hour'; END IF;
                IF x < h1 AND meter._subject_hours_ok(v_tenant, x, h1) THEN
                    lo := x;
                END IF;
            END IF;
        END IF;
        IF h2 < until THEN
            x := date_trunc('hour', until);
            IF x < until AND x + interval '1 hour' - until < until - x
               AND meter._subject_hours_ok(v_tenant, h2, x + interval '1 hour') THEN
                hi := x + interval '1 hour';
                n2 := hi;
            ELSIF h2 < x AND meter._subject_hours_ok(v_tenant, h2, x) THEN
                hi := x;
            END IF;
        END IF;
    END IF;
    -- a cut bucket to read from the log (neither end of the range at its
    -- edge, rows not all inside it, no hour summaries taken) whose part
    -- outside the range is the shorter one: its rows, less their events in
    -- that part (rolled ones: the rows hold exactly those; the ones not
    -- rolled up yet inside the range are the tail's). Sums and sketch
    -- buckets are counts, so this is exact, and the log is read for at most
    -- half a bucket. (Not for a range inside one bucket: the two parts
    -- would meet.)
    IF b1 < b2 THEN
        IF lo IS NULL AND h1 > since AND since - b1 < h1 - since THEN
            n1 := b1;
            h1 := b1;
        END IF;
        IF hi IS NULL AND h2 < until AND h2 + ('1 ' || v_grain)::interval - until < until - h2 THEN
            n2 := h2 + ('1 ' || v_grain)::interval;
            h2 := n2;
        END IF;
    END IF;
    -- [lo, hi): what the rollups and the hour summaries hold, the range's
    -- events outside it come from the log
    lo := coalesce(lo, h1);
    hi := coalesce(hi, h2);
    d1 := date_trunc('day', h1);
    IF d1 < h1 THEN d1 := d1 + interval '1 day'; END IF;
    d2 := date_trunc('day', h2);
    IF v_coarse IS NULL OR d2 <= d1 THEN
        d1 := h2;  -- no whole day: the fine rollup reads all of [h1, h2)
        d2 := h2;
        v_coarse := v_fine;
    END IF;
    -- the same figures from stored rows (r: rollups, hour summaries) as the
    -- events' parts sum
    v_figures := 'sum(r.requests) AS requests, sum(r.errors) AS errors, sum(r.cache_hits) AS cache_hits, '
        'sum(r.unpriced) AS unpriced, sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens, '
        'sum(r.cache_read_tokens) AS cache_read_tokens, sum(r.cache_write_tokens) AS cache_write_tokens, '
        'sum(r.cost) AS cost, sum(r.potential_cost) AS potential_cost, '
        || CASE WHEN p_sketches THEN 'meter.merge(r.latency) AS latency, meter.merge(r.ttft) AS ttft'
                ELSE 'NULL::meter.sketch AS latency, NULL::meter.sketch AS ttft' END;
    -- the events' parts: each a range of the log (the tenant's events of
    -- [%3$s, %4$s), of the subject when one is given, and %5$s) grouped by
    -- %1$s, the keys, and summed by %2$s. The span read from stored rows
    -- is [lo, hi) ($11, $12): [h1, h2) of rollups and the hours around it.
    v_group := CASE cardinality(v_parts) WHEN 2 THEN '1, 2' ELSE '1' END;
    v_branch := ' UNION ALL SELECT ' || CASE cardinality(v_parts) WHEN 2 THEN 'x.k1, x.k2' ELSE 'x.k1' END
             || ', (x.m).* FROM (SELECT %1$s, %2$s(e.success, e.cached, e.priced, e.input_tokens, e.output_tokens, '
             || 'e.cache_read_tokens, e.cache_write_tokens, e.cost, e.potential_cost, '
             || CASE WHEN p_sketches THEN 'e.latency_ms, e.ttft_ms' ELSE 'NULL, NULL' END
             || ') AS m FROM meter.events e WHERE e.tenant = $1 AND e.occurred_at >= %3$s AND e.occurred_at < %4$s%5$s'
             || format(v_only, 'e') || ' GROUP BY ' || v_group || ') x';
    v_events :=
        -- the tail: events in the span that the watermark does not cover
        format(v_branch, array_to_string(v_e, ', '), 'meter._measures', 'greatest($2, $11)', 'least($5, $12)',
               ' AND e.txid >= meter._tail_from() AND meter._unrolled(e.txid, (SELECT w FROM wm))')
        -- the events before the span and after it, each one range (as an
        -- OR of the two, the planner read a whole month's partition for a
        -- cut day: a bitmap of one range in eight million rows is costed
        -- like a scan, an index scan in time order is not)
        || format(v_branch, format(array_to_string(v_c, ', '), '$2'), 'meter._measures', '$2', 'least($11, $5)', '')
        || format(v_branch, format(array_to_string(v_c, ', '), 'greatest($12, $2)'), 'meter._measures',
                  'greatest($12, $2)', '$5', '');
    -- the whole hours of the cut days, from their summaries
    IF lo < h1 OR hi > h2 THEN
        v_events := v_events || format(
            ' UNION ALL SELECT %s, %s FROM meter.subject_hours r'
            ' WHERE r.tenant = $1 AND ((r.bucket >= $11 AND r.bucket < $3) OR (r.bucket >= $4 AND r.bucket < $12))%s'
            ' GROUP BY %s',
            array_to_string(v_r, ', '), v_figures, format(v_only, 'r'), v_group);
    END IF;
    -- the rolled events of [n1, since) and [until, n2), negated (rolled:
    -- below the watermark's xmin, or visible in it)
    IF n1 < since THEN
        v_events := v_events || format(v_branch, format(array_to_string(v_c, ', '), '$9'), 'meter._measures_less',
                                       '$9', '$2', v_rolled);
    END IF;
    IF n2 > until THEN
        v_events := v_events || format(v_branch, format(array_to_string(v_c, ', '), '$5'), 'meter._measures_less',
                                       '$5', '$10', v_rolled);
    END IF;
    -- run with a plan kept for the session (meter._usage_run: planning the
    -- text was half of a call); $1 .. $12 as the parts above name them
    RETURN QUERY SELECT * FROM meter._usage_run(format($q$
        WITH wm AS (SELECT coalesce((SELECT watermark FROM meter.rollup_state), '1:1:'::pg_snapshot) AS w),
        parts AS (
            SELECT %1$s, %4$s
              FROM meter.%2$I r
             WHERE r.tenant = $1 AND r.bucket >= $6 AND r.bucket < $7%5$s
             GROUP BY %6$s
            UNION ALL
            SELECT %1$s, %4$s
              FROM meter.%3$I r
             WHERE r.tenant = $1 AND ((r.bucket >= $3 AND r.bucket < $6) OR (r.bucket >= $7 AND r.bucket < $4))%5$s
             GROUP BY %6$s
            %7$s
        )
        SELECT %8$s, sum(requests)::bigint, sum(errors)::bigint, sum(cache_hits)::bigint, sum(unpriced)::bigint,
               sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
               sum(cost), sum(potential_cost), meter.merge(latency), meter.merge(ttft)
          FROM parts GROUP BY %9$s
        HAVING sum(requests) > 0  -- a group whose row's events all lie outside the range
         ORDER BY %10$s
    $q$, array_to_string(v_r, ', '), v_coarse, v_fine, v_figures, format(v_only, 'r'), v_group, v_events, v_text,
    CASE cardinality(v_parts) WHEN 2 THEN 'parts.k1, parts.k2' ELSE 'parts.k1' END, v_order),
    v_tenant, since, h1, h2, until, d1, d2, p_subjects, n1, n2, lo, hi);
END $$;

CREATE FUNCTION meter.totals(tenant text, since timestamptz, until timestamptz, by text DEFAULT NULL)
    RETURNS TABLE (key text, requests bigint, errors bigint, cache_hits bigint, unpriced bigint,
                   input_tokens numeric, output_tokens numeric, cost numeric, potential_cost numeric,
                   p50_ms double precision, p95_ms double precision, p99_ms double precision)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT u.key, u.requests, u.errors, u.cache_hits, u.unpriced, u.input_tokens, u.output_tokens, u.cost,
           u.potential_cost, meter.percentile(u.latency, 0.5), meter.percentile(u.latency, 0.95),
           meter.percentile(u.latency, 0.99)
      FROM meter._usage(totals.tenant, totals.since, totals.until, totals.by) u
     ORDER BY u.key;
END;
COMMENT ON FUNCTION meter.totals(text, timestamptz, timestamptz, text) IS
    'Usage of a tenant over [since, until), one row per group (by subject, provider, model, endpoint, feature, hour, day, or one row): exact at every moment, from the rollups plus the events not rolled up yet; p50/p95/p99 latency within 1 %.';

-------------------------------------------------------------------------------
-- Upkeep: rebuilds, verification, repricing, partitions, retention, and the
-- jobs that run them (by pg_cron through meter.schedule(), or by hand).
-- Every routine is safe to run at any time, while ingest goes on.
-------------------------------------------------------------------------------

-- _rolled_events: the events of [p_from, p_to) that the watermark covers,
-- as rollup rows at every grain (the rows the rollups must hold). Read in
-- one snapshot with the watermark it is given.
CREATE FUNCTION meter._rolled_rows(p_from timestamptz, p_to timestamptz, p_watermark pg_snapshot)
    RETURNS meter._rollup_row[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT meter._rollup(e.tenant, e.subject, e.provider, e.model, e.endpoint, e.feature, e.occurred_at,
                         e.success, e.cached, e.priced, e.input_tokens, e.output_tokens,
                         e.cache_read_tokens, e.cache_write_tokens, e.cost, e.potential_cost,
                         e.latency_ms, e.ttft_ms)
      FROM meter.events e
     WHERE e.occurred_at >= p_from AND e.occurred_at < p_to
       -- below the watermark's xmin every visible transaction is covered:
       -- the test costs a comparison, not a call, for almost every event
       AND (e.txid < pg_snapshot_xmin(p_watermark)::text::bigint OR NOT meter._unrolled(e.txid, p_watermark))
$$;

-- _day_span turns [since, until) into whole UTC days.
CREATE FUNCTION meter._day_span(since timestamptz, until timestamptz, OUT d1 timestamptz, OUT d2 timestamptz)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
BEGIN
    IF since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'since and until must be given' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM meter._check_range(since, until);
    d1 := date_trunc('day', since);
    d2 := date_trunc('day', until);
    IF d2 < until THEN d2 := d2 + interval '1 day'; END IF;
END $$;

-- _replace_rows makes the rows of one rollup table (grain p_g) in
-- [p_from, p_to) equal p_rows' rows of that grain, writing only what
-- differs: a row that already holds the same figures stays as it is (no
-- delete, insert and index upkeep for it), every other old row goes and
-- every other new row comes in. "The same" is exact for keys, counts,
-- tokens, money and times; sketches compare as meter.verify compares them.
CREATE FUNCTION meter._replace_rows(p_table regclass, p_g integer, p_rows meter._rollup_row[], p_from timestamptz,
                                    p_to timestamptz) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- the planner takes unnest($3) for a dozen rows and merges on bucket
    -- alone: 2,000 subject-day rows of a day against 2,000 new ones were
    -- 4 million comparisons (0.8 s a day). Hashing on the equalities is
    -- linear whatever the estimate.
    SET enable_mergejoin = off
    SET enable_nestloop = off
AS $$
DECLARE
    v_cols text := 'tenant, bucket, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced, '
                   'input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost, '
                   'latency, ttft, first_at, last_at' || CASE WHEN p_g = 2 THEN ', subject' ELSE '' END;
    -- the equalities first: the planner hashes on them (first_at and
    -- last_at tell almost every group apart) and filters on the rest
    v_same text := 'o.tenant = n.tenant AND o.bucket = n.bucket AND o.first_at = n.first_at AND o.last_at = n.last_at '
                   'AND o.requests = n.requests AND o.errors = n.errors AND o.cache_hits = n.cache_hits '
                   'AND o.unpriced = n.unpriced AND o.input_tokens = n.input_tokens '
                   'AND o.output_tokens = n.output_tokens AND o.cache_read_tokens = n.cache_read_tokens '
                   'AND o.cache_write_tokens = n.cache_write_tokens AND o.cost = n.cost '
                   'AND o.potential_cost = n.potential_cost AND o.provider IS NOT DISTINCT FROM n.provider '
                   'AND o.model IS NOT DISTINCT FROM n.model AND o.endpoint IS NOT DISTINCT FROM n.endpoint '
                   'AND o.feature IS NOT DISTINCT FROM n.feature '
                   'AND meter._sketch_same(o.latency, n.latency) AND meter._sketch_same(o.ttft, n.ttft)'
                   || CASE WHEN p_g = 2 THEN ' AND o.subject IS NOT DISTINCT FROM n.subject' ELSE '' END;
BEGIN
    EXECUTE format('DELETE FROM %s o WHERE o.bucket >= $1 AND o.bucket < $2
                       AND NOT EXISTS (SELECT FROM unnest($3) n WHERE n.g = %s AND %s)', p_table, p_g, v_same)
      USING p_from, p_to, p_rows;
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM unnest($3) n WHERE n.g = %s
                       AND NOT EXISTS (SELECT FROM %s o WHERE o.bucket >= $1 AND o.bucket < $2 AND %s)',
                   p_table, v_cols, v_cols, p_g, p_table, v_same)
      USING p_from, p_to, p_rows;
END $$;
REVOKE ALL ON FUNCTION meter._replace_rows(regclass, integer, meter._rollup_row[], timestamptz, timestamptz) FROM PUBLIC;

-- _rebuild replaces the rollup rows of whole UTC days [p_from, p_to) with
-- what the raw events the watermark covers say. The caller holds
-- _lock_rollups() from an earlier statement. Returns the events counted.
CREATE FUNCTION meter._rebuild(p_from timestamptz, p_to timestamptz) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
DECLARE
    v_rows meter._rollup_row[];
    v_events bigint;
BEGIN
    IF p_from <> date_trunc('day', p_from) OR p_to <> date_trunc('day', p_to) THEN
        RAISE EXCEPTION 'a rebuild covers whole UTC days' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_rows := meter._rolled_rows(p_from, p_to, coalesce((SELECT watermark FROM meter.rollup_state), '1:1:'));
    PERFORM meter._replace_rows('meter.rollup_hourly', 1, v_rows, p_from, p_to);
    PERFORM meter._replace_rows('meter.rollup_daily', 3, v_rows, p_from, p_to);
    PERFORM meter._replace_rows('meter.rollup_subject_daily', 2, v_rows, p_from, p_to);
    -- subject_months follows rollup_subject_daily by its triggers; what
    -- they missed (a restore with --disable-triggers, a row written by hand)
    -- is set right here, as meter.verify reports it
    PERFORM meter._subject_months_fix(array_agg(d.tenant), array_agg(d.month), array_agg(d.subject))
       FROM meter._subject_months_diff(p_from, p_to) d HAVING count(*) > 0;
    SELECT coalesce(sum(requests), 0) INTO v_events FROM unnest(v_rows) WHERE g = 1;
    RETURN v_events;
END $$;
REVOKE ALL ON FUNCTION meter._rebuild(timestamptz, timestamptz) FROM PUBLIC;

-- Jobs: what each did last, for people and for alerting.
CREATE TABLE meter.jobs (
    job           text PRIMARY KEY,
    schedule      text,         -- the cron schedule meter.schedule() gave it; NULL: run by hand only
    last_start    timestamptz,
    last_finish   timestamptz,
    last_ok       boolean,
    last_result   text,
    last_error    text,         -- kept after later successes, with its time
    last_error_at timestamptz,
    runs          bigint NOT NULL DEFAULT 0,
    failures      bigint NOT NULL DEFAULT 0,
    skipped       bigint NOT NULL DEFAULT 0,  -- runs that found the job still running and left
    progress      text          -- what a running job has done so far (backfill, reprice)
);
COMMENT ON TABLE meter.jobs IS 'One row per pg_meter job: its schedule, last run, result, last error and failure count. meter.job_status adds whether it runs now.';
INSERT INTO meter.jobs (job) VALUES ('rollup'), ('partitions'), ('retention'), ('price_unpriced'), ('expire'),
                                    ('alerts'), ('backfill'), ('reprice');

-- a job holds this advisory lock while it runs (session level: a run's
-- commits do not release it)
CREATE FUNCTION meter._job_key(job text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT hashtext('pg_meter job ' || job) $$;

CREATE VIEW meter.job_status AS
SELECT j.job, j.schedule,
       (SELECT l.pid FROM pg_catalog.pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
           AND l.classid = 20557 AND l.objid = meter._job_key(j.job)::oid AND l.objsubid = 2
         LIMIT 1) AS running_pid,
       j.last_start, j.last_finish, j.last_ok, j.last_result, j.last_error, j.last_error_at, j.runs, j.failures,
       j.skipped, j.progress
  FROM meter.jobs j;
COMMENT ON VIEW meter.job_status IS 'pg_meter''s jobs: which runs now (running_pid), how each last ended, its last error and its counts.';

-- _job_begin takes a job's lock and notes its start; false when another
-- session runs it (then the skip is counted). _job_end notes the outcome
-- and gives the lock back.
CREATE FUNCTION meter._job_begin(p_job text) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_try_advisory_lock(20557, meter._job_key(p_job)) THEN
        UPDATE meter.jobs SET skipped = skipped + 1 WHERE job = p_job;
        RETURN false;
    END IF;
    UPDATE meter.jobs SET last_start = clock_timestamp(), progress = NULL WHERE job = p_job;
    RETURN true;
END $$;

CREATE FUNCTION meter._job_end(p_job text, p_ok boolean, p_result text, p_error text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE meter.jobs
       SET last_finish = clock_timestamp(), last_ok = p_ok, last_result = p_result, runs = runs + 1,
           failures = failures + CASE WHEN p_ok THEN 0 ELSE 1 END,
           last_error = CASE WHEN p_ok THEN last_error ELSE p_error END,
           last_error_at = CASE WHEN p_ok THEN last_error_at ELSE clock_timestamp() END,
           progress = NULL
     WHERE job = p_job;
    PERFORM pg_advisory_unlock(20557, meter._job_key(p_job));
END $$;

CREATE FUNCTION meter._job_progress(p_job text, p_progress text) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$ UPDATE meter.jobs SET progress = p_progress WHERE job = p_job $$;
REVOKE ALL ON FUNCTION meter._job_begin(text), meter._job_end(text, boolean, text, text),
                       meter._job_progress(text, text) FROM PUBLIC;

-- backfill: rebuild the rollups of whole UTC days from the raw events, a
-- batch of days per transaction. Safe while ingest and rollups go on (each
-- batch takes the rollups' lock; events the watermark does not cover yet
-- are left to the next rollup), idempotent, and cancellable: batches
-- already committed stay, and running it again redoes the range.
CREATE PROCEDURE meter.backfill(since timestamptz, until timestamptz, batch_days integer DEFAULT 1,
                                INOUT days integer DEFAULT NULL, INOUT events bigint DEFAULT NULL)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_span record;
    v_day timestamptz;
    v_next timestamptz;
    v_total_days integer;
    v_t0 timestamptz := clock_timestamp();
    v_n bigint;
BEGIN
    IF batch_days IS NULL OR batch_days < 1 THEN
        RAISE EXCEPTION 'batch_days must be 1 or more' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_span := meter._day_span(since, until);
    v_total_days := extract(day FROM v_span.d2 - v_span.d1)::integer;
    days := 0;
    events := 0;
    v_day := v_span.d1;
    WHILE v_day < v_span.d2 LOOP
        v_next := least(v_day + make_interval(days => batch_days), v_span.d2);
        PERFORM meter._lock_rollups();
        v_n := meter._rebuild(v_day, v_next);
        days := days + extract(day FROM v_next - v_day)::integer;
        events := events + v_n;
        PERFORM meter._job_progress('backfill', format('%s of %s days up to %s, %s events, %s events/s', days,
                v_total_days, v_next, events,
                round(events / greatest(extract(epoch FROM clock_timestamp() - v_t0), 0.001))));
        COMMIT;
        v_day := v_next;
    END LOOP;
    -- the months' sums (meter.top_subjects' bounds): every rebuild keeps
    -- them by the triggers; a month written by hand or restored without
    -- triggers is set right here, once for all the range's months
    PERFORM meter._lock_rollups();
    PERFORM meter._subject_months_fix(array_agg(d.tenant), array_agg(d.month), array_agg(d.subject))
       FROM meter._subject_months_diff(v_span.d1, v_span.d2, true) d HAVING count(*) > 0;
    UPDATE meter.jobs SET last_start = v_t0, last_finish = clock_timestamp(), last_ok = true, runs = runs + 1,
           progress = NULL,
           last_result = format('rebuilt %s days from %s: %s events', days, v_span.d1, events)
     WHERE job = 'backfill';
END $$;
COMMENT ON PROCEDURE meter.backfill(timestamptz, timestamptz, integer, integer, bigint) IS
    'Rebuilds the rollups of the UTC days covering [since, until) from the raw events, batch_days per transaction; safe during ingest, idempotent, cancellable. Progress in meter.job_status. CALL it outside a transaction block.';
REVOKE ALL ON PROCEDURE meter.backfill(timestamptz, timestamptz, integer, integer, bigint) FROM PUBLIC;

-- verify: every difference between the rollups and the raw events of the
-- UTC days covering [since, until), and between the hours' summaries
-- (meter.subject_hours, meter.endpoint_hours, meter.busy_callers) and the
-- events of the hours they hold current. Read in one snapshot, so a rollup
-- or a write running meanwhile never shows as a difference. Empty when
-- exact.
CREATE FUNCTION meter.verify(since timestamptz, until timestamptz)
    RETURNS TABLE (rollup text, tenant text, bucket timestamptz, subject text, session text, provider text,
                   model text, endpoint text, feature text, what text, in_rollup text, in_events text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    v_span record;
BEGIN
    v_span := meter._day_span(since, until);
    PERFORM meter._check_watermark();
    RETURN QUERY
    WITH w AS MATERIALIZED (
        SELECT coalesce((SELECT watermark FROM meter.rollup_state), '1:1:'::pg_snapshot) AS w
    ), cur AS MATERIALIZED (
        -- the tenant hours whose summaries are current: over, and not due
        -- again (no rollup row of theirs changed since they were summarized)
        SELECT h.tenant, h.bucket FROM meter._summary_hours(v_span.d1, v_span.d2) h WHERE NOT h.due
    ), whole AS MATERIALIZED (
        -- of those hours, the ones the rollups hold every event of: their
        -- callers' summary took every event of the hour (an event rolled
        -- up after it made the hour due)
        SELECT c.* FROM cur c
         WHERE NOT EXISTS (SELECT FROM (SELECT DISTINCT t.tenant, t.bucket FROM meter._tail_rows() t WHERE t.g = 1) t
                            WHERE t.tenant = c.tenant AND t.bucket = c.bucket)
    ), want AS (
        -- g: 1 hourly, 2 subject-daily, 3 daily (meter._rollup_row); the
        -- summaries: 4 an hour's subjects (its rolled events), 5 an
        -- endpoint's hour, 6 a busy caller's hour (all of the hour's events)
        SELECT jsonb_build_array(r.g, r.tenant, r.bucket, r.subject, NULL, r.provider, r.model, r.endpoint, r.feature) AS k,
               r.*, NULL::text AS session, NULL::bigint AS callers, NULL::float8 AS median_per_min, NULL::bigint AS empty
          FROM unnest(meter._rolled_rows(v_span.d1, v_span.d2, (SELECT w FROM w))) r
        UNION ALL
        SELECT jsonb_build_array(4, s.tenant, s.bucket, s.subject, NULL, NULL, NULL, NULL, NULL),
               4, s.tenant, s.bucket, s.subject, NULL, NULL, NULL, NULL,
               s.requests, s.errors, s.cache_hits, s.unpriced, s.input_tokens, s.output_tokens, s.cache_read_tokens,
               s.cache_write_tokens, s.cost, s.potential_cost, s.latency, s.ttft, NULL, NULL, NULL, NULL, NULL, NULL
          FROM (SELECT array_agg(c.tenant) AS t, array_agg(c.bucket) AS b FROM cur c) c,
               meter._subject_hours_of(c.t, c.b) s
        UNION ALL
        SELECT jsonb_build_array(x.g, x.tenant, x.bucket, x.subject, x.session, NULL, NULL, x.endpoint, NULL),
               x.g, x.tenant, x.bucket, x.subject, NULL, NULL, x.endpoint, NULL,
               x.requests, NULL, NULL, NULL, NULL, NULL, NULL, NULL, x.cost, NULL, NULL, NULL, x.first_at, x.last_at,
               x.session, x.callers, x.median_per_min, x.empty
          FROM (SELECT array_agg(c.tenant) AS t, array_agg(c.bucket) AS b FROM whole c) c,
               LATERAL (SELECT CASE WHEN y.callers IS NULL THEN 6 ELSE 5 END AS g, y.*
                          FROM meter._caller_hours(c.t, c.b, true) y) x
    ), have AS (
        SELECT jsonb_build_array(1, h.tenant, h.bucket, NULL, NULL, h.provider, h.model, h.endpoint, h.feature) AS k,
               1 AS g, h.tenant, h.bucket, NULL::text AS subject, h.provider, h.model, h.endpoint, h.feature,
               h.requests, h.errors, h.cache_hits, h.unpriced, h.input_tokens, h.output_tokens, h.cache_read_tokens,
               h.cache_write_tokens, h.cost, h.potential_cost, h.latency, h.ttft, h.first_at, h.last_at,
               NULL::text AS session, NULL::bigint AS callers, NULL::float8 AS median_per_min, NULL::bigint AS empty
          FROM meter.rollup_hourly h WHERE h.bucket >= v_span.d1 AND h.bucket < v_span.d2
        UNION ALL
        SELECT jsonb_build_array(3, d.tenant, d.bucket, NULL, NULL, d.provider, d.model, d.endpoint, d.feature),
               3, d.tenant, d.bucket, NULL, d.provider, d.model, d.endpoint, d.feature,
               d.requests, d.errors, d.cache_hits, d.unpriced, d.input_tokens, d.output_tokens, d.cache_read_tokens,
               d.cache_write_tokens, d.cost, d.potential_cost, d.latency, d.ttft, d.first_at, d.last_at,
               NULL, NULL, NULL, NULL
          FROM meter.rollup_daily d WHERE d.bucket >= v_span.d1 AND d.bucket < v_span.d2
        UNION ALL
        SELECT jsonb_build_array(2, s.tenant, s.bucket, s.subject, NULL, s.provider, s.model, s.endpoint, s.feature),
               2, s.tenant, s.bucket, s.subject, s.provider, s.model, s.endpoint, s.feature,
               s.requests, s.errors, s.cache_hits, s.unpriced, s.input_tokens, s.output_tokens, s.cache_read_tokens,
               s.cache_write_tokens, s.cost, s.potential_cost, s.latency, s.ttft, s.first_at, s.last_at,
               NULL, NULL, NULL, NULL
          FROM meter.rollup_subject_daily s WHERE s.bucket >= v_span.d1 AND s.bucket < v_span.d2
        UNION ALL
        SELECT jsonb_build_array(4, s.tenant, s.bucket, s.subject, NULL, NULL, NULL, NULL, NULL),
               4, s.tenant, s.bucket, s.subject, NULL, NULL, NULL, NULL,
               s.requests, s.errors, s.cache_hits, s.unpriced, s.input_tokens, s.output_tokens, s.cache_read_tokens,
               s.cache_write_tokens, s.cost, s.potential_cost, s.latency, s.ttft, NULL, NULL, NULL, NULL, NULL, NULL
          FROM meter.subject_hours s JOIN cur c ON c.tenant = s.tenant AND c.bucket = s.bucket
        UNION ALL
        SELECT jsonb_build_array(5, s.tenant, s.bucket, NULL, NULL, NULL, NULL, s.endpoint, NULL),
               5, s.tenant, s.bucket, NULL, NULL, NULL, s.endpoint, NULL,
               s.requests, NULL, NULL, NULL, NULL, NULL, NULL, NULL, s.cost, NULL, NULL, NULL, NULL, NULL,
               NULL, s.callers, s.median_per_min, NULL
          FROM meter.endpoint_hours s JOIN whole c ON c.tenant = s.tenant AND c.bucket = s.bucket
        UNION ALL
        SELECT jsonb_build_array(6, s.tenant, s.bucket, s.subject, s.session, NULL, NULL, s.endpoint, NULL),
               6, s.tenant, s.bucket, s.subject, NULL, NULL, s.endpoint, NULL,
               s.requests, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, s.first_at, s.last_at,
               s.session, NULL, NULL, s.empty
          FROM meter.busy_callers s JOIN whole c ON c.tenant = s.tenant AND c.bucket = s.bucket
    )
    SELECT (ARRAY['rollup_hourly', 'rollup_subject_daily', 'rollup_daily', 'subject_hours', 'endpoint_hours',
                  'busy_callers'])[coalesce(h.g, e.g)],
           coalesce(h.tenant, e.tenant), coalesce(h.bucket, e.bucket), coalesce(h.subject, e.subject),
           coalesce(h.session, e.session), coalesce(h.provider, e.provider), coalesce(h.model, e.model),
           coalesce(h.endpoint, e.endpoint), coalesce(h.feature, e.feature), d.what, d.in_rollup, d.in_events
      FROM have h
      FULL JOIN want e ON e.k = h.k
     CROSS JOIN LATERAL (
        SELECT 'row' AS what, CASE WHEN h.k IS NULL THEN 'missing' ELSE 'present' END AS in_rollup,
               CASE WHEN e.k IS NULL THEN 'no events' ELSE e.requests || ' events' END AS in_events
         WHERE h.k IS NULL OR e.k IS NULL
        UNION ALL
        -- (a figure a row does not keep is NULL on both sides)
        SELECT v.what, v.a, v.b
          FROM (VALUES ('requests', h.requests::text, e.requests::text), ('errors', h.errors::text, e.errors::text),
                       ('cache_hits', h.cache_hits::text, e.cache_hits::text),
                       ('unpriced', h.unpriced::text, e.unpriced::text),
                       ('input_tokens', h.input_tokens::text, e.input_tokens::text),
                       ('output_tokens', h.output_tokens::text, e.output_tokens::text),
                       ('cache_read_tokens', h.cache_read_tokens::text, e.cache_read_tokens::text),
                       ('cache_write_tokens', h.cache_write_tokens::text, e.cache_write_tokens::text),
                       ('first_at', h.first_at::text, e.first_at::text), ('last_at', h.last_at::text, e.last_at::text),
                       ('callers', h.callers::text, e.callers::text),
                       ('median_per_min', h.median_per_min::text, e.median_per_min::text),
                       ('empty', h.empty::text, e.empty::text)) v(what, a, b)
         WHERE h.k IS NOT NULL AND e.k IS NOT NULL AND v.a IS DISTINCT FROM v.b
        UNION ALL
        SELECT v.what, v.a::text, v.b::text
          FROM (VALUES ('cost', h.cost, e.cost), ('potential_cost', h.potential_cost, e.potential_cost)) v(what, a, b)
         WHERE h.k IS NOT NULL AND e.k IS NOT NULL AND v.a IS DISTINCT FROM v.b  -- numeric: 0.50 = 0.5
        UNION ALL
        SELECT v.what, meter.sketch_count(v.a)::text || ' values', meter.sketch_count(v.b)::text || ' values'
          FROM (VALUES ('latency', h.latency, e.latency), ('ttft', h.ttft, e.ttft)) v(what, a, b)
         WHERE h.k IS NOT NULL AND e.k IS NOT NULL AND NOT meter._sketch_same(v.a, v.b)
     ) d
    UNION ALL
    -- subject_months against the subject-day rows (checked against the
    -- events above): the days of the month in the span with a bit (have)
    -- and with a row (want), as day numbers, '3,4,17'; and the sums of
    -- every month the span touches, (requests,errors,input_tokens,
    -- output_tokens,cost,potential_cost)
    SELECT 'subject_months', d.tenant, d.month, d.subject, NULL, NULL, NULL, NULL, NULL, v.what, v.a, v.b
      FROM meter._subject_months_diff(v_span.d1, v_span.d2, true) d,
           LATERAL (SELECT 'days' AS what,
                           array_to_string(ARRAY(SELECT i FROM generate_series(1, 31) i
                                                  WHERE (d.have & (1::bigint << (i - 1))) <> 0), ',') AS a,
                           array_to_string(ARRAY(SELECT i FROM generate_series(1, 31) i
                                                  WHERE (d.want & (1::bigint << (i - 1))) <> 0), ',') AS b
                     WHERE d.have <> d.want
                    UNION ALL
                    SELECT 'sums', coalesce(d.have_sums, 'missing'), coalesce(d.want_sums, 'no rows')
                     WHERE d.have_sums IS NOT NULL OR d.want_sums IS NOT NULL) v
     ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
END $$;
COMMENT ON FUNCTION meter.verify(timestamptz, timestamptz) IS
    'Every difference between the rollups and the raw events of the UTC days covering [since, until), or no row when they agree. Days whose raw events retention has dropped show as differences.';

CREATE FUNCTION meter._sketch_same(a meter.sketch, b meter.sketch) RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_sketch_same';

-- Repricing ------------------------------------------------------------------

-- reprices: one audit row per reprice (not per dry run): who, when, what,
-- and the totals and price versions before and after. A reprice that was
-- cancelled part way shows what its committed batches changed.
CREATE TABLE meter.reprices (
    reprice_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at    timestamptz,
    by_role        text NOT NULL DEFAULT current_user,
    provider       text,
    model          text,
    since          timestamptz,
    until          timestamptz,
    unpriced_only  boolean NOT NULL,
    events         bigint NOT NULL DEFAULT 0,
    old_total      numeric NOT NULL DEFAULT 0,
    new_total      numeric NOT NULL DEFAULT 0,
    old_versions   bigint[] NOT NULL DEFAULT '{}',
    new_versions   bigint[] NOT NULL DEFAULT '{}',
    still_unpriced bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE meter.reprices IS 'The audit of meter.reprice: who repriced what and when, how many events changed, total cost before and after, and the price versions involved.';
SELECT pg_catalog.pg_extension_config_dump('meter.reprices', '');
SELECT pg_catalog.pg_extension_config_dump('meter.reprices_reprice_id_seq', '');

CREATE TYPE meter._priced_event AS (cost numeric, potential_cost numeric, price_version bigint, priced boolean,
                                    unpriced_reason text);
CREATE FUNCTION meter._price_event(provider text, model text, usage jsonb, service_tier text, cached boolean,
                                   occurred_at timestamptz) RETURNS meter._priced_event
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'meter_price_event';

-- _reprice_changes: the events of [p_from, p_to) matching the filters whose
-- price differs from what the catalog says now, with both prices.
CREATE FUNCTION meter._reprice_changes(p_from timestamptz, p_to timestamptz, p_provider text, p_model text,
                                       p_unpriced_only boolean)
    RETURNS TABLE (event_id bigint, occurred_at timestamptz, old_cost numeric, old_version bigint,
                   new_cost numeric, new_potential numeric, new_version bigint, new_priced boolean, new_reason text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.event_id, e.occurred_at, e.cost, e.price_version, p.cost, p.potential_cost, p.price_version, p.priced,
           p.unpriced_reason
      FROM meter.events e
     CROSS JOIN LATERAL meter._price_event(e.provider, e.model, e.usage, e.service_tier, e.cached, e.occurred_at) p
     WHERE e.occurred_at >= p_from AND e.occurred_at < p_to
       AND (p_provider IS NULL OR e.provider = p_provider)
       AND (p_model IS NULL OR e.model = p_model)
       AND (NOT p_unpriced_only OR NOT e.priced)
       AND (e.cost, e.potential_cost, e.price_version, e.priced)
           IS DISTINCT FROM (p.cost, p.potential_cost, p.price_version, p.priced)
$$;

-- _reprice_day reprices the matching events of one UTC day (within
-- [p_from, p_to)) and rebuilds
-- that day's rollups in the same transaction, adding what it did to the
-- audit row. Returns the events changed.
CREATE FUNCTION meter._reprice_day(p_day timestamptz, p_from timestamptz, p_to timestamptz, p_provider text,
                                   p_model text, p_unpriced_only boolean, p_reprice bigint) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
DECLARE
    v record;
BEGIN
    PERFORM meter._lock_rollups();
    WITH changed AS MATERIALIZED (
        SELECT * FROM meter._reprice_changes(greatest(p_day, p_from), least(p_day + interval '1 day', p_to), p_provider,
                                             p_model, p_unpriced_only)
    ), upd AS (
        UPDATE meter.events e
           SET cost = c.new_cost, potential_cost = c.new_potential, price_version = c.new_version,
               priced = c.new_priced, unpriced_reason = c.new_reason
          FROM changed c
         WHERE e.occurred_at >= p_day AND e.occurred_at < p_day + interval '1 day'
           AND e.event_id = c.event_id AND e.occurred_at = c.occurred_at
        RETURNING c.old_cost, c.new_cost, c.old_version, c.new_version, c.new_priced,
                  meter._count_repriced(e.tenant, e.subject, e.session, e.endpoint, e.occurred_at,
                                        coalesce(c.new_cost, 0) - coalesce(c.old_cost, 0)) AS counted
    )
    SELECT count(*) AS n, coalesce(sum(old_cost), 0) AS old_total, coalesce(sum(new_cost), 0) AS new_total,
           coalesce(array_agg(DISTINCT old_version) FILTER (WHERE old_version IS NOT NULL), '{}') AS old_versions,
           coalesce(array_agg(DISTINCT new_version) FILTER (WHERE new_version IS NOT NULL), '{}') AS new_versions,
           count(*) FILTER (WHERE NOT new_priced) AS unpriced
      INTO v FROM upd;
    IF v.n > 0 THEN
        PERFORM meter._rebuild(p_day, p_day + interval '1 day');
        UPDATE meter.reprices r
           SET events = r.events + v.n, old_total = r.old_total + v.old_total, new_total = r.new_total + v.new_total,
               old_versions = ARRAY(SELECT DISTINCT x FROM unnest(r.old_versions || v.old_versions) x ORDER BY x),
               new_versions = ARRAY(SELECT DISTINCT x FROM unnest(r.new_versions || v.new_versions) x ORDER BY x),
               still_unpriced = r.still_unpriced + v.unpriced
         WHERE r.reprice_id = p_reprice;
    END IF;
    RETURN v.n;
END $$;
REVOKE ALL ON FUNCTION meter._reprice_day(timestamptz, timestamptz, timestamptz, text, text, boolean, bigint) FROM PUBLIC;

-- _reprice_days: the UTC days with events to look at, oldest first.
CREATE FUNCTION meter._reprice_days(p_since timestamptz, p_until timestamptz, p_provider text, p_model text,
                                    p_unpriced_only boolean) RETURNS SETOF timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
    SELECT DISTINCT date_trunc('day', e.occurred_at)
      FROM meter.events e
     WHERE (p_since IS NULL OR e.occurred_at >= p_since) AND (p_until IS NULL OR e.occurred_at < p_until)
       AND (p_provider IS NULL OR e.provider = p_provider) AND (p_model IS NULL OR e.model = p_model)
       AND (NOT p_unpriced_only OR NOT e.priced)
     ORDER BY 1
$$;

-- reprice: after a price is added or corrected, price the matching events
-- again with the catalog as it is now (each at its own time, so history
-- keeps the prices then in force), one UTC day per transaction together
-- with that day's rollups. dry_run only reports. Returns the events that
-- change, their total cost before and after, and the audit row's id.
CREATE PROCEDURE meter.reprice(provider text DEFAULT NULL, model text DEFAULT NULL,
                               since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
                               unpriced_only boolean DEFAULT false, dry_run boolean DEFAULT false,
                               INOUT events bigint DEFAULT NULL, INOUT old_total numeric DEFAULT NULL,
                               INOUT new_total numeric DEFAULT NULL, INOUT reprice_id bigint DEFAULT NULL)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_day timestamptz;
    v_n bigint;
BEGIN
    PERFORM meter._check_range(since, until);
    IF provider IS NULL AND model IS NULL AND since IS NULL AND until IS NULL AND NOT unpriced_only THEN
        RAISE EXCEPTION 'reprice needs a provider, a model, a time range or unpriced_only => true'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Repricing every event is rarely meant; give since and until to do it on purpose.';
    END IF;
    IF dry_run THEN
        SELECT count(*), coalesce(sum(c.old_cost), 0), coalesce(sum(c.new_cost), 0)
          INTO events, old_total, new_total
          FROM meter._reprice_changes(coalesce(since, '-infinity'), coalesce(until, 'infinity'),
                                      provider, model, unpriced_only) c;
        RETURN;
    END IF;
    INSERT INTO meter.reprices (provider, model, since, until, unpriced_only)
    VALUES (provider, model, since, until, unpriced_only)
    RETURNING meter.reprices.reprice_id INTO reprice_id;
    COMMIT;
    FOR v_day IN SELECT * FROM meter._reprice_days(since, until, provider, model, unpriced_only) LOOP
        -- a day cut by since or until is repriced in the range only, and
        -- rebuilt whole
        v_n := meter._reprice_day(v_day, coalesce(since, '-infinity'), coalesce(until, 'infinity'), provider, model,
                                  unpriced_only, reprice_id);
        PERFORM meter._job_progress('reprice', format('reprice %s: up to %s', reprice_id, v_day));
        COMMIT;
    END LOOP;
    UPDATE meter.reprices r SET finished_at = clock_timestamp() WHERE r.reprice_id = reprice.reprice_id
    RETURNING r.events, r.old_total, r.new_total INTO events, old_total, new_total;
    PERFORM meter._job_progress('reprice', NULL);
    COMMIT;
END $$;
COMMENT ON PROCEDURE meter.reprice(text, text, timestamptz, timestamptz, boolean, boolean, bigint, numeric, numeric, bigint) IS
    'Prices the matching events again with the catalog as it is now and rebuilds their rollups, one UTC day per transaction; dry_run => true only reports. Every real run leaves an audit row in meter.reprices. CALL it outside a transaction block.';
REVOKE ALL ON PROCEDURE meter.reprice(text, text, timestamptz, timestamptz, boolean, boolean, bigint, numeric, numeric, bigint) FROM PUBLIC;

-- Partitions and retention ---------------------------------------------------
-- Written here rather than delegated to pg_partman (doc/upkeep.md says why
-- in full): a partition may only be dropped once every event in it is
-- rolled up, which pg_partman's retention cannot know; moving rows out of
-- the default partition would run meter.events' trigger and count them
-- again; and retention is per tenant. What is left is a few statements.

-- _partitions: meter.events' partitions with their bounds (NULL: default).
CREATE FUNCTION meter._partitions() RETURNS TABLE (part regclass, lo timestamptz, hi timestamptz)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
    SET DateStyle = 'ISO'
AS $$
    SELECT c.oid::regclass,
           CASE WHEN b = 'DEFAULT' THEN NULL ELSE coalesce(substring(b FROM 'FROM \(''([^'']*)''\)')::timestamptz, '-infinity') END,
           CASE WHEN b = 'DEFAULT' THEN NULL ELSE coalesce(substring(b FROM 'TO \(''([^'']*)''\)')::timestamptz, 'infinity') END
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL pg_get_expr(c.relpartbound, c.oid) b
     WHERE i.inhparent = 'meter.events'::regclass
$$;

-- create_partitions: the month partitions from this month to `ahead`
-- months on, so that no insert waits for one. A month whose events already
-- sit in the default partition is reported, not created (its events stay
-- counted where they are).
CREATE FUNCTION meter.create_partitions(ahead integer DEFAULT 3)
    RETURNS TABLE (partition text, status text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
DECLARE
    v_month timestamptz;
BEGIN
    IF ahead IS NULL OR ahead < 0 OR ahead > 120 THEN
        RAISE EXCEPTION 'ahead must be between 0 and 120 months' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 0..ahead LOOP
        v_month := date_trunc('month', now()) + make_interval(months => i);
        partition := format('events_%s', to_char(v_month, 'YYYY_MM'));
        IF to_regclass(format('meter.%I', partition)) IS NOT NULL THEN
            status := 'exists';
        ELSE
            BEGIN
                PERFORM meter.create_partition(v_month);
                status := 'created';
            EXCEPTION WHEN check_violation OR object_not_in_prerequisite_state THEN
                status := 'not created: ' || SQLERRM;
            END;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION meter.create_partitions(integer) IS 'Creates the monthly partitions of meter.events from this month to ahead months on; reports each.';
REVOKE ALL ON FUNCTION meter.create_partitions(integer) FROM PUBLIC;

-- retention: how long raw events are kept, globally (tenant NULL; 90 days
-- without a row) or per tenant. Rollups are kept.
CREATE TABLE meter.retention (
    tenant text,
    keep   interval NOT NULL CHECK (keep > interval '0'),
    CONSTRAINT retention_tenant UNIQUE NULLS NOT DISTINCT (tenant)
);
COMMENT ON TABLE meter.retention IS 'How long raw events are kept: the row with a NULL tenant for everyone (90 days without one), other rows per tenant. Rollups are kept regardless.';
SELECT pg_catalog.pg_extension_config_dump('meter.retention', '');

CREATE FUNCTION meter.set_retention(keep interval, tenant text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF keep IS NULL THEN
        DELETE FROM meter.retention r WHERE r.tenant IS NOT DISTINCT FROM set_retention.tenant;
        RETURN;
    END IF;
    IF keep <= interval '0' OR keep < interval '1 day' OR keep > interval '100 years' THEN
        RAISE EXCEPTION 'a retention must be from one day to 100 years, not %', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO meter.retention (tenant, keep) VALUES (set_retention.tenant, set_retention.keep)
    ON CONFLICT ON CONSTRAINT retention_tenant DO UPDATE SET keep = EXCLUDED.keep;
END $$;
COMMENT ON FUNCTION meter.set_retention(interval, text) IS 'Keeps raw events for keep (a day to 100 years): for one tenant, or for every tenant without its own (tenant NULL). keep NULL removes the setting.';
REVOKE ALL ON FUNCTION meter.set_retention(interval, text) FROM PUBLIC;

-- _retention_keeps: the global retention (90 days without a row) and the
-- longest and shortest of all
CREATE FUNCTION meter._retention_keeps(OUT global_keep interval, OUT longest interval, OUT shortest interval)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT g.keep, greatest(g.keep, max(r.keep)), least(g.keep, min(r.keep))
      FROM (SELECT coalesce((SELECT keep FROM meter.retention WHERE tenant IS NULL), interval '90 days') AS keep) g
      LEFT JOIN meter.retention r ON r.tenant IS NOT NULL
     GROUP BY g.keep;
END;

-- _retention_drop drops the partitions older than the longest retention
-- whose events are all rolled up (the others are named in waiting).
-- meter.events is locked before each partition, as queries lock it and as
-- DROP TABLE does: a partition locked first deadlocked with a writer that
-- held meter.events and then probed every partition for its request id
-- (test/isolation/specs/retention_writers.spec). The lock on meter.events
-- (ACCESS EXCLUSIVE) lasts until the transaction ends.
CREATE FUNCTION meter._retention_drop(OUT dropped text[], OUT waiting text[])
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_longest interval := (meter._retention_keeps()).longest;
    v_w pg_snapshot;
    v_left bigint;
    p record;
BEGIN
    dropped := '{}';
    waiting := '{}';
    FOR p IN SELECT * FROM meter._partitions() WHERE hi <= now() - v_longest ORDER BY lo LOOP
        -- no writer in it from here on; then read the watermark anew
        LOCK TABLE ONLY meter.events IN ACCESS EXCLUSIVE MODE;
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', p.part);
        v_w := coalesce((SELECT watermark FROM meter.rollup_state), '1:1:');
        EXECUTE format('SELECT count(*) FROM %s e WHERE e.txid >= $1 AND meter._unrolled(e.txid, $2)', p.part)
            INTO v_left USING pg_snapshot_xmin(v_w)::text::bigint, v_w;
        IF v_left > 0 THEN
            waiting := waiting || format('%s (%s events not rolled up yet)', p.part, v_left);
            CONTINUE;
        END IF;
        dropped := dropped || p.part::text;  -- (named before it goes)
        EXECUTE format('DROP TABLE %s', p.part);
    END LOOP;
END $$;

-- _retention_delete deletes the rolled-up events of tenants kept shorter
-- than the longest retention, the alerts resolved longer ago than their
-- tenant's retention (open ones stay), and the summaries of hours older
-- than it (callers and subjects by hour: derived from those hours' events)
CREATE FUNCTION meter._retention_delete(OUT deleted bigint, OUT alerts_deleted bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k record := meter._retention_keeps();
    v_now timestamptz := now();
    v_w pg_snapshot := coalesce((SELECT watermark FROM meter.rollup_state), '1:1:');
    v_summary text;
BEGIN
    DELETE FROM meter.events e
     WHERE e.occurred_at < v_now - k.shortest
       AND e.occurred_at < v_now - coalesce((SELECT r.keep FROM meter.retention r WHERE r.tenant = e.tenant), k.global_keep)
       AND (e.txid < pg_snapshot_xmin(v_w)::text::bigint OR NOT meter._unrolled(e.txid, v_w));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    DELETE FROM meter.alerts a
     WHERE a.resolved_at < v_now - k.shortest
       AND a.resolved_at < v_now - coalesce((SELECT r.keep FROM meter.retention r WHERE r.tenant = a.tenant), k.global_keep);
    GET DIAGNOSTICS alerts_deleted = ROW_COUNT;
    -- the hours' summaries of callers and subjects go with the hours' events
    FOREACH v_summary IN ARRAY ARRAY['subject_hours', 'endpoint_hours', 'busy_callers'] LOOP
        EXECUTE format('DELETE FROM meter.%I h WHERE h.bucket + interval ''1 hour'' <= $1 - $2 AND h.bucket + interval ''1 hour'' '
                       '<= $1 - coalesce((SELECT r.keep FROM meter.retention r WHERE r.tenant = h.tenant), $3)', v_summary)
            USING v_now, k.shortest, k.global_keep;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION meter._retention_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION meter._retention_delete() FROM PUBLIC;

-- apply_retention drops whole partitions older than the longest retention
-- and deletes older events of tenants kept shorter; an event is never
-- removed before the rollups hold it (a partition with events not rolled
-- up yet waits for the next run). Resolved alerts are history of the same
-- kind and go after the same time (open ones stay). Returns what it did.
-- In one transaction: meter.events stays locked by a drop until the
-- deletes are done too (the retention job commits between them).
CREATE FUNCTION meter.apply_retention(OUT dropped text[], OUT deleted bigint, OUT waiting text[],
                                      OUT alerts_deleted bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d record := meter._retention_drop();
    x record := meter._retention_delete();
BEGIN
    dropped := d.dropped;
    waiting := d.waiting;
    deleted := x.deleted;
    alerts_deleted := x.alerts_deleted;
END $$;
COMMENT ON FUNCTION meter.apply_retention() IS 'Drops the partitions of meter.events older than the longest retention and deletes older events of tenants kept shorter, never before the rollups hold them; deletes alerts resolved longer ago than their tenant''s retention.';
REVOKE ALL ON FUNCTION meter.apply_retention() FROM PUBLIC;

-- expire: state that only grows. pg_cron's run log (cron.job_run_details)
-- is purged after `keep`, and so are the budget counters of windows that
-- ended more than `keep` ago: a budget's cell fills from its current
-- window's counters only, and the events keep what was spent.
CREATE FUNCTION meter.expire(keep interval DEFAULT interval '7 days') RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint := 0;
    v_counters bigint;
BEGIN
    IF keep IS NULL OR keep < interval '0' OR keep > interval '100 years' THEN
        RAISE EXCEPTION 'keep must be from 0 to 100 years, not %', coalesce(keep::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regclass('cron.job_run_details') IS NOT NULL THEN
        EXECUTE 'DELETE FROM cron.job_run_details WHERE end_time < now() - $1' USING keep;
        GET DIAGNOSTICS v_n = ROW_COUNT;
    END IF;
    DELETE FROM meter.budget_usage u WHERE u.window_end < now() - keep;
    GET DIAGNOSTICS v_counters = ROW_COUNT;
    RETURN v_n + v_counters;
END $$;
COMMENT ON FUNCTION meter.expire(interval) IS 'Purges state that only grows: pg_cron''s run log older than keep, and the budget counters of windows that ended more than keep ago. Returns the rows removed.';
REVOKE ALL ON FUNCTION meter.expire(interval) FROM PUBLIC;

-- Jobs -------------------------------------------------------------------------

-- _job_step runs one step of a job (meter.run_job commits after each) and
-- says what it did
CREATE FUNCTION meter._job_step(step text) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_days integer := 0;
    v_day timestamptz;
    v_rid bigint;
    v_ret record;
    v_result text;
BEGIN
    CASE step
    WHEN 'partitions' THEN
        SELECT string_agg(partition || ' ' || status, ', ') INTO v_result FROM meter.create_partitions();
    WHEN 'retention_drop' THEN
        v_ret := meter._retention_drop();
        v_result := format('dropped %s, waiting %s', v_ret.dropped, v_ret.waiting);
    WHEN 'retention_delete' THEN
        v_ret := meter._retention_delete();
        v_result := format('deleted %s events, deleted %s resolved alerts', v_ret.deleted, v_ret.alerts_deleted);
    WHEN 'price_unpriced' THEN
        -- a bounded run: at most 31 days of unpriced events; the next run
        -- takes the rest
        INSERT INTO meter.reprices (unpriced_only) VALUES (true) RETURNING reprice_id INTO v_rid;
        FOR v_day IN SELECT * FROM meter._reprice_days(NULL, NULL, NULL, NULL, true) LIMIT 31 LOOP
            PERFORM meter._reprice_day(v_day, '-infinity', 'infinity', NULL, NULL, true, v_rid);
            v_days := v_days + 1;
        END LOOP;
        UPDATE meter.reprices SET finished_at = clock_timestamp() WHERE reprice_id = v_rid
        RETURNING format('%s days, %s events priced, %s still unpriced', v_days, events, still_unpriced)
        INTO v_result;
        IF v_days = 0 THEN DELETE FROM meter.reprices WHERE reprice_id = v_rid; END IF;
    WHEN 'expire' THEN
        v_result := format('%s rows purged (run log, ended budget windows)', meter.expire());
    WHEN 'callers' THEN
        v_ret := meter._callers_update();
        v_result := format('%s caller hours summarized, %s due', v_ret.summarized, v_ret.still_due);
    WHEN 'alerts' THEN
        v_ret := meter.evaluate_alerts();
        v_result := format('%s fired, %s resolved, %s firing', v_ret.fired, v_ret.resolved, v_ret.firing);
    END CASE;
    RETURN v_result;
END $$;
REVOKE ALL ON FUNCTION meter._job_step(text) FROM PUBLIC;

-- run_job runs one of pg_meter's jobs now, as pg_cron does: at most one
-- run of a job at a time (a second leaves at once and is counted as
-- skipped), and its outcome or error in meter.jobs. The rollup job runs a
-- pass every `every` until `for_` has passed (pg_cron's finest schedule is
-- a minute: one run a minute keeps the rollups within seconds of ingest).
CREATE PROCEDURE meter.run_job(job text, for_ interval DEFAULT interval '55 seconds',
                               every interval DEFAULT interval '5 seconds')
    LANGUAGE plpgsql
AS $$
DECLARE
    v_ok boolean := true;
    v_err text;
    v_result text;
    v_n bigint;
    v_total bigint := 0;
    v_passes integer := 0;
    v_until timestamptz := clock_timestamp() + for_;
    v_step text;
BEGIN
    IF job IS NULL OR job NOT IN ('rollup', 'partitions', 'retention', 'price_unpriced', 'expire', 'alerts') THEN
        RAISE EXCEPTION 'pg_meter has no job "%"', job USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The jobs are rollup, partitions, retention, price_unpriced, expire and alerts.';
    END IF;
    IF NOT meter._job_begin(job) THEN
        RAISE NOTICE 'pg_meter job % is running in another session; this run leaves', job;
        RETURN;
    END IF;
    COMMIT;
    IF job = 'rollup' THEN
        LOOP
            BEGIN
                v_n := meter.rollup();
                v_total := v_total + v_n;
                v_passes := v_passes + 1;
            EXCEPTION WHEN OTHERS THEN
                v_ok := false;
                v_err := SQLERRM;
            END;
            COMMIT;
            EXIT WHEN NOT v_ok OR clock_timestamp() + every >= v_until;
            PERFORM pg_sleep(extract(epoch FROM every));
            COMMIT;
        END LOOP;
        v_result := format('%s passes, %s events', v_passes, v_total);
    ELSE
        -- one transaction a step; retention's drops commit before its
        -- deletes start: a drop keeps meter.events locked (ACCESS
        -- EXCLUSIVE) until its transaction ends, and the deletes of a
        -- tenant kept shorter may take long
        FOREACH v_step IN ARRAY CASE job WHEN 'retention' THEN ARRAY['retention_drop', 'retention_delete']
                                         -- the hours just over summarized, so that the
                                         -- anomalies the rules look for read them
                                         WHEN 'alerts' THEN ARRAY['callers', 'alerts']
                                         ELSE ARRAY[job] END LOOP
            BEGIN
                v_result := concat_ws(', ', v_result, meter._job_step(v_step));
            EXCEPTION WHEN OTHERS THEN
                v_ok := false;
                v_err := SQLERRM;
            END;
            COMMIT;
            EXIT WHEN NOT v_ok;
        END LOOP;
    END IF;
    PERFORM meter._job_end(job, v_ok, v_result, v_err);
    COMMIT;
END $$;
COMMENT ON PROCEDURE meter.run_job(text, interval, interval) IS
    'Runs one pg_meter job now (rollup, partitions, retention, price_unpriced, expire, alerts), one run at a time, recording its outcome in meter.jobs; what pg_cron calls. CALL it outside a transaction block.';
REVOKE ALL ON PROCEDURE meter.run_job(text, interval, interval) FROM PUBLIC;

-- schedule installs the jobs in pg_cron as named jobs (pg_meter_<job>); a
-- second call replaces them. A NULL schedule leaves that job out.
CREATE FUNCTION meter.schedule(rollup text DEFAULT '* * * * *', partitions text DEFAULT '7 0 * * *',
                               retention text DEFAULT '17 1 * * *', price_unpriced text DEFAULT '*/10 * * * *',
                               expire text DEFAULT '27 1 * * *', alerts text DEFAULT '* * * * *')
    RETURNS TABLE (job text, schedule text, cron_jobid bigint, command text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v record;
BEGIN
    IF to_regclass('cron.job') IS NULL THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'meter.schedule() installs its jobs with pg_cron.',
                  HINT = format('Add pg_cron to shared_preload_libraries, set cron.database_name = %L, restart, and run CREATE EXTENSION pg_cron; or run the jobs yourself: CALL meter.run_job(''rollup''), and likewise partitions, retention, price_unpriced, expire and alerts.', current_database());
    END IF;
    FOR v IN SELECT * FROM (VALUES ('rollup', schedule.rollup), ('partitions', schedule.partitions),
                                   ('retention', schedule.retention), ('price_unpriced', schedule.price_unpriced),
                                   ('expire', schedule.expire), ('alerts', schedule.alerts)) AS t(job, sched) LOOP
        job := v.job;
        schedule := v.sched;
        command := format('CALL meter.run_job(%L)', v.job);
        IF v.sched IS NULL THEN
            EXECUTE 'SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1 AND username = current_user'
                USING 'pg_meter_' || v.job;
            cron_jobid := NULL;
            command := NULL;
        ELSE
            EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO cron_jobid USING 'pg_meter_' || v.job, v.sched, command;
        END IF;
        UPDATE meter.jobs j SET schedule = v.sched WHERE j.job = v.job;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION meter.schedule(text, text, text, text, text, text) IS
    'Installs pg_meter''s jobs in pg_cron (named pg_meter_rollup, _partitions, _retention, _price_unpriced, _expire, _alerts) with these cron schedules (GMT); calling it again replaces them; NULL leaves a job out.';
REVOKE ALL ON FUNCTION meter.schedule(text, text, text, text, text, text) FROM PUBLIC;

CREATE FUNCTION meter.unschedule() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n integer := 0;
BEGIN
    IF to_regclass('cron.job') IS NOT NULL THEN
        -- through cron.job by name: cron.unschedule(name) fails on an absent job
        EXECUTE 'SELECT count(cron.unschedule(jobid))::integer FROM cron.job
                  WHERE jobname LIKE ''pg\_meter\_%'' AND username = current_user' INTO v_n;
    END IF;
    UPDATE meter.jobs SET schedule = NULL;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION meter.unschedule() IS 'Removes pg_meter''s pg_cron jobs; returns how many. Harmless without pg_cron.';
REVOKE ALL ON FUNCTION meter.unschedule() FROM PUBLIC;

-------------------------------------------------------------------------------
-- Quotas and rate limits (doc/quotas.md): plans, limits, subjects, blocks;
-- meter.check and meter.reserve decide in shared memory (src/pg/quotas.cpp,
-- src/core/cells.hpp). Every backend keeps a compiled copy of these tables,
-- invalidated at commit by the same trigger as the price catalog.
-------------------------------------------------------------------------------

CREATE TABLE meter.plans (
    tenant      text NOT NULL,
    plan        text NOT NULL,
    description text,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, plan)
);
COMMENT ON TABLE meter.plans IS 'Plans (tiers) of a tenant; a subject on a plan is held to its limits. The default plan holds subjects never assigned one.';
CREATE UNIQUE INDEX plans_one_default ON meter.plans (tenant) WHERE is_default;

CREATE TABLE meter.subjects (
    tenant         text NOT NULL,
    subject        text NOT NULL,
    plan           text,
    team           text,
    blocked_at     timestamptz,
    blocked_reason text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, subject),
    FOREIGN KEY (tenant, plan) REFERENCES meter.plans (tenant, plan) ON UPDATE CASCADE
);
COMMENT ON TABLE meter.subjects IS 'Subjects (users or API keys) with their plan, their team and whether they are blocked (and why).';

CREATE SEQUENCE meter.limit_id_seq AS bigint;
CREATE TABLE meter.limits (
    limit_id   bigint NOT NULL DEFAULT nextval('meter.limit_id_seq') PRIMARY KEY,
    tenant     text NOT NULL,
    plan       text,
    subject    text,
    scope      text NOT NULL DEFAULT 'subject' CHECK (scope IN ('subject', 'team', 'tenant', 'session')),
    endpoint   text,
    meter      text NOT NULL CHECK (meter IN ('requests', 'input_tokens', 'output_tokens', 'total_tokens', 'cost')),
    per        interval NOT NULL CHECK (per > interval '0' AND per <= interval '3660 days'),
    calendar   text CHECK (calendar IN ('day', 'week', 'month', 'year')),
    time_zone  text,
    max        numeric NOT NULL CHECK (max >= 0 AND max <= 1e15 AND scale(max) <= CASE meter WHEN 'cost' THEN 12 ELSE 0 END),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- what a budget counts in: its calendar in its time zone, or its fixed
    -- windows of per; NULL for a rate (limits of one budget period share
    -- their durable counters)
    budget_period text GENERATED ALWAYS AS (
        CASE WHEN calendar IS NOT NULL THEN calendar || '@' || time_zone
             WHEN meter = 'cost' THEN (extract(epoch FROM per) * 1000000)::bigint::text || 'us' END) STORED,
    CHECK (plan IS NULL OR subject IS NULL),
    CHECK ((calendar IS NULL) = (time_zone IS NULL)),
    FOREIGN KEY (tenant, plan) REFERENCES meter.plans (tenant, plan) ON UPDATE CASCADE ON DELETE CASCADE,
    UNIQUE NULLS NOT DISTINCT (tenant, plan, subject, scope, endpoint, meter, per, calendar, time_zone)
);
COMMENT ON TABLE meter.limits IS 'Limits: a meter over a window for a plan, a subject (an override) or the whole tenant, counted per subject, team, tenant or session, optionally for one endpoint. A rate (requests or tokens per rolling interval) lives in shared memory; a budget (a calendar day, week, month or year in a time zone, or any cost limit) rests on durable counters. Set them with meter.set_limit.';
ALTER SEQUENCE meter.limit_id_seq OWNED BY meter.limits.limit_id;

SELECT pg_catalog.pg_extension_config_dump('meter.plans', '');
SELECT pg_catalog.pg_extension_config_dump('meter.subjects', '');
SELECT pg_catalog.pg_extension_config_dump('meter.limits', '');
SELECT pg_catalog.pg_extension_config_dump('meter.limit_id_seq', '');

-- budget_usage: the durable counters of budgets, written in the
-- transaction of every event they count (src/pg/quotas.cpp). key names what
-- is counted (a budget period of a tenant, its scope, meter and endpoint,
-- and the subject, team, session or tenant counted for), ident the same
-- without the last; each backend adds to its own shard of a window, so
-- that concurrent commits do not wait for one row. shard -1 holds what
-- meter.set_limit counted from the events already in the window.
CREATE TABLE meter.budget_usage (
    key          uuid NOT NULL,
    ident        uuid NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    shard        smallint NOT NULL,
    amount       numeric NOT NULL,
    PRIMARY KEY (key, window_start, shard)
);
CREATE INDEX budget_usage_ident ON meter.budget_usage (ident, window_start);
COMMENT ON TABLE meter.budget_usage IS 'Durable counters of budgets: the committed usage of each window, summed over shards. Written by the event path; read when a budget''s shared-memory cell is filled.';
SELECT pg_catalog.pg_extension_config_dump('meter.budget_usage', '');

CREATE TRIGGER quotas_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.plans
    FOR EACH STATEMENT EXECUTE FUNCTION meter._invalidate_caches();
CREATE TRIGGER quotas_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.subjects
    FOR EACH STATEMENT EXECUTE FUNCTION meter._invalidate_caches();
CREATE TRIGGER quotas_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.limits
    FOR EACH STATEMENT EXECUTE FUNCTION meter._invalidate_caches();

-- _need is the one check of a required argument (22004).
CREATE FUNCTION meter._need(value anyelement, name text, fn text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', name
            USING ERRCODE = 'null_value_not_allowed', HINT = format('Pass %s => ... to %s.', name, fn);
    END IF;
END $$;

CREATE FUNCTION meter.create_plan(tenant text, plan text, description text DEFAULT NULL,
                                  is_default boolean DEFAULT false) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM meter._need(tenant, 'tenant', 'meter.create_plan'), meter._need(plan, 'plan', 'meter.create_plan');
    IF is_default THEN
        UPDATE meter.plans p SET is_default = false WHERE p.tenant = create_plan.tenant AND p.is_default
           AND p.plan <> create_plan.plan;
    END IF;
    INSERT INTO meter.plans AS p (tenant, plan, description, is_default)
    VALUES (tenant, plan, description, coalesce(is_default, false))
    ON CONFLICT ON CONSTRAINT plans_pkey DO UPDATE
       SET description = coalesce(EXCLUDED.description, p.description), is_default = EXCLUDED.is_default;
END $$;
COMMENT ON FUNCTION meter.create_plan(text, text, text, boolean) IS
    'Creates a plan of a tenant (or updates its description); is_default makes it the plan of subjects never assigned one.';

-- set_limit: one limit; the same (tenant, plan or subject, scope, endpoint,
-- meter, window) again replaces its maximum. per is an interval (a rate,
-- or for cost fixed windows of that length from 1970-01-01 UTC) or a
-- calendar unit (day, week, month, year) in time_zone.
CREATE FUNCTION meter.set_limit(tenant text, meter text, per text, max numeric,
                                plan text DEFAULT NULL, subject text DEFAULT NULL,
                                scope text DEFAULT 'subject', endpoint text DEFAULT NULL,
                                time_zone text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_per interval;
    v_calendar text;
    v_zone text;
    v_id bigint;
    v_period text;
    v_shared boolean;
    v_scale int;
BEGIN
    PERFORM meter._need(tenant, 'tenant', 'meter.set_limit'), meter._need(meter, 'meter', 'meter.set_limit'),
            meter._need(per, 'per', 'meter.set_limit'), meter._need(max, 'max', 'meter.set_limit'),
            meter._need(scope, 'scope', 'meter.set_limit');
    IF meter NOT IN ('requests', 'input_tokens', 'output_tokens', 'total_tokens', 'cost') THEN
        RAISE EXCEPTION 'unknown meter "%"', meter USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A limit counts requests, input_tokens, output_tokens, total_tokens or cost.';
    END IF;
    IF scope NOT IN ('subject', 'team', 'tenant', 'session') THEN
        RAISE EXCEPTION 'unknown scope "%"', scope USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A limit is counted per subject, team, tenant or session.';
    END IF;
    IF plan IS NOT NULL AND subject IS NOT NULL THEN
        RAISE EXCEPTION 'a limit belongs to a plan or to a subject, not both' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_calendar := lower(btrim(per));
    IF v_calendar IN ('minute', 'hour') THEN
        per := '1 ' || v_calendar;
        v_calendar := NULL;
    ELSIF v_calendar IN ('day', 'week', 'month', 'year') THEN
        v_per := ('1 ' || CASE v_calendar WHEN 'month' THEN 'mon' ELSE v_calendar END)::interval;
        -- the time zone's own name, as pg_timezone_names spells it
        SELECT z.name INTO v_zone FROM pg_catalog.pg_timezone_names z
         WHERE lower(z.name) = lower(coalesce(time_zone, 'UTC')) ORDER BY z.name = coalesce(time_zone, 'UTC') DESC LIMIT 1;
        IF v_zone IS NULL THEN
            RAISE EXCEPTION 'time zone "%" is not recognized', time_zone USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Name a zone of pg_timezone_names, such as ''Europe/Berlin'' or ''UTC''.';
        END IF;
    ELSE
        v_calendar := NULL;
    END IF;
    IF v_calendar IS NULL THEN
        IF time_zone IS NOT NULL THEN
            RAISE EXCEPTION 'a time zone belongs to a calendar window (per => day, week, month or year), not to per => %', quote_literal(per)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        BEGIN
            v_per := per::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            RAISE EXCEPTION 'the window "%" does not parse', per USING ERRCODE = 'invalid_datetime_format',
                HINT = 'Pass an interval such as ''1 minute'', ''10 seconds'' or ''1 hour'', or a calendar unit: ''day'', ''week'', ''month'', ''year''.';
        END;
        IF v_per <= interval '0' OR date_part('month', v_per) <> 0 OR date_part('year', v_per) <> 0 THEN
            RAISE EXCEPTION 'the window "%" is not a positive fixed length', per USING ERRCODE = 'invalid_parameter_value',
                HINT = 'A window is a positive number of seconds, minutes, hours or days, or a calendar unit (per => ''month'').';
        END IF;
        v_per := justify_hours(v_per);
        IF v_per > interval '3660 days' THEN
            RAISE EXCEPTION 'a window of % is longer than ten years', v_per USING ERRCODE = 'numeric_value_out_of_range';
        END IF;
    END IF;
    -- (an IF's condition ends at its first THEN: no CASE in it)
    v_scale := CASE meter WHEN 'cost' THEN 12 ELSE 0 END;
    IF max < 0 OR max > 1e15 OR scale(trim_scale(max)) > v_scale THEN
        RAISE EXCEPTION 'max must be %, not %',
            CASE meter WHEN 'cost' THEN 'an amount in USD from 0 to 1e15 with at most 12 decimals'
                       ELSE 'a whole number from 0 to 1e15' END, max
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF plan IS NOT NULL THEN
        INSERT INTO meter.plans (tenant, plan) VALUES (tenant, plan) ON CONFLICT DO NOTHING;
    END IF;
    IF subject IS NOT NULL THEN
        INSERT INTO meter.subjects (tenant, subject) VALUES (tenant, subject) ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO meter.limits AS l (tenant, plan, subject, scope, endpoint, meter, per, calendar, time_zone, max)
    VALUES (tenant, plan, subject, scope, endpoint, meter, v_per, v_calendar, v_zone, trim_scale(max))
    ON CONFLICT (tenant, plan, subject, scope, endpoint, meter, per, calendar, time_zone) DO UPDATE
       SET max = EXCLUDED.max, updated_at = now()
    RETURNING l.limit_id, l.budget_period INTO v_id, v_period;
    -- a budget period new to the tenant counts the events already in its
    -- current window; from now on every event counts as it is written
    IF v_period IS NOT NULL THEN
        SELECT EXISTS (SELECT 1 FROM meter.limits o
                        WHERE o.tenant = set_limit.tenant AND o.limit_id <> v_id AND o.budget_period = v_period
                          AND o.scope = set_limit.scope AND o.meter = set_limit.meter
                          AND o.endpoint IS NOT DISTINCT FROM set_limit.endpoint) INTO v_shared;
        IF NOT v_shared THEN
            PERFORM meter._budget_backfill(v_id);
        END IF;
    END IF;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION meter.set_limit(text, text, text, numeric, text, text, text, text, text) IS
    'Sets one limit: at most max of a meter (requests, input_tokens, output_tokens, total_tokens, or cost in USD) per window, for a plan, a subject (an override of its plan''s limit) or, with neither, every subject of the tenant; counted per subject, team, tenant or session, optionally for one endpoint. per is an interval (a rate; for cost, fixed windows) or day, week, month or year in time_zone (a durable budget). Returns the limit id.';

CREATE FUNCTION meter.drop_limit(limit_id bigint) RETURNS boolean
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (DELETE FROM meter.limits l WHERE l.limit_id = drop_limit.limit_id RETURNING 1)
    SELECT count(*) > 0 FROM d
$$;
COMMENT ON FUNCTION meter.drop_limit(bigint) IS 'Removes a limit; returns whether it existed.';

CREATE FUNCTION meter.assign_plan(tenant text, subject text, plan text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM meter._need(tenant, 'tenant', 'meter.assign_plan'), meter._need(subject, 'subject', 'meter.assign_plan');
    IF plan IS NOT NULL AND NOT EXISTS (SELECT 1 FROM meter.plans p WHERE p.tenant = assign_plan.tenant AND p.plan = assign_plan.plan) THEN
        RAISE EXCEPTION 'plan "%" does not exist in tenant "%"', plan, tenant USING ERRCODE = 'undefined_object',
            HINT = 'Create it with meter.create_plan or give it a limit with meter.set_limit(plan => ...).';
    END IF;
    INSERT INTO meter.subjects AS s (tenant, subject, plan) VALUES (tenant, subject, plan)
    ON CONFLICT (tenant, subject) DO UPDATE SET plan = EXCLUDED.plan, updated_at = now();
END $$;
COMMENT ON FUNCTION meter.assign_plan(text, text, text) IS
    'Puts a subject on a plan (NULL: no plan, held only to the tenant''s limits); registers the subject if it is new.';

CREATE FUNCTION meter.set_team(tenant text, subject text, team text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM meter._need(tenant, 'tenant', 'meter.set_team'), meter._need(subject, 'subject', 'meter.set_team');
    INSERT INTO meter.subjects AS s (tenant, subject, team) VALUES (tenant, subject, team)
    ON CONFLICT (tenant, subject) DO UPDATE SET team = EXCLUDED.team, updated_at = now();
END $$;
COMMENT ON FUNCTION meter.set_team(text, text, text) IS
    'Puts a subject in a team (NULL: none); team-scoped limits count the requests of all its subjects together.';

CREATE FUNCTION meter.block(tenant text, subject text, reason text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM meter._need(tenant, 'tenant', 'meter.block'), meter._need(subject, 'subject', 'meter.block'),
            meter._need(reason, 'reason', 'meter.block');
    INSERT INTO meter.subjects AS s (tenant, subject, blocked_at, blocked_reason) VALUES (tenant, subject, now(), reason)
    ON CONFLICT (tenant, subject) DO UPDATE
       SET blocked_at = coalesce(s.blocked_at, now()), blocked_reason = EXCLUDED.blocked_reason, updated_at = now();
END $$;
COMMENT ON FUNCTION meter.block(text, text, text) IS
    'Blocks a subject with a reason: every check and reserve refuses it (status blocked) until meter.unblock.';

CREATE FUNCTION meter.unblock(tenant text, subject text) RETURNS boolean
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH u AS (UPDATE meter.subjects s SET blocked_at = NULL, blocked_reason = NULL, updated_at = now()
                WHERE s.tenant = unblock.tenant AND s.subject = unblock.subject AND s.blocked_at IS NOT NULL
                RETURNING 1)
    SELECT count(*) > 0 FROM u
$$;
COMMENT ON FUNCTION meter.unblock(text, text) IS 'Lifts a block; returns whether the subject was blocked.';

-- _budget_key names a budget's durable counter (who NULL: the ident of
-- all its counters); _budget_window is the window of a budget that holds a
-- time. The event path computes both the same way (src/pg/quotas.cpp).
CREATE FUNCTION meter._budget_key(tenant text, scope text, meter text, endpoint text, period text, who text)
    RETURNS uuid LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_budget_key';
CREATE FUNCTION meter._budget_window(calendar text, time_zone text, per interval, at timestamptz,
                                     OUT window_start timestamptz, OUT window_end timestamptz)
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_budget_window';

-- _count_repriced adds a repriced event's change of cost to its tenant's
-- cost budgets at commit (meter._reprice_day), as the event path added its
-- cost when it was recorded: the counters stay the sum of the events' costs.
CREATE FUNCTION meter._count_repriced(tenant text, subject text, session text, endpoint text, at timestamptz,
                                      delta numeric) RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'meter_count_repriced';
REVOKE ALL ON FUNCTION meter._count_repriced(text, text, text, text, timestamptz, numeric) FROM PUBLIC;

-- _budget_backfill counts the events already in the current window of a
-- budget period new to its tenant (replacing what an earlier limit of the
-- same period left in that window).
CREATE FUNCTION meter._budget_backfill(p_limit bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    l meter.limits;
    v_start timestamptz;
    v_end timestamptz;
    v_ident uuid;
BEGIN
    SELECT * INTO STRICT l FROM meter.limits WHERE limit_id = p_limit;
    SELECT w.window_start, w.window_end INTO v_start, v_end FROM meter._budget_window(l.calendar, l.time_zone, l.per, now()) w;
    v_ident := meter._budget_key(l.tenant, l.scope, l.meter, l.endpoint, l.budget_period, NULL);
    DELETE FROM meter.budget_usage u WHERE u.ident = v_ident AND u.window_start = v_start;
    INSERT INTO meter.budget_usage (key, ident, window_start, window_end, shard, amount)
    SELECT meter._budget_key(l.tenant, l.scope, l.meter, l.endpoint, l.budget_period, x.who), v_ident, v_start, v_end, -1,
           sum(x.amount)
      FROM (SELECT CASE l.scope WHEN 'subject' THEN e.subject WHEN 'session' THEN e.session
                                WHEN 'tenant' THEN e.tenant ELSE s.team END AS who,
                   CASE l.meter WHEN 'requests' THEN 1 WHEN 'input_tokens' THEN e.input_tokens
                                WHEN 'output_tokens' THEN e.output_tokens
                                WHEN 'total_tokens' THEN e.input_tokens + e.output_tokens
                                ELSE coalesce(e.cost, 0) END AS amount
              FROM meter.events e
              LEFT JOIN meter.subjects s ON l.scope = 'team' AND s.tenant = e.tenant AND s.subject = e.subject
             WHERE e.tenant = l.tenant AND e.occurred_at >= v_start AND e.occurred_at < v_end
               AND (l.endpoint IS NULL OR e.endpoint = l.endpoint)) x
     WHERE x.who IS NOT NULL
     GROUP BY x.who;
END $$;

REVOKE ALL ON FUNCTION meter._budget_backfill(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION meter.create_plan(text, text, text, boolean), meter.set_limit(text, text, text, numeric, text, text, text, text, text),
    meter.drop_limit(bigint), meter.assign_plan(text, text, text), meter.set_team(text, text, text),
    meter.block(text, text, text), meter.unblock(text, text) FROM PUBLIC;

-- what a backend compiles: a tenant's limits, and one subject (or the
-- tenant's default plan for a subject never seen). They run as the
-- extension owner so that any role allowed to check can; PL/pgSQL keeps
-- their plans (a SQL function would plan on every call, and a backend
-- reads each subject it meets once).
CREATE FUNCTION meter._quota_limits(p_tenant text)
    RETURNS TABLE (limit_id bigint, plan text, subject text, scope text, endpoint text, meter text,
                   per_us bigint, max numeric, per interval, calendar text, time_zone text, budget_period text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT l.limit_id, l.plan, l.subject, l.scope, l.endpoint, l.meter,
           (extract(epoch FROM l.per) * 1000000)::bigint, l.max, l.per, l.calendar, l.time_zone, l.budget_period
      FROM meter.limits l WHERE l.tenant = p_tenant ORDER BY l.limit_id;
END $$;
CREATE FUNCTION meter._quota_subject(p_tenant text, p_subject text)
    RETURNS TABLE (plan text, team text, blocked boolean, reason text)
    LANGUAGE c STABLE
    ROWS 1  -- at most one (the planner's default of 1,000 made joins look costly enough for JIT)
    AS 'MODULE_PATHNAME', 'meter_quota_subject';
COMMENT ON FUNCTION meter._quota_subject(text, text) IS
    'A subject''s plan, team and block as meter.check reads them (the tenant''s default plan for a subject never assigned or NULL; no row when there is neither), read from the tables whoever calls.';

-- decision: what check and reserve answer, one value a web handler turns
-- into a response (429 with Retry-After when allowed is false).
CREATE TYPE meter.decision AS (
    allowed      boolean,
    status       text,         -- allowed, limited, blocked or unavailable
    reservation  bigint,       -- reserve only, when allowed
    limit_id     bigint,       -- the limit that decided (NULL: none applies)
    meter        text,
    scope        text,
    per          interval,
    max          numeric,
    used         numeric,
    reserved     numeric,
    remaining    numeric,
    reset_at     timestamptz,  -- when the window holds nothing of what was used
    retry_after  integer,      -- seconds to wait, rounded up (NULL: allowed, or no wait helps)
    plan         text,
    reason       text,         -- the block's reason, or what could not be read
    fail_mode    text          -- pg_meter.quota_failure: open or closed
);

CREATE FUNCTION meter.check(tenant text, subject text, endpoint text DEFAULT NULL, session text DEFAULT NULL,
                            estimate jsonb DEFAULT NULL) RETURNS meter.decision
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'meter_check';
COMMENT ON FUNCTION meter.check(text, text, text, text, jsonb) IS
    'May this request go ahead? Decides over every limit that applies (subject, team, tenant, session, endpoint) without taking anything; estimate is {"input_tokens": n, "output_tokens": n} for token limits.';

-- quota_status: every limit that holds a request, each answered on its own
-- as check with no estimate answers it (an admin page's view of a subject)
CREATE FUNCTION meter.quota_status(tenant text, subject text, endpoint text DEFAULT NULL, session text DEFAULT NULL)
    RETURNS TABLE (limit_id bigint, meter text, scope text, per interval, budget_period text, plan text,
                   max numeric, used numeric, reserved numeric, remaining numeric, reset_at timestamptz,
                   allowed boolean)
    LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 4 AS 'MODULE_PATHNAME', 'meter_quota_status';
COMMENT ON FUNCTION meter.quota_status(text, text, text, text) IS
    'Lists every limit that applies to a request (subject, plan, team, tenant, session, endpoint) with its live state, one row per limit in the order of limit_id, taking nothing: max, used, reserved and remaining as meter.check with no estimate answers them (cost in USD), when its window resets, and whether one more request would pass that limit alone. A blocked subject''s limits are listed too.';

CREATE FUNCTION meter.reserve(tenant text, subject text, endpoint text DEFAULT NULL, session text DEFAULT NULL,
                              estimate jsonb DEFAULT NULL, ttl interval DEFAULT interval '5 minutes')
    RETURNS meter.decision
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'meter_reserve';
COMMENT ON FUNCTION meter.reserve(text, text, text, text, jsonb, interval) IS
    'Decides and, when allowed, takes the request (and its estimated tokens) from every limit that applies in one atomic step; returns the decision with a reservation id that meter.record(..., reservation => id) settles with the actual usage and meter.release gives back.';

CREATE FUNCTION meter.release(reservation bigint) RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'meter_release';
COMMENT ON FUNCTION meter.release(bigint) IS
    'Gives back what a reservation took, for a call that never happened; returns false for an id that was settled, released, expired or never made.';

-------------------------------------------------------------------------------
-- What the admin sees: summaries, top subjects, provider balances and
-- runway, read from the rollups through meter._usage (exact at every
-- moment, as meter.totals). Money is numeric; inside JSON values (per_day,
-- limits) it is a string, so that a JSON client never rounds it. Days are
-- UTC days.
-------------------------------------------------------------------------------

-- _rate: n / d rounded to 6 decimals, NULL when d is 0 (no rate of nothing)
CREATE FUNCTION meter._rate(n numeric, d numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN d > 0 THEN round(n / d, 6) END;

-- _figures: the figures of a tenant's or one subject's usage over a range,
-- in one row: what meter.summary and meter.subject_usage both show. One
-- read by UTC day: the day rows are the per_day list (cost as exact text)
-- and add up to the whole (sketches merge the same either way).
CREATE FUNCTION meter._figures(p_tenant text, since timestamptz, until timestamptz, p_subject text DEFAULT NULL)
    RETURNS TABLE (requests bigint, successes bigint, failures bigint, success_rate numeric,
                   input_tokens numeric, output_tokens numeric, cache_read_tokens numeric, cache_write_tokens numeric,
                   cost numeric, potential_cost numeric, cache_hits bigint, cache_hit_rate numeric,
                   cache_savings numeric, unpriced bigint,
                   p50_ms double precision, p95_ms double precision, p99_ms double precision,
                   ttft_p50_ms double precision, ttft_p95_ms double precision, ttft_p99_ms double precision,
                   per_day jsonb)
    LANGUAGE sql STABLE
    ROWS 1  -- always one
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH t AS (
        SELECT coalesce(sum(u.requests), 0)::bigint AS requests, coalesce(sum(u.errors), 0)::bigint AS errors,
               coalesce(sum(u.cache_hits), 0)::bigint AS cache_hits, coalesce(sum(u.unpriced), 0)::bigint AS unpriced,
               coalesce(sum(u.input_tokens), 0) AS input_tokens, coalesce(sum(u.output_tokens), 0) AS output_tokens,
               coalesce(sum(u.cache_read_tokens), 0) AS cache_read_tokens,
               coalesce(sum(u.cache_write_tokens), 0) AS cache_write_tokens,
               coalesce(sum(u.cost), 0) AS cost, coalesce(sum(u.potential_cost), 0) AS potential_cost,
               meter.merge(u.latency) AS latency, meter.merge(u.ttft) AS ttft,
               coalesce(jsonb_agg(jsonb_build_object('day', d.day, 'requests', u.requests, 'errors', u.errors,
                                                     'cost', trim_scale(u.cost)::text) ORDER BY d.day), '[]'::jsonb)
                   AS per_day
          FROM meter._usage(p_tenant, since, until, 'day', CASE WHEN p_subject IS NOT NULL THEN ARRAY[p_subject] END) u,
               -- the key is a UTC midnight as text (in the session's DateStyle)
               LATERAL (SELECT to_char(u.key::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day) d
    )
    SELECT t.requests, t.requests - t.errors, t.errors, meter._rate(t.requests - t.errors, t.requests),
           t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.cost, t.potential_cost,
           t.cache_hits, meter._rate(t.cache_hits, t.requests), t.potential_cost - t.cost, t.unpriced,
           meter.percentile(t.latency, 0.5), meter.percentile(t.latency, 0.95), meter.percentile(t.latency, 0.99),
           meter.percentile(t.ttft, 0.5), meter.percentile(t.ttft, 0.95), meter.percentile(t.ttft, 0.99), t.per_day
      FROM t;
END;

-- _subject_count: how many subjects (guests are none) have usage in
-- [since, until), without summing their figures. Whole days come from
-- subject_months: a subject counts when one of its month's day bits lies in
-- them. A day cut by one end of the range counts a subject when its
-- subject-day row's last_at (cut by since) or first_at (cut by until) is
-- inside the range: they are the exact bounds of the row's events, so one of
-- its events is. The events not rolled up yet come from the log, and so does
-- a range inside one UTC day cut at both ends (no bound tells whether an
-- event lies between them).
CREATE FUNCTION meter._subject_count(p_tenant text, since timestamptz, until timestamptz) RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
DECLARE
    ds timestamptz := date_trunc('day', since);
    du timestamptz := date_trunc('day', until);
    v_whole timestamptz := CASE WHEN since = ds THEN ds ELSE ds + interval '1 day' END;  -- the first whole day
    v_from bigint;
    v_count bigint;
BEGIN
    PERFORM meter._check_range(since, until);
    PERFORM meter._check_watermark();
    v_from := meter._tail_from();  -- as in meter._usage: a constant bound for the txid index
    SELECT count(*) INTO v_count FROM (
        SELECT x.subject FROM (
            SELECT m.subject FROM meter._span_months(v_whole, du) o  -- whole days
              JOIN meter.subject_months m ON m.tenant = p_tenant AND m.month = o.month
             WHERE (m.days & o.bits) <> 0
            UNION ALL
            SELECT r.subject FROM meter.rollup_subject_daily r  -- the day cut by since
             WHERE since > ds AND ds + interval '1 day' <= until
               AND r.tenant = p_tenant AND r.bucket = ds AND r.last_at >= since
            UNION ALL
            SELECT r.subject FROM meter.rollup_subject_daily r  -- the day cut by until
             WHERE until > du AND du >= since
               AND r.tenant = p_tenant AND r.bucket = du AND r.first_at < until
            UNION ALL
            SELECT e.subject FROM meter.events e  -- a range inside one day, cut at both ends
             WHERE since > ds AND until > du AND ds = du
               AND e.tenant = p_tenant AND e.occurred_at >= since AND e.occurred_at < until
            UNION ALL
            SELECT e.subject FROM meter.events e  -- not rolled up yet
             WHERE e.tenant = p_tenant AND e.occurred_at >= since AND e.occurred_at < until AND e.txid >= v_from
               AND meter._unrolled(e.txid, coalesce((SELECT s.watermark FROM meter.rollup_state s), '1:1:'::pg_snapshot))
        ) x
         WHERE x.subject IS NOT NULL
         GROUP BY x.subject) y;
    RETURN v_count;
END $$;

CREATE FUNCTION meter.summary(tenant text, since timestamptz, until timestamptz)
    RETURNS TABLE (requests bigint, successes bigint, failures bigint, success_rate numeric, unique_subjects bigint,
                   input_tokens numeric, output_tokens numeric, cache_read_tokens numeric, cache_write_tokens numeric,
                   cost numeric, potential_cost numeric, cache_hits bigint, cache_hit_rate numeric,
                   cache_savings numeric, unpriced bigint,
                   p50_ms double precision, p95_ms double precision, p99_ms double precision,
                   ttft_p50_ms double precision, ttft_p95_ms double precision, ttft_p99_ms double precision,
                   per_day jsonb)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT f.requests, f.successes, f.failures, f.success_rate,
           meter._subject_count(summary.tenant, summary.since, summary.until),
           f.input_tokens, f.output_tokens, f.cache_read_tokens, f.cache_write_tokens, f.cost, f.potential_cost,
           f.cache_hits, f.cache_hit_rate, f.cache_savings, f.unpriced, f.p50_ms, f.p95_ms, f.p99_ms,
           f.ttft_p50_ms, f.ttft_p95_ms, f.ttft_p99_ms, f.per_day
      FROM meter._figures(summary.tenant, summary.since, summary.until) f;
END;
COMMENT ON FUNCTION meter.summary(text, timestamptz, timestamptz) IS
    'A tenant''s usage over [since, until) in one row: requests, successes, failures, success rate, unique subjects, tokens by meter, cost, potential cost, cache hits, hit rate and savings, latency and time-to-first-token percentiles, and requests and cost per UTC day (per_day, cost as exact text).';

-- _subject_limits: meter.quota_status as a JSON array (amounts as exact
-- text); empty for a subject the quotas do not know (no plan applies), NULL
-- when pg_meter is not preloaded (limits live in shared memory)
CREATE FUNCTION meter._subject_limits(p_tenant text, p_subject text, p_known boolean) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE  -- quota_status may fill budget cells and hand back expired holds
    SET search_path = pg_catalog, pg_temp
    SET IntervalStyle = 'iso_8601'  -- per reads the same whatever the session's style
AS $$
BEGIN
    IF NOT p_known THEN
        RETURN '[]'::jsonb;
    END IF;
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'limit_id', s.limit_id, 'meter', s.meter, 'scope', s.scope, 'per', s.per::text,
                       'budget_period', s.budget_period, 'plan', s.plan, 'max', s.max::text, 'used', s.used::text,
                       'reserved', s.reserved::text, 'remaining', s.remaining::text, 'reset_at', s.reset_at,
                       'allowed', s.allowed) ORDER BY s.limit_id), '[]'::jsonb)
              FROM meter.quota_status(p_tenant, p_subject) s);
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    RETURN NULL;
END $$;

CREATE FUNCTION meter.subject_usage(tenant text, subject text, since timestamptz, until timestamptz)
    RETURNS TABLE (requests bigint, successes bigint, failures bigint, success_rate numeric,
                   input_tokens numeric, output_tokens numeric, cache_read_tokens numeric, cache_write_tokens numeric,
                   cost numeric, potential_cost numeric, cache_hits bigint, cache_hit_rate numeric,
                   cache_savings numeric, unpriced bigint,
                   p50_ms double precision, p95_ms double precision, p99_ms double precision,
                   ttft_p50_ms double precision, ttft_p95_ms double precision, ttft_p99_ms double precision,
                   per_day jsonb, plan text, team text, blocked boolean, blocked_reason text, limits jsonb)
    LANGUAGE plpgsql VOLATILE  -- through meter.quota_status
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tenant text := subject_usage.tenant;
    v_subject text := subject_usage.subject;
BEGIN
    IF v_subject IS NULL THEN
        RAISE EXCEPTION 'subject must not be NULL' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Guests (events without a subject) are in meter.summary.';
    END IF;
    RETURN QUERY
    SELECT f.*, q.plan, q.team, coalesce(q.blocked, false), q.reason,
           meter._subject_limits(v_tenant, v_subject, coalesce(q.found, false))
      FROM meter._figures(v_tenant, subject_usage.since, subject_usage.until, v_subject) f
      LEFT JOIN (SELECT s.plan, s.team, s.blocked, s.reason, true AS found
                   FROM meter._quota_subject(v_tenant, v_subject) s) q ON true;
END $$;
COMMENT ON FUNCTION meter.subject_usage(text, text, timestamptz, timestamptz) IS
    'One subject''s usage over [since, until) (the figures of meter.summary), with its plan, team, whether it is blocked and why, and every limit that applies to it now (used, remaining, reset; amounts as exact text).';

-- _rank_expr: the figure meter.top_subjects ranks by (by: cost,
-- potential_cost, requests, errors, tokens, input_tokens, output_tokens) as
-- an SQL expression over the columns of p_alias, for the queries that
-- compute it for every row: written into them, not a function per row.
-- NULL for any other by: what top_subjects checks its argument with.
CREATE FUNCTION meter._rank_expr(p_by text, p_alias text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN format(CASE p_by WHEN 'tokens' THEN '(%1$I.input_tokens + %1$I.output_tokens)'
                            WHEN 'cost' THEN '%1$I.cost' WHEN 'potential_cost' THEN '%1$I.potential_cost'
                            WHEN 'requests' THEN '%1$I.requests' WHEN 'errors' THEN '%1$I.errors'
                            WHEN 'input_tokens' THEN '%1$I.input_tokens' WHEN 'output_tokens' THEN '%1$I.output_tokens'
                  END, p_alias);

-- _subject_bounds: for each subject of a tenant, an amount that its "by"
-- figure over [since, until) cannot exceed: the sums of its months that
-- the range touches (subject_months) and its events in the range not rolled
-- up yet. Every figure of an event is zero or more, so no part of a month
-- holds more than the month. Read from a row per subject and month. One
-- row: the subjects and their bounds, largest first (ties by subject), the
-- first p_limit of them when it is given: a top-N sort of the few the
-- ranking reads first, not a sort of every subject.
CREATE FUNCTION meter._subject_bounds(p_tenant text, since timestamptz, until timestamptz, p_by text,
                                      p_limit integer DEFAULT NULL)
    RETURNS TABLE (subjects text[], bounds numeric[])
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
    -- the 2,000 subjects' 5,000 parts hashed: estimated at a few dozen,
    -- they were sorted by subject in its collation first (7.3 to 3.8 ms);
    -- the sort of the bounds stays, and its cost disabled would take the
    -- plan past the JIT's threshold (150 ms of LLVM for a millisecond)
    SET enable_sort = off
    SET jit = off
AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        WITH wm AS (SELECT coalesce((SELECT watermark FROM meter.rollup_state), '1:1:'::pg_snapshot) AS w),
        parts AS (
            SELECT m.subject, %s AS v
              FROM meter.subject_months m
             WHERE m.tenant = $1 AND m.month >= date_trunc('month', $2) AND m.month < $3
            UNION ALL
            -- the tail (as meter._usage reads it)
            SELECT t.subject, %s
              FROM (SELECT e.subject, 1 AS requests, (NOT e.success)::integer AS errors, e.input_tokens,
                           e.output_tokens, coalesce(e.cost, 0) AS cost, coalesce(e.potential_cost, 0) AS potential_cost
                      FROM meter.events e
                     WHERE e.tenant = $1 AND e.occurred_at >= $2 AND e.occurred_at < $3 AND e.subject IS NOT NULL
                       AND e.txid >= meter._tail_from() AND meter._unrolled(e.txid, (SELECT w FROM wm))) t
        ),
        b AS (
            SELECT p.subject, sum(p.v) AS bound FROM parts p GROUP BY p.subject
             ORDER BY bound DESC, p.subject COLLATE "C" LIMIT $4
        )
        SELECT array_agg(b.subject ORDER BY b.bound DESC, b.subject COLLATE "C"),
               array_agg(b.bound ORDER BY b.bound DESC, b.subject COLLATE "C")
          FROM b
    $q$, meter._rank_expr(p_by, 'm'), meter._rank_expr(p_by, 't'))
    USING p_tenant, since, until, p_limit;
END $$;

CREATE FUNCTION meter.top_subjects(tenant text, since timestamptz, until timestamptz, by text DEFAULT 'cost',
                                   n integer DEFAULT 10)
    RETURNS TABLE (rank integer, subject text, requests bigint, errors bigint, input_tokens numeric,
                   output_tokens numeric, cost numeric, potential_cost numeric, share numeric)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_by text := lower(top_subjects.by);
    v_tenant text := top_subjects.tenant;
    v_subjects text[];  -- the subjects with usage in the months, by bound, largest first
    v_bounds numeric[];
    v_all boolean;      -- all of them (else only the first ones)
    v_k integer;        -- the first v_k of them are read exactly
    v_nth numeric;      -- the n-th largest exact amount among them
    v_total numeric;
    -- the subjects read exactly, largest amount first
    r_subject text[];
    r_requests bigint[];
    r_errors bigint[];
    r_input numeric[];
    r_output numeric[];
    r_cost numeric[];
    r_potential numeric[];
    r_v numeric[];
BEGIN
    IF meter._rank_expr(v_by, 'u') IS NULL THEN  -- (NULL for a figure it does not know)
        RAISE EXCEPTION 'cannot rank subjects by "%"', top_subjects.by USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use cost, potential_cost, requests, errors, tokens, input_tokens or output_tokens.';
    END IF;
    IF top_subjects.n IS NULL OR top_subjects.n < 1 OR top_subjects.n > 10000 THEN
        RAISE EXCEPTION 'n must be from 1 to 10000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_tenant IS NULL OR since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'tenant, since and until must be given' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM meter._check_range(since, until);
    -- Only the subjects that can rank are read exactly (meter._usage, from
    -- the subject-day rows and the log). Each subject has a bound; the
    -- largest bounds are read first. When the n-th largest exact amount
    -- among them is above every other subject's bound, no other can rank;
    -- otherwise every subject whose bound reaches it is read, and then none
    -- outside can (a bound below the n-th amount of a subset is below the
    -- n-th amount of all). The first read is of twice n subjects (at least
    -- n + 10): a subject's months hold about as much as its range, so the
    -- top of the bounds is the top of the amounts, give or take a few.
    -- Only the first v_k + 1 bounds are fetched at first (the next one
    -- after those read decides whether others can rank); all of them when
    -- it does not rule them out.
    -- (ties in any order, the same in both: they only order the reads)
    v_k := greatest(2 * top_subjects.n, top_subjects.n + 10);
    SELECT b.subjects, b.bounds INTO v_subjects, v_bounds FROM meter._subject_bounds(v_tenant, since, until, v_by, v_k + 1) b;
    IF v_subjects IS NULL THEN
        RETURN;  -- no subject has usage in these months
    END IF;
    v_all := cardinality(v_subjects) <= v_k;
    v_k := least(cardinality(v_subjects), v_k);
    LOOP
        EXECUTE format(
            'SELECT array_agg(u.key ORDER BY u.v DESC, u.key), array_agg(u.requests ORDER BY u.v DESC, u.key),
                    array_agg(u.errors ORDER BY u.v DESC, u.key), array_agg(u.input_tokens ORDER BY u.v DESC, u.key),
                    array_agg(u.output_tokens ORDER BY u.v DESC, u.key), array_agg(u.cost ORDER BY u.v DESC, u.key),
                    array_agg(u.potential_cost ORDER BY u.v DESC, u.key), array_agg(u.v ORDER BY u.v DESC, u.key)
               FROM (SELECT u.*, %s AS v FROM meter._usage($1, $2, $3, ''subject'', $4, false) u) u',
            meter._rank_expr(v_by, 'u'))
          INTO r_subject, r_requests, r_errors, r_input, r_output, r_cost, r_potential, r_v
          USING v_tenant, since, until, v_subjects[1:v_k];
        v_nth := r_v[top_subjects.n];  -- NULL when fewer than n have usage
        EXIT WHEN (v_all AND v_k = cardinality(v_subjects)) OR v_bounds[v_k + 1] < v_nth;
        IF NOT v_all THEN
            SELECT b.subjects, b.bounds INTO v_subjects, v_bounds FROM meter._subject_bounds(v_tenant, since, until, v_by) b;
            v_all := true;
        END IF;
        -- every subject whose bound reaches the n-th amount (all of them
        -- when fewer than n had usage); more than v_k, as the next did
        -- (at least one more whatever the bounds hold: the loop ends)
        SELECT greatest(count(*), v_k + 1) INTO v_k FROM unnest(v_bounds) b WHERE v_nth IS NULL OR b >= v_nth;
    END LOOP;
    -- share: of the tenant's whole amount, guests (no subject) included
    EXECUTE format('SELECT %s FROM meter._usage($1, $2, $3, NULL, NULL, false) u', meter._rank_expr(v_by, 'u'))
       INTO v_total USING v_tenant, since, until;
    RETURN QUERY
    SELECT r.i::integer, r.subject, r.requests, r.errors, r.input_tokens, r.output_tokens, r.cost, r.potential_cost,
           meter._rate(r.v, v_total)
      FROM unnest(r_subject, r_requests, r_errors, r_input, r_output, r_cost, r_potential, r_v)
               WITH ORDINALITY AS r(subject, requests, errors, input_tokens, output_tokens, cost, potential_cost, v, i)
     WHERE r.i <= top_subjects.n
     ORDER BY r.i;
END $$;
COMMENT ON FUNCTION meter.top_subjects(text, timestamptz, timestamptz, text, integer) IS
    'The n subjects of a tenant with the most cost (or potential_cost, requests, errors, tokens, input_tokens, output_tokens) over [since, until), with their share of the tenant''s whole amount.';

-- Provider balances: what a provider reports the account holds (credits
-- at OpenRouter, fal, Replicate), kept so that runway can project it.
CREATE TABLE meter.balances (
    balance_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant       text NOT NULL,
    provider     text NOT NULL,
    balance_usd  numeric NOT NULL CHECK (balance_usd = balance_usd AND balance_usd > '-Infinity' AND balance_usd < 'Infinity'),
    at           timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT balances_once UNIQUE (tenant, provider, at)
);
COMMENT ON TABLE meter.balances IS 'Provider balances as the provider reported them, one row per (tenant, provider, time); meter.record_balance writes them, meter.runway reads them.';
SELECT pg_catalog.pg_extension_config_dump('meter.balances', '');
SELECT pg_catalog.pg_extension_config_dump('meter.balances_balance_id_seq', '');

CREATE FUNCTION meter.record_balance(tenant text, provider text, balance_usd numeric, at timestamptz DEFAULT now())
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_id bigint;
BEGIN
    IF tenant IS NULL OR provider IS NULL OR balance_usd IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'tenant, provider, balance_usd and at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF balance_usd = 'NaN' OR balance_usd IN ('Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'balance_usd must be a finite amount, not %', balance_usd USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF at > now() + interval '5 minutes' THEN
        RAISE EXCEPTION 'a balance cannot be reported for a future time (%)', at USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass the time the provider reported the balance, or leave at out for now().';
    END IF;
    -- the same report again (same provider and time) replaces the first
    INSERT INTO meter.balances AS b (tenant, provider, balance_usd, at)
    VALUES (tenant, provider, balance_usd, at)
    ON CONFLICT ON CONSTRAINT balances_once DO UPDATE SET balance_usd = EXCLUDED.balance_usd, recorded_at = now()
    RETURNING b.balance_id INTO v_id;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION meter.record_balance(text, text, numeric, timestamptz) IS
    'Keeps a provider''s reported balance in USD at a time (default now); the same provider and time again replaces it. Returns the row''s id.';

CREATE FUNCTION meter.runway(tenant text, burn_window interval DEFAULT interval '7 days', at timestamptz DEFAULT now())
    RETURNS TABLE (provider text, balance_usd numeric, balance_at timestamptz, spent_since numeric,
                   estimated_balance numeric, burn_per_day numeric, days_left numeric, runs_out_at timestamptz,
                   previous_balance numeric, previous_at timestamptz, reported_spend numeric, computed_spend numeric,
                   drift numeric)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    -- the burn window and the days left are counted in UTC days (24 hours):
    -- in a session's calendar '7 days' across a change of daylight saving
    -- time are 167 or 169 hours, while burn_per_day divides by 7
    SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    v_tenant text := runway.tenant;
    v_now timestamptz := runway.at;
    v_days numeric;
    v_burn jsonb;  -- every provider's cost over the burn window (one read for all)
    b record;
BEGIN
    IF v_tenant IS NULL OR v_now IS NULL THEN
        RAISE EXCEPTION 'tenant and at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT isfinite(v_now) THEN
        RAISE EXCEPTION 'at must be a finite time' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF burn_window IS NULL OR burn_window <= interval '0' OR burn_window > interval '366 days' THEN
        RAISE EXCEPTION 'burn_window must be more than 0 and at most 366 days' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_days := extract(epoch FROM burn_window) / 86400;
    FOR b IN
        SELECT l.provider, l.balance_usd, l.at, p.balance_usd AS prev_usd, p.at AS prev_at
          FROM (SELECT DISTINCT ON (x.provider) x.provider, x.balance_usd, x.at
                  FROM meter.balances x WHERE x.tenant = v_tenant AND x.at <= v_now
                 ORDER BY x.provider, x.at DESC) l
          LEFT JOIN LATERAL (SELECT y.balance_usd, y.at FROM meter.balances y
                              WHERE y.tenant = v_tenant AND y.provider = l.provider AND y.at < l.at
                              ORDER BY y.at DESC LIMIT 1) p ON true
         ORDER BY l.provider
    LOOP
        provider := b.provider;
        balance_usd := b.balance_usd;
        balance_at := b.at;
        SELECT coalesce(sum(u.cost), 0) INTO spent_since
          FROM meter._usage(v_tenant, b.at, v_now, 'provider', NULL, false) u WHERE u.key = b.provider;
        estimated_balance := b.balance_usd - spent_since;
        IF v_burn IS NULL THEN
            SELECT coalesce(jsonb_object_agg(u.key, u.cost) FILTER (WHERE u.key IS NOT NULL), '{}') INTO v_burn
              FROM meter._usage(v_tenant, v_now - burn_window, v_now, 'provider', NULL, false) u;
        END IF;
        burn_per_day := round(coalesce((v_burn ->> b.provider)::numeric, 0) / v_days, 12);
        days_left := CASE WHEN burn_per_day > 0 THEN round(greatest(estimated_balance, 0) / burn_per_day, 2) END;
        runs_out_at := v_now + days_left * interval '1 day';
        previous_balance := b.prev_usd;
        previous_at := b.prev_at;
        IF b.prev_at IS NULL THEN
            reported_spend := NULL; computed_spend := NULL; drift := NULL;
        ELSE
            reported_spend := b.prev_usd - b.balance_usd;
            SELECT coalesce(sum(u.cost), 0) INTO computed_spend
              FROM meter._usage(v_tenant, b.prev_at, b.at, 'provider', NULL, false) u WHERE u.key = b.provider;
            drift := reported_spend - computed_spend;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION meter.runway(text, interval, timestamptz) IS
    'Per provider with a reported balance at at (default now): the last balance, what pg_meter computed was spent since, the estimated balance at at, the burn per day over burn_window, the days left and when it runs out, and the drift between the spend the last two balances imply and the spend pg_meter computed between them.';

-- _forecast: the fit of a baseline's daily costs (days since 1970-01-01)
-- and the projection of days first..last (src/core/forecast.*)
CREATE FUNCTION meter._forecast(days bigint[], costs double precision[], first bigint, last bigint,
                                OUT projected double precision[], OUT method text)
    AS 'MODULE_PATHNAME', 'meter_forecast'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- _month_budget: a tenant's own monthly cost budget (a tenant-wide cost
-- limit by calendar month, for every plan), the smallest if several
CREATE FUNCTION meter._month_budget(p_tenant text, OUT max numeric, OUT time_zone text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT l.max, l.time_zone FROM meter.limits l
     WHERE l.tenant = p_tenant AND l.meter = 'cost' AND l.scope = 'tenant' AND l.calendar = 'month'
       AND l.plan IS NULL AND l.subject IS NULL AND l.endpoint IS NULL
     ORDER BY l.max, l.limit_id LIMIT 1;
END;

CREATE FUNCTION meter.projection(tenant text, baseline interval DEFAULT interval '28 days',
                                 at timestamptz DEFAULT now())
    RETURNS TABLE (month text, period_start timestamptz, period_end timestamptz, spent numeric,
                   projected_rest numeric, projected_total numeric, flat_total numeric, budget numeric,
                   budget_share numeric, over_budget boolean, over_budget_at timestamptz,
                   baseline_since timestamptz, baseline_until timestamptz, method text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tenant text := projection.tenant;
    v_at timestamptz := projection.at;
    v_tz text;
    v_budget numeric;
    v_days integer;
    v_first bigint;       -- the first projected UTC day (the one holding at)
    v_last bigint;        -- the last UTC day touched by next month
    v_days_arr bigint[];
    v_costs float8[];
    v_mean numeric;
    f record;
    m integer;
    m_start timestamptz;
    m_end timestamptz;
    d bigint;
    d_start timestamptz;
    part float8;
    cum float8;
    rest float8;
BEGIN
    IF v_tenant IS NULL OR v_at IS NULL THEN
        RAISE EXCEPTION 'tenant and at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT isfinite(v_at) THEN
        RAISE EXCEPTION 'at must be a finite time' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF projection.baseline IS NULL OR projection.baseline < interval '1 day'
       OR projection.baseline > interval '366 days' THEN
        RAISE EXCEPTION 'baseline must be from 1 day to 366 days' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The baseline is the whole UTC days before at; 28 days or more show weekday patterns.';
    END IF;
    SELECT b.max, b.time_zone INTO v_budget, v_tz FROM meter._month_budget(v_tenant) b;
    v_tz := coalesce(v_tz, 'UTC');
    -- the baseline: whole UTC days before the day of at, from the first
    -- day with usage on (a newer tenant's earlier days are not zeros)
    v_days := ceil(extract(epoch FROM projection.baseline) / 86400)::integer;
    baseline_until := date_trunc('day', v_at, 'UTC');
    baseline_since := baseline_until - v_days * interval '1 day';
    WITH u AS MATERIALIZED (  -- one read of the baseline's days
        SELECT (extract(epoch FROM x.key::timestamptz) / 86400)::bigint AS day, x.cost, x.requests
          FROM meter._usage(v_tenant, baseline_since, baseline_until, 'day', NULL, false) x
    )
    SELECT array_agg(k.day ORDER BY k.day), array_agg(coalesce(u.cost, 0)::float8 ORDER BY k.day),
           avg(coalesce(u.cost, 0))
      INTO v_days_arr, v_costs, v_mean
      FROM (SELECT (extract(epoch FROM g) / 86400)::bigint AS day
              FROM generate_series(baseline_since, baseline_until - interval '1 day', interval '1 day') g) k
      LEFT JOIN u ON u.day = k.day
     WHERE k.day >= (SELECT min(y.day) FROM u y WHERE y.requests > 0);
    IF v_days_arr IS NULL THEN
        v_days_arr := '{}'; v_costs := '{}'; v_mean := 0;
    ELSE
        baseline_since := to_timestamp(v_days_arr[1] * 86400);
    END IF;
    v_first := floor(extract(epoch FROM v_at) / 86400)::bigint;
    m_start := date_trunc('month', v_at, v_tz);
    v_last := floor(extract(epoch FROM (m_start + interval '2 months') - interval '1 microsecond') / 86400)::bigint;
    SELECT x.projected, x.method INTO f FROM meter._forecast(v_days_arr, v_costs, v_first, v_last) x;
    method := f.method;
    cum := 0;
    -- this month (spent so far, exact, plus the rest projected) and next
    FOR m IN 0..1 LOOP
        m_start := date_trunc('month', v_at, v_tz) + m * interval '1 month';
        m_start := date_trunc('month', m_start, v_tz);  -- a month in the zone, whatever its length
        m_end := date_trunc('month', m_start + interval '32 days', v_tz);
        month := to_char(m_start AT TIME ZONE v_tz, 'YYYY-MM');
        period_start := m_start;
        period_end := m_end;
        IF m = 0 THEN
            SELECT coalesce(sum(u.cost), 0) INTO spent FROM meter._usage(v_tenant, m_start, v_at, NULL, NULL, false) u;
            cum := spent::float8;
        ELSE
            spent := 0;
            cum := 0;
        END IF;
        -- the projected rest: each UTC day's projection times the part of
        -- it inside [greatest(at, month start), month end)
        rest := 0;
        over_budget_at := NULL;
        FOR d IN v_first..v_last LOOP
            d_start := to_timestamp(d * 86400);
            part := extract(epoch FROM (least(d_start + interval '1 day', m_end)
                                         - greatest(d_start, m_start, v_at))) / 86400;
            CONTINUE WHEN part <= 0;
            IF v_budget IS NOT NULL AND over_budget_at IS NULL AND cum <= v_budget
               AND cum + f.projected[d - v_first + 1] * part > v_budget THEN
                over_budget_at := greatest(d_start, m_start, v_at)
                    + (v_budget - cum) / f.projected[d - v_first + 1] * interval '1 day';
            END IF;
            rest := rest + f.projected[d - v_first + 1] * part;
            cum := cum + f.projected[d - v_first + 1] * part;
        END LOOP;
        projected_rest := round(rest::numeric, 6);
        projected_total := spent + projected_rest;
        flat_total := round(v_mean * extract(epoch FROM m_end - m_start) / 86400, 6);
        budget := v_budget;
        budget_share := meter._rate(projected_total, v_budget);
        over_budget := CASE WHEN v_budget IS NOT NULL THEN projected_total > v_budget END;
        IF m = 0 AND v_budget IS NOT NULL AND spent > v_budget THEN
            over_budget_at := NULL;  -- already over: see spent
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION meter.projection(text, interval, timestamptz) IS
    'Projected cost of a tenant for the month holding at and the next: what was spent so far (exact) plus each remaining day projected from the whole UTC days of the baseline before at (weekday pattern and linear trend, stated in method), the flat average-times-days figure beside it, and the tenant''s monthly cost budget with when the projection crosses it.';

-------------------------------------------------------------------------------
-- Anomalies: what stands out against a tenant's own normal. Rates, cost,
-- errors and latency per whole UTC hour come from the hourly rollup plus
-- the tail not rolled up yet (meter._hourly); sessions polling an endpoint
-- from the events of the range.
-------------------------------------------------------------------------------

-- _hourly: a set of tenants' usage per UTC hour in [since, until) (whole
-- UTC hours: both bounds are) per provider, model, endpoint and feature:
-- the hourly rollup's rows and the tail not rolled up yet, so one group
-- may come twice (callers sum). With p_rolled false, the tail alone, for a
-- caller that reads the rollups its own way (the runway rule of
-- meter._firing).
CREATE FUNCTION meter._hourly(p_tenants text[], since timestamptz, until timestamptz, p_rolled boolean DEFAULT true)
    RETURNS TABLE (tenant text, bucket timestamptz, provider text, model text, endpoint text, feature text,
                   requests bigint, errors bigint, unpriced bigint, cost numeric, latency meter.sketch)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_custom_plan  -- see meter._anomalies
AS $$
DECLARE
    v_from bigint;
BEGIN
    IF date_trunc('hour', since, 'UTC') <> since OR date_trunc('hour', until, 'UTC') <> until THEN
        RAISE EXCEPTION '_hourly reads whole hours' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM meter._check_watermark();
    v_from := meter._tail_from();
    RETURN QUERY
    SELECT r.tenant, r.bucket, r.provider, r.model, r.endpoint, r.feature, r.requests, r.errors, r.unpriced, r.cost,
           r.latency
      FROM meter.rollup_hourly r
     WHERE p_rolled AND r.tenant = ANY (p_tenants) AND r.bucket >= since AND r.bucket < until
    UNION ALL
    SELECT e.tenant, date_trunc('hour', e.occurred_at, 'UTC'), e.provider, e.model, e.endpoint, e.feature, count(*),
           count(*) FILTER (WHERE NOT e.success), count(*) FILTER (WHERE NOT e.priced), coalesce(sum(e.cost), 0),
           meter.sketch(e.latency_ms)
      FROM meter.events e
     WHERE e.tenant = ANY (p_tenants) AND e.occurred_at >= since AND e.occurred_at < until
       AND e.txid >= v_from
       AND meter._unrolled(e.txid, coalesce((SELECT s.watermark FROM meter.rollup_state s), '1:1:'::pg_snapshot))
     GROUP BY 1, 2, 3, 4, 5, 6;
END $$;

-- Callers by hour: what the polling storms are found from. Per tenant,
-- UTC hour and endpoint, the hour's calls and cost (what the hour held when
-- it was summarized), how many callers called it twice or more and their
-- median rate; and each caller (a session, or a subject calling without
-- one) with 15 calls or more in the hour. A storm of 30 calls or more at
-- one every 10 s has 15 or more in some hour. The alerts job summarizes
-- hours once they are over (meter._callers_update), from the events; it is
-- told which by the due list, which a trigger on meter.rollup_hourly keeps
-- (whatever changes an hour's rollup rows: the rollup, backfill, reprice, a
-- restore). A reader uses an hour's summary only when its calls and cost
-- per endpoint equal the hourly rollup's plus the tail's (meter._hourly),
-- and groups the events of any other hour itself, the same way
-- (meter._caller_hours): the hour in progress, hours not summarized yet,
-- hours with late events. Derived from the events, so pg_dump leaves these
-- out: a restore's rollup rows make every hour due again.
-------------------------------------------------------------------------------
CREATE TABLE meter.endpoint_hours (
    tenant         text NOT NULL,
    bucket         timestamptz NOT NULL,
    endpoint       text,
    requests       bigint NOT NULL,
    cost           numeric NOT NULL,
    callers        bigint NOT NULL,  -- callers with 2 calls or more in the hour
    median_per_min double precision,  -- their median rate: (calls - 1) / minutes from first to last
    CONSTRAINT endpoint_hours_key UNIQUE NULLS NOT DISTINCT (tenant, bucket, endpoint)
);
CREATE TABLE meter.busy_callers (
    tenant    text NOT NULL,
    bucket    timestamptz NOT NULL,
    endpoint  text,
    session   text,
    subject   text,
    requests  bigint NOT NULL,
    empty     bigint NOT NULL,  -- calls without tokens or cost
    first_at  timestamptz NOT NULL,
    last_at   timestamptz NOT NULL
);
CREATE INDEX busy_callers_hour ON meter.busy_callers (tenant, bucket);
-- Subjects by hour: per tenant, UTC hour and subject (NULL: guests), the
-- figures of the hour's events that the rollups held when it was
-- summarized (the rolled ones, at the watermark read with them), with
-- their sketches: what a read of subjects (meter._usage by subject, of
-- some subjects) takes for the whole hours of a day the range cuts, where
-- it would read the log (the rollups hold subjects by day only; a
-- subject-hour rollup written by every rollup would hold about a row per
-- event). Summarized with the callers, from the same due list; a reader
-- uses an hour only while it is not due again, and takes the events not
-- rolled up from the log, as for every other part.
CREATE TABLE meter.subject_hours (
    tenant             text NOT NULL,
    bucket             timestamptz NOT NULL,
    subject            text,
    requests           bigint NOT NULL,
    errors             bigint NOT NULL,
    cache_hits         bigint NOT NULL,
    unpriced           bigint NOT NULL,
    input_tokens       numeric NOT NULL,
    output_tokens      numeric NOT NULL,
    cache_read_tokens  numeric NOT NULL,
    cache_write_tokens numeric NOT NULL,
    cost               numeric NOT NULL,
    potential_cost     numeric NOT NULL,
    latency            meter.sketch,
    ttft               meter.sketch,
    CONSTRAINT subject_hours_key UNIQUE NULLS NOT DISTINCT (tenant, bucket, subject)
) WITH (toast_tuple_target = 8160);
-- some subjects' hours (meter.top_subjects' twenty, meter.subject_usage's
-- one): through the key, "subject = ANY" scans every subject of the hours
-- once per subject given (15 ms for twenty over 13 hours of 2,000 subjects)
CREATE INDEX subject_hours_subject ON meter.subject_hours (tenant, subject, bucket);
CREATE TABLE meter.caller_hours_due (
    tenant  text NOT NULL,
    bucket  timestamptz NOT NULL,
    PRIMARY KEY (tenant, bucket)
);
COMMENT ON TABLE meter.endpoint_hours IS 'Per tenant, UTC hour and endpoint, as summarized by the alerts job: calls, cost, callers with two calls or more and their median rate (calls a minute). Derived from meter.events; meter.anomalies uses an hour only while it matches the rollups.';
COMMENT ON TABLE meter.busy_callers IS 'Callers (a session, or a subject without one) with 15 calls or more to one endpoint in a UTC hour: the candidates for polling storms. Derived from meter.events by the alerts job.';
COMMENT ON TABLE meter.subject_hours IS 'Per tenant, UTC hour and subject, the figures of the hour''s rolled-up events, as summarized by the alerts job: what reads of subjects take for the whole hours of a day their range cuts. Derived from meter.events; used for an hour only while it is not due again.';
COMMENT ON TABLE meter.caller_hours_due IS 'Tenant hours whose rollup rows changed since the alerts job last summarized their callers and subjects.';

-- _subject_hours_ok: whether every UTC hour of a tenant in [p_from, p_to)
-- has a current summary of its subjects: not due (no rollup row of it
-- changed since it was summarized, in the reader's snapshot), and
-- summarized if the rollups hold any of its events (an hour they hold
-- nothing of needs none). A rollup that changes an hour makes it due in
-- the same transaction, so an hour that is not due holds in its summary
-- exactly the rolled events that the rollups hold.
CREATE FUNCTION meter._subject_hours_ok(p_tenant text, p_from timestamptz, p_to timestamptz) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT NOT EXISTS (SELECT FROM meter.caller_hours_due d
                        WHERE d.tenant = p_tenant AND d.bucket >= p_from AND d.bucket < p_to)
       AND NOT EXISTS (SELECT FROM generate_series(p_from, p_to - interval '1 hour', interval '1 hour') AS h(bucket)
                        WHERE EXISTS (SELECT FROM meter.rollup_hourly r WHERE r.tenant = p_tenant AND r.bucket = h.bucket)
                              AND NOT EXISTS (SELECT FROM meter.subject_hours s
                                               WHERE s.tenant = p_tenant AND s.bucket = h.bucket));
END;

-- _callers_due: the triggers on rollup_hourly, one call a statement
CREATE FUNCTION meter._callers_due() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO meter.caller_hours_due SELECT DISTINCT h.tenant, h.bucket FROM meter.endpoint_hours h
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO meter.caller_hours_due SELECT DISTINCT o.tenant, o.bucket FROM old_rows o ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO meter.caller_hours_due SELECT DISTINCT n.tenant, n.bucket FROM new_rows n ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER callers_due_insert AFTER INSERT ON meter.rollup_hourly
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION meter._callers_due();
CREATE TRIGGER callers_due_update AFTER UPDATE ON meter.rollup_hourly
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION meter._callers_due();
CREATE TRIGGER callers_due_delete AFTER DELETE ON meter.rollup_hourly
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION meter._callers_due();
CREATE TRIGGER callers_due_truncate AFTER TRUNCATE ON meter.rollup_hourly
    FOR EACH STATEMENT EXECUTE FUNCTION meter._callers_due();

-- _caller_hours: the summary of tenant hours (pairs p_tenants[i],
-- p_hours[i]) from their events, one read of the log per hour: a row per
-- endpoint hour (session and subject NULL, callers set) and a row per busy
-- caller (callers NULL; cost NULL). What meter._callers_update stores and
-- what meter._anomalies reads for hours without a current summary. The
-- calls' cost is summed only when p_cost says so (the summary keeps it;
-- meter._anomalies needs none). In C++ (src/core/callers.*, the glue in
-- src/pg/callers.cpp): in SQL, grouping an hour of 14,000 events by caller
-- took 13 ms; here 5.5-7 ms, most of it reading the events (bench/README.md).
CREATE FUNCTION meter._caller_hours(p_tenants text[], p_hours timestamptz[], p_cost boolean)
    RETURNS TABLE (tenant text, bucket timestamptz, endpoint text, session text, subject text, requests bigint,
                   cost numeric, empty bigint, first_at timestamptz, last_at timestamptz, callers bigint,
                   median_per_min double precision)
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'meter_caller_hours';

-- _runs: the runs of callers' busy hours, in any order: a caller's hours
-- that follow each other make one run, with their calls, empty calls, first
-- and last call, and the greatest subject bytewise. In C++ (src/core/callers.*):
-- the same in SQL, a window over the busy hours sorted by caller and hour
-- and a grouping, took 3.5 ms of a day's 2,000 busy hours (bench/README.md).
-- per_min is the run's rate as the endpoint hours' medians are taken, by
-- the same function: (calls - 1) over the minutes from first to last call,
-- a second at least.
CREATE TYPE meter._run AS (tenant text, endpoint text, session text, subject text, requests bigint, empty bigint,
                           first_at timestamptz, last_at timestamptz, per_min double precision);
CREATE FUNCTION meter._runs_add(internal, text, text, text, text, timestamptz, bigint, bigint, timestamptz, timestamptz)
    RETURNS internal LANGUAGE c CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'meter_runs_add';
CREATE FUNCTION meter._runs_final(internal) RETURNS meter._run[]
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'meter_runs_final';
CREATE AGGREGATE meter._runs(tenant text, endpoint text, session text, subject text, bucket timestamptz,
                             requests bigint, empty bigint, first_at timestamptz, last_at timestamptz) (
    SFUNC = meter._runs_add,
    STYPE = internal,
    FINALFUNC = meter._runs_final
);

-- _subject_hours_of: the subjects of tenant hours (pairs p_tenants[i],
-- p_hours[i]) from their rolled events (those the watermark covers, read
-- in one snapshot with it), one read of the log per hour for all of its
-- tenants: what meter._callers_update stores in meter.subject_hours.
CREATE FUNCTION meter._subject_hours_of(p_tenants text[], p_hours timestamptz[])
    RETURNS SETOF meter.subject_hours
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    -- hashed, not sorted, as meter._caller_hours' callers
    SET work_mem = '16MB'
    SET enable_sort = off
    SET jit = off
-- (a string body, parsed at each call: a body parsed at creation would
-- make ALTER TABLE refuse to change meter.events' column types before the
-- trigger's check of them could say what is wrong)
AS $$
    WITH wm AS (
        SELECT coalesce((SELECT watermark FROM meter.rollup_state), '1:1:'::pg_snapshot) AS w
    ), p AS (
        SELECT h.bucket, array_agg(DISTINCT h.tenant) AS tenants
          FROM unnest(p_tenants, p_hours) AS h(tenant, bucket)
         WHERE h.tenant IS NOT NULL AND h.bucket IS NOT NULL
         GROUP BY h.bucket
    )
    SELECT x.tenant, x.bucket, x.subject, (x.m).*
      FROM (SELECT e.tenant, p.bucket, e.subject,
                   meter._measures(e.success, e.cached, e.priced, e.input_tokens, e.output_tokens,
                                   e.cache_read_tokens, e.cache_write_tokens, e.cost, e.potential_cost,
                                   e.latency_ms, e.ttft_ms) AS m
              FROM wm, p, meter.events e
             WHERE e.tenant = ANY (p.tenants) AND e.occurred_at >= p.bucket
               AND e.occurred_at < p.bucket + interval '1 hour'
               AND NOT meter._unrolled(e.txid, wm.w)
             GROUP BY e.tenant, p.bucket, e.subject) x
$$;

-- _summarize: summarizes tenant hours (pairs p_tenants[i], p_hours[i])
-- from their events anew: their callers (meter.endpoint_hours,
-- meter.busy_callers) and their subjects (meter.subject_hours). What the
-- alerts job does for the due hours and meter.resummarize for a range.
CREATE FUNCTION meter._summarize(p_tenants text[], p_hours timestamptz[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM meter.endpoint_hours h USING unnest(p_tenants, p_hours) AS p(tenant, bucket)
     WHERE h.tenant = p.tenant AND h.bucket = p.bucket;
    DELETE FROM meter.busy_callers b USING unnest(p_tenants, p_hours) AS p(tenant, bucket)
     WHERE b.tenant = p.tenant AND b.bucket = p.bucket;
    WITH c AS MATERIALIZED (
        SELECT * FROM meter._caller_hours(p_tenants, p_hours, true)
    ), busy AS (
        INSERT INTO meter.busy_callers (tenant, bucket, endpoint, session, subject, requests, empty, first_at, last_at)
        SELECT c.tenant, c.bucket, c.endpoint, c.session, c.subject, c.requests, c.empty, c.first_at, c.last_at
          FROM c WHERE c.callers IS NULL
    )
    INSERT INTO meter.endpoint_hours (tenant, bucket, endpoint, requests, cost, callers, median_per_min)
    SELECT c.tenant, c.bucket, c.endpoint, c.requests, c.cost, c.callers, c.median_per_min
      FROM c WHERE c.callers IS NOT NULL;
    -- the subjects of the same hours: their rolled events, read in one
    -- snapshot with the watermark that says which are rolled (what the
    -- hour's rollup rows hold in that snapshot)
    DELETE FROM meter.subject_hours h USING unnest(p_tenants, p_hours) AS p(tenant, bucket)
     WHERE h.tenant = p.tenant AND h.bucket = p.bucket;
    INSERT INTO meter.subject_hours (tenant, bucket, subject, requests, errors, cache_hits, unpriced, input_tokens,
                                     output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost,
                                     latency, ttft)
    SELECT * FROM meter._subject_hours_of(p_tenants, p_hours);
END $$;
REVOKE ALL ON FUNCTION meter._summarize(text[], timestamptz[]) FROM PUBLIC;

-- _callers_update: the alerts job's step. Summarizes the due tenants of
-- up to max_hours UTC hours that are over (the latest first; every
-- tenant of an hour at once, in one read of its events): their callers
-- (meter.endpoint_hours, meter.busy_callers) and their subjects
-- (meter.subject_hours); returns how many tenant hours it summarized and
-- how many over ones stay due. The due rows are taken first, in their own
-- statement: a rollup that changes an hour again meanwhile makes it due
-- again (its insert waits for this transaction), so a reader never takes a
-- summary that is not due for what the rollups held when it was made.
CREATE FUNCTION meter._callers_update(max_hours integer DEFAULT 24, OUT summarized bigint, OUT still_due bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tenants text[];
    v_hours timestamptz[];
BEGIN
    IF max_hours IS NULL OR max_hours < 1 THEN
        RAISE EXCEPTION 'max_hours must be 1 or more, not %', coalesce(max_hours::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH hours AS (
        SELECT DISTINCT x.bucket FROM meter.caller_hours_due x
         WHERE x.bucket + interval '1 hour' <= now()
         ORDER BY x.bucket DESC LIMIT max_hours
    ), taken AS (
        DELETE FROM meter.caller_hours_due d USING hours h WHERE d.bucket = h.bucket
        RETURNING d.tenant, d.bucket
    )
    SELECT array_agg(t.tenant), array_agg(t.bucket) INTO v_tenants, v_hours FROM taken t;
    summarized := coalesce(cardinality(v_tenants), 0);
    IF summarized > 0 THEN
        PERFORM meter._summarize(v_tenants, v_hours);
    END IF;
    SELECT count(*) INTO still_due FROM meter.caller_hours_due d WHERE d.bucket + interval '1 hour' <= now();
END $$;
REVOKE ALL ON FUNCTION meter._callers_update(integer) FROM PUBLIC;

-- _summary_hours: the tenant hours of [p_from, p_to) that are over and
-- have, or should have, summaries: rollup rows, summary rows, or a due
-- mark. meter.verify checks those not due; meter.resummarize redoes them.
CREATE FUNCTION meter._summary_hours(p_from timestamptz, p_to timestamptz)
    RETURNS TABLE (tenant text, bucket timestamptz, due boolean)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.tenant, x.bucket, bool_or(x.due)
      FROM (SELECT r.tenant, r.bucket, false AS due FROM meter.rollup_hourly r WHERE r.bucket >= p_from AND r.bucket < p_to
            UNION ALL
            SELECT s.tenant, s.bucket, false FROM meter.subject_hours s WHERE s.bucket >= p_from AND s.bucket < p_to
            UNION ALL
            SELECT s.tenant, s.bucket, false FROM meter.endpoint_hours s WHERE s.bucket >= p_from AND s.bucket < p_to
            UNION ALL
            SELECT s.tenant, s.bucket, false FROM meter.busy_callers s WHERE s.bucket >= p_from AND s.bucket < p_to
            UNION ALL
            SELECT d.tenant, d.bucket, true FROM meter.caller_hours_due d WHERE d.bucket >= p_from AND d.bucket < p_to) x
     WHERE x.bucket + interval '1 hour' <= now()
     GROUP BY x.tenant, x.bucket
$$;

-- resummarize: summarizes anew, from their events, the UTC hours that are
-- over in the days covering [since, until): what repairs a difference
-- meter.verify reports in meter.subject_hours, meter.endpoint_hours or
-- meter.busy_callers (derived tables: a backfill rebuilds the rollups, and
-- makes due again only the hours whose rollup rows it changed). Takes the
-- alerts job's lock for its transaction, so the two never summarize at
-- once. Returns how many tenant hours it summarized.
CREATE FUNCTION meter.resummarize(since timestamptz, until timestamptz) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
DECLARE
    v_span record;
    v_tenants text[];
    v_hours timestamptz[];
BEGIN
    v_span := meter._day_span(since, until);
    PERFORM pg_advisory_xact_lock(20557, meter._job_key('alerts'));
    SELECT array_agg(h.tenant), array_agg(h.bucket) INTO v_tenants, v_hours
      FROM meter._summary_hours(v_span.d1, v_span.d2) h;
    IF v_tenants IS NULL THEN
        RETURN 0;
    END IF;
    -- as the alerts job, the due marks first: a rollup that changes one of
    -- these hours meanwhile makes it due again
    DELETE FROM meter.caller_hours_due d USING unnest(v_tenants, v_hours) AS p(tenant, bucket)
     WHERE d.tenant = p.tenant AND d.bucket = p.bucket;
    PERFORM meter._summarize(v_tenants, v_hours);
    RETURN cardinality(v_tenants);
END $$;
COMMENT ON FUNCTION meter.resummarize(timestamptz, timestamptz) IS
    'Summarizes anew, from the events, the callers and subjects of the UTC hours that are over in the days covering [since, until) (meter.endpoint_hours, meter.busy_callers, meter.subject_hours); repairs what meter.verify reports in them. Returns the tenant hours summarized.';
REVOKE ALL ON FUNCTION meter.resummarize(timestamptz, timestamptz) FROM PUBLIC;

-- _anomalies: the findings of meter.anomalies for a set of tenants (the
-- alert job asks for all of its tenants at once). key names what a finding
-- is about, so that an alert on it fires once while it lasts.
CREATE FUNCTION meter._anomalies(p_tenants text[], since timestamptz, until timestamptz)
    RETURNS TABLE (tenant text, kind text, subject text, session text, endpoint text, model text,
                   started_at timestamptz, ended_at timestamptz, observed numeric, normal numeric, unit text,
                   ratio numeric, what text, advice text, key text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD'  -- times inside what and advice read back anywhere
    -- no JIT: the planner prices each function scan of meter._hourly at
    -- its default 1,000 rows and multiplies the per-hour subqueries over
    -- them, so the spike query below was estimated at ~1.2M, past
    -- jit_optimize_above_cost: for 1,000 tenants LLVM then inlined,
    -- optimized and emitted ~100 functions, ~830 ms, for a query that
    -- runs in ~30 ms (bench/alerts.sh). These queries are short; compiling
    -- them never pays.
    SET jit = off
    -- the plan: for several tenants (the alerts job), one for each call's
    -- tenants and hours: from a session's sixth call on, PL/pgSQL would
    -- otherwise settle on a generic plan, and the storm query's generic plan
    -- took 46 ms where the call's own took 9 (1,000 tenants, evaluate_alerts
    -- run again and again in one session). For one tenant (meter.anomalies),
    -- the body below makes it generic, kept for the session: planning this
    -- statement was 2.5 ms of a warm 11.5 (a day of a tenant with ten million
    -- events; bench/summary.sh), and its generic plan runs as fast
    SET plan_cache_mode = force_custom_plan
    -- the week before is 168 UTC hours: in a session zone, "- 7 days"
    -- across a change of daylight saving time is 167 or 169
    SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    h1 timestamptz := date_trunc('hour', since, 'UTC');
    h2 timestamptz := date_trunc('hour', until, 'UTC') + CASE WHEN date_trunc('hour', until, 'UTC') < until
                                                       THEN interval '1 hour' ELSE interval '0' END;
    d0 timestamptz := date_trunc('day', since, 'UTC');  -- the normal: the 7 whole days before
BEGIN
    IF cardinality(p_tenants) = 1 THEN  -- (undone when the function returns, with its SET)
        PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
    END IF;
    -- One statement, so that the range's hours (meter._hourly) and the
    -- week's days are each read once for every kind; all of it hour by hour
    -- over the whole UTC hours the range touches.
    --
    -- Polling storms: a caller (a session, or a subject without sessions)
    -- calling one endpoint every 10 s or faster for a minute or more, 30
    -- times or more, at ten times the normal rate of the endpoint's callers
    -- (or its only caller). A storm has 15 calls or more in some hour: it is
    -- a run of neighbouring hours in which the caller made 15 or more. The
    -- normal is the median of the endpoint's hourly medians, each hour
    -- weighted by its callers. Hours come from their summary
    -- (meter.endpoint_hours, meter.busy_callers) when it holds what the log
    -- holds, each endpoint's calls and cost, and from the events otherwise.
    --
    -- Cost and error spikes, and latency jumps: an hour against the tenant's
    -- week before (the 7 whole UTC days before the range's first day, from
    -- the daily rollup; hours without calls count as 0; at least a day of
    -- history). A cost hour at three times the mean is checked against the
    -- spread of the week's hours too (read once, and only when an hour gets
    -- that far). Neighbouring hours make one finding.
    RETURN QUERY
    WITH x AS MATERIALIZED (  -- the range's hours per model and endpoint
        SELECT u.tenant, u.bucket, u.model, u.endpoint, sum(u.requests) AS req, sum(u.errors) AS err,
               sum(u.cost) AS cost, meter.merge(u.latency) AS latency
          FROM meter._hourly(p_tenants, h1, h2) u
         GROUP BY 1, 2, 3, 4
    ), sh AS MATERIALIZED (  -- the range's summarized endpoint hours
        SELECT s.* FROM meter.endpoint_hours s WHERE s.tenant = ANY (p_tenants) AND s.bucket >= h1 AND s.bucket < h2
    ), cur AS MATERIALIZED (  -- per tenant hour: does its summary hold what the log holds?
        SELECT coalesce(l.tenant, s.tenant) AS tenant, coalesce(l.bucket, s.bucket) AS bucket,
               bool_and(l.req IS NOT NULL AND s.requests IS NOT NULL AND l.req = s.requests AND l.cost = s.cost) AS ok,
               bool_or(l.req IS NOT NULL) AS logged
          FROM (SELECT x.tenant, x.bucket, x.endpoint, sum(x.req) AS req, sum(x.cost) AS cost
                  FROM x GROUP BY x.tenant, x.bucket, x.endpoint) l
          FULL JOIN sh s ON s.tenant = l.tenant AND s.bucket = l.bucket AND s.endpoint IS NOT DISTINCT FROM l.endpoint
         GROUP BY 1, 2
    ), redo AS MATERIALIZED (  -- the other hours with calls, from the events
        SELECT r.* FROM meter._caller_hours(ARRAY(SELECT c.tenant FROM cur c WHERE c.logged AND NOT c.ok
                                                   ORDER BY c.tenant, c.bucket),
                                            ARRAY(SELECT c.bucket FROM cur c WHERE c.logged AND NOT c.ok
                                                   ORDER BY c.tenant, c.bucket), false) r
    ), hn AS (  -- the endpoints' hours with callers
        SELECT s.tenant, s.bucket, s.endpoint, s.callers, s.median_per_min AS m
          FROM cur c JOIN sh s ON s.tenant = c.tenant AND s.bucket = c.bucket
         WHERE c.ok AND s.callers > 0
        UNION ALL
        SELECT r.tenant, r.bucket, r.endpoint, r.callers, r.median_per_min FROM redo r WHERE r.callers > 0
    ), norm AS (  -- an endpoint's normal: its hours' medians, the median of them weighted by callers
        SELECT w.tenant, w.endpoint, max(w.callers) AS callers,
               (array_agg(w.m ORDER BY w.m) FILTER (WHERE 2 * w.cum >= w.total))[1] AS median
          FROM (SELECT hn.*, sum(hn.callers) OVER (PARTITION BY hn.tenant, hn.endpoint ORDER BY hn.m, hn.bucket) AS cum,
                       sum(hn.callers) OVER (PARTITION BY hn.tenant, hn.endpoint) AS total
                  FROM hn) w
         GROUP BY w.tenant, w.endpoint
    ), busy AS (  -- callers' busy hours
        SELECT b.tenant, b.bucket, b.endpoint, b.session, b.subject, b.requests, b.empty, b.first_at, b.last_at
          FROM cur c JOIN meter.busy_callers b ON b.tenant = c.tenant AND b.bucket = c.bucket
         WHERE c.ok AND b.tenant = ANY (p_tenants) AND b.bucket >= h1 AND b.bucket < h2
        UNION ALL
        SELECT r.tenant, r.bucket, r.endpoint, r.session, r.subject, r.requests, r.empty, r.first_at, r.last_at
          FROM redo r WHERE r.callers IS NULL
    ), storm AS (  -- runs of neighbouring busy hours
        SELECT r.tenant, r.endpoint, r.session, r.subject, r.requests AS n, r.empty, r.first_at AS t1, r.last_at AS t2,
               r.per_min
          FROM unnest((SELECT meter._runs(b.tenant, b.endpoint, b.session, b.subject, b.bucket, b.requests, b.empty,
                                          b.first_at, b.last_at) FROM busy b)) r
    ), week AS MATERIALIZED (  -- the week before per model
        SELECT d.tenant, d.model, sum(d.cost) AS cost, sum(d.requests) AS req, sum(d.errors) AS err,
               min(d.bucket) AS first_day, meter.merge(d.latency) AS latency
          FROM meter.rollup_daily d
         WHERE d.tenant = ANY (p_tenants) AND d.bucket >= d0 - interval '7 days' AND d.bucket < d0
         GROUP BY 1, 2
    ), spread AS MATERIALIZED (  -- the sum of squares of the week's hourly cost
        SELECT w.tenant, sum(w.c * w.c) AS squares
          FROM (SELECT r.tenant, sum(r.cost) AS c FROM meter.rollup_hourly r
                 WHERE r.tenant = ANY (p_tenants) AND r.bucket >= d0 - interval '7 days' AND r.bucket < d0
                 GROUP BY r.tenant, r.bucket) w
         GROUP BY w.tenant
    ), h AS (
        SELECT x.tenant, x.bucket, sum(x.req) AS req, sum(x.err) AS err, sum(x.cost) AS cost
          FROM x GROUP BY 1, 2
    ), base AS (
        SELECT w.tenant, sum(w.cost) AS cost, sum(w.req) AS req, sum(w.err) AS err,
               extract(epoch FROM d0 - min(w.first_day)) / 3600 AS hours
          FROM week w
         GROUP BY w.tenant
    ), f AS (  -- flagged hours
        SELECT h.tenant, h.bucket, k.kind, k.observed, k.normal
          FROM h JOIN base b ON b.tenant = h.tenant,
               LATERAL (SELECT b.cost / b.hours AS mean,
                               coalesce(b.err::numeric / nullif(b.req, 0), 0) AS rate) c,
               LATERAL (VALUES
                   ('cost_spike', h.cost, c.mean, h.cost >= 0.01 AND h.cost >= 3 * c.mean),
                   ('error_spike', round(h.err::numeric / h.req, 4), round(c.rate, 4),
                    h.err >= 10 AND h.err::numeric / h.req >= greatest(3 * c.rate, c.rate + 0.1))
               ) k(kind, observed, normal, hit)
         WHERE b.hours >= 24 AND k.hit
           AND (k.kind <> 'cost_spike' OR h.cost >= c.mean + 4 * (
                   -- the spread of the week's hourly cost (zeros included)
                   SELECT sqrt(greatest(coalesce(max(sp.squares), 0) / b.hours - c.mean * c.mean, 0))
                     FROM spread sp WHERE sp.tenant = h.tenant))
    ), i AS (  -- islands of neighbouring hours
        SELECT f.*, f.bucket - (row_number() OVER (PARTITION BY f.tenant, f.kind ORDER BY f.bucket)) * interval '1 hour'
                        AS island
          FROM f
    ), s AS (
        SELECT i.tenant, i.kind, min(i.bucket) AS t1, max(i.bucket) + interval '1 hour' AS t2,
               max(i.observed) AS observed, avg(i.normal) AS normal
          FROM i GROUP BY i.tenant, i.kind, i.island
    ), lh AS (  -- latency: a model's hours
        SELECT x.tenant, x.model, x.bucket, sum(x.req) AS req, meter.percentile(meter.merge(x.latency), 0.95) AS p95
          FROM x WHERE x.model IS NOT NULL GROUP BY 1, 2, 3
    ), lbase AS (  -- latency: a model's p95 over the week
        SELECT w.tenant, w.model, meter.percentile(w.latency, 0.95) AS p95 FROM week w WHERE w.model IS NOT NULL
    ), lf AS (
        SELECT lh.*, lbase.p95 AS base_p95,
               lh.bucket - (row_number() OVER (PARTITION BY lh.tenant, lh.model ORDER BY lh.bucket)) * interval '1 hour'
                   AS island
          FROM lh JOIN lbase USING (tenant, model)
         WHERE lh.req >= 20 AND lh.p95 >= 2 * lbase.p95 AND lh.p95 - lbase.p95 >= 100
    ), ls AS (
        SELECT lf.tenant, lf.model, min(lf.bucket) AS t1, max(lf.bucket) + interval '1 hour' AS t2,
               max(lf.p95) AS p95, min(lf.base_p95) AS base_p95
          FROM lf GROUP BY lf.tenant, lf.model, lf.island
    )
    SELECT s.tenant, s.kind, who.subject, NULL::text, top.endpoint, top.model, s.t1, s.t2,
           round(s.observed, 6), round(s.normal, 6),
           CASE s.kind WHEN 'cost_spike' THEN 'USD/hour' ELSE 'error rate' END,
           CASE WHEN s.normal > 0 THEN round(s.observed / s.normal, 1) END,
           CASE s.kind
               WHEN 'cost_spike' THEN format('cost reached %s USD in an hour against %s USD an hour over the week before; most of it %s, by %s',
                                             trim_scale(round(s.observed, 6)), trim_scale(round(s.normal, 6)),
                                             coalesce(top.model, '(no model)'), coalesce(who.subject, 'guests'))
               ELSE format('%s%% of calls failed in an hour against %s%% over the week before; most failures at %s (%s), for %s',
                           round(100 * s.observed, 1), round(100 * s.normal, 1), coalesce(top.endpoint, '(no endpoint)'),
                           coalesce(top.model, 'no model'), coalesce(who.subject, 'guests'))
           END,
           CASE s.kind
               WHEN 'cost_spike' THEN format('See who spent it: SELECT * FROM meter.top_subjects(%L, %L, %L); cap it with a tenant budget: SELECT meter.set_limit(tenant => %L, meter => ''cost'', per => ''day'', max => ..., scope => ''tenant'', time_zone => ''UTC'');',
                                             s.tenant, s.t1, s.t2, s.tenant)
               ELSE format('Look at the errors: SELECT error, error_message, count(*) FROM meter.events WHERE tenant = %L AND occurred_at >= %L AND NOT success GROUP BY 1, 2 ORDER BY 3 DESC;',
                           s.tenant, s.t1)
           END,
           s.kind
      FROM s
      LEFT JOIN LATERAL (
          SELECT x.model, x.endpoint FROM x
           WHERE x.tenant = s.tenant AND x.bucket >= s.t1 AND x.bucket < s.t2
           GROUP BY x.model, x.endpoint
           ORDER BY CASE WHEN s.kind = 'cost_spike' THEN sum(x.cost) ELSE sum(x.err) END DESC, x.model, x.endpoint
           LIMIT 1) top ON true
      -- who: the subject with the most of it (the events of the spike's hours)
      LEFT JOIN LATERAL (
          SELECT e.subject FROM meter.events e
           WHERE e.tenant = s.tenant AND e.occurred_at >= s.t1 AND e.occurred_at < s.t2
           GROUP BY e.subject
           ORDER BY CASE WHEN s.kind = 'cost_spike' THEN coalesce(sum(e.cost), 0)
                         ELSE count(*) FILTER (WHERE NOT e.success) END DESC, e.subject
           LIMIT 1) who ON true
    UNION ALL
    SELECT ls.tenant, 'latency_jump', NULL::text, NULL::text, NULL::text, ls.model, ls.t1, ls.t2,
           round(ls.p95::numeric), round(ls.base_p95::numeric), 'p95 ms', round((ls.p95 / ls.base_p95)::numeric, 1),
           format('p95 latency of %s reached %s ms against %s ms over the week before', ls.model, round(ls.p95::numeric),
                  round(ls.base_p95::numeric)),
           format('Check the provider''s status for %s; route latency-sensitive calls to another model or provider until it recovers.',
                  ls.model),
           'latency_jump:' || ls.model
      FROM ls
    UNION ALL
    SELECT r.tenant, 'polling_storm', r.subject, r.session, r.endpoint, NULL::text, r.t1, r.t2,
           round(r.per_min::numeric, 2), round(m.median::numeric, 2), 'requests/min',
           CASE WHEN m.callers > 1 AND m.median > 0 THEN round((r.per_min / m.median)::numeric, 1) END,
           format('%s %s called %s %s times in %s min (one every %s s, %s%% without tokens or cost)%s',
                  CASE WHEN r.session IS NOT NULL THEN 'session' ELSE 'subject' END,
                  coalesce(r.session, r.subject), coalesce(r.endpoint, '(no endpoint)'), r.n,
                  round(extract(epoch FROM r.t2 - r.t1) / 60, 1),
                  round(extract(epoch FROM r.t2 - r.t1) / greatest(r.n - 1, 1), 1),
                  round(100.0 * r.empty / r.n),
                  CASE WHEN m.callers > 1 THEN format('; a normal caller: %s a minute', round(m.median::numeric, 2))
                       ELSE '' END),
           format('Make the client back off or push instead of polling, and cap it: SELECT meter.set_limit(tenant => %L, meter => ''requests'', per => ''1 minute'', max => %s, scope => %L%s);',
                  r.tenant, greatest(ceil(coalesce(m.median::numeric, 0) * 3), 6),
                  CASE WHEN r.session IS NOT NULL THEN 'session' ELSE 'subject' END,
                  CASE WHEN r.endpoint IS NOT NULL THEN format(', endpoint => %L', r.endpoint) ELSE '' END),
           'polling_storm:' || coalesce(r.endpoint, '') || ':' || coalesce(r.session, 'subject ' || r.subject)
      FROM storm r JOIN norm m ON m.tenant = r.tenant AND m.endpoint IS NOT DISTINCT FROM r.endpoint
     WHERE r.n >= 30 AND r.t2 - r.t1 >= interval '1 minute' AND r.per_min >= 6
       AND (m.callers = 1 OR r.per_min >= 10 * m.median);
END $$;

CREATE FUNCTION meter.anomalies(tenant text, since timestamptz DEFAULT now() - interval '1 day',
                                until timestamptz DEFAULT now())
    RETURNS TABLE (kind text, subject text, session text, endpoint text, model text, started_at timestamptz,
                   ended_at timestamptz, observed numeric, normal numeric, unit text, ratio numeric, what text,
                   advice text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF anomalies.tenant IS NULL OR anomalies.since IS NULL OR anomalies.until IS NULL THEN
        RAISE EXCEPTION 'tenant, since and until must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM meter._check_range(anomalies.since, anomalies.until);
    IF anomalies.until <= anomalies.since OR anomalies.until - anomalies.since > interval '31 days' THEN
        RAISE EXCEPTION 'the range must be longer than 0 and at most 31 days' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Anomalies are looked for hour by hour against the 7 whole days before the range.';
    END IF;
    RETURN QUERY
    SELECT a.kind, a.subject, a.session, a.endpoint, a.model, a.started_at, a.ended_at, a.observed, a.normal,
           a.unit, a.ratio, a.what, a.advice
      FROM meter._anomalies(ARRAY[anomalies.tenant], anomalies.since, anomalies.until) a
     ORDER BY a.started_at, a.kind, a.key;
END $$;
COMMENT ON FUNCTION meter.anomalies(text, timestamptz, timestamptz) IS
    'What stands out in a tenant''s usage over [since, until) (default the last day): polling storms (a session or subject calling one endpoint every 10 s or faster at ten times the median caller), cost and error-rate spikes of an hour against the week before, and a model''s p95 latency jumping; each with who, how much above normal, since when, and what to do.';

-------------------------------------------------------------------------------
-- Alerts that push (doc/admin.md): rules per tenant, evaluated by the
-- alerts job (pg_cron, every minute); an alert is recorded once when it
-- starts firing, kept while it fires, resolved when it clears, and each
-- change is sent with NOTIFY on the channel meter_alerts (JSON payload).
-------------------------------------------------------------------------------

-- _quota_refusals: this database's refusal tally (shared memory, since the
-- server started): per limit that refused, how often, when, and whom last
CREATE FUNCTION meter._quota_refusals()
    RETURNS TABLE (tenant text, limit_id bigint, refusals bigint, first_at timestamptz, last_at timestamptz,
                   last_subject text)
    AS 'MODULE_PATHNAME', 'meter_quota_refusals'
    LANGUAGE C VOLATILE;

CREATE TABLE meter.alert_rules (
    rule_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('daily_cost_above', 'success_rate_below', 'quota_hit', 'anomaly',
                                             'runway_below', 'unpriced_model')),
    threshold  numeric,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (CASE kind WHEN 'daily_cost_above' THEN threshold >= 0
                     WHEN 'success_rate_below' THEN threshold > 0 AND threshold <= 1
                     WHEN 'runway_below' THEN threshold > 0
                     ELSE threshold IS NULL END),
    CONSTRAINT alert_rules_once UNIQUE NULLS NOT DISTINCT (tenant, kind, threshold)
);
COMMENT ON TABLE meter.alert_rules IS 'What a tenant wants to be told: daily cost above a threshold (USD), success rate below one (0..1), any quota hit, any anomaly, runway under a number of days, an unpriced model seen. meter.set_alert writes them; the alerts job evaluates them.';

CREATE TABLE meter.alerts (
    alert_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id      bigint NOT NULL REFERENCES meter.alert_rules ON DELETE CASCADE,
    tenant       text NOT NULL,
    kind         text NOT NULL,
    key          text NOT NULL,  -- what it is about: '' for the tenant, a provider, a model, a limit, an anomaly
    value        numeric,        -- what was seen when it fired (then when last seen)
    threshold    numeric,
    message      text NOT NULL,
    details      jsonb,
    fired_at     timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    resolved_at  timestamptz
);
COMMENT ON TABLE meter.alerts IS 'Alerts as they fired and resolved: one row per firing of a rule about one thing (key), open (resolved_at NULL) while it lasts.';
-- one open alert per rule and thing: a second evaluation finds it open
CREATE UNIQUE INDEX alerts_open ON meter.alerts (rule_id, key) WHERE resolved_at IS NULL;
CREATE INDEX alerts_tenant ON meter.alerts (tenant, fired_at);
SELECT pg_catalog.pg_extension_config_dump('meter.alert_rules', '');
SELECT pg_catalog.pg_extension_config_dump('meter.alert_rules_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('meter.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('meter.alerts_alert_id_seq', '');

CREATE VIEW meter.active_alerts AS
SELECT a.alert_id, a.tenant, a.kind, a.key, a.value, a.threshold, a.message, a.details, a.fired_at, a.last_seen_at
  FROM meter.alerts a WHERE a.resolved_at IS NULL;
COMMENT ON VIEW meter.active_alerts IS 'Alerts firing now.';

CREATE FUNCTION meter.set_alert(tenant text, kind text, threshold numeric DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_id bigint;
BEGIN
    IF tenant IS NULL OR kind IS NULL THEN
        RAISE EXCEPTION 'tenant and kind must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF kind NOT IN ('daily_cost_above', 'success_rate_below', 'quota_hit', 'anomaly', 'runway_below',
                    'unpriced_model') THEN
        RAISE EXCEPTION 'pg_meter has no alert "%"', kind USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The alerts are daily_cost_above, success_rate_below, quota_hit, anomaly, runway_below and unpriced_model.';
    END IF;
    IF kind IN ('daily_cost_above', 'success_rate_below', 'runway_below') AND threshold IS NULL THEN
        RAISE EXCEPTION 'alert % needs a threshold', kind USING ERRCODE = 'null_value_not_allowed',
            HINT = 'daily_cost_above: USD; success_rate_below: a rate from 0 to 1; runway_below: days.';
    END IF;
    IF kind NOT IN ('daily_cost_above', 'success_rate_below', 'runway_below') AND threshold IS NOT NULL THEN
        RAISE EXCEPTION 'alert % takes no threshold', kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF threshold = 'NaN' OR threshold IN ('Infinity', '-Infinity')
       OR (kind = 'daily_cost_above' AND threshold < 0)
       OR (kind = 'success_rate_below' AND (threshold <= 0 OR threshold > 1))
       OR (kind = 'runway_below' AND threshold <= 0) THEN
        RAISE EXCEPTION 'threshold % is out of range for alert %', threshold, kind
            USING ERRCODE = 'invalid_parameter_value',
            HINT = 'daily_cost_above: USD >= 0; success_rate_below: more than 0, at most 1; runway_below: days > 0.';
    END IF;
    INSERT INTO meter.alert_rules AS r (tenant, kind, threshold) VALUES (tenant, kind, threshold)
    ON CONFLICT ON CONSTRAINT alert_rules_once DO UPDATE SET created_at = r.created_at
    RETURNING r.rule_id INTO v_id;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION meter.set_alert(text, text, numeric) IS
    'Adds an alert rule for a tenant (kind daily_cost_above with USD, success_rate_below with a rate, runway_below with days; quota_hit, anomaly, unpriced_model without a threshold); the same rule again returns the existing id.';

CREATE FUNCTION meter.drop_alert(rule_id bigint) RETURNS boolean
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH d AS (DELETE FROM meter.alert_rules r WHERE r.rule_id = drop_alert.rule_id RETURNING 1)
    SELECT count(*) > 0 FROM d;
END;
COMMENT ON FUNCTION meter.drop_alert(bigint) IS 'Removes an alert rule and its alerts; returns whether it existed.';
REVOKE ALL ON FUNCTION meter.set_alert(text, text, numeric), meter.drop_alert(bigint), meter._quota_refusals() FROM PUBLIC;

-- _firing: what every rule sees at a time, one row per rule and thing
-- (key) whose condition holds, for every tenant at once
CREATE FUNCTION meter._firing(p_at timestamptz)
    RETURNS TABLE (rule_id bigint, tenant text, kind text, key text, value numeric, threshold numeric,
                   message text, details jsonb)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD'
    SET jit = off  -- as meter._anomalies: its estimates grow with the tenants, its runs do not need LLVM
    SET plan_cache_mode = force_custom_plan  -- as meter._anomalies
    SET TimeZone = 'UTC'  -- as meter._anomalies: a week is 168 hours; times in messages are UTC
AS $$
#variable_conflict use_column
DECLARE
    v_hour timestamptz := date_trunc('hour', p_at, 'UTC');
    v_day timestamptz := date_trunc('day', p_at, 'UTC');
    v_tenants text[];
BEGIN
    -- daily cost (the UTC day so far) and success rate (this hour and the
    -- one before, 20 calls or more), from the hourly rollup and the tail
    SELECT array_agg(DISTINCT r.tenant) INTO v_tenants FROM meter.alert_rules r
     WHERE r.kind IN ('daily_cost_above', 'success_rate_below', 'unpriced_model');
    IF v_tenants IS NOT NULL THEN
        RETURN QUERY
        WITH h AS (
            SELECT u.tenant, u.bucket, u.provider, u.model, u.requests, u.errors, u.unpriced, u.cost
              FROM meter._hourly(v_tenants, least(v_day, v_hour - interval '23 hours'), v_hour + interval '1 hour') u
        ), t AS (
            SELECT h.tenant,
                   coalesce(sum(h.cost) FILTER (WHERE h.bucket >= v_day), 0) AS cost_today,
                   sum(h.requests) FILTER (WHERE h.bucket >= v_hour - interval '1 hour') AS req,
                   sum(h.errors) FILTER (WHERE h.bucket >= v_hour - interval '1 hour') AS err
              FROM h GROUP BY h.tenant
        )
        SELECT r.rule_id, r.tenant, r.kind, '', t.cost_today, r.threshold,
               format('%s spent %s USD today (UTC), above %s', r.tenant, trim_scale(t.cost_today),
                      trim_scale(r.threshold)),
               jsonb_build_object('day', to_char(v_day AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                                  'cost', trim_scale(t.cost_today)::text)
          FROM meter.alert_rules r JOIN t ON t.tenant = r.tenant
         WHERE r.kind = 'daily_cost_above' AND t.cost_today > r.threshold
        UNION ALL
        SELECT r.rule_id, r.tenant, r.kind, '', round(1 - t.err::numeric / t.req, 4), r.threshold,
               format('%s: %s%% of %s calls succeeded since %s, below %s%%', r.tenant,
                      round(100 * (1 - t.err::numeric / t.req), 1), t.req, v_hour - interval '1 hour',
                      trim_scale(100 * r.threshold)),
               jsonb_build_object('since', v_hour - interval '1 hour', 'requests', t.req, 'errors', t.err)
          FROM meter.alert_rules r JOIN t ON t.tenant = r.tenant
         WHERE r.kind = 'success_rate_below' AND t.req >= 20 AND 1 - t.err::numeric / t.req < r.threshold
        UNION ALL
        SELECT r.rule_id, r.tenant, r.kind, coalesce(m.provider, '') || '/' || coalesce(m.model, ''), m.n, NULL,
               format('%s recorded %s calls of %s/%s unpriced in the last 24 hours: set its price (meter.set_price), then meter.reprice prices them',
                      r.tenant, m.n, coalesce(m.provider, '?'), coalesce(m.model, '?')),
               jsonb_build_object('provider', m.provider, 'model', m.model, 'unpriced', m.n)
          FROM meter.alert_rules r
          JOIN (SELECT h.tenant, h.provider, h.model, sum(h.unpriced) AS n FROM h
                 WHERE h.bucket >= v_hour - interval '23 hours' GROUP BY 1, 2, 3 HAVING sum(h.unpriced) > 0) m
            ON m.tenant = r.tenant
         WHERE r.kind = 'unpriced_model';
    END IF;

    -- quotas hit: a limit that refused in the last 10 minutes
    RETURN QUERY
    SELECT r.rule_id, r.tenant, r.kind, 'limit ' || q.limit_id, q.refusals::numeric, NULL::numeric,
           format('%s: limit %s (%s per %s, %s) refused %s requests since %s, the last of %s at %s', r.tenant,
                  q.limit_id, l.meter, l.per, l.scope, q.refusals, q.first_at, q.last_subject, q.last_at),
           jsonb_build_object('limit_id', q.limit_id, 'meter', l.meter, 'per', l.per::text, 'scope', l.scope,
                              'max', l.max::text, 'refusals', q.refusals, 'last_subject', q.last_subject,
                              'last_at', q.last_at)
      FROM meter.alert_rules r
      JOIN meter._quota_refusals() q ON q.tenant = r.tenant
      JOIN meter.limits l ON l.limit_id = q.limit_id
     WHERE r.kind = 'quota_hit' AND q.last_at >= p_at - interval '10 minutes' AND q.last_at <= p_at;

    -- anomalies of the last hour
    SELECT array_agg(DISTINCT r.tenant) INTO v_tenants FROM meter.alert_rules r WHERE r.kind = 'anomaly';
    IF v_tenants IS NOT NULL THEN
        RETURN QUERY
        SELECT r.rule_id, r.tenant, r.kind, a.key, a.observed, NULL::numeric, a.what,
               jsonb_build_object('anomaly', a.kind, 'subject', a.subject, 'session', a.session,
                                  'endpoint', a.endpoint, 'model', a.model, 'started_at', a.started_at,
                                  'ended_at', a.ended_at, 'observed', a.observed::text, 'normal', a.normal::text,
                                  'unit', a.unit, 'ratio', a.ratio::text, 'advice', a.advice)
          FROM meter._anomalies(v_tenants, p_at - interval '1 hour', p_at) a
          JOIN meter.alert_rules r ON r.tenant = a.tenant AND r.kind = 'anomaly';
    END IF;

    -- runway under a number of days, per provider with a balance: the
    -- spend since the balance and over the last 7 days, for every tenant
    -- at once, the balance's hour counted whole (so the runway is never
    -- longer than meter.runway's). A spend from hour h to the end of this
    -- hour reads the hours of h's day and of today from the hourly rollup
    -- and the whole UTC days between from the daily one (a row a day where
    -- the hourly rollup has 24: a week of hours for 1,000 tenants was
    -- ~425,000 rows), and the tail by hour.
    SELECT array_agg(DISTINCT r.tenant) INTO v_tenants FROM meter.alert_rules r WHERE r.kind = 'runway_below';
    IF v_tenants IS NOT NULL THEN
        RETURN QUERY
        WITH b AS (
            SELECT DISTINCT ON (x.tenant, x.provider) x.tenant, x.provider, x.balance_usd, x.at
              FROM meter.balances x
             WHERE x.tenant = ANY (v_tenants) AND x.at <= p_at
             ORDER BY x.tenant, x.provider, x.at DESC
        ), s AS (  -- a balance's two spends: since its hour, and over the week; d: h's first whole day
            SELECT b.tenant, b.provider, k.week, k.h,
                   date_trunc('day', k.h, 'UTC') + CASE WHEN date_trunc('day', k.h, 'UTC') < k.h THEN interval '24 hours'
                                                        ELSE interval '0' END AS d
              FROM b, LATERAL (VALUES (false, date_trunc('hour', b.at, 'UTC')),
                                      (true, v_hour - interval '7 days')) k(week, h)
        ), x AS (
            SELECT s.tenant, s.provider, s.week, c.cost
              FROM s, LATERAL (
                  SELECT sum(p.cost) AS cost FROM (
                      SELECT r.cost FROM meter.rollup_hourly r  -- [h, d), before today
                       WHERE r.tenant = s.tenant AND r.provider = s.provider AND r.bucket >= s.h
                         AND r.bucket < least(s.d, v_day)
                      UNION ALL
                      SELECT r.cost FROM meter.rollup_daily r  -- [d, today)
                       WHERE r.tenant = s.tenant AND r.provider = s.provider AND r.bucket >= s.d AND r.bucket < v_day
                      UNION ALL
                      SELECT r.cost FROM meter.rollup_hourly r  -- today's hours from h on
                       WHERE r.tenant = s.tenant AND r.provider = s.provider AND r.bucket >= greatest(s.h, v_day)
                         AND r.bucket < v_hour + interval '1 hour') p) c
            UNION ALL
            SELECT s.tenant, s.provider, s.week, t.cost
              FROM s JOIN meter._hourly(v_tenants, (SELECT min(s.h) FROM s), v_hour + interval '1 hour', false) t
                ON t.tenant = s.tenant AND t.provider = s.provider AND t.bucket >= s.h
        ), w AS (
            SELECT b.tenant, b.provider,
                   b.balance_usd - coalesce(sum(x.cost) FILTER (WHERE NOT x.week), 0) AS est,
                   coalesce(sum(x.cost) FILTER (WHERE x.week), 0) / 7 AS burn
              FROM b LEFT JOIN x ON x.tenant = b.tenant AND x.provider = b.provider
             GROUP BY b.tenant, b.provider, b.balance_usd
        )
        SELECT r.rule_id, r.tenant, r.kind, w.provider, round(greatest(w.est, 0) / w.burn, 2), r.threshold,
               format('%s: %s balance runs out in %s days (about %s), under %s', r.tenant, w.provider,
                      round(greatest(w.est, 0) / w.burn, 2),
                      date_trunc('minute', p_at + greatest(w.est, 0) / w.burn * interval '1 day'),
                      trim_scale(r.threshold)),
               jsonb_build_object('provider', w.provider, 'estimated_balance', trim_scale(w.est)::text,
                                  'burn_per_day', trim_scale(round(w.burn, 12))::text)
          FROM meter.alert_rules r JOIN w ON w.tenant = r.tenant
         WHERE r.kind = 'runway_below' AND w.burn > 0 AND greatest(w.est, 0) / w.burn < r.threshold;
    END IF;
END $$;

-- evaluate_alerts: one evaluation of every rule; records what starts
-- firing (once), notes what still fires, resolves what cleared, and sends
-- each start and end on meter_alerts (at commit)
CREATE FUNCTION meter.evaluate_alerts(at timestamptz DEFAULT now(), OUT fired integer, OUT resolved integer,
                                      OUT firing integer)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_at timestamptz := evaluate_alerts.at;
BEGIN
    IF v_at IS NULL THEN
        RAISE EXCEPTION 'at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- one statement: what fires, what still fires, what cleared, what is new
    WITH f AS MATERIALIZED (
        SELECT * FROM meter._firing(v_at)
    ), still AS (
        UPDATE meter.alerts a SET value = f.value, last_seen_at = v_at, details = f.details
          FROM f
         WHERE a.rule_id = f.rule_id AND a.key = f.key AND a.resolved_at IS NULL
        RETURNING a.alert_id
    ), gone AS (
        UPDATE meter.alerts a SET resolved_at = v_at
         WHERE a.resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM f WHERE f.rule_id = a.rule_id AND f.key = a.key)
        RETURNING a.*
    ), born AS (
        INSERT INTO meter.alerts AS a (rule_id, tenant, kind, key, value, threshold, message, details, fired_at,
                                      last_seen_at)
        SELECT f.rule_id, f.tenant, f.kind, f.key, f.value, f.threshold, f.message, f.details, v_at, v_at
          FROM f
        ON CONFLICT (rule_id, key) WHERE resolved_at IS NULL DO NOTHING
        RETURNING a.*
    )
    SELECT (SELECT count(pg_notify('meter_alerts', meter._alert_payload('fired', b))) FROM born b),
           (SELECT count(pg_notify('meter_alerts', meter._alert_payload('resolved', g))) FROM gone g),
           (SELECT count(*) FROM f)
      INTO fired, resolved, firing;
END $$;
COMMENT ON FUNCTION meter.evaluate_alerts(timestamptz) IS
    'Evaluates every alert rule at a time (default now): an alert that starts firing is recorded once and sent on the NOTIFY channel meter_alerts, one still firing is kept (value and last_seen_at), one that cleared is resolved and sent. Returns how many fired, resolved and fire now. The alerts job runs it every minute.';
REVOKE ALL ON FUNCTION meter.evaluate_alerts(timestamptz) FROM PUBLIC;

-- _alert_payload: the JSON sent on meter_alerts (long texts cut, so that it
-- stays under NOTIFY's 8000 bytes)
CREATE FUNCTION meter._alert_payload(p_event text, a meter.alerts) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'  -- times in the payload are UTC, whatever the session's zone
BEGIN ATOMIC
    SELECT jsonb_build_object('event', p_event, 'alert_id', a.alert_id, 'rule_id', a.rule_id,
                              'tenant', left(a.tenant, 1000), 'kind', a.kind, 'key', left(a.key, 1000),
                              'value', a.value::text, 'threshold', a.threshold::text,
                              'message', left(a.message, 2000), 'fired_at', a.fired_at,
                              'resolved_at', a.resolved_at)::text;
END;

-------------------------------------------------------------------------------
-- Dashboard: meter.dashboard_html(tenant, since, until), the admin page in
-- one query (doc/admin.md). meter._dashboard_document gathers one jsonb
-- document from the read functions above, one key per section, each section
-- (or two that share a read) built by a function of its own; the C++ core
-- draws it
-- (src/core/dashboard.*: HTML escaping, exact money text, scales, inline
-- SVG). A section is {"title", "note", "kind", ...} with kind tiles,
-- stacked_bars, hbars or table, or {"title", "blocks": [...]} (shapes in
-- src/core/dashboard.hpp); a key that is absent or null is not drawn. To add
-- a section: a function that returns its jsonb (_dashboard_table makes a
-- table of rows with a severity each) and one line in _dashboard_document;
-- the page already has places for "alerts", "projection" and "anomalies".
-- Money is exact text; times and days are UTC.
-------------------------------------------------------------------------------

CREATE FUNCTION meter._dashboard_render(doc jsonb) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'meter_dashboard_render';
COMMENT ON FUNCTION meter._dashboard_render(jsonb) IS
    'Draws a dashboard document (meter._dashboard_document) as one self-contained HTML page with inline SVG charts.';

-- _dashboard_time: a time as the page writes it (UTC, to the minute)
CREATE FUNCTION meter._dashboard_time(t timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC';

-- _dashboard_tile: one figure of a tiles block (format: money, number,
-- percent, ms or text)
CREATE FUNCTION meter._dashboard_tile(label text, value jsonb, format text, note text DEFAULT NULL) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN jsonb_build_object('label', label, 'value', coalesce(value, 'null'), 'format', format, 'note', note);

-- _dashboard_table: a table section. columns are 'Name' or 'Name:format';
-- rows a JSON array of {"cells": [...], "severity": "ok"|"warning"|"critical"}
-- (a cell may be {"value": v, "format": f}); empty is said when there is no row
CREATE FUNCTION meter._dashboard_table(title text, columns text[], rows jsonb, empty text, note text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN jsonb_build_object('title', title, 'note', note, 'kind', 'table', 'empty', empty, 'rows', coalesce(rows, '[]'),
        'columns', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', split_part(c.c, ':', 1),
                                                                 'format', coalesce(nullif(split_part(c.c, ':', 2), ''), 'text'))
                                              ORDER BY c.i), '[]')
                      FROM unnest(columns) WITH ORDINALITY AS c(c, i)));

-- _dashboard_overview: the range's figures (a row of meter._figures)
CREATE FUNCTION meter._dashboard_overview(f jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN jsonb_build_object('title', 'Overview', 'kind', 'tiles', 'tiles', jsonb_build_array(
        meter._dashboard_tile('Requests', f -> 'requests', 'number'),
        meter._dashboard_tile('Errors', f -> 'failures', 'number'),
        meter._dashboard_tile('Success rate', f -> 'success_rate', 'percent'),
        meter._dashboard_tile('Cost', to_jsonb(trim_scale((f ->> 'cost')::numeric)::text), 'money'),
        meter._dashboard_tile('Input tokens', f -> 'input_tokens', 'number'),
        meter._dashboard_tile('Output tokens', f -> 'output_tokens', 'number'),
        meter._dashboard_tile('p95 latency', f -> 'p95_ms', 'ms', 'p50 and p99 below'),
        meter._dashboard_tile('Unpriced events', f -> 'unpriced', 'number', 'priced when their price arrives')));

-- _dashboard_slots: the UTC hours or days of [since, until) with their
-- labels, the x of a chart over time (every one, with usage or without)
CREATE FUNCTION meter._dashboard_slots(since timestamptz, until timestamptz, grain text)
    RETURNS TABLE (at timestamptz, label text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
BEGIN ATOMIC
    SELECT s, to_char(s, CASE grain WHEN 'hour' THEN 'MM-DD HH24:00' ELSE 'YYYY-MM-DD' END)
      FROM generate_series(date_trunc(grain, since), until - interval '1 microsecond', ('1 ' || grain)::interval) s
     ORDER BY s;
END;

-- _dashboard_over_time: the charts over time, each slot of the range a bar
-- (with usage or without): "cost_per_day", cost per UTC day by model (one
-- read grouped by day and model, meter._usage by 'day,model'), and
-- "requests_per_hour", successes and errors per UTC hour (per day over a
-- range of more than 31 days)
CREATE FUNCTION meter._dashboard_over_time(p_tenant text, since timestamptz, until timestamptz) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH dm AS (
        SELECT ((u.key::jsonb) ->> 0)::timestamptz AS at, (u.key::jsonb) ->> 1 AS model, u.cost
          FROM meter._usage(p_tenant, since, until, 'day,model', NULL, false) u
    ), days AS (
        SELECT d.at, d.label FROM meter._dashboard_slots(since, until, 'day') d
    ), models AS (
        SELECT dm.model, sum(dm.cost) AS total FROM dm GROUP BY dm.model
    ), series AS (
        SELECT m.model, m.total, jsonb_agg(coalesce(trim_scale(dm.cost)::text, '0') ORDER BY d.at) AS vals
          FROM models m CROSS JOIN days d LEFT JOIN dm ON dm.at = d.at AND dm.model IS NOT DISTINCT FROM m.model  -- events without a model too
         GROUP BY m.model, m.total
    ), g AS (
        SELECT CASE WHEN until - since <= interval '31 days' THEN 'hour' ELSE 'day' END AS grain
    ), r AS (
        SELECT u.key::timestamptz AS at, u.requests, u.errors
          FROM g, meter._usage(p_tenant, since, until, g.grain, NULL, false) u
    ), slots AS (
        SELECT s.at, s.label FROM g, meter._dashboard_slots(since, until, g.grain) s
    )
    SELECT jsonb_build_object(
        'cost_per_day', jsonb_build_object('title', 'Cost per day by model', 'kind', 'stacked_bars', 'format', 'money',
            'note', 'USD per UTC day; each bar''s tooltip has the exact amounts.',
            'x', (SELECT jsonb_agg(d.label ORDER BY d.at) FROM days d),
            'series', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', x.model, 'values', x.vals)
                                                 ORDER BY x.total DESC, x.model), '[]')
                         FROM series x)),
        'requests_per_hour', (
            SELECT jsonb_build_object('title', 'Requests and errors per ' || g.grain, 'kind', 'stacked_bars',
                       'format', 'number', 'note', 'Successful requests in blue, errors in red, per UTC ' || g.grain || '.',
                       'x', jsonb_agg(s.label ORDER BY s.at),
                       'series', jsonb_build_array(
                           jsonb_build_object('name', 'succeeded', 'values', jsonb_agg(coalesce(r.requests - r.errors, 0) ORDER BY s.at)),
                           jsonb_build_object('name', 'errors', 'color', 'error', 'values', jsonb_agg(coalesce(r.errors, 0) ORDER BY s.at))))
              FROM g, slots s LEFT JOIN r ON r.at = s.at
             GROUP BY g.grain));
END;

-- _dashboard_models: latency percentiles and cache savings by model (one
-- read by model, with sketches), next to the range's own (f, a row of
-- meter._figures): the sections "latency" and "cache"
CREATE FUNCTION meter._dashboard_models(p_tenant text, since timestamptz, until timestamptz, f jsonb) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH m AS (
        SELECT u.key AS model, u.requests, u.potential_cost - u.cost AS saved, meter.percentile(u.latency, 0.5) AS p50,
               meter.percentile(u.latency, 0.95) AS p95, meter.percentile(u.latency, 0.99) AS p99
          FROM meter._usage(p_tenant, since, until, 'model') u
         ORDER BY u.requests DESC, u.key
         LIMIT 12
    )
    SELECT jsonb_build_object(
        'latency', jsonb_build_object('title', 'Latency percentiles', 'kind', 'hbars', 'format', 'ms',
            'note', 'Of all models and of the 12 with the most requests (merged sketches, within 1 %).',
            'categories', '["all models"]'::jsonb || coalesce(jsonb_agg(m.model ORDER BY m.requests DESC, m.model), '[]'),
            'series', jsonb_build_array(
                jsonb_build_object('name', 'p50', 'values', jsonb_build_array(f -> 'p50_ms')
                                   || coalesce(jsonb_agg(m.p50 ORDER BY m.requests DESC, m.model), '[]')),
                jsonb_build_object('name', 'p95', 'values', jsonb_build_array(f -> 'p95_ms')
                                   || coalesce(jsonb_agg(m.p95 ORDER BY m.requests DESC, m.model), '[]')),
                jsonb_build_object('name', 'p99', 'values', jsonb_build_array(f -> 'p99_ms')
                                   || coalesce(jsonb_agg(m.p99 ORDER BY m.requests DESC, m.model), '[]')))),
        'cache', jsonb_build_object('title', 'Cache savings',
            'note', 'What cached responses saved: what they would have cost without the cache, less what they cost.',
            'blocks', jsonb_build_array(
                jsonb_build_object('kind', 'tiles', 'tiles', jsonb_build_array(
                    meter._dashboard_tile('Cache hits', f -> 'cache_hits', 'number'),
                    meter._dashboard_tile('Hit rate', f -> 'cache_hit_rate', 'percent'),
                    meter._dashboard_tile('Saved', to_jsonb(trim_scale((f ->> 'cache_savings')::numeric)::text), 'money'),
                    meter._dashboard_tile('Cost without the cache',
                                          to_jsonb(trim_scale((f ->> 'potential_cost')::numeric)::text), 'money'))),
                jsonb_build_object('kind', 'hbars', 'format', 'money',
                    'categories', coalesce(jsonb_agg(m.model ORDER BY m.requests DESC, m.model), '[]'),
                    'series', jsonb_build_array(jsonb_build_object('name', 'saved',
                        'values', coalesce(jsonb_agg(trim_scale(m.saved)::text ORDER BY m.requests DESC, m.model), '[]')))))))
      FROM m;
END;

-- _dashboard_top_subjects: the rows of meter.top_subjects (as JSON) as a table
CREATE FUNCTION meter._dashboard_top_subjects(p_top jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN meter._dashboard_table('Top subjects',
        ARRAY['#:number', 'Subject', 'Requests:number', 'Errors:number', 'Tokens:number', 'Cost:money', 'Share of cost:percent'],
        (SELECT jsonb_agg(jsonb_build_object('cells', jsonb_build_array(
                    t -> 'rank', t -> 'subject', t -> 'requests', t -> 'errors',
                    ((t ->> 'input_tokens')::numeric + (t ->> 'output_tokens')::numeric)::text,
                    trim_scale((t ->> 'cost')::numeric)::text, t -> 'share')) ORDER BY (t ->> 'rank')::integer)
           FROM jsonb_array_elements(p_top) t),
        'No subject in this range (guests only).',
        'The ten subjects with the most cost; share is of the tenant''s whole cost, guests included.');

-- _dashboard_quotas: every limit of the given subjects (the top ones) and of
-- the tenant's blocked subjects, now (meter.quota_status through
-- meter._subject_limits). A blocked subject, a limit that refuses the next
-- request, or one 80 % used, is marked; a limit of the whole tenant is shown
-- once.
CREATE FUNCTION meter._dashboard_quotas(p_tenant text, p_subjects text[]) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE  -- quota_status may fill budget cells and hand back expired holds
    SET search_path = pg_catalog, pg_temp
    SET IntervalStyle = 'postgres_verbose'  -- a window reads "1 min", "1 day"
AS $$
DECLARE
    v_rows jsonb := '[]';
    v_preloaded boolean := true;
    s record;
    l jsonb;
    v_limits jsonb;
    v_money boolean;
    v_tenant_limits bigint[] := '{}';  -- the tenant's own limits already shown
BEGIN
    FOR s IN
        WITH named AS (
            SELECT x.subject, min(x.ord) AS ord
              FROM (SELECT u.subject, u.ord FROM unnest(p_subjects) WITH ORDINALITY AS u(subject, ord)
                    UNION ALL
                    (SELECT b.subject, 1000000 + row_number() OVER (ORDER BY b.blocked_at DESC, b.subject)
                       FROM meter.subjects b WHERE b.tenant = p_tenant AND b.blocked_at IS NOT NULL
                      ORDER BY b.blocked_at DESC, b.subject LIMIT 20)) x
             GROUP BY x.subject
        )
        SELECT n.subject, q.plan, coalesce(q.blocked, false) AS blocked, q.reason, coalesce(q.known, false) AS known
          FROM named n
          LEFT JOIN LATERAL (SELECT qs.plan, qs.blocked, qs.reason, true AS known
                               FROM meter._quota_subject(p_tenant, n.subject) qs) q ON true
         ORDER BY n.ord
    LOOP
        v_limits := meter._subject_limits(p_tenant, s.subject, s.known);
        IF v_limits IS NULL THEN
            v_preloaded := false;
        END IF;
        IF s.blocked THEN
            v_rows := v_rows || jsonb_build_array(jsonb_build_object('severity', 'critical', 'cells', jsonb_build_array(
                s.subject, s.plan, 'every request', NULL, NULL, NULL, NULL, 'blocked: ' || coalesce(s.reason, 'no reason given'))));
        END IF;
        FOR l IN SELECT x FROM jsonb_array_elements(coalesce(v_limits, '[]')) x LOOP
            IF l ->> 'scope' = 'tenant' THEN
                CONTINUE WHEN (l ->> 'limit_id')::bigint = ANY (v_tenant_limits);
                v_tenant_limits := v_tenant_limits || (l ->> 'limit_id')::bigint;
            END IF;
            v_money := l ->> 'meter' = 'cost';
            v_rows := v_rows || jsonb_build_array(jsonb_build_object(
                'severity', CASE WHEN NOT (l ->> 'allowed')::boolean THEN 'critical'
                                 WHEN (l ->> 'max')::numeric > 0
                                      AND (l ->> 'used')::numeric + (l ->> 'reserved')::numeric >= 0.8 * (l ->> 'max')::numeric
                                     THEN 'warning' ELSE 'ok' END,
                'cells', jsonb_build_array(CASE WHEN l ->> 'scope' = 'tenant' THEN 'all subjects' ELSE s.subject END,
                    coalesce(l ->> 'plan', CASE WHEN l ->> 'scope' <> 'tenant' THEN s.plan END),
                    (l ->> 'meter') || ' per ' || CASE WHEN l ->> 'budget_period' LIKE '%@%'
                                                       THEN replace(l ->> 'budget_period', '@', ' in ')
                                                       ELSE ltrim((l ->> 'per')::interval::text, '@ ') END
                        || CASE WHEN l ->> 'scope' <> 'subject' THEN ' (' || (l ->> 'scope') || ')' ELSE '' END,
                    jsonb_build_object('value', l ->> 'used', 'format', CASE WHEN v_money THEN 'money' ELSE 'number' END),
                    jsonb_build_object('value', l ->> 'max', 'format', CASE WHEN v_money THEN 'money' ELSE 'number' END),
                    jsonb_build_object('value', l ->> 'remaining', 'format', CASE WHEN v_money THEN 'money' ELSE 'number' END),
                    meter._dashboard_time((l ->> 'reset_at')::timestamptz),
                    CASE WHEN NOT (l ->> 'allowed')::boolean THEN 'limited' ELSE 'ok' END)));
        END LOOP;
    END LOOP;
    RETURN meter._dashboard_table('Quota status',
        ARRAY['Subject', 'Plan', 'Limit', 'Used:number', 'Max:number', 'Remaining:number', 'Resets', 'State'], v_rows,
        CASE WHEN v_preloaded THEN 'No limit applies to the top subjects, and no subject is blocked.'
             ELSE 'No subject is blocked.' END,
        CASE WHEN v_preloaded THEN 'Now: the limits of the top subjects and of blocked subjects.'
             ELSE 'Limits live in shared memory and pg_meter is not in shared_preload_libraries: only blocks are shown.' END);
END $$;

-- _dashboard_runway: provider balances and runway (meter.runway), now
CREATE FUNCTION meter._dashboard_runway(p_tenant text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN meter._dashboard_table('Provider balances and runway',
        ARRAY['Provider', 'Balance:money', 'Reported', 'Spent since:money', 'Estimated balance:money',
              'Burn per day:money', 'Days left:number', 'Runs out', 'Drift:money'],
        (SELECT jsonb_agg(jsonb_build_object(
                    'severity', CASE WHEN r.estimated_balance <= 0 OR r.days_left < 7 THEN 'critical'
                                     WHEN r.days_left < 30 THEN 'warning' ELSE 'ok' END,
                    'cells', jsonb_build_array(r.provider, trim_scale(r.balance_usd)::text, meter._dashboard_time(r.balance_at),
                                               trim_scale(r.spent_since)::text, trim_scale(r.estimated_balance)::text,
                                               trim_scale(r.burn_per_day)::text, r.days_left::text,
                                               meter._dashboard_time(r.runs_out_at), trim_scale(r.drift)::text))
                    ORDER BY r.provider)
           FROM meter.runway(p_tenant) r),
        'No provider balance recorded (meter.record_balance).',
        'Now, whatever the range: the last reported balance less what pg_meter priced since, burning at the rate of the '
        'last 7 days; drift is the spend the last two reports imply less what pg_meter priced between them.');

-- _dashboard_alerts: the tenant's alerts open now, then those resolved in
-- the range (meter.alerts, kept by the alerts job)
CREATE FUNCTION meter._dashboard_alerts(p_tenant text, since timestamptz, until timestamptz) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN meter._dashboard_table('Alerts',
        ARRAY['Kind', 'About', 'What', 'Value:number', 'Threshold:number', 'Fired', 'Last seen', 'Resolved'],
        (SELECT jsonb_agg(jsonb_build_object(
                    'severity', CASE WHEN a.resolved_at IS NOT NULL THEN 'ok'
                                     WHEN a.kind IN ('anomaly', 'unpriced_model') THEN 'warning' ELSE 'critical' END,
                    'cells', jsonb_build_array(a.kind, nullif(a.key, ''), a.message, trim_scale(a.value)::text,
                                               trim_scale(a.threshold)::text, meter._dashboard_time(a.fired_at),
                                               meter._dashboard_time(a.last_seen_at), meter._dashboard_time(a.resolved_at)))
                    ORDER BY a.resolved_at IS NOT NULL, a.fired_at DESC, a.alert_id DESC)
           FROM (SELECT * FROM meter.alerts x
                  WHERE x.tenant = p_tenant AND x.fired_at < until AND (x.resolved_at IS NULL OR x.resolved_at >= since)
                  ORDER BY x.resolved_at IS NOT NULL, x.fired_at DESC, x.alert_id DESC LIMIT 50) a),
        'No alert open, and none resolved in this range (meter.set_alert sets rules; the alerts job evaluates them).',
        'Open alerts first (as of now), then those resolved in the range; at most 50.');

-- _dashboard_projection: this month and the next (meter.projection at now,
-- whatever the range) against the tenant's monthly budget
CREATE FUNCTION meter._dashboard_projection(p_tenant text) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows jsonb;
    v_method text;
BEGIN
    SELECT jsonb_agg(jsonb_build_object(
               'severity', CASE WHEN p.over_budget THEN 'critical' WHEN p.budget_share >= 0.8 THEN 'warning' ELSE 'ok' END,
               'cells', jsonb_build_array(p.month, trim_scale(p.spent)::text, trim_scale(p.projected_rest)::text,
                                          trim_scale(p.projected_total)::text, trim_scale(p.flat_total)::text,
                                          trim_scale(p.budget)::text, trim_scale(p.budget_share)::text,
                                          meter._dashboard_time(p.over_budget_at)))
               ORDER BY p.period_start),
           min(p.method)
      INTO v_rows, v_method
      FROM meter.projection(p_tenant) p;
    RETURN meter._dashboard_table('Projection',
        ARRAY['Month', 'Spent:money', 'Projected rest:money', 'Projected total:money', 'Flat (average x days):money',
              'Budget:money', 'Share of budget:percent', 'Over budget at'],
        v_rows, 'No usage to project from.',
        'Now, whatever the range: spent exactly, the rest fitted on up to 28 whole days before today. ' || coalesce(v_method, ''));
END $$;

-- _dashboard_anomalies: what stands out in the range's last day
-- (meter.anomalies), each with who, how much and what to do
CREATE FUNCTION meter._dashboard_anomalies(p_tenant text, since timestamptz, until timestamptz) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN meter._dashboard_table('Anomalies',
        ARRAY['Kind', 'Who', 'Where', 'Since', 'Until', 'Observed:number', 'Normal:number', 'Ratio:number', 'What', 'Advice'],
        (SELECT jsonb_agg(jsonb_build_object(
                    'severity', CASE WHEN a.ratio >= 10 THEN 'critical' ELSE 'warning' END,
                    'cells', jsonb_build_array(a.kind, coalesce(a.session, a.subject),
                                               concat_ws(' ', a.endpoint, a.model), meter._dashboard_time(a.started_at),
                                               meter._dashboard_time(a.ended_at), trim_scale(round(a.observed, 4))::text,
                                               trim_scale(round(a.normal, 4))::text, trim_scale(round(a.ratio, 1))::text, a.what, a.advice))
                    ORDER BY a.started_at, a.kind)
           FROM meter.anomalies(p_tenant, greatest(since, until - interval '1 day'), until) a),
        'Nothing stands out in the last day of the range.',
        'The last day of the range, hour by hour, against the 7 whole days before it.');

-- _dashboard_document: the page's data, one key per section
CREATE FUNCTION meter._dashboard_document(p_tenant text, since timestamptz, until timestamptz) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE  -- quota status, through meter.quota_status
    SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
    f jsonb;                  -- the range's figures, a row of meter._figures
    v_top jsonb := '[]';      -- meter.top_subjects' rows
    v_sections jsonb;
BEGIN
    SELECT to_jsonb(x) INTO f FROM meter._figures(p_tenant, since, until) x;
    v_sections := jsonb_build_object('runway', meter._dashboard_runway(p_tenant));
    IF (f ->> 'requests')::bigint > 0 THEN
        SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.rank), '[]') INTO v_top
          FROM meter.top_subjects(p_tenant, since, until) t;
        v_sections := v_sections
            || jsonb_build_object('overview', meter._dashboard_overview(f),
                                  'top_subjects', meter._dashboard_top_subjects(v_top))
            || meter._dashboard_over_time(p_tenant, since, until)
            || meter._dashboard_models(p_tenant, since, until, f)
            || jsonb_build_object('anomalies', meter._dashboard_anomalies(p_tenant, since, until));
    END IF;
    v_sections := v_sections || jsonb_build_object('alerts', meter._dashboard_alerts(p_tenant, since, until),
                                                   'projection', meter._dashboard_projection(p_tenant));
    v_sections := v_sections || jsonb_build_object('quota_status', meter._dashboard_quotas(p_tenant,
        ARRAY(SELECT t.x ->> 'subject' FROM jsonb_array_elements(v_top) WITH ORDINALITY AS t(x, i) ORDER BY t.i)));
    RETURN jsonb_build_object('tenant', p_tenant, 'since', meter._dashboard_time(since),
                              'until', meter._dashboard_time(until), 'generated_at', meter._dashboard_time(now()),
                              'requests', (f ->> 'requests')::bigint, 'sections', v_sections);
END $$;

CREATE FUNCTION meter.dashboard_html(tenant text, since timestamptz, until timestamptz) RETURNS text
    LANGUAGE plpgsql VOLATILE  -- quota status, through meter.quota_status
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tenant IS NULL OR since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'tenant, since and until must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM meter._check_range(since, until);
    IF NOT isfinite(since) OR NOT isfinite(until) OR since = until OR until - since > interval '366 days' THEN
        RAISE EXCEPTION 'a dashboard covers more than nothing and at most 366 days, not [%, %)', since, until
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN meter._dashboard_render(meter._dashboard_document(tenant, since, until));
END $$;
COMMENT ON FUNCTION meter.dashboard_html(text, timestamptz, timestamptz) IS
    'A tenant''s admin dashboard over [since, until) as one self-contained HTML page (no script, no external reference; charts in inline SVG): overview, alerts, cost per day by model, the projection of this month and the next, requests and errors per hour, latency percentiles, cache savings, top subjects, quota status, anomalies and provider runway. Money exact; days UTC.';

-------------------------------------------------------------------------------
-- Integrations: Grafana and Prometheus (doc/integrations.md). Views that
-- Grafana's PostgreSQL data source charts, one row per UTC bucket and group
-- with the bucket's start in "time", exact at every moment like
-- meter.totals: a bucket's row adds its rollup row and the events of that
-- bucket the rollup job has not reached yet (the tail), so a panel over the
-- last hour shows an event written a second ago. A filter on time
-- (Grafana's $__timeFilter(time) becomes "time BETWEEN '...' AND '...'")
-- and on tenant is pushed through the grouping into each rollup table's
-- index. prometheus-postgres-exporter reads the daily view
-- (integrations/prometheus/queries.yaml).
-------------------------------------------------------------------------------

-- _tail_rows: the events not rolled up yet (found through the txid index),
-- as the rollup rows of every grain that meter.rollup() would add for them
-- (the core's aggregator). A function, so that the views do not depend on
-- the columns of meter.events (their types stay the admin's to change).
CREATE FUNCTION meter._tail_rows() RETURNS SETOF meter._rollup_row
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.* FROM unnest((
        SELECT meter._rollup(e.tenant, e.subject, e.provider, e.model, e.endpoint, e.feature, e.occurred_at,
                             e.success, e.cached, e.priced, e.input_tokens, e.output_tokens,
                             e.cache_read_tokens, e.cache_write_tokens, e.cost, e.potential_cost,
                             e.latency_ms, e.ttft_ms)
          FROM meter.events e
         WHERE e.txid >= meter._tail_from()
           AND meter._unrolled(e.txid, coalesce((SELECT s.watermark FROM meter.rollup_state s), '1:1:'::pg_snapshot)))) t
$$;

-- _live_usage: every grain in one grouping (g as in meter._rollup_row: 1
-- hourly, 2 per subject and day, 3 daily); the public views below pick one.
-- Rollup rows are unique per group, so a group sums its rollup row and its
-- tail row. Money stays numeric; percentiles come from the merged sketches.
-- Like every view here it reads with the caller's rights (security_invoker),
-- as the read functions do: it gives nobody more than the tables they may
-- read, and row-level security on them applies.
CREATE VIEW meter._live_usage WITH (security_invoker = true) AS
SELECT l.g, l.bucket AS "time", l.tenant, l.subject, l.provider, l.model, l.endpoint, l.feature,
       sum(l.requests)::bigint AS requests, sum(l.errors)::bigint AS errors,
       sum(l.cache_hits)::bigint AS cache_hits, sum(l.unpriced)::bigint AS unpriced,
       sum(l.input_tokens) AS input_tokens, sum(l.output_tokens) AS output_tokens,
       sum(l.cache_read_tokens) AS cache_read_tokens, sum(l.cache_write_tokens) AS cache_write_tokens,
       sum(l.input_tokens + l.output_tokens) AS tokens,
       sum(l.cost) AS cost, sum(l.potential_cost) AS potential_cost,
       sum(l.potential_cost - l.cost) AS cache_savings,
       meter.merge(l.latency) AS latency, meter.merge(l.ttft) AS ttft,
       meter.percentile(meter.merge(l.latency), 0.5) AS p50_ms,
       meter.percentile(meter.merge(l.latency), 0.95) AS p95_ms,
       meter.percentile(meter.merge(l.latency), 0.99) AS p99_ms
  FROM (SELECT 1 AS g, r.*, NULL::text AS subject FROM meter.rollup_hourly r
        UNION ALL
        SELECT 3, r.*, NULL FROM meter.rollup_daily r
        UNION ALL
        SELECT 2, r.* FROM meter.rollup_subject_daily r  -- (its subject is its last column)
        UNION ALL
        SELECT t.g, t.tenant, t.bucket, t.provider, t.model, t.endpoint, t.feature, t.requests, t.errors,
               t.cache_hits, t.unpriced, t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens,
               t.cost, t.potential_cost, t.latency, t.ttft, t.first_at, t.last_at, t.subject
          FROM meter._tail_rows() t) l
 GROUP BY l.g, l.bucket, l.tenant, l.subject, l.provider, l.model, l.endpoint, l.feature;
COMMENT ON VIEW meter._live_usage IS 'The rollups plus the events not rolled up yet, at every grain (g: 1 hourly, 2 per subject and day, 3 daily); read through the grafana_* views.';

CREATE VIEW meter.grafana_usage_hourly WITH (security_invoker = true) AS
SELECT "time", tenant, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced, input_tokens,
       output_tokens, cache_read_tokens, cache_write_tokens, tokens, cost, potential_cost, cache_savings, latency,
       ttft, p50_ms, p95_ms, p99_ms
  FROM meter._live_usage WHERE g = 1;
COMMENT ON VIEW meter.grafana_usage_hourly IS 'Usage per UTC hour ("time", the hour''s start), tenant, provider, model, endpoint and feature, exact at every moment (rollups plus the events not rolled up yet); for Grafana: WHERE $__timeFilter(time) reads the hours through the rollup''s index.';

CREATE VIEW meter.grafana_usage_daily WITH (security_invoker = true) AS
SELECT "time", tenant, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced, input_tokens,
       output_tokens, cache_read_tokens, cache_write_tokens, tokens, cost, potential_cost, cache_savings, latency,
       ttft, p50_ms, p95_ms, p99_ms
  FROM meter._live_usage WHERE g = 3;
COMMENT ON VIEW meter.grafana_usage_daily IS 'Usage per UTC day ("time", the day''s start at 00:00 UTC), tenant, provider, model, endpoint and feature, exact at every moment; kept as long as the daily rollup.';

CREATE VIEW meter.grafana_subject_daily WITH (security_invoker = true) AS
SELECT "time", tenant, subject, requests, errors, cache_hits, unpriced, input_tokens, output_tokens,
       cache_read_tokens, cache_write_tokens, tokens, cost, potential_cost, cache_savings, latency, ttft, p50_ms,
       p95_ms, p99_ms
  FROM meter._live_usage WHERE g = 2;
COMMENT ON VIEW meter.grafana_subject_daily IS 'Usage per UTC day ("time", the day''s start), tenant and subject (NULL: guests), exact at every moment; for per-user panels.';

-- Privileges: as for every read of usage (meter.totals, meter.summary),
-- nothing is granted: the views show every tenant, and read the tables with
-- the caller's rights. The owner grants a dashboard's role the tables and
-- the views (doc/integrations.md): GRANT SELECT ON meter.events,
-- meter.rollup_hourly, meter.rollup_daily, meter.rollup_subject_daily,
-- meter.rollup_state, meter._live_usage, meter.grafana_usage_hourly,
-- meter.grafana_usage_daily, meter.grafana_subject_daily TO grafana.
