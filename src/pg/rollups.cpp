// rollups.cpp: the transaction-snapshot tests of exactly-once rollups.
//
// An event belongs to a rollup pass when its writing transaction is visible
// in the pass's snapshot and was not in the previous one (the watermark);
// the tail that reads add is what the watermark does not cover. The SQL
// spelled this as pg_visible_in_snapshot(txid::text::xid8, ...), two text
// conversions per event; these call the same test on the bigint directly.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/fmgrprotos.h"

PG_FUNCTION_INFO_V1(meter_unrolled);
PG_FUNCTION_INFO_V1(meter_rolls);

// visible says whether transaction txid (a bigint xid8) is visible in snapshot.
static bool visible(Datum txid, Datum snapshot) {
    return DatumGetBool(DirectFunctionCall2(pg_visible_in_snapshot, txid, snapshot));
}

// meter_unrolled says whether transaction txid is not covered by watermark.
Datum meter_unrolled(PG_FUNCTION_ARGS) { return BoolGetDatum(!visible(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1))); }

// meter_rolls says whether transaction txid is visible in cur but not in prev.
Datum meter_rolls(PG_FUNCTION_ARGS) {
    return BoolGetDatum(!visible(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)) && visible(PG_GETARG_DATUM(0), PG_GETARG_DATUM(2)));
}
}
