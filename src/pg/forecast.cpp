// forecast.cpp: meter._forecast, the glue of the projection's fit
// (src/core/forecast.*). Arguments are read with PostgreSQL calls, the fit
// runs in pm_run, the result is built after it.
#include <string>
#include <vector>

#include "bridge.hpp"
#include "datums.hpp"
#include "forecast.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
}

using namespace pgm;
using namespace pgm::pg;

namespace {

// read_float8s: the elements of a float8[] or int8[] (both 8 bytes, by
// value) without NULLs, as palloc'd Datums; PostgreSQL calls only
Datum* read_elems(ArrayType* a, Oid type, const char* name, int* n) {
    Datum* elems;
    bool* nulls;
    deconstruct_array(a, type, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, n);
    for (int i = 0; i < *n; i++)
        if (nulls[i]) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not hold NULL", name)));
    return elems;
}

PmResultDesc forecast_desc;

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(meter_forecast);

// meter._forecast(days int8[], costs float8[], first int8, last int8,
//                 OUT projected float8[], OUT method text): the fit of the
// baseline's daily costs, and the projection of days first..last (days
// since 1970-01-01)
Datum meter_forecast(PG_FUNCTION_ARGS) {
    for (int i = 0; i < 4; i++)
        if (PG_ARGISNULL(i)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("_forecast: NULL argument")));
    int64 first = PG_GETARG_INT64(2), last = PG_GETARG_INT64(3);
    if (last < first || last - first > 3660)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("_forecast: at most 3661 days ahead")));
    int nd, nv;
    Datum* days = read_elems(PG_GETARG_ARRAYTYPE_P(0), INT8OID, "days", &nd);
    Datum* costs = read_elems(PG_GETARG_ARRAYTYPE_P(1), FLOAT8OID, "costs", &nv);
    int n = static_cast<int>(last - first + 1);
    Datum* out = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    char method[512];
    PmFailure* f = pm_run([&] {
        std::vector<int64_t> d(nd);
        std::vector<double> v(nv);
        for (int i = 0; i < nd; i++) d[i] = DatumGetInt64(days[i]);
        for (int i = 0; i < nv; i++) v[i] = DatumGetFloat8(costs[i]);
        forecast::Model m = forecast::fit(d, v);
        for (int i = 0; i < n; i++) out[i] = Float8GetDatum(forecast::predict(m, first + i));
        std::string s = forecast::describe(m);
        snprintf(method, sizeof method, "%s", s.c_str());
    });
    if (f) pm_raise(f);
    TupleDesc desc = pm_result_desc(fcinfo, &forecast_desc);
    Datum v[2] = {PointerGetDatum(construct_array(out, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
                  CStringGetTextDatum(method)};
    bool nulls[2] = {false, false};
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, v, nulls)));
}

}  // extern "C"
