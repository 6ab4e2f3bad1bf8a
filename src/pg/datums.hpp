// datums.hpp: plain data between the core and PostgreSQL values, shared by
// every glue file: texts read in place, times, money without text,
// normalized usage as jsonb.
// The *_out functions run inside pm_run (C++ only, may throw); the *_datum
// functions run outside it (PostgreSQL calls only, may ereport).
#pragma once

#include <string_view>

#include "catalog.hpp"
#include "hash.hpp"
#include "sketch.hpp"

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "access/tupdesc.h"
}

namespace pgm::pg {

// text_value reads a text in place (detoasted when it must be; the bytes
// live as long as the datum's memory).
Text text_value(Datum d);

// text_arg is argument i as a nullable text read in place.
Text text_arg(FunctionCallInfo fcinfo, int i);

// text_datum is a text datum of s (of a Text that is not NULL);
// nullable_text of a nullable string, with its null flag set.
Datum text_datum(std::string_view s);
inline Datum text_datum(Text t) { return text_datum(std::string_view(t.p, t.n)); }
Datum nullable_text(const NString& s, bool* isnull);

// row_array_desc is the row type (row_type) and descriptor of a function
// that returns an array of a composite type with natts columns.
TupleDesc row_array_desc(FunctionCallInfo fcinfo, int natts, Oid* row_type);

// row_array makes the array of n rows (composite datums) of row_type.
Datum row_array(Datum* rows, int n, Oid row_type);

// to_micros turns a timestamptz into the core's microseconds since 1970.
Micros to_micros(TimestampTz t);

// from_micros is the inverse of to_micros.
TimestampTz from_micros(Micros m);

// put copies s into a fixed buffer; throws Code::Overflow when it does not fit.
void put(char* dst, size_t n, std::string_view s);

// numeric_datum parses a numeric from text.
Datum numeric_datum(const char* s);

// PmMoney is an amount ready to become numeric without parsing text: the
// picodollars with trailing zeros removed, when they fit in 64 bits.
struct PmMoney {
    bool small;
    int64 mant;
    int scale;
    char text[96];
};
void money_out(const Money& m, PmMoney* out);
// number_out does the same for v * 10^-scale (rollup sums).
void number_out(__int128 v, int scale, PmMoney* out);
Datum money_datum(const PmMoney* m);

// numeric_scaled reads a numeric as an integer count of 10^-scale (the
// on-disk digits, no text): false for NaN, infinity, more decimals than
// scale, or a value beyond 128 bits. PostgreSQL calls only (detoasts).
bool numeric_scaled(Datum num, int scale, __int128* out);

// sketch_datum builds a meter.sketch from the core's view of one.
Datum sketch_datum(const sketch::View& v);

// PmUsage is normalized usage as plain data: keys point at the meter table
// (static storage), whole quantities are integers, others keep their text.
struct PmUsage {
    int n;
    struct Meter {
        const char* key;
        int key_len;
        bool whole;
        int64 ival;
        char text[48];
    } meters[kMaxUnits];
};
void usage_out(const Usage& u, PmUsage* out);
// usage_datum builds the jsonb object (keys in jsonb's order) directly.
Datum usage_datum(const PmUsage* u);

// PmResultDesc keeps the blessed result descriptor of a function returning
// a composite, looked up once per backend (fn = InvalidOid forgets it).
struct PmResultDesc {
    Oid fn = InvalidOid;
    TupleDesc desc = nullptr;
};
// pm_result_desc returns it for the function being called; PostgreSQL
// calls only.
TupleDesc pm_result_desc(FunctionCallInfo fcinfo, PmResultDesc* r);

}  // namespace pgm::pg
