/*
 * pg_meter_bench_floor.c: the floor of bench/quota.sh's rate-limit check. floor_check
 * takes meter.check's arguments and returns a meter.decision that says
 * "allowed" without reading anything: what PostgreSQL itself costs to call
 * a C function that answers one composite value (the function scan, the
 * tuple), whatever the function decides. Built and installed by
 * bench/quota.sh; not part of pg_meter.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(floor_check);

Datum
floor_check(PG_FUNCTION_ARGS)
{
	/* the result's descriptor, kept for the query as meter.check keeps it */
	TupleDesc	desc = (TupleDesc) fcinfo->flinfo->fn_extra;
	Datum		v[16];
	bool		n[16];

	if (desc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE || desc->natts != 16)
			elog(ERROR, "floor_check must return meter.decision");
		desc = BlessTupleDesc(desc);
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = desc;
	}
	for (int i = 0; i < 16; i++)
	{
		v[i] = (Datum) 0;
		n[i] = true;
	}
	v[0] = BoolGetDatum(true), n[0] = false;	/* allowed */
	v[1] = CStringGetTextDatum("allowed"), n[1] = false;	/* status */
	v[15] = CStringGetTextDatum("closed"), n[15] = false;	/* fail_mode */
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, v, n)));
}
