// sketch.cpp: the meter.sketch type (latency percentiles) and its aggregates.
//
// A meter.sketch is a varlena of plain data: the header, then the bucket
// counts (int64) and keys (int32). Aggregates keep a growable copy of the
// same data in the aggregate's memory context (palloc, never a C++ object).
// The bucket arithmetic, quantiles, merging and the text form are the
// core's (src/core/sketch.*).
#include <cmath>
#include <cstring>
#include <string>

#include "bridge.hpp"
#include "datums.hpp"
#include "sketch.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
}

using namespace pgm;
using namespace pgm::pg;

namespace {

// SkHead is what a sketch knows besides its buckets.
struct SkHead {
    int64 count;
    int64 zeros;
    double min;
    double max;
    double sum;
};

struct PmSketch {
    int32 vl_len_;
    int32 n;
    SkHead head;
    int64 data[FLEXIBLE_ARRAY_MEMBER];  // n counts, then n int32 keys
};

inline int64* sk_counts(PmSketch* s) { return s->data; }
inline int32* sk_keys(PmSketch* s) { return reinterpret_cast<int32*>(s->data + s->n); }
inline size_t sk_size(int32 n) {
    return offsetof(PmSketch, data) + static_cast<size_t>(n) * (sizeof(int64) + sizeof(int32));
}

// the aggregate state: the same numbers, growable
struct SkState {
    SkHead head;
    int32 n, cap;
    int32* keys;
    int64* counts;
};

sketch::View view_of(const SkHead& h, int32 n, const int32* keys, const int64* counts) {
    sketch::View v;
    v.count = h.count;
    v.zeros = h.zeros;
    v.min = h.min;
    v.max = h.max;
    v.sum = h.sum;
    v.n = n;
    v.keys = keys;
    v.counts = counts;
    return v;
}
sketch::View view_of(PmSketch* s) { return view_of(s->head, s->n, sk_keys(s), sk_counts(s)); }
sketch::View view_of(const SkState* s) { return view_of(s->head, s->n, s->keys, s->counts); }

PmSketch* build(const sketch::View& v) {
    PmSketch* s = static_cast<PmSketch*>(palloc0(sk_size(v.n)));
    SET_VARSIZE(s, sk_size(v.n));
    s->n = v.n;
    s->head = SkHead{v.count, v.zeros, v.min, v.max, v.sum};
    if (v.n > 0) {
        memcpy(sk_counts(s), v.counts, sizeof(int64) * static_cast<size_t>(v.n));
        memcpy(sk_keys(s), v.keys, sizeof(int32) * static_cast<size_t>(v.n));
    }
    return s;
}

SkState* new_state(MemoryContext cxt) {
    SkState* st = static_cast<SkState*>(MemoryContextAllocZero(cxt, sizeof(SkState)));
    st->cap = 16;
    st->keys = static_cast<int32*>(MemoryContextAlloc(cxt, sizeof(int32) * 16));
    st->counts = static_cast<int64*>(MemoryContextAlloc(cxt, sizeof(int64) * 16));
    return st;
}

void grow(SkState* st, int32 need) {
    if (need <= st->cap) return;
    int32 cap = st->cap;
    while (cap < need)
        cap *= 2;
    st->keys = static_cast<int32*>(repalloc(st->keys, sizeof(int32) * static_cast<size_t>(cap)));
    st->counts = static_cast<int64*>(repalloc(st->counts, sizeof(int64) * static_cast<size_t>(cap)));
    st->cap = cap;
}

void add_header(SkState* st, const SkHead& h) {
    SkHead& to = st->head;
    if (h.count == 0) return;
    if (to.count == 0) {
        to.min = h.min;
        to.max = h.max;
    } else {
        if (h.min < to.min) to.min = h.min;
        if (h.max > to.max) to.max = h.max;
    }
    to.count += h.count;
    to.zeros += h.zeros;
    to.sum += h.sum;
}

// merge_into adds a bucket list to the state (PostgreSQL calls only).
void merge_into(SkState* st, const int32* keys, const int64* counts, int32 n) {
    if (n == 0) return;
    if (sketch::add_bins_in_place(st->keys, st->counts, st->n, keys, counts, n)) return;
    int32* ko = static_cast<int32*>(palloc(sizeof(int32) * static_cast<size_t>(st->n + n)));
    int64* co = static_cast<int64*>(palloc(sizeof(int64) * static_cast<size_t>(st->n + n)));
    int32 m = sketch::merge_bins(st->keys, st->counts, st->n, keys, counts, n, ko, co);
    grow(st, m);
    memcpy(st->keys, ko, sizeof(int32) * static_cast<size_t>(m));
    memcpy(st->counts, co, sizeof(int64) * static_cast<size_t>(m));
    st->n = m;
    pfree(ko);
    pfree(co);
}

MemoryContext agg_context(FunctionCallInfo fcinfo, const char* fn) {
    MemoryContext cxt;
    if (!AggCheckCallContext(fcinfo, &cxt)) elog(ERROR, "%s called in non-aggregate context", fn);
    return cxt;
}

}  // namespace

Datum pgm::pg::sketch_datum(const sketch::View& v) { return PointerGetDatum(build(v)); }

extern "C" {

PG_FUNCTION_INFO_V1(meter_sketch_in);
PG_FUNCTION_INFO_V1(meter_sketch_out);
PG_FUNCTION_INFO_V1(meter_sketch_recv);
PG_FUNCTION_INFO_V1(meter_sketch_send);
PG_FUNCTION_INFO_V1(meter_sketch_add);
PG_FUNCTION_INFO_V1(meter_sketch_merge_add);
PG_FUNCTION_INFO_V1(meter_sketch_combine);
PG_FUNCTION_INFO_V1(meter_sketch_serialize);
PG_FUNCTION_INFO_V1(meter_sketch_deserialize);
PG_FUNCTION_INFO_V1(meter_sketch_final);
PG_FUNCTION_INFO_V1(meter_percentile);
PG_FUNCTION_INFO_V1(meter_sketch_count);

// meter_sketch_in reads the JSON text form, checking every invariant.
Datum meter_sketch_in(PG_FUNCTION_ARGS) {
    char* text = PG_GETARG_CSTRING(0);
    PmSketch* out = nullptr;
    PmFailure* f = pm_run([&] {
        sketch::Parsed p = sketch::from_text(text);
        out = pm_pg_call([&] { return build(p.head); });
    });
    if (f) pm_raise(f);
    PG_RETURN_POINTER(out);
}

// meter_sketch_out writes the JSON text form.
Datum meter_sketch_out(PG_FUNCTION_ARGS) {
    PmSketch* s = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(0)));
    char* out = nullptr;
    PmFailure* f = pm_run([&] {
        std::string t = sketch::to_text(view_of(s));
        out = pm_pg_call([&] { return static_cast<char*>(palloc(t.size() + 1)); });
        memcpy(out, t.c_str(), t.size() + 1);
    });
    if (f) pm_raise(f);
    PG_RETURN_CSTRING(out);
}

// meter_sketch_recv reads the binary form, with the same checks as text.
Datum meter_sketch_recv(PG_FUNCTION_ARGS) {
    StringInfo buf = reinterpret_cast<StringInfo>(PG_GETARG_POINTER(0));
    int32 n = pq_getmsgint(buf, 4);
    if (n < 0 || n > 100000000)
        ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION), errmsg("invalid sketch bucket count %d", n)));
    PmSketch* s = static_cast<PmSketch*>(palloc0(sk_size(n)));
    SET_VARSIZE(s, sk_size(n));
    s->n = n;
    s->head.count = pq_getmsgint64(buf);
    s->head.zeros = pq_getmsgint64(buf);
    s->head.min = pq_getmsgfloat8(buf);
    s->head.max = pq_getmsgfloat8(buf);
    s->head.sum = pq_getmsgfloat8(buf);
    int64 total = s->head.zeros;
    for (int32 i = 0; i < n; ++i) {
        sk_keys(s)[i] = pq_getmsgint(buf, 4);
        sk_counts(s)[i] = pq_getmsgint64(buf);
        if (sk_counts(s)[i] <= 0 || (i > 0 && sk_keys(s)[i] <= sk_keys(s)[i - 1]))
            ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION), errmsg("invalid sketch bucket %d", i)));
        total += sk_counts(s)[i];
    }
    if (total != s->head.count || s->head.zeros < 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION), errmsg("sketch count does not match its buckets")));
    PG_RETURN_POINTER(s);
}

// meter_sketch_send writes the binary form.
Datum meter_sketch_send(PG_FUNCTION_ARGS) {
    PmSketch* s = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(0)));
    StringInfoData buf;
    pq_begintypsend(&buf);
    pq_sendint32(&buf, s->n);
    pq_sendint64(&buf, s->head.count);
    pq_sendint64(&buf, s->head.zeros);
    pq_sendfloat8(&buf, s->head.min);
    pq_sendfloat8(&buf, s->head.max);
    pq_sendfloat8(&buf, s->head.sum);
    for (int32 i = 0; i < s->n; ++i) {
        pq_sendint32(&buf, sk_keys(s)[i]);
        pq_sendint64(&buf, sk_counts(s)[i]);
    }
    PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

// meter_sketch_add is the transition of meter.sketch(double precision).
Datum meter_sketch_add(PG_FUNCTION_ARGS) {
    MemoryContext cxt = agg_context(fcinfo, "meter._sketch_add");
    SkState* st = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<SkState*>(PG_GETARG_POINTER(0));
    if (PG_ARGISNULL(1)) {
        if (st) PG_RETURN_POINTER(st);
        PG_RETURN_NULL();
    }
    double v = PG_GETARG_FLOAT8(1);
    PmFailure* f = pm_run([&] { sketch::check_value(v); });
    if (f) pm_raise(f);
    if (!st) st = new_state(cxt);
    add_header(st, SkHead{1, v == 0 ? 1 : 0, v, v, v});
    if (v > 0) {
        int32 key = sketch::key_for(v);
        int32 lo = 0, hi = st->n;
        while (lo < hi) {
            int32 mid = (lo + hi) / 2;
            if (st->keys[mid] < key)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < st->n && st->keys[lo] == key)
            st->counts[lo]++;
        else {
            MemoryContext old = MemoryContextSwitchTo(cxt);
            grow(st, st->n + 1);
            MemoryContextSwitchTo(old);
            memmove(st->keys + lo + 1, st->keys + lo, sizeof(int32) * static_cast<size_t>(st->n - lo));
            memmove(st->counts + lo + 1, st->counts + lo, sizeof(int64) * static_cast<size_t>(st->n - lo));
            st->keys[lo] = key;
            st->counts[lo] = 1;
            st->n++;
        }
    }
    PG_RETURN_POINTER(st);
}

// meter_sketch_merge_add is the transition of meter.merge(meter.sketch).
Datum meter_sketch_merge_add(PG_FUNCTION_ARGS) {
    MemoryContext cxt = agg_context(fcinfo, "meter._sketch_merge_add");
    SkState* st = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<SkState*>(PG_GETARG_POINTER(0));
    if (PG_ARGISNULL(1)) {
        if (st) PG_RETURN_POINTER(st);
        PG_RETURN_NULL();
    }
    PmSketch* s = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(1)));
    MemoryContext old = MemoryContextSwitchTo(cxt);
    if (!st) st = new_state(cxt);
    add_header(st, s->head);
    merge_into(st, sk_keys(s), sk_counts(s), s->n);
    MemoryContextSwitchTo(old);
    PG_RETURN_POINTER(st);
}

// meter_sketch_combine merges two partial states (parallel aggregation).
Datum meter_sketch_combine(PG_FUNCTION_ARGS) {
    MemoryContext cxt = agg_context(fcinfo, "meter._sketch_combine");
    SkState* a = PG_ARGISNULL(0) ? nullptr : reinterpret_cast<SkState*>(PG_GETARG_POINTER(0));
    SkState* b = PG_ARGISNULL(1) ? nullptr : reinterpret_cast<SkState*>(PG_GETARG_POINTER(1));
    if (!b) {
        if (a) PG_RETURN_POINTER(a);
        PG_RETURN_NULL();
    }
    MemoryContext old = MemoryContextSwitchTo(cxt);
    if (!a) a = new_state(cxt);
    add_header(a, b->head);
    merge_into(a, b->keys, b->counts, b->n);
    MemoryContextSwitchTo(old);
    PG_RETURN_POINTER(a);
}

// meter_sketch_serialize turns a state into bytes (the varlena layout).
Datum meter_sketch_serialize(PG_FUNCTION_ARGS) {
    SkState* st = reinterpret_cast<SkState*>(PG_GETARG_POINTER(0));
    PG_RETURN_POINTER(build(view_of(st)));
}

// meter_sketch_deserialize turns bytes back into a state.
Datum meter_sketch_deserialize(PG_FUNCTION_ARGS) {
    MemoryContext cxt = agg_context(fcinfo, "meter._sketch_deserialize");
    PmSketch* s = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(0)));
    MemoryContext old = MemoryContextSwitchTo(cxt);
    SkState* st = new_state(cxt);
    add_header(st, s->head);
    merge_into(st, sk_keys(s), sk_counts(s), s->n);
    MemoryContextSwitchTo(old);
    PG_RETURN_POINTER(st);
}

// meter_sketch_final returns the aggregate's sketch. meter._usage merges
// a bucket's sketch with the negated sketch of some of its values (see
// meter._measures_less): buckets whose counts cancel are dropped, and a
// sketch left with no value is NULL, as the sketch of no value is.
Datum meter_sketch_final(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    SkState* st = reinterpret_cast<SkState*>(PG_GETARG_POINTER(0));
    if (st->head.count == 0) PG_RETURN_NULL();
    int32 n = 0;
    for (int32 i = 0; i < st->n; ++i)
        if (st->counts[i] != 0) {
            st->keys[n] = st->keys[i];
            st->counts[n++] = st->counts[i];
        }
    st->n = n;
    PG_RETURN_POINTER(build(view_of(st)));
}

// meter_percentile estimates the q-quantile within 1 % (NULL when empty).
Datum meter_percentile(PG_FUNCTION_ARGS) {
    PmSketch* s = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(0)));
    double q = PG_GETARG_FLOAT8(1);
    if (s->head.count == 0 && q >= 0 && q <= 1) PG_RETURN_NULL();
    double out = 0;
    PmFailure* f = pm_run([&] { out = sketch::quantile(view_of(s), q); });
    if (f) pm_raise(f);
    PG_RETURN_FLOAT8(out);
}

// meter_sketch_count returns how many values a sketch holds.
Datum meter_sketch_count(PG_FUNCTION_ARGS) {
    PmSketch* s = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(0)));
    PG_RETURN_INT64(s->head.count);
}

}  // extern "C"

extern "C" {

PG_FUNCTION_INFO_V1(meter_sketch_union);

// meter_sketch_union merges two sketches (either may be NULL): the sketch of
// all their values, for rollups that add a batch to a stored row.
Datum meter_sketch_union(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0) && PG_ARGISNULL(1)) PG_RETURN_NULL();
    if (PG_ARGISNULL(0)) PG_RETURN_DATUM(PG_GETARG_DATUM(1));
    if (PG_ARGISNULL(1)) PG_RETURN_DATUM(PG_GETARG_DATUM(0));
    PmSketch* a = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(0)));
    PmSketch* b = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(1)));
    SkState st;
    memset(&st, 0, sizeof st);
    st.cap = a->n + b->n + 1;
    st.keys = static_cast<int32*>(palloc(sizeof(int32) * static_cast<size_t>(st.cap)));
    st.counts = static_cast<int64*>(palloc(sizeof(int64) * static_cast<size_t>(st.cap)));
    add_header(&st, a->head);
    merge_into(&st, sk_keys(a), sk_counts(a), a->n);
    add_header(&st, b->head);
    merge_into(&st, sk_keys(b), sk_counts(b), b->n);
    PG_RETURN_POINTER(build(view_of(&st)));
}

}  // extern "C"

extern "C" {

PG_FUNCTION_INFO_V1(meter_sketch_same);

// meter_sketch_same says whether two sketches hold the same values: equal
// counts, zeros, extremes and buckets, and sums equal up to the rounding
// that adding doubles in another order gives (meter.verify's test).
Datum meter_sketch_same(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) PG_RETURN_BOOL(PG_ARGISNULL(0) && PG_ARGISNULL(1));
    PmSketch* a = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(0)));
    PmSketch* b = reinterpret_cast<PmSketch*>(PG_DETOAST_DATUM(PG_GETARG_DATUM(1)));
    if (a->n != b->n || a->head.count != b->head.count || a->head.zeros != b->head.zeros ||
        a->head.min != b->head.min || a->head.max != b->head.max)
        PG_RETURN_BOOL(false);
    if (std::fabs(a->head.sum - b->head.sum) > 1e-9 * std::max(std::fabs(a->head.sum), std::fabs(b->head.sum)))
        PG_RETURN_BOOL(false);
    PG_RETURN_BOOL(memcmp(sk_keys(a), sk_keys(b), sizeof(int32) * static_cast<size_t>(a->n)) == 0 &&
                   memcmp(sk_counts(a), sk_counts(b), sizeof(int64) * static_cast<size_t>(a->n)) == 0);
}
}
