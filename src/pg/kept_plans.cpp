// kept_plans.cpp: meter._usage's query, planned once a session.
//
// meter._usage builds its query from the grouping asked for and the parts
// a range needs (the cut hours, the hour summaries): a few dozen texts in
// all, each with its values as parameters. Run with EXECUTE, every call
// planned its text again: 0.8 ms of a 1.7 ms call over a day (the planner
// weighs every partition's indexes for each part read from the log).
// meter._usage_run plans a text once, as a generic plan (partitions are
// pruned when it runs, from the parameters), keeps the plan for the session
// and runs it with the call's values. PostgreSQL's plan cache plans a kept
// text again when a table it reads changes (a partition attached or
// detached, an index made).
#include <cstring>

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"
}

namespace {

constexpr int kArgs = 12;  // meter._usage's parameters, $1 .. $12
const Oid kTypes[kArgs] = {TEXTOID,        TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
                           TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTARRAYOID,
                           TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID};

// a kept plan, found by its text's hash; the text tells colliding texts apart
struct Kept {
    uint64 hash;  // the key
    char* text;   // TopMemoryContext
    SPIPlanPtr plan;
};

HTAB* g_kept = nullptr;

SPIPlanPtr kept_plan(const char* text, size_t len) {
    if (!g_kept) {
        HASHCTL ctl;
        memset(&ctl, 0, sizeof ctl);
        ctl.keysize = sizeof(uint64);
        ctl.entrysize = sizeof(Kept);
        g_kept = hash_create("pg_meter kept plans", 64, &ctl, HASH_ELEM | HASH_BLOBS);
    }
    uint64 h = hash_bytes_extended(reinterpret_cast<const unsigned char*>(text), static_cast<int>(len), 0);
    bool found;
    Kept* k = static_cast<Kept*>(hash_search(g_kept, &h, HASH_ENTER, &found));
    if (found && strcmp(k->text, text) == 0) return k->plan;
    if (found) {  // another text with the same hash: this one takes its place
        SPI_freeplan(k->plan);
        pfree(k->text);
    }
    k->plan = nullptr;
    k->text = nullptr;
    SPIPlanPtr p = nullptr;
    PG_TRY();
    {
        p = SPI_prepare_cursor(text, kArgs, const_cast<Oid*>(kTypes), CURSOR_OPT_GENERIC_PLAN);
        if (!p) elog(ERROR, "could not prepare meter._usage's query: %s", SPI_result_code_string(SPI_result));
        SPI_keepplan(p);
    }
    PG_CATCH();
    {
        hash_search(g_kept, &h, HASH_REMOVE, nullptr);
        PG_RE_THROW();
    }
    PG_END_TRY();
    k->text = MemoryContextStrdup(TopMemoryContext, text);
    k->plan = p;
    return p;
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(meter_usage_run);

// meter_usage_run(query, $1 .. $12): the rows of meter._usage's query, run
// with its kept plan (the function's SET plan_cache_mode keeps the plan
// generic whatever the caller's setting).
Datum meter_usage_run(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0)) elog(ERROR, "meter._usage_run needs a query");
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsi = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    text* q = PG_GETARG_TEXT_PP(0);
    char* sql = text_to_cstring(q);
    Datum values[kArgs];
    char nulls[kArgs];
    for (int i = 0; i < kArgs; ++i) {
        bool n = PG_ARGISNULL(i + 1);
        values[i] = n ? (Datum)0 : PG_GETARG_DATUM(i + 1);
        nulls[i] = n ? 'n' : ' ';
    }
    SPI_connect();
    SPIPlanPtr plan = kept_plan(sql, strlen(sql));
    int rc = SPI_execute_plan(plan, values, nulls, true, 0);
    if (rc != SPI_OK_SELECT) elog(ERROR, "meter._usage's query failed: %s", SPI_result_code_string(rc));
    TupleDesc got = SPI_tuptable->tupdesc;
    bool same = got->natts == rsi->setDesc->natts;
    for (int i = 0; same && i < got->natts; ++i)
        same = TupleDescAttr(got, i)->atttypid == TupleDescAttr(rsi->setDesc, i)->atttypid;
    if (!same) elog(ERROR, "meter._usage's query does not return meter._usage's columns");
    for (uint64 i = 0; i < SPI_processed; ++i)
        tuplestore_puttuple(rsi->setResult, SPI_tuptable->vals[i]);
    SPI_finish();
    return (Datum)0;
}

}  // extern "C"
