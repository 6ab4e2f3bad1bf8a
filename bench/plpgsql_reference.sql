-- plpgsql_reference.sql: the same pricing written in PL/pgSQL over pg_meter's
-- own catalog tables, as a competent developer would write it by hand. It is
-- the reference that bench/cost.sh measures meter.cost against.
DROP SCHEMA IF EXISTS bench_ref CASCADE;
CREATE SCHEMA bench_ref;

-- matches evaluates a genai-prices match rule against a lower-cased name.
CREATE FUNCTION bench_ref.matches(rule jsonb, name text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE r jsonb;
BEGIN
    IF rule ? 'equals' THEN RETURN name = lower(rule->>'equals'); END IF;
    IF rule ? 'starts_with' THEN RETURN starts_with(name, lower(rule->>'starts_with')); END IF;
    IF rule ? 'ends_with' THEN RETURN right(name, length(rule->>'ends_with')) = lower(rule->>'ends_with'); END IF;
    IF rule ? 'contains' THEN RETURN strpos(name, lower(rule->>'contains')) > 0; END IF;
    IF rule ? 'regex' THEN
        -- PostgreSQL's regex has no lookahead; fall back to "no match" when it cannot compile
        BEGIN RETURN name ~ (rule->>'regex'); EXCEPTION WHEN OTHERS THEN RETURN false; END;
    END IF;
    IF rule ? 'or' THEN
        FOR r IN SELECT * FROM jsonb_array_elements(rule->'or') LOOP
            IF bench_ref.matches(r, name) THEN RETURN true; END IF;
        END LOOP;
        RETURN false;
    END IF;
    IF rule ? 'and' THEN
        FOR r IN SELECT * FROM jsonb_array_elements(rule->'and') LOOP
            IF NOT bench_ref.matches(r, name) THEN RETURN false; END IF;
        END LOOP;
        RETURN true;
    END IF;
    RETURN false;
END $$;

-- price_of reads one price (flat or tiered) for a prompt size.
CREATE FUNCTION bench_ref.price_of(p jsonb, prompt numeric) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE t jsonb; v numeric;
BEGIN
    IF p IS NULL THEN RETURN NULL; END IF;
    IF jsonb_typeof(p) = 'number' THEN RETURN p::text::numeric; END IF;
    v := (p->>'base')::numeric;
    FOR t IN SELECT * FROM jsonb_array_elements(p->'tiers') ORDER BY (value->>'start')::numeric LOOP
        IF prompt > (t->>'start')::numeric THEN v := (t->>'price')::numeric; END IF;
    END LOOP;
    RETURN v;
END $$;

-- in_window: is the UTC time of day of t within [from, to) (wrapping midnight)?
CREATE FUNCTION bench_ref.in_window(t timestamptz, t_from text, t_to text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN b < a THEN s >= a OR s < b ELSE s >= a AND s < b END
      FROM (SELECT extract(epoch FROM (t AT TIME ZONE 'UTC')::time) AS s,
                   extract(epoch FROM (('2000-01-01 ' || t_from)::timestamptz AT TIME ZONE 'UTC')::time) AS a,
                   extract(epoch FROM (('2000-01-01 ' || t_to)::timestamptz AT TIME ZONE 'UTC')::time) AS b) x
$$;

CREATE FUNCTION bench_ref.cost(p_provider text, p_model text, p_usage jsonb, p_at timestamptz DEFAULT now())
RETURNS numeric LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_name text := lower(btrim(p_model));
    v_prov text := lower(btrim(p_provider));
    v_data jsonb;
    v_prices jsonb;
    v_entry jsonb;
    v_in numeric := 0; v_out numeric := 0; v_cr numeric := 0; v_cw numeric := 0;
    v_cost numeric;
BEGIN
    -- resolve the model: first match in catalog order, in force at p_at
    SELECT m.data INTO v_data
      FROM meter.catalog_models m
     WHERE m.source = 'genai-prices' AND m.provider_id = v_prov AND m.service_tier = 'standard'
       AND m.valid_from <= p_at AND p_at < m.valid_to
       AND bench_ref.matches(m.data->'match', v_name)
     ORDER BY m.position
     LIMIT 1;
    IF v_data IS NULL THEN
        RAISE EXCEPTION 'no price for model %', p_model;
    END IF;
    -- the price entry in force: the last one whose constraint holds
    -- (a start date, or a time-of-day window in UTC)
    IF jsonb_typeof(v_data->'prices') = 'array' THEN
        v_prices := v_data->'prices'->0->'prices';
        FOR v_entry IN SELECT value FROM jsonb_array_elements(v_data->'prices') LOOP
            IF v_entry->'constraint' IS NULL
               OR (v_entry->'constraint' ? 'start_date' AND p_at >= (v_entry->'constraint'->>'start_date')::timestamptz)
               OR (v_entry->'constraint' ? 'start_time' AND bench_ref.in_window(p_at, v_entry->'constraint'->>'start_time', v_entry->'constraint'->>'end_time')) THEN
                v_prices := v_entry->'prices';
            END IF;
        END LOOP;
    ELSE
        v_prices := v_data->'prices';
    END IF;
    -- normalize the usage of the common shapes
    IF p_usage ? 'prompt_tokens' THEN              -- OpenAI chat: cached tokens inside the prompt
        v_in := (p_usage->>'prompt_tokens')::numeric;
        v_out := coalesce((p_usage->>'completion_tokens')::numeric, 0);
        v_cr := coalesce((p_usage->'prompt_tokens_details'->>'cached_tokens')::numeric, 0);
    ELSIF p_usage ? 'promptTokenCount' THEN        -- Gemini: thoughts billed as output
        v_in := (p_usage->>'promptTokenCount')::numeric;
        v_out := coalesce((p_usage->>'candidatesTokenCount')::numeric, 0) + coalesce((p_usage->>'thoughtsTokenCount')::numeric, 0);
        v_cr := coalesce((p_usage->>'cachedContentTokenCount')::numeric, 0);
    ELSIF p_usage ? 'cache_read_input_tokens' OR p_usage ? 'cache_creation_input_tokens' THEN  -- Anthropic: cache outside input
        v_cr := coalesce((p_usage->>'cache_read_input_tokens')::numeric, 0);
        v_cw := coalesce((p_usage->>'cache_creation_input_tokens')::numeric, 0);
        v_in := (p_usage->>'input_tokens')::numeric + v_cr + v_cw;
        v_out := coalesce((p_usage->>'output_tokens')::numeric, 0);
    ELSE                                             -- normalized form
        v_in := coalesce((p_usage->>'input_tokens')::numeric, 0);
        v_out := coalesce((p_usage->>'output_tokens')::numeric, 0);
        v_cr := coalesce((p_usage->>'cache_read_tokens')::numeric, 0);
        v_cw := coalesce((p_usage->>'cache_write_tokens')::numeric, 0);
    END IF;
    -- cached tokens are billed at their own prices when the model has them
    IF v_prices ? 'cache_read_mtok' THEN v_in := v_in - v_cr; ELSE v_cr := 0; END IF;
    IF v_prices ? 'cache_write_mtok' THEN v_in := v_in - v_cw; ELSE v_cw := 0; END IF;
    v_cost := (v_in * coalesce(bench_ref.price_of(v_prices->'input_mtok', v_in + v_cr + v_cw), 0)
             + v_out * coalesce(bench_ref.price_of(v_prices->'output_mtok', v_in + v_cr + v_cw), 0)
             + v_cr * coalesce(bench_ref.price_of(v_prices->'cache_read_mtok', v_in + v_cr + v_cw), 0)
             + v_cw * coalesce(bench_ref.price_of(v_prices->'cache_write_mtok', v_in + v_cr + v_cw), 0)) / 1000000;
    RETURN round(v_cost, 12);
END $$;
