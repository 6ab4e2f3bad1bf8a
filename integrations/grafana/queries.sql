-- queries.sql (psql): the dashboard's queries outside Grafana, to run them
-- as Grafana would (sql/integrations.sql and bench/integrations.sh do).
-- Set the psql variable dashboard to the path of pg_meter.json (the server
-- reads it: a superuser or a member of pg_read_server_files), then
--   \i integrations/grafana/queries.sql
-- makes in this session:
--   dashboard_queries: n (the panel's id; 100 + its position for a
--     variable), title, format ('time_series' or 'table'), q (the rawSql,
--     or the variable's query);
--   pg_temp.grafana(q, t_from, t_to, tenants): q with Grafana's PostgreSQL
--     macros expanded as Grafana expands them for that range:
--     $__timeFilter(c) to c BETWEEN 'from' AND 'to' (RFC 3339, UTC),
--     $__timeFrom() and $__timeTo() to those times quoted, and the
--     multi-value variable $tenant to its values quoted and comma-separated.
CREATE TEMP TABLE dashboard AS SELECT pg_read_file(:'dashboard')::jsonb AS d;
CREATE TEMP VIEW dashboard_queries AS
SELECT (p ->> 'id')::int AS n, p ->> 'title' AS title, t ->> 'format' AS format, t ->> 'rawSql' AS q
  FROM dashboard, jsonb_array_elements(d -> 'panels') p, jsonb_array_elements(p -> 'targets') t
UNION ALL
SELECT 100 + i::int, 'variable ' || (v ->> 'name'), 'table', v ->> 'query'
  FROM dashboard, jsonb_array_elements(d -> 'templating' -> 'list') WITH ORDINALITY AS l(v, i)
 WHERE v ->> 'type' = 'query';
CREATE FUNCTION pg_temp.grafana(q text, t_from timestamptz, t_to timestamptz, tenants text[]) RETURNS text
LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(q,
             '\$__timeFilter\(\s*([^)]*?)\s*\)', '\1 BETWEEN ' || f || ' AND ' || t, 'g'),
             '\$__timeFrom\(\)', f, 'g'),
             '\$__timeTo\(\)', t, 'g'),
             '\$(\{tenant\}|tenant\M)', (SELECT string_agg(quote_literal(x), ',') FROM unnest(tenants) x), 'g')
    FROM (SELECT quote_literal(to_char(t_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) AS f,
                 quote_literal(to_char(t_to AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) AS t) x
$$;
