// callers.cpp: the glue of the hour's callers and their runs
// (src/core/callers.*).
//
// meter._caller_hours: for each UTC hour asked for, one query reads the
// hour's events of its tenants, with a plan kept for the session; a
// DestReceiver hands each row to the core as it comes (nothing is copied
// into a result set), and the hour's endpoints and busy callers are
// returned. In SQL the same grouping was 13 ms of an hour of 14,000 events
// (a hash aggregate of 4,300 callers, eight aggregates each) and its
// planning 0.8 ms more a call (bench/README.md).
//
// meter._runs, an aggregate, joins each caller's busy hours that follow each
// other; in SQL (a window over the busy hours sorted by caller and hour,
// then a grouping) it took 3.5 ms of a day of 2,000 busy hours.
//
// The core's objects are pm_owned by the call's or the aggregate's memory
// context, so that no PostgreSQL error jumps over a C++ destructor; frames
// that may raise own only plain data.
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "bridge.hpp"
#include "callers.hpp"
#include "datums.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "tcop/dest.h"
#include "access/htup_details.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"
}

using namespace pgm;
using namespace pgm::pg;

namespace {

constexpr int64 kMinBusy = 15;  // a busy caller's calls in an hour (meter.busy_callers)

// the hour's events of some tenants; the columns in the order read below
const char* const kQuery =
    "SELECT tenant, endpoint, session, subject, input_tokens, output_tokens, cost, occurred_at"
    "  FROM meter.events"
    " WHERE tenant = ANY ($1) AND occurred_at >= $2 AND occurred_at < $2 + interval '1 hour'";
enum Col { cTenant, cEndpoint, cSession, cSubject, cInput, cOutput, cCost, cAt, NCols };

SPIPlanPtr g_plan = nullptr;

struct Work {
    callers::Hour hour;
    std::vector<callers::EndpointHour> endpoints;
    std::vector<callers::BusyCaller> busy;
};

// Receiver gets the rows of an hour (a DestReceiver first, as PostgreSQL's own)
struct Receiver {
    DestReceiver pub;
    Work* work;
    bool sum_cost;
    Datum* cost;  // per endpoint group, in cxt
    int ncost, capcost;
    Datum zero;
    MemoryContext cxt;
};

Text text_of(TupleTableSlot* slot, int col) {
    return slot->tts_isnull[col] ? Text{} : text_value(slot->tts_values[col]);
}

bool receive(TupleTableSlot* slot, DestReceiver* self) {
    Receiver* r = reinterpret_cast<Receiver*>(self);
    slot_getallattrs(slot);
    bool* null = slot->tts_isnull;
    Datum* v = slot->tts_values;
    bool empty = DatumGetInt64(v[cInput]) == 0 && DatumGetInt64(v[cOutput]) == 0 &&
                 (null[cCost] || DatumGetBool(DirectFunctionCall2(numeric_eq, v[cCost], r->zero)));
    Text tenant = text_of(slot, cTenant), endpoint = text_of(slot, cEndpoint),
                  session = text_of(slot, cSession), subject = text_of(slot, cSubject);
    int64 at = DatumGetTimestampTz(v[cAt]);
    size_t group = 0;
    Work* w = r->work;
    PmFailure* f = pm_run([&] { group = w->hour.add(tenant, endpoint, session, subject, empty, at); });
    if (f) pm_raise(f);
    if (!r->sum_cost) return true;
    int g = static_cast<int>(group);
    if (g == r->ncost) {  // a new endpoint group
        MemoryContext old = MemoryContextSwitchTo(r->cxt);
        if (r->ncost == r->capcost) {
            r->capcost *= 2;
            r->cost = static_cast<Datum*>(repalloc(r->cost, sizeof(Datum) * static_cast<size_t>(r->capcost)));
        }
        r->cost[r->ncost++] = r->zero;
        MemoryContextSwitchTo(old);
    }
    if (!null[cCost]) {
        MemoryContext old = MemoryContextSwitchTo(r->cxt);
        r->cost[g] = DirectFunctionCall2(numeric_add, r->cost[g], v[cCost]);
        MemoryContextSwitchTo(old);
    }
    return true;
}

void startup(DestReceiver*, int, TupleDesc typeinfo) {
    static const Oid kTypes[NCols] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, NUMERICOID, TIMESTAMPTZOID};
    if (typeinfo->natts != NCols) elog(ERROR, "meter._caller_hours: the events query returns %d columns", typeinfo->natts);
    for (int i = 0; i < NCols; ++i)
        if (TupleDescAttr(typeinfo, i)->atttypid != kTypes[i])
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("meter.events' column \"%s\" has an unexpected type", NameStr(TupleDescAttr(typeinfo, i)->attname))));
}
void shutdown(DestReceiver*) {}
void destroy(DestReceiver*) {}

SPIPlanPtr plan() {
    if (!g_plan) {
        Oid types[2] = {TEXTARRAYOID, TIMESTAMPTZOID};
        SPIPlanPtr p = SPI_prepare_cursor(kQuery, 2, types, CURSOR_OPT_GENERIC_PLAN);
        if (!p) elog(ERROR, "meter._caller_hours: could not prepare its query: %s", SPI_result_code_string(SPI_result));
        SPI_keepplan(p);
        g_plan = p;
    }
    return g_plan;
}

struct Pair {
    TimestampTz hour;
    Datum tenant;
};

int by_hour(const void* a, const void* b) {
    TimestampTz x = static_cast<const Pair*>(a)->hour, y = static_cast<const Pair*>(b)->hour;
    return x < y ? -1 : x > y ? 1 : 0;
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(meter_caller_hours);

// meter._caller_hours(p_tenants text[], p_hours timestamptz[], p_cost boolean):
// for the pairs (p_tenants[i], p_hours[i]), a row per endpoint hour
// (session and subject NULL; callers, their median rate, and the calls'
// cost when p_cost) and a row per busy caller (callers NULL)
Datum meter_caller_hours(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsi = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) return (Datum)0;
    bool sum_cost = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
    Datum *tenants, *hours;
    bool *tnull, *hnull;
    int nt, nh;
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT, &tenants, &tnull, &nt);
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &hours, &hnull, &nh);
    // the pairs (unnest's: the shorter array ends in NULLs), by hour
    int n = 0;
    Pair* pairs = static_cast<Pair*>(palloc(sizeof(Pair) * static_cast<size_t>(Max(Min(nt, nh), 1))));
    for (int i = 0; i < Min(nt, nh); ++i)
        if (!tnull[i] && !hnull[i]) pairs[n++] = Pair{DatumGetTimestampTz(hours[i]), tenants[i]};
    if (n == 0) return (Datum)0;
    qsort(pairs, static_cast<size_t>(n), sizeof(Pair), by_hour);

    MemoryContext call_cxt = CurrentMemoryContext;
    Work* work = pm_owned<Work>(call_cxt);
    PmFailure* f = nullptr;

    Receiver r;
    memset(&r, 0, sizeof r);
    r.pub.receiveSlot = receive;
    r.pub.rStartup = startup;
    r.pub.rShutdown = shutdown;
    r.pub.rDestroy = destroy;
    r.pub.mydest = DestTuplestore;  // (not DestNone, which SPI takes for a discarded result)
    r.work = work;
    r.sum_cost = sum_cost;
    r.cxt = call_cxt;
    r.zero = DirectFunctionCall1(int4_numeric, Int32GetDatum(0));

    SPI_connect();
    for (int i = 0; i < n;) {
        TimestampTz hour = pairs[i].hour;
        int j = i;
        while (j < n && pairs[j].hour == hour) ++j;
        // this hour's tenants, and its events
        Datum* ts = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<size_t>(j - i)));
        for (int k = i; k < j; ++k) ts[k - i] = pairs[k].tenant;
        ArrayType* arr = construct_array(ts, j - i, TEXTOID, -1, false, TYPALIGN_INT);
        f = pm_run([&] {
            work->hour = callers::Hour();
            work->endpoints.clear();
            work->busy.clear();
        });
        if (f) pm_raise(f);
        r.ncost = 0;
        r.capcost = 16;
        r.cost = static_cast<Datum*>(MemoryContextAlloc(call_cxt, sizeof(Datum) * 16));
        ParamListInfo params = makeParamList(2);
        params->params[0] = ParamExternData{PointerGetDatum(arr), false, PARAM_FLAG_CONST, TEXTARRAYOID};
        params->params[1] = ParamExternData{TimestampTzGetDatum(hour), false, PARAM_FLAG_CONST, TIMESTAMPTZOID};
        SPIExecuteOptions opts;
        memset(&opts, 0, sizeof opts);
        opts.params = params;
        opts.read_only = true;
        opts.dest = &r.pub;
        int rc = SPI_execute_plan_extended(plan(), &opts);
        if (rc != SPI_OK_SELECT) elog(ERROR, "meter._caller_hours: the events query failed: %s", SPI_result_code_string(rc));
        f = pm_run([&] {
            work->endpoints = work->hour.endpoints();
            work->busy = work->hour.busy(kMinBusy);
        });
        if (f) pm_raise(f);
        // the rows, in the caller's memory (the tuplestore's)
        MemoryContext old = MemoryContextSwitchTo(call_cxt);
        for (size_t k = 0; k < work->endpoints.size(); ++k) {
            const callers::EndpointHour& e = work->endpoints[k];
            Datum v[12];
            bool nl[12] = {false, false, false, true, true, false, !sum_cost, true, true, true, false, !e.median_per_min};
            v[0] = text_datum(e.tenant);
            v[1] = TimestampTzGetDatum(hour);
            v[2] = nullable_text(e.endpoint, &nl[2]);
            v[3] = v[4] = (Datum)0;
            v[5] = Int64GetDatum(e.requests);
            v[6] = sum_cost ? r.cost[k] : (Datum)0;
            v[7] = v[8] = v[9] = (Datum)0;
            v[10] = Int64GetDatum(e.callers);
            v[11] = e.median_per_min ? Float8GetDatum(*e.median_per_min) : (Datum)0;
            tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, nl);
        }
        for (const callers::BusyCaller& b : work->busy) {
            Datum v[12];
            bool nl[12] = {false, false, false, false, false, false, true, false, false, false, true, true};
            v[0] = text_datum(b.tenant);
            v[1] = TimestampTzGetDatum(hour);
            v[2] = nullable_text(b.endpoint, &nl[2]);
            v[3] = nullable_text(b.session, &nl[3]);
            v[4] = nullable_text(b.subject, &nl[4]);
            v[5] = Int64GetDatum(b.requests);
            v[6] = (Datum)0;
            v[7] = Int64GetDatum(b.empty);
            v[8] = TimestampTzGetDatum(b.first_us);
            v[9] = TimestampTzGetDatum(b.last_us);
            v[10] = v[11] = (Datum)0;
            tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, nl);
        }
        MemoryContextSwitchTo(old);
        i = j;
    }
    SPI_finish();
    return (Datum)0;
}

PG_FUNCTION_INFO_V1(meter_runs_add);
PG_FUNCTION_INFO_V1(meter_runs_final);

// meter_runs_add is the transition of meter._runs(tenant, endpoint,
// session, subject, bucket, requests, empty, first_at, last_at): a busy
// hour of a caller (a row of meter.busy_callers).
Datum meter_runs_add(PG_FUNCTION_ARGS) {
    callers::Runs* runs = pm_agg_state<callers::Runs>(fcinfo, "meter._runs_add");
    static const char* const kNeeded[] = {"bucket", "requests", "empty", "first_at", "last_at"};
    for (int i = 5; i <= 9; ++i)
        if (PG_ARGISNULL(i))
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a busy hour's %s is null", kNeeded[i - 5])));
    callers::BusyHour b;
    b.tenant = text_arg(fcinfo, 1);
    b.endpoint = text_arg(fcinfo, 2);
    b.session = text_arg(fcinfo, 3);
    b.subject = text_arg(fcinfo, 4);
    b.bucket_us = PG_GETARG_TIMESTAMPTZ(5);
    b.requests = PG_GETARG_INT64(6);
    b.empty = PG_GETARG_INT64(7);
    b.first_us = PG_GETARG_TIMESTAMPTZ(8);
    b.last_us = PG_GETARG_TIMESTAMPTZ(9);
    if (b.tenant.is_null()) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a busy hour's tenant is null")));
    PmFailure* f = pm_run([&] { runs->add(b); });
    if (f) pm_raise(f);
    PG_RETURN_POINTER(runs);
}

// meter_runs_final returns the runs as meter._run[]: per caller, its runs
// by time (tenant, endpoint, session, subject, requests, empty, first_at,
// last_at, per_min).
Datum meter_runs_final(PG_FUNCTION_ARGS) {
    const callers::Runs* runs = reinterpret_cast<const callers::Runs*>(PG_GETARG_POINTER(0));
    Oid row_type;
    TupleDesc desc = row_array_desc(fcinfo, 9, &row_type);
    auto* out = pm_owned<std::vector<callers::Run>>(CurrentMemoryContext);
    PmFailure* f = pm_run([&] { *out = runs->runs(); });
    if (f) pm_raise(f);
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (out->size() + 1)));
    int n = 0;
    for (const callers::Run& r : *out) {
        Datum v[9];
        bool nl[9] = {false, false, false, false, false, false, false, false, false};
        v[0] = text_datum(r.tenant);
        v[1] = nullable_text(r.endpoint, &nl[1]);
        v[2] = nullable_text(r.session, &nl[2]);
        v[3] = nullable_text(r.subject, &nl[3]);
        v[4] = Int64GetDatum(r.requests);
        v[5] = Int64GetDatum(r.empty);
        v[6] = TimestampTzGetDatum(r.first_us);
        v[7] = TimestampTzGetDatum(r.last_us);
        v[8] = Float8GetDatum(r.per_min);
        elems[n++] = HeapTupleGetDatum(heap_form_tuple(desc, v, nl));
    }
    return row_array(elems, n, row_type);
}

}  // extern "C"
