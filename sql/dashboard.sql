-- meter.dashboard_html: the admin page in one query. Structure, not a
-- snapshot of the page: every section is there, the figures in it are the
-- exact ones meter.summary and meter.top_subjects give, hostile names are
-- escaped, nothing is fetched from elsewhere, and bad arguments have their
-- SQLSTATE. (The page in a browser: scripts/test.sh, "dashboard in headless
-- Chromium".) Runs last (Makefile): its events, limits and prices would
-- shift what the other files count and number.
\set VERBOSITY default
SET TimeZone = 'UTC';
SELECT count(meter.set_price('dprov', p.model, p.prices::jsonb)) AS models_priced
  FROM (VALUES ('d-large', '{"input_mtok": 3, "output_mtok": 15}'),
               ('d-small', '{"input_mtok": 0.25, "output_mtok": 1.25, "cache_read_mtok": 0.025}'),
               ('<img src=x onerror=alert(1)>', '{"input_mtok": 1.1, "output_mtok": 4.4}')) AS p(model, prices);

-- 450 events over three days: six subjects, one of them hostile, guests,
-- three models (one hostile), errors and cache hits
SELECT count(*) FROM (SELECT meter.record(tenant => 'dash',
        subject => CASE WHEN i % 10 = 0 THEN NULL WHEN i % 9 = 0 THEN '<script>alert("pwn")</script>' ELSE 'u-' || (i % 5) END,
        provider => 'dprov',
        model => CASE WHEN i % 3 = 0 THEN '<img src=x onerror=alert(1)>' WHEN i % 3 = 1 THEN 'd-large' ELSE 'd-small' END,
        usage => jsonb_build_object('input_tokens', 100 + i * 7, 'output_tokens', 5 + i % 50,
                                    'cache_read_tokens', CASE WHEN i % 3 = 2 THEN i % 40 ELSE 0 END),
        cached => i % 13 = 0, success => i % 17 <> 0, latency_ms => 100 + (i * 53) % 2900,
        endpoint => '/chat', occurred_at => '2026-03-01 05:00+00'::timestamptz + i * interval '9 minutes')
        FROM generate_series(1, 450) AS i) s;

-- cost per day by model is one read grouped by two keys: equal to the raw
-- events over a range cut at odd times, from the log, then from the rollups
-- plus a late event and a fresh one (the tail)
CREATE FUNCTION pg_temp.day_model_differences() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (
    (SELECT ((t.key::jsonb) ->> 0)::timestamptz, (t.key::jsonb) ->> 1, t.requests, t.errors, t.cost, t.potential_cost
       FROM meter.totals('dash', '2026-03-01 07:13+00', '2026-03-03 11:02+00', 'day,model') t
     EXCEPT ALL
     SELECT date_trunc('day', occurred_at), model, count(*), count(*) FILTER (WHERE NOT success), sum(cost), sum(potential_cost)
       FROM meter.events WHERE tenant = 'dash' AND occurred_at >= '2026-03-01 07:13+00' AND occurred_at < '2026-03-03 11:02+00'
      GROUP BY 1, 2)
    UNION ALL
    (SELECT date_trunc('day', occurred_at), model, count(*), count(*) FILTER (WHERE NOT success), sum(cost), sum(potential_cost)
       FROM meter.events WHERE tenant = 'dash' AND occurred_at >= '2026-03-01 07:13+00' AND occurred_at < '2026-03-03 11:02+00'
      GROUP BY 1, 2
     EXCEPT ALL
     SELECT ((t.key::jsonb) ->> 0)::timestamptz, (t.key::jsonb) ->> 1, t.requests, t.errors, t.cost, t.potential_cost
       FROM meter.totals('dash', '2026-03-01 07:13+00', '2026-03-03 11:02+00', 'day,model') t)) d
$$;
SELECT pg_temp.day_model_differences() AS from_the_log;
SELECT meter.rollup() > 0 AS rolled;
SELECT (meter.record(tenant => 'dash', subject => 'u-1', provider => 'dprov', model => 'd-large',
        usage => '{"input_tokens": 1000000, "output_tokens": 1}', occurred_at => '2026-03-01 08:00+00')).cost AS late_cost;
SELECT (meter.record(tenant => 'dash', subject => 'u-2', provider => 'dprov', model => 'd-small',
        usage => '{"input_tokens": 10, "output_tokens": 10}', occurred_at => '2026-03-03 11:01+00')).cost AS fresh_cost;
SELECT pg_temp.day_model_differences() AS rollups_and_tail;
SELECT key FROM meter.totals('dash', '2026-03-02', '2026-03-03', 'day,model') ORDER BY key;
-- two keys: the pairs a rollup holds, nothing else
SELECT count(*) AS model_by_endpoint FROM meter.totals('dash', '2026-03-01', '2026-03-04', 'model, endpoint');
SELECT pm_err($$SELECT * FROM meter.totals('dash', '2026-03-01', '2026-03-04', 'subject,model')$$);
SELECT pm_err($$SELECT * FROM meter.totals('dash', '2026-03-01', '2026-03-04', 'day,day')$$);
SELECT pm_err($$SELECT * FROM meter.totals('dash', '2026-03-01', '2026-03-04', 'day,model,endpoint')$$);
SELECT pm_err($$SELECT * FROM meter._usage('dash', '2026-03-01', '2026-03-04', 'model', '{u-1}')$$);

-- quotas: a plan with a limit, a limit that refuses everything, a limit of
-- the whole tenant, a blocked subject with a hostile reason; a balance
SELECT meter.create_plan('dash', 'pro') IS NOT NULL AS plan;
SELECT meter.assign_plan('dash', 'u-1', 'pro') IS NOT NULL AS assigned;
SELECT meter.set_limit(tenant => 'dash', plan => 'pro', meter => 'requests', per => '1 hour', max => 1000) > 0 AS lim;
SELECT meter.set_limit(tenant => 'dash', subject => 'u-2', meter => 'requests', per => '1 minute', max => 0) > 0 AS lim;
SELECT meter.set_limit(tenant => 'dash', meter => 'requests', per => '1 day', max => 1000000, scope => 'tenant') > 0 AS lim;
SELECT meter.block('dash', 'eve', 'card <declined> & "disputed"') IS NOT NULL AS blocked;
SELECT meter.record_balance('dash', 'dprov', 42.5, now() - interval '1 day') > 0 AS balance;

CREATE TEMP TABLE page AS
    SELECT meter.dashboard_html('dash', '2026-03-01', '2026-03-04') AS html,
           meter._dashboard_document('dash', '2026-03-01', '2026-03-04') AS doc;
-- a page, self-contained: no script, no stylesheet link, no source or link
-- to fetch (escaped text may say src=, a tag never does)
SELECT left(html, 15) AS starts, right(html, 7) AS ends, length(html) > 20000 AS sizeable,
       html !~ '<[^>]*\s(src|href)\s*=' AS no_fetch, html !~* '<(script|link|iframe|object|embed|img)\M' AS no_foreign_tags,
       html !~* '(https?:|url\(|@import)' AS no_url
  FROM page;
-- every section, in the order of the page
SELECT s.key, strpos(p.html, 'id="s-' || s.key || '"') > 0 AS drawn,
       rank() OVER (ORDER BY strpos(p.html, 'id="s-' || s.key || '"')) AS place
  FROM page p, unnest(ARRAY['overview', 'alerts', 'cost_per_day', 'projection', 'requests_per_hour', 'latency', 'cache',
                            'top_subjects', 'quota_status', 'anomalies', 'runway']) AS s(key)
 ORDER BY place;
SELECT jsonb_object_keys(doc -> 'sections') AS document_keys FROM page ORDER BY 1;

-- the figures are the summary's, exact: the whole cost, each day's cost,
-- the potential cost and savings, printed as their exact text
SELECT strpos(p.html, 'exact: <span class="money">' || trim_scale(s.cost)::text || '</span> USD') > 0 AS cost_exact,
       strpos(p.html, 'exact: <span class="money">' || trim_scale(s.cache_savings)::text || '</span> USD') > 0 AS savings_exact,
       strpos(p.html, 'exact: <span class="money">' || trim_scale(s.potential_cost)::text || '</span> USD') > 0 AS potential_exact,
       (SELECT bool_and(p.html ~ (replace(d ->> 'day', '-', '\-') || ': total \$[0-9,.]+ \(' || replace(d ->> 'cost', '.', '\.') || ' USD\)'))
          FROM jsonb_array_elements(s.per_day) d) AS every_day_exact,
       jsonb_array_length(s.per_day) AS days
  FROM page p, meter.summary('dash', '2026-03-01', '2026-03-04') s;
-- the hour chart's bars add up to the summary's requests and failures, one bar an hour
SELECT jsonb_array_length(doc -> 'sections' -> 'requests_per_hour' -> 'x') AS hours,
       (SELECT sum(v::bigint) FROM jsonb_array_elements_text(doc -> 'sections' -> 'requests_per_hour' -> 'series' -> 0 -> 'values') v)
     + (SELECT sum(v::bigint) FROM jsonb_array_elements_text(doc -> 'sections' -> 'requests_per_hour' -> 'series' -> 1 -> 'values') v)
       = s.requests AS requests_add_up,
       (SELECT sum(v::bigint) FROM jsonb_array_elements_text(doc -> 'sections' -> 'requests_per_hour' -> 'series' -> 1 -> 'values') v)
       = s.failures AS errors_add_up,
       doc -> 'sections' -> 'latency' -> 'series' -> 1 -> 'values' -> 0 = to_jsonb(s.p95_ms) AS p95_is_the_summary_s
  FROM page, meter.summary('dash', '2026-03-01', '2026-03-04') s;
-- the top subjects are meter.top_subjects', each with its exact cost
SELECT t.rank, t.subject, strpos(p.html, 'title="' || trim_scale(t.cost)::text || ' USD"') > 0 AS cost_in_page
  FROM page p, meter.top_subjects('dash', '2026-03-01', '2026-03-04') t ORDER BY t.rank;

-- hostile names are text, never markup
SELECT strpos(html, '<script') = 0 AS no_script_tag, strpos(html, '<img') = 0 AS no_img_tag,
       strpos(html, '&lt;script&gt;alert(&quot;pwn&quot;)&lt;/script&gt;') > 0 AS subject_escaped,
       strpos(html, '&lt;img src=x onerror=alert(1)&gt;') > 0 AS model_escaped,
       strpos(html, 'blocked: card &lt;declined&gt; &amp; &quot;disputed&quot;') > 0 AS reason_escaped
  FROM page;
-- quota status: the blocked subject and the limit that refuses are
-- critical, the tenant's own limit is shown once
SELECT r -> 'cells' ->> 0 AS subject, r -> 'cells' ->> 2 AS "limit", r -> 'cells' ->> 7 AS state, r ->> 'severity' AS severity
  FROM page, jsonb_array_elements(doc -> 'sections' -> 'quota_status' -> 'rows') r
 ORDER BY 1, 2;
SELECT (SELECT count(*) FROM regexp_matches(html, '<tr class="sev-critical">', 'g')) AS critical_rows FROM page;
-- runway: the provider's balance, exact
SELECT strpos(html, '<td>dprov</td><td class="num" title="42.5 USD">$42.50</td>') > 0 AS runway_row FROM page;

-- no usage in the range: a page that says so, without charts; what is
-- about now (quotas, runway) is still there
SELECT strpos(html, 'id="no-usage"') > 0 AS says_no_usage, strpos(html, '<svg') = 0 AS no_chart,
       strpos(html, 'id="s-runway"') > 0 AS runway, strpos(html, 'id="s-quota_status"') > 0 AS quotas,
       strpos(html, 'id="s-cost_per_day"') = 0 AS no_cost_chart
  FROM meter.dashboard_html('dash', '2027-01-01', '2027-01-02') AS html;
SELECT strpos(html, 'No usage recorded for &lt;b&gt;&amp;&quot;x between') > 0 AS hostile_tenant_escaped,
       strpos(html, '<b>') = 0 AS no_b_tag
  FROM meter.dashboard_html('<b>&"x', '2026-03-01', '2026-03-04') AS html;
-- over more than 31 days, requests are drawn per day
SELECT doc -> 'sections' -> 'requests_per_hour' ->> 'title' AS title,
       jsonb_array_length(doc -> 'sections' -> 'requests_per_hour' -> 'x') AS bars
  FROM meter._dashboard_document('dash', '2026-02-15', '2026-04-01') AS doc;

-- alerts, projection and anomalies (their own tenant, dash2): a browser
-- polling every second for 5 minutes among sessions calling every 2 minutes;
-- a daily cost alert that fired on Mar 2, resolved at midnight and fired
-- again on Mar 3 (open)
SELECT count(*) FROM (SELECT meter.record(tenant => 'dash2', subject => 'kid', session => 'tab-1',
        endpoint => '/api/chart-commands', latency_ms => 5, occurred_at => t)
   FROM generate_series(timestamptz '2026-03-03 20:00', '2026-03-03 20:05', interval '1 s') t) s;
SELECT count(*) FROM (SELECT meter.record(tenant => 'dash2', subject => 'u-' || (i % 4), session => 's-' || (i % 4),
        provider => 'dprov', model => 'd-large', usage => '{"input_tokens": 1000, "output_tokens": 100}',
        endpoint => '/chat', latency_ms => 300, occurred_at => t)
   FROM generate_series(timestamptz '2026-03-02 08:00', '2026-03-03 22:00', interval '2 minutes') WITH ORDINALITY g(t, i)) s;
SELECT meter.set_alert('dash2', 'daily_cost_above', 0.5) > 0 AS cost_rule;
SELECT fired >= 1 AS fired FROM meter.evaluate_alerts('2026-03-02 23:00');
SELECT resolved >= 1 AS resolved FROM meter.evaluate_alerts('2026-03-03 00:30');
SELECT fired >= 1 AS fired_again FROM meter.evaluate_alerts('2026-03-03 23:00');
CREATE TEMP TABLE page2 AS
    SELECT meter.dashboard_html('dash2', '2026-03-01', '2026-03-04') AS html,
           meter._dashboard_document('dash2', '2026-03-01', '2026-03-04') AS doc;
SELECT s.key, strpos(p.html, 'id="s-' || s.key || '"') > 0 AS drawn,
       rank() OVER (ORDER BY strpos(p.html, 'id="s-' || s.key || '"')) AS place
  FROM page2 p, unnest(ARRAY['alerts', 'projection', 'anomalies']) AS s(key)
 ORDER BY place;
-- the alerts: the open one first (critical), then the resolved one, each
-- with its exact value; an alert resolved before the range is not shown
SELECT r ->> 'severity' AS severity, r -> 'cells' ->> 0 AS kind, r -> 'cells' ->> 3 = trim_scale(a.value)::text AS exact_value,
       r -> 'cells' ->> 5 AS fired, r -> 'cells' ->> 7 AS resolved
  FROM page2, jsonb_array_elements(doc -> 'sections' -> 'alerts' -> 'rows') WITH ORDINALITY AS x(r, i)
  JOIN meter.alerts a ON a.tenant = 'dash2' AND meter._dashboard_time(a.fired_at) = r -> 'cells' ->> 5
 ORDER BY x.i;
SELECT jsonb_array_length(meter._dashboard_alerts('dash2', '2026-03-03 12:00', '2026-03-04') -> 'rows') AS open_only,
       jsonb_array_length(meter._dashboard_alerts('dash2', '2026-02-01', '2026-03-02') -> 'rows') AS before_it_fired;
-- the anomaly: the polling session, who and what to do, as meter.anomalies
-- finds it over the range's last day
SELECT r ->> 'severity' AS severity, r -> 'cells' ->> 0 AS kind, r -> 'cells' ->> 1 AS who, r -> 'cells' ->> 2 AS "where",
       r -> 'cells' ->> 9 = a.advice AS its_advice
  FROM page2, jsonb_array_elements(doc -> 'sections' -> 'anomalies' -> 'rows') r,
       meter.anomalies('dash2', '2026-03-03', '2026-03-04') a
 WHERE a.kind = r -> 'cells' ->> 0;
SELECT strpos(html, 'meter.set_limit') > 0 AS advice_in_page FROM page2;
-- the projection: this month and the next as meter.projection gives them now
SELECT r -> 'cells' ->> 0 = p.month AS month, r -> 'cells' ->> 1 = trim_scale(p.spent)::text AS spent_exact,
       r -> 'cells' ->> 3 = trim_scale(p.projected_total)::text AS projected_total
  FROM page2, jsonb_array_elements(doc -> 'sections' -> 'projection' -> 'rows') WITH ORDINALITY AS x(r, i)
  JOIN meter.projection('dash2') WITH ORDINALITY AS p ON p.ordinality = x.i
 ORDER BY x.i;

-- bad arguments
SELECT pm_err($$SELECT meter.dashboard_html(NULL, '2026-03-01', '2026-03-04')$$);
SELECT pm_err($$SELECT meter.dashboard_html('dash', NULL, '2026-03-04')$$);
SELECT pm_err($$SELECT meter.dashboard_html('dash', '2026-03-01', NULL)$$);
SELECT pm_err($$SELECT meter.dashboard_html('dash', '2026-03-04', '2026-03-01')$$);
SELECT pm_err($$SELECT meter.dashboard_html('dash', '2026-03-01', '2026-03-01')$$);
SELECT pm_err($$SELECT meter.dashboard_html('dash', '2025-01-01', '2026-03-01')$$);
SELECT pm_err($$SELECT meter.dashboard_html('dash', '-infinity', '2026-03-01')$$);
-- a document the renderer cannot draw
SELECT pm_err($$SELECT meter._dashboard_render('[1]')$$);
SELECT pm_err($$SELECT meter._dashboard_render('{"sections": {"x": {"kind": "pie"}}}')$$);
SELECT pm_err($$SELECT meter._dashboard_render('{"sections": {"x": {"kind": "table", "columns": [{"name": "a"}], "rows": [{"cells": [1, 2]}]}}}')$$);
SELECT pm_err($$SELECT meter._dashboard_render('{"sections": {"x": {"kind": "tiles", "tiles": [{"value": "1e", "format": "money"}]}}}')$$);
-- a section another function adds is drawn by the generic table
SELECT strpos(meter._dashboard_render(jsonb_build_object('requests', 1, 'sections', jsonb_build_object('anomalies',
           meter._dashboard_table('Anomalies', ARRAY['Session', 'Requests:number'],
                                  '[{"cells": ["s-1", 12345], "severity": "warning"}]', 'None.')))),
           '<tr class="sev-warning"><td>s-1</td><td class="num">12,345</td></tr>') > 0 AS generic_table;
