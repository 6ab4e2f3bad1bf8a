// jsonb_io.hpp: jsonb <-> the core's JSON values, without crossing the
// error bridge the wrong way. pm_flatten() walks a jsonb with PostgreSQL
// calls only (it may ereport, and owns no C++ object); pm_unflatten() turns
// the flat tokens into a json::Value with C++ only (it may throw, and calls
// no PostgreSQL function).
#pragma once

#include "json.hpp"

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

namespace pgm::pg {

struct JTok {
    uint8 kind;  // JTokKind
    int len;
    const char* text;  // a string, or a number's text (nullptr for an integer in ival)
    int64 ival;
};

enum JTokKind : uint8 { ObjBegin, ObjEnd, ArrBegin, ArrEnd, Key, String, Number, True, False, Null };

struct JFlat {
    JTok* toks;
    int n;
};

// pm_flatten reads a jsonb into palloc'd tokens (strings point into jb).
JFlat pm_flatten(Jsonb* jb);
// pm_unflatten builds the core value from tokens.
json::Value pm_unflatten(const JFlat& f);

}  // namespace pgm::pg
