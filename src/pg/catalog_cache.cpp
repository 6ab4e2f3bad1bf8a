#include "catalog_cache.hpp"

#include <memory>

#include "bridge.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace pgm::pg {

namespace {

std::unique_ptr<Catalog> g_catalog;
PmWatch g_watch = {{"catalog_providers", "catalog_models", "custom_prices"}, {InvalidOid, InvalidOid, InvalidOid}, true};

void watched_changed(Datum arg, Oid relid) {
    PmWatch* w = reinterpret_cast<PmWatch*>(DatumGetPointer(arg));
    for (Oid o : w->rels)
        if (relid == InvalidOid || o == relid) w->stale = true;
}

// fetch_document runs the SQL that serializes every catalog row (a
// SECURITY DEFINER function, so any caller may price). PostgreSQL calls only.
char* fetch_document() {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    int rc = SPI_execute("SELECT meter._catalog_document()", true, 1);
    if (rc != SPI_OK_SELECT || SPI_processed != 1) elog(ERROR, "could not read the pg_meter catalog");
    bool isnull = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    char* out = nullptr;
    if (!isnull) {
        text* t = DatumGetTextPP(d);
        // copy out of SPI's memory before SPI_finish
        out = static_cast<char*>(SPI_palloc(VARSIZE_ANY_EXHDR(t) + 1));
        memcpy(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
        out[VARSIZE_ANY_EXHDR(t)] = '\0';
    }
    SPI_finish();
    return out;
}

}  // namespace

const Catalog* pm_catalog() {
    if (!g_watch.stale && g_catalog) return g_catalog.get();
    pm_watch_lookup(&g_watch);
    char* doc = fetch_document();
    PmFailure* f = pm_run([&] {
        json::Value v = doc ? json::parse(doc) : json::Value::object();
        g_catalog = Catalog::compile(v);
    });
    if (doc) pfree(doc);
    if (f) pm_raise(f);
    g_watch.stale = false;
    return g_catalog.get();
}

void pm_catalog_register() { pm_watch_register(&g_watch); }

void pm_watch_register(PmWatch* w) { CacheRegisterRelcacheCallback(watched_changed, PointerGetDatum(w)); }

void pm_watch_lookup(PmWatch* w) {
    Oid nsp = get_namespace_oid("meter", true);
    if (!OidIsValid(nsp))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_SCHEMA), errmsg("pg_meter is not installed in this database"),
                        errhint("Run CREATE EXTENSION pg_meter.")));
    for (int i = 0; i < 3; ++i) w->rels[i] = w->tables[i] ? get_relname_relid(w->tables[i], nsp) : InvalidOid;
}

}  // namespace pgm::pg

extern "C" {

PG_FUNCTION_INFO_V1(meter_invalidate_caches);

// meter_invalidate_caches is the statement trigger on the tables that
// backends keep compiled copies of (the catalog, plans, limits, subjects):
// it invalidates the table's relcache entry at commit, so every backend
// loads its copy anew.
Datum meter_invalidate_caches(PG_FUNCTION_ARGS) {
    if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "meter._invalidate_caches must be called as a trigger");
    TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
    CacheInvalidateRelcache(td->tg_relation);
    return PointerGetDatum(nullptr);
}
}
