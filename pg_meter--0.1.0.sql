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
CREATE FUNCTION meter._catalog_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'meter_catalog_changed';
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.catalog_providers
    FOR EACH STATEMENT EXECUTE FUNCTION meter._catalog_changed();
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.catalog_models
    FOR EACH STATEMENT EXECUTE FUNCTION meter._catalog_changed();
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.custom_prices
    FOR EACH STATEMENT EXECUTE FUNCTION meter._catalog_changed();

-- _micros turns a timestamptz into microseconds since 1970 (NULL for +-infinity).
CREATE FUNCTION meter._micros(t timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN isfinite(t) THEN (extract(epoch FROM t) * 1000000)::bigint END;

-- _catalog_document serializes every catalog row for the C++ compiler. It
-- runs as the extension owner so that any role allowed to price can.
CREATE FUNCTION meter._catalog_document() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT json_build_object(
  'providers', coalesce((SELECT json_agg(json_build_object(
        'version', p.version, 'source', p.source, 'data', p.data,
        'valid_from', meter._micros(p.valid_from), 'valid_to', meter._micros(p.valid_to))
        ORDER BY p.source, p.position, p.version) FROM meter.catalog_providers p), '[]'),
  'models', coalesce((SELECT json_agg(json_build_object(
        'version', m.version, 'source', m.source, 'provider', m.provider_id, 'service_tier', m.service_tier,
        'data', m.data, 'valid_from', meter._micros(m.valid_from), 'valid_to', meter._micros(m.valid_to))
        ORDER BY m.source, m.provider_id, m.position, m.version) FROM meter.catalog_models m), '[]'),
  'custom', coalesce((SELECT json_agg(json_build_object(
        'version', c.version, 'provider', c.provider, 'model', c.model, 'service_tier', c.service_tier,
        'prices', c.prices, 'minimums', c.minimums, 'note', c.note,
        'valid_from', meter._micros(c.valid_from), 'valid_to', meter._micros(c.valid_to))
        ORDER BY c.version) FROM meter.custom_prices c), '[]'))::text
$$;
-- open to every role: it reveals only prices, which meter.price_versions shows too
GRANT EXECUTE ON FUNCTION meter._catalog_document() TO PUBLIC;

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
    PERFORM meter._check_catalog(p_catalog);
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

CREATE SEQUENCE meter.event_id_seq AS bigint;

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
-- the one btree: request ids, deduplicated across partitions by the trigger
-- (src/pg/request_ids.hpp); every partition needs it
CREATE INDEX events_default_request ON meter.events_default (request_key) WHERE request_key IS NOT NULL;

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
    EXECUTE format('CREATE INDEX %I ON meter.%I (request_key) WHERE request_key IS NOT NULL', v_name || '_request', v_name);
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
                             service_tier text DEFAULT 'standard')
    RETURNS meter.recorded
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'meter_record';
COMMENT ON FUNCTION meter.record(text, text, text, jsonb, text, text, text, text, boolean, integer, integer, boolean, text, text, text, timestamptz, jsonb, text) IS
    'Records one API call, priced at its own time; returns the event id, cost, potential cost, whether it was a duplicate of an earlier request id, and whether it was priced.';

CREATE FUNCTION meter.record_batch(events jsonb, OUT inserted bigint, OUT duplicates bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_total bigint;
BEGIN
    IF jsonb_typeof(events) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'events must be a JSON array of event objects'
            USING ERRCODE = 'sql_json_array_not_found',
                  DETAIL = format('The value is a JSON %s.', coalesce(jsonb_typeof(events), 'null')),
                  HINT = 'Pass [{"tenant": "...", "provider": "...", "model": "...", "usage": {...}}, ...].';
    END IF;
    v_total := jsonb_array_length(events);
    INSERT INTO meter.events (tenant, provider, model, usage, subject, session, endpoint, feature, cached, latency_ms,
                              ttft_ms, success, error, error_message, request_id, occurred_at, metadata, service_tier)
    SELECT x.tenant, x.provider, x.model, x.usage, x.subject, x.session, x.endpoint, x.feature, coalesce(x.cached, false),
           x.latency_ms, x.ttft_ms, coalesce(x.success, true), x.error, x.error_message, x.request_id,
           coalesce(x.occurred_at, now()), x.metadata, coalesce(x.service_tier, 'standard')
      FROM jsonb_to_recordset(events) AS x(tenant text, provider text, model text, usage jsonb, subject text, session text,
                                           endpoint text, feature text, cached boolean, latency_ms integer, ttft_ms integer,
                                           success boolean, error text, error_message text, request_id text,
                                           occurred_at timestamptz, metadata jsonb, service_tier text);
    GET DIAGNOSTICS inserted = ROW_COUNT;
    duplicates := v_total - inserted;
END $$;
COMMENT ON FUNCTION meter.record_batch(jsonb) IS 'Records a JSON array of events (the keys of meter.record) in one statement; returns how many were inserted and how many were retries already recorded.';

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
-- the edge days), and daily per subject as well (per-user dashboards; kept
-- for years). A subject-by-hour rollup would hold about one row per event
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
COMMENT ON TABLE meter.rollup_hourly IS 'Hourly aggregates of meter.events per tenant, provider, model, endpoint and feature (UTC hours); read them through meter.totals, which adds what is not rolled up yet.';
COMMENT ON TABLE meter.rollup_daily IS 'Daily aggregates of meter.events per tenant, provider, model, endpoint and feature (UTC days), kept after raw events are dropped.';
COMMENT ON TABLE meter.rollup_subject_daily IS 'Daily aggregates of meter.events per tenant, subject, provider, model, endpoint and feature (UTC days): what per-user totals read.';

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
    RETURNS internal LANGUAGE c CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'meter_rollup_add';
CREATE FUNCTION meter._rollup_final(internal) RETURNS meter._rollup_row[]
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'meter_rollup_final';
CREATE AGGREGATE meter._rollup(tenant text, subject text, provider text, model text, endpoint text, feature text,
                               occurred_at timestamptz, success boolean, cached boolean, priced boolean,
                               input_tokens bigint, output_tokens bigint, cache_read_tokens bigint,
                               cache_write_tokens bigint, cost numeric, potential_cost numeric,
                               latency_ms integer, ttft_ms integer) (
    SFUNC = meter._rollup_add,
    STYPE = internal,
    FINALFUNC = meter._rollup_final
);

CREATE FUNCTION meter.rollup() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
DECLARE
    v_events bigint;
    v_from bigint;
BEGIN
    PERFORM meter._rollup_mark();
    INSERT INTO meter.rollup_state (watermark) VALUES ('1:1:') ON CONFLICT DO NOTHING;
    -- one run at a time; a second waits and then finds what is left
    SELECT pg_snapshot_xmin(watermark)::text::bigint INTO v_from FROM meter.rollup_state FOR UPDATE;
    PERFORM meter._check_watermark();
    -- one statement, so the snapshot that reads the events is the watermark.
    -- meter._rollup aggregates the delta at the three grains in one pass;
    -- all merge into the stored rows the same way.
    -- (the two snapshots are init-plan parameters, read once: a join with
    -- them would leave the planner guessing the delta's size)
    EXECUTE format($q$
    WITH agg AS MATERIALIZED (
        SELECT r.* FROM unnest((
            SELECT meter._rollup(e.tenant, e.subject, e.provider, e.model, e.endpoint, e.feature, e.occurred_at,
                                 e.success, e.cached, e.priced, e.input_tokens, e.output_tokens,
                                 e.cache_read_tokens, e.cache_write_tokens, e.cost, e.potential_cost,
                                 e.latency_ms, e.ttft_ms)
              FROM meter.events e
             WHERE e.txid >= %1$s  -- the same bound as a constant, so the txid index serves it
               AND meter._rolls(e.txid, (SELECT watermark FROM meter.rollup_state), (SELECT pg_current_snapshot())))) r
    ), hourly AS (
        INSERT INTO meter.rollup_hourly AS r
        SELECT tenant, bucket, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced, input_tokens,
               output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost, latency, ttft, first_at, last_at
          FROM agg WHERE g = 1
        ON CONFLICT ON CONSTRAINT rollup_hourly_key DO UPDATE SET %2$s
        RETURNING 1
    ), daily AS (
        INSERT INTO meter.rollup_daily AS r
        SELECT tenant, bucket, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced, input_tokens,
               output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost, latency, ttft, first_at, last_at
          FROM agg WHERE g = 3
        ON CONFLICT ON CONSTRAINT rollup_daily_key DO UPDATE SET %2$s
        RETURNING 1
    ), subject_daily AS (
        INSERT INTO meter.rollup_subject_daily AS r (tenant, bucket, subject, provider, model, endpoint, feature, requests,
               errors, cache_hits, unpriced, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost,
               potential_cost, latency, ttft, first_at, last_at)
        SELECT tenant, bucket, subject, provider, model, endpoint, feature, requests, errors, cache_hits, unpriced,
               input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost, potential_cost, latency, ttft,
               first_at, last_at
          FROM agg WHERE g = 2
        ON CONFLICT ON CONSTRAINT rollup_subject_daily_key DO UPDATE SET %2$s
        RETURNING 1
    ), moved AS (
        UPDATE meter.rollup_state s SET watermark = pg_current_snapshot(), rolled_at = now(),
               last_events = (SELECT coalesce(sum(requests), 0) FROM agg WHERE g = 1) + 0 * (SELECT count(*) FROM hourly)
                             + 0 * (SELECT count(*) FROM daily) + 0 * (SELECT count(*) FROM subject_daily)
         RETURNING s.last_events
    )
    SELECT last_events FROM moved
    $q$, v_from,
    -- how a batch's aggregates add to a stored row
    'requests = r.requests + EXCLUDED.requests, errors = r.errors + EXCLUDED.errors, '
    'cache_hits = r.cache_hits + EXCLUDED.cache_hits, unpriced = r.unpriced + EXCLUDED.unpriced, '
    'input_tokens = r.input_tokens + EXCLUDED.input_tokens, output_tokens = r.output_tokens + EXCLUDED.output_tokens, '
    'cache_read_tokens = r.cache_read_tokens + EXCLUDED.cache_read_tokens, '
    'cache_write_tokens = r.cache_write_tokens + EXCLUDED.cache_write_tokens, '
    'cost = r.cost + EXCLUDED.cost, potential_cost = r.potential_cost + EXCLUDED.potential_cost, '
    'latency = meter.sketch_union(r.latency, EXCLUDED.latency), ttft = meter.sketch_union(r.ttft, EXCLUDED.ttft), '
    'first_at = least(r.first_at, EXCLUDED.first_at), last_at = greatest(r.last_at, EXCLUDED.last_at)')
    INTO v_events;
    RETURN v_events;
END $$;
COMMENT ON FUNCTION meter.rollup() IS 'Adds every event committed since the last run to the hourly and daily rollups, exactly once; returns how many. Harmless when there is nothing to do.';
REVOKE ALL ON FUNCTION meter.rollup() FROM PUBLIC;

CREATE FUNCTION meter.totals(tenant text, since timestamptz, until timestamptz, by text DEFAULT NULL)
    RETURNS TABLE (key text, requests bigint, errors bigint, cache_hits bigint, unpriced bigint,
                   input_tokens numeric, output_tokens numeric, cost numeric, potential_cost numeric,
                   p50_ms double precision, p95_ms double precision, p99_ms double precision)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    v_tenant text := totals.tenant;
    v_by text := lower(coalesce(totals.by, 'none'));
    v_grain text := 'hour';       -- the finest rollup the grouping can read
    v_fine text := 'rollup_hourly';
    v_coarse text := 'rollup_daily';  -- read for whole days inside the span
    r_key text;
    e_key text;
    b1 timestamptz;
    b2 timestamptz;
    h1 timestamptz;
    h2 timestamptz;
    d1 timestamptz;
    d2 timestamptz;
    v_from bigint;
BEGIN
    IF v_tenant IS NULL OR since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'tenant, since and until must be given' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since > until THEN
        RAISE EXCEPTION 'since (%) is after until (%)', since, until USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CASE v_by
        WHEN 'none' THEN r_key := '''all'''; e_key := '''all''';
        WHEN 'hour' THEN r_key := 'r.bucket::text'; e_key := 'date_trunc(''hour'', e.occurred_at)::text'; v_coarse := NULL;
        WHEN 'day' THEN r_key := 'date_trunc(''day'', r.bucket)::text'; e_key := 'date_trunc(''day'', e.occurred_at)::text';
        WHEN 'provider', 'model', 'endpoint', 'feature' THEN r_key := format('r.%I', v_by); e_key := format('e.%I', v_by);
        WHEN 'subject' THEN
            -- subjects are rolled up by day
            r_key := 'r.subject'; e_key := 'e.subject'; v_grain := 'day'; v_fine := 'rollup_subject_daily'; v_coarse := NULL;
        ELSE
            RAISE EXCEPTION 'cannot group totals by "%"', totals.by USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Use subject, provider, model, endpoint, feature, hour, day, or NULL for one row.';
    END CASE;
    PERFORM meter._check_watermark();
    -- [h1, h2) is the span read from the rollups: whole buckets inside the
    -- range, widened by an edge bucket whose rolled events all lie inside it
    -- (an hour cut by "until = now()" usually is). Inside the span, whole
    -- days [d1, d2) come from the daily rollup and the other hours from the
    -- hourly one; events in the span not rolled up yet come from the log
    -- (the tail); events outside it, from the log directly. So every event
    -- in [since, until) counts once.
    b1 := date_trunc(v_grain, since);
    b2 := date_trunc(v_grain, until);
    h1 := CASE WHEN b1 = since THEN b1 ELSE b1 + ('1 ' || v_grain)::interval END;
    h2 := b2;
    IF h1 > b1 THEN
        EXECUTE format('SELECT CASE WHEN coalesce(bool_and(first_at >= $2), true) THEN $3 ELSE $4 END
                          FROM meter.%I WHERE tenant = $1 AND bucket = $3', v_fine)
            INTO h1 USING v_tenant, since, b1, h1;
    END IF;
    IF b2 < until THEN
        EXECUTE format('SELECT CASE WHEN coalesce(bool_and(last_at < $2), true) THEN $3 + $5 ELSE $4 END
                          FROM meter.%I WHERE tenant = $1 AND bucket = $3', v_fine)
            INTO h2 USING v_tenant, until, b2, h2, ('1 ' || v_grain)::interval;
    END IF;
    IF h2 < h1 THEN h2 := h1; END IF;
    d1 := date_trunc('day', h1);
    IF d1 < h1 THEN d1 := d1 + interval '1 day'; END IF;
    d2 := date_trunc('day', h2);
    IF v_coarse IS NULL OR d2 <= d1 THEN
        d1 := h2;  -- no whole day: the fine rollup reads all of [h1, h2)
        d2 := h2;
        v_coarse := v_fine;
    END IF;
    -- a lower bound of the tail as a constant, so the index on txid
    -- serves it; the query rereads the watermark in its own snapshot
    -- (watermarks only move forward, so this bound is never too high)
    SELECT pg_snapshot_xmin(watermark)::text::bigint INTO v_from FROM meter.rollup_state;
    v_from := coalesce(v_from, 0);
    RETURN QUERY EXECUTE format($q$
        WITH parts AS (
            SELECT %1$s AS key, %5$s
              FROM meter.%3$I r
             WHERE r.tenant = $1 AND r.bucket >= $7 AND r.bucket < $8
             GROUP BY 1
            UNION ALL
            SELECT %1$s, %5$s
              FROM meter.%4$I r
             WHERE r.tenant = $1 AND ((r.bucket >= $3 AND r.bucket < $7) OR (r.bucket >= $8 AND r.bucket < $4))
             GROUP BY 1
            UNION ALL
            SELECT %2$s, %6$s
              FROM meter.events e
             WHERE e.tenant = $1 AND e.occurred_at >= greatest($2, $3) AND e.occurred_at < least($5, $4)
               AND e.txid >= $6
               AND meter._unrolled(e.txid, coalesce((SELECT watermark FROM meter.rollup_state), '1:1:'::pg_snapshot))
             GROUP BY 1
            UNION ALL
            SELECT %2$s, %6$s
              FROM meter.events e
             WHERE e.tenant = $1 AND ((e.occurred_at >= $2 AND e.occurred_at < least($3, $5))
                                   OR (e.occurred_at >= greatest($4, $2) AND e.occurred_at < $5))
             GROUP BY 1
        )
        SELECT key, sum(requests)::bigint, sum(errors)::bigint, sum(cache_hits)::bigint, sum(unpriced)::bigint,
               sum(input_tokens), sum(output_tokens), sum(cost), sum(potential_cost),
               meter.percentile(meter.merge(latency), 0.5), meter.percentile(meter.merge(latency), 0.95),
               meter.percentile(meter.merge(latency), 0.99)
          FROM parts GROUP BY key ORDER BY key
    $q$, r_key, e_key, v_coarse, v_fine,
    -- the same figures from rollup rows (r) and from events (e)
    'sum(r.requests) AS requests, sum(r.errors) AS errors, sum(r.cache_hits) AS cache_hits, sum(r.unpriced) AS unpriced, '
    'sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens, sum(r.cost) AS cost, '
    'sum(r.potential_cost) AS potential_cost, meter.merge(r.latency) AS latency',
    'count(*), count(*) FILTER (WHERE NOT e.success), count(*) FILTER (WHERE e.cached), count(*) FILTER (WHERE NOT e.priced), '
    'sum(e.input_tokens), sum(e.output_tokens), coalesce(sum(e.cost), 0), coalesce(sum(e.potential_cost), 0), '
    'meter.sketch(e.latency_ms)')
    USING v_tenant, since, h1, h2, until, v_from, d1, d2;
END $$;
COMMENT ON FUNCTION meter.totals(text, timestamptz, timestamptz, text) IS
    'Usage of a tenant over [since, until), one row per group (by subject, provider, model, endpoint, feature, hour, day, or one row): exact at every moment, from the rollups plus the events not rolled up yet; p50/p95/p99 latency within 1 %.';
