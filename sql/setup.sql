-- Shared by the regression files: pm_err(query) runs a statement and
-- returns its SQLSTATE, message, detail and hint (or 'no error'), so the
-- expected output shows the codes without file and line noise.
CREATE FUNCTION public.pm_err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text; m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN s || ': ' || m || coalesce(' | detail: ' || nullif(d, ''), '') || coalesce(' | hint: ' || nullif(h, ''), '');
END $$;
