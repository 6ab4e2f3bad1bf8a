-- plpgsql_reference.sql: the same pricing written in PL/pgSQL over pg_meter's
-- own catalog tables (meter.catalog_providers, meter.catalog_models), as a
-- competent developer would write it by hand. bench/cost.sh measures
-- meter.cost against it and checks that both give the same numbers.
--
-- What it does, per call: finds the provider (by id, else by its
-- provider_match rule), walks that provider's models in catalog order and
-- stops at the first whose match rule accepts the name (then the provider's
-- fallback_model_providers), all among rows in force at "at"; picks the
-- price entry in force (start_date or time-of-day constraints); reads the
-- usage of the common shapes (OpenAI chat, Anthropic, Gemini, normalized);
-- bills cached tokens at their own prices and the rest of the input at the
-- input price, with tiers chosen by the total input tokens.
--
-- Written to be fair, not slow: the walk over models exits at the first
-- match, rule trees are walked by index (no query per node), regexes run
-- without an exception block (every catalog regex compiles in PostgreSQL),
-- and the functions are PARALLEL SAFE like meter.cost. What it leaves out
-- (custom prices, other usage shapes, date-suffixed names, LiteLLM rows,
-- minimums) plays no part in the bench's workload.
DROP SCHEMA IF EXISTS bench_ref CASCADE;
CREATE SCHEMA bench_ref;

-- matches evaluates a genai-prices match rule against a lower-cased name;
-- literals compare case-insensitively, as genai-prices does.
CREATE FUNCTION bench_ref.matches(rule jsonb, name text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    arr jsonb;
    i int;
BEGIN
    IF rule IS NULL THEN RETURN false; END IF;
    IF rule ? 'equals' THEN RETURN name = lower(rule->>'equals'); END IF;
    IF rule ? 'starts_with' THEN RETURN starts_with(name, lower(rule->>'starts_with')); END IF;
    IF rule ? 'or' THEN
        arr := rule->'or';
        FOR i IN 0 .. jsonb_array_length(arr) - 1 LOOP
            IF bench_ref.matches(arr->i, name) THEN RETURN true; END IF;
        END LOOP;
        RETURN false;
    END IF;
    IF rule ? 'and' THEN
        arr := rule->'and';
        FOR i IN 0 .. jsonb_array_length(arr) - 1 LOOP
            IF NOT bench_ref.matches(arr->i, name) THEN RETURN false; END IF;
        END LOOP;
        RETURN true;
    END IF;
    IF rule ? 'contains' THEN RETURN strpos(name, lower(rule->>'contains')) > 0; END IF;
    IF rule ? 'ends_with' THEN RETURN right(name, length(rule->>'ends_with')) = lower(rule->>'ends_with'); END IF;
    IF rule ? 'regex' THEN RETURN name ~ (rule->>'regex'); END IF;
    RETURN false;
END $$;

-- price_of reads one price (flat, or tiered by the prompt's size) in USD per unit of "per".
CREATE FUNCTION bench_ref.price_of(p jsonb, prompt numeric) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v numeric;
    i int;
    t jsonb;
BEGIN
    IF p IS NULL THEN RETURN NULL; END IF;
    IF jsonb_typeof(p) = 'number' THEN RETURN p::numeric; END IF;
    v := (p->'base')::numeric;
    -- tiers are in ascending order of start; the last one passed applies
    FOR i IN 0 .. coalesce(jsonb_array_length(p->'tiers'), 0) - 1 LOOP
        t := p->'tiers'->i;
        IF prompt > (t->'start')::numeric THEN v := (t->'price')::numeric; END IF;
    END LOOP;
    RETURN v;
END $$;

-- ms_of_day: milliseconds since midnight UTC of a time of day like '16:30:00Z'.
CREATE FUNCTION bench_ref.ms_of_day(t text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (extract(epoch FROM (rtrim(t, 'Zz'))::time) * 1000)::bigint;

-- model_of: the first model of a provider, in catalog order, whose rule
-- accepts the name among rows in force at "at".
CREATE FUNCTION bench_ref.model_of(p_provider text, p_name text, p_at timestamptz, p_tier text) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_data jsonb;
BEGIN
    FOR v_data IN
        SELECT m.data FROM meter.catalog_models m
         WHERE m.source = 'genai-prices' AND m.provider_id = p_provider AND m.service_tier = p_tier
           AND m.valid_from <= p_at AND p_at < m.valid_to
         ORDER BY m.position
    LOOP
        IF bench_ref.matches(v_data->'match', p_name) THEN RETURN v_data; END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION bench_ref.cost(p_provider text, p_model text, p_usage jsonb,
                               p_at timestamptz DEFAULT now(), p_tier text DEFAULT 'standard')
RETURNS numeric LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_name text := lower(btrim(p_model));
    v_prov text := lower(btrim(p_provider));
    v_pdata jsonb;
    v_data jsonb;
    v_prices jsonb;
    v_entry jsonb;
    v_c jsonb;
    v_ms bigint;
    v_from bigint;
    v_to bigint;
    v_fb text;
    v_total numeric;
    v_in numeric := 0; v_out numeric := 0; v_cr numeric := 0; v_cw numeric := 0;
    v_cost numeric;
    i int;
BEGIN
    IF p_usage IS NULL OR p_model IS NULL THEN RETURN NULL; END IF;
    -- the provider: by id, else the first whose provider_match accepts the name
    SELECT p.provider_id, p.data INTO v_prov, v_pdata
      FROM meter.catalog_providers p
     WHERE p.source = 'genai-prices' AND p.provider_id = v_prov AND p.valid_from <= p_at AND p_at < p.valid_to;
    IF NOT FOUND THEN
        FOR v_prov, v_pdata IN
            SELECT p.provider_id, p.data FROM meter.catalog_providers p
             WHERE p.source = 'genai-prices' AND p.valid_from <= p_at AND p_at < p.valid_to
             ORDER BY p.position
        LOOP
            EXIT WHEN bench_ref.matches(v_pdata->'provider_match', lower(btrim(p_provider)));
            v_pdata := NULL;
        END LOOP;
        IF v_pdata IS NULL THEN
            RAISE EXCEPTION 'unknown provider "%"', p_provider;
        END IF;
    END IF;
    -- the model: first match in catalog order, then the fallback providers
    v_data := bench_ref.model_of(v_prov, v_name, p_at, p_tier);
    IF v_data IS NULL AND v_pdata ? 'fallback_model_providers' THEN
        FOR v_fb IN SELECT jsonb_array_elements_text(v_pdata->'fallback_model_providers') LOOP
            v_data := bench_ref.model_of(v_fb, v_name, p_at, p_tier);
            EXIT WHEN v_data IS NOT NULL;
        END LOOP;
    END IF;
    IF v_data IS NULL THEN
        RAISE EXCEPTION 'no price for model "%" of provider "%"', p_model, p_provider;
    END IF;
    -- the price entry in force: the last one whose constraint holds
    -- (a start date, or a time-of-day window in UTC), else the first
    IF jsonb_typeof(v_data->'prices') = 'array' THEN
        v_prices := v_data->'prices'->0->'prices';
        FOR i IN 0 .. jsonb_array_length(v_data->'prices') - 1 LOOP
            v_entry := v_data->'prices'->i;
            v_c := v_entry->'constraint';
            IF v_c IS NULL OR jsonb_typeof(v_c) = 'null' THEN
                v_prices := v_entry->'prices';
            ELSIF v_c ? 'start_date' THEN
                IF p_at >= ((v_c->>'start_date')::date::timestamp AT TIME ZONE 'UTC') THEN
                    v_prices := v_entry->'prices';
                END IF;
            ELSIF v_c ? 'start_time' THEN
                v_ms := (extract(epoch FROM (p_at AT TIME ZONE 'UTC')::time) * 1000)::bigint;
                v_from := bench_ref.ms_of_day(v_c->>'start_time');
                v_to := bench_ref.ms_of_day(v_c->>'end_time');
                IF (v_to < v_from AND (v_ms >= v_from OR v_ms < v_to))
                   OR (v_to >= v_from AND v_ms >= v_from AND v_ms < v_to) THEN
                    v_prices := v_entry->'prices';
                END IF;
            END IF;
        END LOOP;
    ELSE
        v_prices := v_data->'prices';
    END IF;
    -- normalize the usage of the common shapes (input counts cached tokens)
    IF p_usage ? 'prompt_tokens' THEN              -- OpenAI chat (Mistral, DeepSeek, OpenRouter too)
        v_in := (p_usage->'prompt_tokens')::numeric;
        v_out := coalesce((p_usage->'completion_tokens')::numeric, 0);
        v_cr := coalesce((p_usage->'prompt_tokens_details'->'cached_tokens')::numeric, 0);
    ELSIF p_usage ? 'promptTokenCount' THEN        -- Gemini: thoughts are billed as output
        v_in := (p_usage->'promptTokenCount')::numeric;
        v_out := coalesce((p_usage->'candidatesTokenCount')::numeric, 0)
               + coalesce((p_usage->'thoughtsTokenCount')::numeric, 0);
        v_cr := coalesce((p_usage->'cachedContentTokenCount')::numeric, 0);
    ELSIF p_usage ? 'cache_read_input_tokens' OR p_usage ? 'cache_creation_input_tokens' THEN
        -- Anthropic: cache reads and writes are outside input_tokens
        v_cr := coalesce((p_usage->'cache_read_input_tokens')::numeric, 0);
        v_cw := coalesce((p_usage->'cache_creation_input_tokens')::numeric, 0);
        v_in := coalesce((p_usage->'input_tokens')::numeric, 0) + v_cr + v_cw;
        v_out := coalesce((p_usage->'output_tokens')::numeric, 0);
    ELSE                                             -- pg_meter's normalized form
        v_in := coalesce((p_usage->'input_tokens')::numeric, 0);
        v_out := coalesce((p_usage->'output_tokens')::numeric, 0);
        v_cr := coalesce((p_usage->'cache_read_tokens')::numeric, 0);
        v_cw := coalesce((p_usage->'cache_write_tokens')::numeric, 0);
    END IF;
    v_total := v_in;                                 -- tiers go by the whole prompt
    -- cached tokens are billed at their own prices when the model has them,
    -- else as input
    IF v_prices ? 'cache_read_mtok' THEN v_in := v_in - v_cr; ELSE v_cr := 0; END IF;
    IF v_prices ? 'cache_write_mtok' THEN v_in := v_in - v_cw; ELSE v_cw := 0; END IF;
    IF v_in < 0 THEN
        RAISE EXCEPTION 'cached tokens exceed input tokens';
    END IF;
    v_cost := (v_in * coalesce(bench_ref.price_of(v_prices->'input_mtok', v_total), 0)
             + v_out * coalesce(bench_ref.price_of(v_prices->'output_mtok', v_total), 0)
             + v_cr * coalesce(bench_ref.price_of(v_prices->'cache_read_mtok', v_total), 0)
             + v_cw * coalesce(bench_ref.price_of(v_prices->'cache_write_mtok', v_total), 0)) / 1000000;
    -- meter.cost is exact to 1e-12 USD; trim_scale drops trailing zeros
    RETURN trim_scale(round(v_cost, 12));
END $$;
