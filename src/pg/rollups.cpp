// rollups.cpp: the glue of exactly-once rollups.
//
// 1. The transaction-snapshot tests. An event belongs to a rollup pass
//    when its writing transaction is visible in the pass's snapshot and was
//    not in the previous one (the watermark); the tail that reads add is
//    what the watermark does not cover. These call pg_visible_in_snapshot
//    on the bigint directly (no text conversions per event), with the
//    snapshots unpacked once per call site and the last answer kept.
// 2. meter._rollup(...), the aggregate that turns events into rollup rows
//    at every grain in one pass: its state is the core's Aggregator
//    (src/core/rollup.hpp), owned by the aggregate's memory context, and
//    its result an array of meter._rollup_row that meter.rollup(),
//    meter._rebuild() and meter.verify() unnest.
// 3. meter._measures(...), the aggregate of one group's figures (the core's
//    Measures): what the reads sum events with (the cut hours and days, the
//    tail), one transition call per event instead of twelve aggregates'.
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "bridge.hpp"
#include "datums.hpp"
#include "rollup.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
}

using namespace pgm;
using namespace pgm::pg;

namespace {

// visible says whether transaction txid (a bigint xid8) is visible in snapshot.
bool visible(Datum txid, Datum snapshot) {
    return DatumGetBool(DirectFunctionCall2(pg_visible_in_snapshot, txid, snapshot));
}

// SnapTest remembers, in a call site's fn_extra, the snapshots it was last
// given (unpacked once: a stored watermark comes with a short header, and
// pg_visible_in_snapshot copied it out for every event) and the answer for
// the last transaction. A statement passes the same snapshots for every
// event and a bulk load writes many events in one transaction, so most
// events cost a comparison of a few bytes.
struct SnapTest {
    static constexpr int kMax = 2;
    struct varlena* snap[kMax];  // unpacked copies, in fn_mcxt
    Datum txid;
    bool answer;
    bool has_answer;
};

// same_snapshot says whether a (not external, not compressed) snapshot
// argument has the bytes of an unpacked copy.
bool same_snapshot(struct varlena* arg, struct varlena* copy) {
    return copy != nullptr && VARSIZE_ANY_EXHDR(arg) == VARSIZE(copy) - VARHDRSZ &&
           memcmp(VARDATA_ANY(arg), VARDATA(copy), VARSIZE(copy) - VARHDRSZ) == 0;
}

// snap_test returns the call site's SnapTest with the snapshots of
// arguments 1..n in it (the cached answer forgotten when one differs), or
// nullptr when an argument is stored out of line or compressed.
SnapTest* snap_test(FunctionCallInfo fcinfo, int n) {
    SnapTest* t = static_cast<SnapTest*>(fcinfo->flinfo->fn_extra);
    if (t == nullptr) {
        t = static_cast<SnapTest*>(MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(SnapTest)));
        fcinfo->flinfo->fn_extra = t;
    }
    for (int i = 0; i < n; ++i) {
        struct varlena* arg = reinterpret_cast<struct varlena*>(DatumGetPointer(PG_GETARG_DATUM(i + 1)));
        if (VARATT_IS_EXTERNAL(arg) || VARATT_IS_COMPRESSED(arg)) return nullptr;
        if (same_snapshot(arg, t->snap[i])) continue;
        Size len = VARSIZE_ANY_EXHDR(arg);
        struct varlena* copy = static_cast<struct varlena*>(MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, len + VARHDRSZ));
        SET_VARSIZE(copy, len + VARHDRSZ);
        memcpy(VARDATA(copy), VARDATA_ANY(arg), len);
        if (t->snap[i] != nullptr) pfree(t->snap[i]);
        t->snap[i] = copy;
        t->has_answer = false;
    }
    return t;
}

// snap_answer answers test(txid, snapshots) for arguments 0..n: from the
// call site's SnapTest when the snapshots can be kept, else from the
// arguments as they are.
template <class Test>
bool snap_answer(FunctionCallInfo fcinfo, int n, Test test) {
    Datum txid = PG_GETARG_DATUM(0);
    SnapTest* t = snap_test(fcinfo, n);
    Datum s[SnapTest::kMax];
    if (t == nullptr) {
        for (int i = 0; i < n; ++i) s[i] = PG_GETARG_DATUM(i + 1);
        return test(txid, s);
    }
    if (!t->has_answer || t->txid != txid) {
        for (int i = 0; i < n; ++i) s[i] = PointerGetDatum(t->snap[i]);
        t->answer = test(txid, s);
        t->txid = txid;
        t->has_answer = true;
    }
    return t->answer;
}

int64 int_arg(FunctionCallInfo fcinfo, int i) { return PG_ARGISNULL(i) ? 0 : PG_GETARG_INT64(i); }

rollup::i128 money_arg(FunctionCallInfo fcinfo, int i, const char* what) {
    rollup::i128 v = 0;
    if (!PG_ARGISNULL(i) && !numeric_scaled(PG_GETARG_DATUM(i), rollup::kMoneyScale, &v))
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("an event's %s cannot be rolled up: it has more than %d decimals or is out of range",
                               what, rollup::kMoneyScale),
                        errhint("Find it with: SELECT event_id, %s FROM meter.events WHERE %s <> round(%s, 12);", what,
                                what, what)));
    return v;
}

// figures_args reads an event's figures from the arguments from first on:
// success, cached, priced, input, output, cache read and cache write
// tokens, cost, potential cost, latency_ms, ttft_ms (meter._rollup and
// meter._measures take them in this order).
void figures_args(FunctionCallInfo fcinfo, int first, rollup::Event* e) {
    e->success = PG_ARGISNULL(first) || PG_GETARG_BOOL(first);
    e->cached = !PG_ARGISNULL(first + 1) && PG_GETARG_BOOL(first + 1);
    e->priced = !PG_ARGISNULL(first + 2) && PG_GETARG_BOOL(first + 2);
    e->input_tokens = int_arg(fcinfo, first + 3);
    e->output_tokens = int_arg(fcinfo, first + 4);
    e->cache_read_tokens = int_arg(fcinfo, first + 5);
    e->cache_write_tokens = int_arg(fcinfo, first + 6);
    e->cost = money_arg(fcinfo, first + 7, "cost");
    e->potential_cost = money_arg(fcinfo, first + 8, "potential_cost");
    e->has_latency = !PG_ARGISNULL(first + 9);
    if (e->has_latency) e->latency = PG_GETARG_INT32(first + 9);
    e->has_ttft = !PG_ARGISNULL(first + 10);
    if (e->has_ttft) e->ttft = PG_GETARG_INT32(first + 10);
}

// The columns of meter._rollup_row, in order.
enum Col {
    kG, kTenant, kBucket, kSubject, kProvider, kModel, kEndpoint, kFeature, kRequests, kErrors, kCacheHits,
    kUnpriced, kInputTokens, kOutputTokens, kCacheReadTokens, kCacheWriteTokens, kCost, kPotentialCost, kLatency,
    kTtft, kFirstAt, kLastAt, kNumCols
};

// The columns of meter._measures, in order.
enum MCol {
    kMRequests, kMErrors, kMCacheHits, kMUnpriced, kMInputTokens, kMOutputTokens, kMCacheReadTokens,
    kMCacheWriteTokens, kMCost, kMPotentialCost, kMLatency, kMTtft, kMNumCols
};

void set_number(Datum* values, int col, rollup::i128 v, int scale) {
    PmMoney n;
    number_out(v, scale, &n);  // may throw: C++ only
    values[col] = pm_pg_call([&] { return money_datum(&n); });
}

void set_sketch(Datum* values, bool* nulls, int col, const rollup::SketchBins& s) {
    nulls[col] = s.empty();
    if (!s.empty()) {
        sketch::View v = s.view();
        values[col] = pm_pg_call([&] { return sketch_datum(v); });
    }
}

// set_negated_sketch sets the negation of a sketch: every count negated,
// so that meter.merge of it and a sketch holding its values takes them
// away exactly (the buckets are counts). Its min and max are +/-infinity:
// a merge keeps the other sketches' bounds, which still bound what is left.
void set_negated_sketch(Datum* values, bool* nulls, int col, const rollup::SketchBins& s) {
    nulls[col] = s.empty();
    if (s.empty()) return;
    sketch::View v = s.view();
    std::vector<int64_t> counts(v.counts, v.counts + v.n);
    for (int64_t& c : counts)
        c = -c;
    v.counts = counts.data();
    v.count = -v.count;
    v.zeros = -v.zeros;
    v.sum = -v.sum;
    v.min = std::numeric_limits<double>::infinity();
    v.max = -std::numeric_limits<double>::infinity();
    values[col] = pm_pg_call([&] { return sketch_datum(v); });
}

// set_measures sets a group's figures into the columns from first on, in
// meter._measures' order (meter._rollup_row holds them in the same order
// from requests), negated when less (inside pm_run: PostgreSQL calls
// through pm_pg_call).
void set_measures(Datum* values, bool* nulls, int first, const rollup::Measures& m, bool less) {
    int64 sign = less ? -1 : 1;
    values[first + kMRequests] = Int64GetDatum(sign * m.requests);
    values[first + kMErrors] = Int64GetDatum(sign * m.errors);
    values[first + kMCacheHits] = Int64GetDatum(sign * m.cache_hits);
    values[first + kMUnpriced] = Int64GetDatum(sign * m.unpriced);
    set_number(values, first + kMInputTokens, sign * m.input_tokens, 0);
    set_number(values, first + kMOutputTokens, sign * m.output_tokens, 0);
    set_number(values, first + kMCacheReadTokens, sign * m.cache_read_tokens, 0);
    set_number(values, first + kMCacheWriteTokens, sign * m.cache_write_tokens, 0);
    set_number(values, first + kMCost, sign * m.cost, rollup::kMoneyScale);
    set_number(values, first + kMPotentialCost, sign * m.potential_cost, rollup::kMoneyScale);
    auto sketch = less ? set_negated_sketch : set_sketch;
    sketch(values, nulls, first + kMLatency, m.latency);
    sketch(values, nulls, first + kMTtft, m.ttft);
}
static_assert(kRequests + kMTtft == kTtft && kRequests + kMNumCols == kFirstAt,
              "meter._rollup_row holds meter._measures' columns in order from requests");

// row_datum forms one meter._rollup_row (inside pm_run: PostgreSQL calls
// through pm_pg_call).
Datum row_datum(const rollup::Row& r, TupleDesc desc) {
    Datum values[kNumCols];
    bool nulls[kNumCols] = {};
    const rollup::Measures& m = *r.m;
    values[kG] = Int32GetDatum(static_cast<int32>(r.grain));
    pm_pg_call([&] {
        values[kTenant] = text_datum(r.dims->tenant);
        values[kSubject] = nullable_text(*r.subject, &nulls[kSubject]);
        values[kProvider] = nullable_text(r.dims->provider, &nulls[kProvider]);
        values[kModel] = nullable_text(r.dims->model, &nulls[kModel]);
        values[kEndpoint] = nullable_text(r.dims->endpoint, &nulls[kEndpoint]);
        values[kFeature] = nullable_text(r.dims->feature, &nulls[kFeature]);
    });
    values[kBucket] = TimestampTzGetDatum(from_micros(r.bucket));
    set_measures(values, nulls, kRequests, m, false);
    values[kFirstAt] = TimestampTzGetDatum(from_micros(m.first_at));
    values[kLastAt] = TimestampTzGetDatum(from_micros(m.last_at));
    return pm_pg_call([&] { return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)); });
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(meter_measures_add);
PG_FUNCTION_INFO_V1(meter_measures_final);
PG_FUNCTION_INFO_V1(meter_measures_less_final);
PG_FUNCTION_INFO_V1(meter_unrolled);
PG_FUNCTION_INFO_V1(meter_rolls);
PG_FUNCTION_INFO_V1(meter_rollup_add);
PG_FUNCTION_INFO_V1(meter_rollup_final);
PG_FUNCTION_INFO_V1(meter_rollup_serial);
PG_FUNCTION_INFO_V1(meter_rollup_deserial);
PG_FUNCTION_INFO_V1(meter_rollup_combine);

// meter_unrolled says whether transaction txid is not covered by watermark.
Datum meter_unrolled(PG_FUNCTION_ARGS) {
    return BoolGetDatum(snap_answer(fcinfo, 1, [](Datum txid, const Datum* s) { return !visible(txid, s[0]); }));
}

// meter_rolls says whether transaction txid is visible in cur but not in prev.
Datum meter_rolls(PG_FUNCTION_ARGS) {
    return BoolGetDatum(
        snap_answer(fcinfo, 2, [](Datum txid, const Datum* s) { return !visible(txid, s[0]) && visible(txid, s[1]); }));
}

// meter_rollup_add is the transition of meter._rollup (argument 0 is the
// state, then tenant, subject,
// provider, model, endpoint, feature, occurred_at, success, cached, priced,
// input, output, cache read, cache write tokens, cost, potential cost,
// latency_ms, ttft_ms).
Datum meter_rollup_add(PG_FUNCTION_ARGS) {
    rollup::Aggregator* agg = pm_agg_state<rollup::Aggregator>(fcinfo, "meter._rollup_add");
    if (PG_ARGISNULL(7)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("occurred_at is null")));
    rollup::Event e;
    e.tenant = text_arg(fcinfo, 1);
    e.subject = text_arg(fcinfo, 2);
    e.provider = text_arg(fcinfo, 3);
    e.model = text_arg(fcinfo, 4);
    e.endpoint = text_arg(fcinfo, 5);
    e.feature = text_arg(fcinfo, 6);
    e.occurred_at = to_micros(PG_GETARG_TIMESTAMPTZ(7));
    figures_args(fcinfo, 8, &e);
    PmFailure* f = pm_run([&] { agg->add(e); });
    if (f) pm_raise(f);
    PG_RETURN_POINTER(agg);
}

// meter_rollup_final returns the rows of every grain as meter._rollup_row[].
Datum meter_rollup_final(PG_FUNCTION_ARGS) {
    rollup::Aggregator* agg = reinterpret_cast<rollup::Aggregator*>(PG_GETARG_POINTER(0));
    Oid row_type;
    TupleDesc desc = row_array_desc(fcinfo, kNumCols, &row_type);
    Datum* elems = nullptr;
    int n = 0;
    PmFailure* f = pm_run([&] {
        std::vector<rollup::Row> rows = agg->rows();
        elems = pm_pg_call([&] { return static_cast<Datum*>(palloc(sizeof(Datum) * (rows.size() + 1))); });
        for (const rollup::Row& r : rows) {
            elems[n++] = row_datum(r, desc);
            if ((n & 1023) == 0) pm_pg_call([] { CHECK_FOR_INTERRUPTS(); });
        }
    });
    if (f) pm_raise(f);
    return row_array(elems, n, row_type);
}

// meter_rollup_serial returns a partial state as bytea: what a parallel
// worker of meter.rollup() (or of a rebuild) sends to the leader.
Datum meter_rollup_serial(PG_FUNCTION_ARGS) {
    if (!AggCheckCallContext(fcinfo, nullptr)) elog(ERROR, "meter._rollup_serial called in non-aggregate context");
    const rollup::Aggregator* agg = reinterpret_cast<rollup::Aggregator*>(PG_GETARG_POINTER(0));
    std::string bytes;
    PmFailure* f = pm_run([&] { bytes = agg->serialize(); });
    if (f) pm_raise(f);
    if (bytes.size() > MaxAllocSize - VARHDRSZ)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a partial rollup of %zu bytes is too large to pass between processes", bytes.size()),
                        errhint("Roll up more often, or SET max_parallel_workers_per_gather = 0 for this rollup.")));
    bytea* out = static_cast<bytea*>(palloc(bytes.size() + VARHDRSZ));
    SET_VARSIZE(out, bytes.size() + VARHDRSZ);
    memcpy(VARDATA(out), bytes.data(), bytes.size());
    PG_RETURN_BYTEA_P(out);
}

// A worker's partial state on its way into the leader's: meter_rollup_deserial
// only points at the bytes (in the current memory context, which lives until
// the combine step reads them), and meter_rollup_combine adds them to the
// leader's state as it reads them, group by group, rather than building a
// whole aggregator of them first and merging that (a second pass over every
// group: 10-20 ms of a million events' 450-490 ms). PostgreSQL passes a
// deserialized state straight to the combine function.
struct PartialBytes {
    static constexpr uint64 kMagic = UINT64_C(0x70676d2d70617274);  // "pgm-part"
    uint64 magic;
    const char* p;
    size_t n;
};

// meter_rollup_deserial wraps a worker's bytes for meter_rollup_combine.
Datum meter_rollup_deserial(PG_FUNCTION_ARGS) {
    if (!AggCheckCallContext(fcinfo, nullptr)) elog(ERROR, "meter._rollup_deserial called in non-aggregate context");
    bytea* in = PG_GETARG_BYTEA_PP(0);
    PartialBytes* b = static_cast<PartialBytes*>(palloc(sizeof(PartialBytes)));
    b->magic = PartialBytes::kMagic;
    b->p = VARDATA_ANY(in);
    b->n = VARSIZE_ANY_EXHDR(in);
    PG_RETURN_POINTER(b);
}

// meter_rollup_combine adds a worker's partial state to the leader's (made
// in the aggregate's memory context when there is none yet).
Datum meter_rollup_combine(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(1)) {
        if (PG_ARGISNULL(0)) PG_RETURN_NULL();
        PG_RETURN_POINTER(PG_GETARG_POINTER(0));
    }
    const PartialBytes* b = reinterpret_cast<const PartialBytes*>(PG_GETARG_POINTER(1));
    if (b->magic != PartialBytes::kMagic) elog(ERROR, "meter._rollup_combine: the second state was not deserialized");
    rollup::Aggregator* agg = pm_agg_state<rollup::Aggregator>(fcinfo, "meter._rollup_combine");
    PmFailure* f = pm_run([&] { agg->deserialize(b->p, b->n); });
    if (f) pm_raise(f);
    PG_RETURN_POINTER(agg);
}

// meter_measures_add is the transition of meter._measures (argument 0 is
// the state, then success, cached, priced, input, output, cache read and
// cache write tokens, cost, potential cost, latency_ms, ttft_ms). NULL
// latencies are not in the sketches: pass NULL for a read without them.
Datum meter_measures_add(PG_FUNCTION_ARGS) {
    rollup::Measures* m = pm_agg_state<rollup::Measures>(fcinfo, "meter._measures_add");
    rollup::Event e;
    figures_args(fcinfo, 1, &e);
    PmFailure* f = pm_run([&] { m->add(e); });
    if (f) pm_raise(f);
    PG_RETURN_POINTER(m);
}

// measures_datum forms the meter._measures of a group's figures, negated
// when less (sums are numeric; an empty sketch is NULL).
static Datum measures_datum(FunctionCallInfo fcinfo, bool less) {
    const rollup::Measures& m = *reinterpret_cast<rollup::Measures*>(PG_GETARG_POINTER(0));
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE || desc->natts != kMNumCols)
        elog(ERROR, "meter._measures: its result is not meter._measures");
    Datum values[kMNumCols];
    bool nulls[kMNumCols] = {};
    PmFailure* f = pm_run([&] { set_measures(values, nulls, 0, m, less); });
    if (f) pm_raise(f);
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

// meter_measures_final returns the group's figures as meter._measures.
Datum meter_measures_final(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    PG_RETURN_DATUM(measures_datum(fcinfo, false));
}

// meter_measures_less_final returns them negated (meter._measures_less):
// what a read takes away from a rollup row for the row's events outside
// its range.
Datum meter_measures_less_final(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    PG_RETURN_DATUM(measures_datum(fcinfo, true));
}
}
