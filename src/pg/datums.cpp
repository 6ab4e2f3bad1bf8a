#include "datums.hpp"

#include <cstring>

#include "error.hpp"
#include "rollup.hpp"

extern "C" {
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
}

namespace pgm::pg {

Text text_value(Datum d) {
    text* t = DatumGetTextPP(d);
    return Text{VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)};
}

Text text_arg(FunctionCallInfo fcinfo, int i) { return PG_ARGISNULL(i) ? Text{} : text_value(PG_GETARG_DATUM(i)); }

Datum text_datum(std::string_view s) { return PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size()))); }

Datum nullable_text(const NString& s, bool* isnull) {
    *isnull = !s;
    return s ? text_datum(*s) : (Datum)0;
}

TupleDesc row_array_desc(FunctionCallInfo fcinfo, int natts, Oid* row_type) {
    *row_type = get_element_type(get_fn_expr_rettype(fcinfo->flinfo));
    if (!OidIsValid(*row_type))
        elog(ERROR, "%s: cannot tell its result type", get_func_name(fcinfo->flinfo->fn_oid));
    TupleDesc desc = lookup_rowtype_tupdesc_copy(*row_type, -1);
    if (desc->natts != natts)
        elog(ERROR, "%s returns rows of %d columns, not %d", get_func_name(fcinfo->flinfo->fn_oid), desc->natts, natts);
    return desc;
}

Datum row_array(Datum* rows, int n, Oid row_type) {
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(row_type, &typlen, &typbyval, &typalign);
    return PointerGetDatum(construct_array(rows, n, row_type, typlen, typbyval, typalign));
}

constexpr int64 kUnixToPgMicros = INT64CONST(946684800000000);

Micros to_micros(TimestampTz t) {
    if (TIMESTAMP_IS_NOBEGIN(t)) return kMinTime;
    if (TIMESTAMP_IS_NOEND(t)) return kMaxTime;
    // the last 30 years before PostgreSQL's largest timestamp would pass
    // int64 when moved to 1970: they are later than any price anyway
    Micros m;
    if (__builtin_add_overflow(t, kUnixToPgMicros, &m)) return kMaxTime;
    return m;
}

TimestampTz from_micros(Micros m) {
    if (m == kMinTime) return DT_NOBEGIN;
    if (m == kMaxTime) return DT_NOEND;
    return m - kUnixToPgMicros;
}

void put(char* dst, size_t n, std::string_view s) {
    if (s.size() >= n) throw Error(Code::Overflow, "value too long for pg_meter's result buffer");
    memcpy(dst, s.data(), s.size());
    dst[s.size()] = '\0';
}

Datum numeric_datum(const char* s) {
    return DirectFunctionCall3(numeric_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

void money_out(const Money& m, PmMoney* out) {
    out->small = false;
    if (m.pico <= Int128(INT64CONST(0x7FFFFFFFFFFFFFFF)) && m.pico >= -Int128(INT64CONST(0x7FFFFFFFFFFFFFFF))) {
        int64 v = static_cast<int64>(m.pico);
        int scale = 12;
        while (scale > 0 && v % 10 == 0) {
            v /= 10;
            --scale;
        }
        out->small = true;
        out->mant = v;
        out->scale = scale;
        return;
    }
    put(out->text, sizeof out->text, m.to_string());
}

Datum money_datum(const PmMoney* m) {
    if (!m->small) return numeric_datum(m->text);
    if (m->scale == 0) return NumericGetDatum(int64_to_numeric(m->mant));
    return NumericGetDatum(int64_div_fast_to_numeric(m->mant, m->scale));
}

// The numeric on-disk format (src/backend/utils/adt/numeric.c, stable
// across versions because pg_upgrade keeps it): a uint16 header, then for
// the long form an int16 weight, then base-10000 digits, most significant
// first; value = sum of digit[i] * 10000^(weight - i).
namespace {
// pow10_128[e] is 10^e for e in [0, 38], the powers an __int128 holds.
struct Pow10Table {
    __int128 v[39];
    constexpr Pow10Table() : v() {
        v[0] = 1;
        for (int i = 1; i < 39; ++i)
            v[i] = v[i - 1] * 10;
    }
};
constexpr Pow10Table kPow10Table;
constexpr const __int128* pow10_128 = kPow10Table.v;
}  // namespace

bool numeric_scaled(Datum num, int scale, __int128* out) {
    struct varlena* v = PG_DETOAST_DATUM_PACKED(num);
    const char* p = VARDATA_ANY(v);
    size_t len = VARSIZE_ANY_EXHDR(v);
    uint16 header;
    memcpy(&header, p, sizeof header);
    if ((header & 0xC000) == 0xC000) return false;  // NaN or an infinity
    bool negative;
    int weight;
    size_t head;
    if (header & 0x8000) {  // the short form
        negative = (header & 0x2000) != 0;
        weight = (header & 0x0040) ? static_cast<int>(~0x003F | (header & 0x003F)) : (header & 0x003F);
        head = sizeof(uint16);
    } else {
        negative = (header & 0x4000) != 0;
        int16 w;
        memcpy(&w, p + sizeof(uint16), sizeof w);
        weight = w;
        head = sizeof(uint16) + sizeof(int16);
    }
    static const int64 pow10[] = {1, 10, 100, 1000, 10000};
    __int128 acc = 0;
    size_t ndigits = (len - head) / sizeof(int16);
    for (size_t i = 0; i < ndigits; ++i) {
        int16 d;
        memcpy(&d, p + head + i * sizeof(int16), sizeof d);
        if (d == 0) continue;
        int e = 4 * (weight - static_cast<int>(i)) + scale;  // the power of ten of this digit
        __int128 term;
        if (e < 0) {
            if (e < -4 || d % pow10[-e] != 0) return false;  // more decimals than scale
            term = d / pow10[-e];
        } else {
            if (e > 38 || __builtin_mul_overflow(static_cast<__int128>(d), pow10_128[e], &term)) return false;
        }
        if (__builtin_add_overflow(acc, term, &acc)) return false;
    }
    *out = negative ? -acc : acc;
    return true;
}

void number_out(__int128 v, int scale, PmMoney* out) {
    while (scale > 0 && v % 10 == 0) {
        v /= 10;
        --scale;
    }
    out->small = v >= PG_INT64_MIN && v <= PG_INT64_MAX;
    if (out->small) {
        out->mant = static_cast<int64>(v);
        out->scale = scale;
        return;
    }
    put(out->text, sizeof out->text, rollup::to_decimal(v, scale));
}

void usage_out(const Usage& u, PmUsage* out) {
    out->n = 0;
    for (auto& [unit, q] : u.values) {
        PmUsage::Meter& m = out->meters[out->n++];
        const std::string& key = Units::get().at(unit).usage_key;  // static storage
        m.key = key.data();
        m.key_len = static_cast<int>(key.size());
        m.whole = q.is_integer() && q.mant <= Int128(INT64CONST(0x7FFFFFFFFFFFFFFF)) &&
                  q.mant >= -Int128(INT64CONST(0x7FFFFFFFFFFFFFFF));
        if (m.whole)
            m.ival = static_cast<int64>(q.mant);
        else
            put(m.text, sizeof m.text, q.to_string());
    }
}

Datum usage_datum(const PmUsage* u) {
    JsonbParseState* state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (int i = 0; i < u->n; ++i) {
        const PmUsage::Meter& m = u->meters[i];
        JsonbValue k, v;
        k.type = jbvString;
        k.val.string.val = const_cast<char*>(m.key);
        k.val.string.len = m.key_len;
        pushJsonbValue(&state, WJB_KEY, &k);
        v.type = jbvNumeric;
        v.val.numeric = m.whole ? int64_to_numeric(m.ival) : DatumGetNumeric(numeric_datum(m.text));
        pushJsonbValue(&state, WJB_VALUE, &v);
    }
    JsonbValue* res = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    return JsonbPGetDatum(JsonbValueToJsonb(res));
}

TupleDesc pm_result_desc(FunctionCallInfo fcinfo, PmResultDesc* r) {
    if (r->fn != fcinfo->flinfo->fn_oid) {
        TupleDesc desc;
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "function %u must return a composite", fcinfo->flinfo->fn_oid);
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        TupleDesc copy = CreateTupleDescCopy(BlessTupleDesc(desc));
        MemoryContextSwitchTo(old);
        if (r->desc) FreeTupleDesc(r->desc);
        r->desc = copy;
        r->fn = fcinfo->flinfo->fn_oid;
    }
    return r->desc;
}

}  // namespace pgm::pg
