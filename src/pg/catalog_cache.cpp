#include "catalog_cache.hpp"

#include <memory>

#include "bridge.hpp"
#include "datums.hpp"
#include "jsonb_io.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
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

// CatalogRow is one row of meter._catalog_rows() or meter._catalog_models()
// (SECURITY DEFINER functions, so any caller may price), read with
// PostgreSQL calls: texts and jsonb tokens point into SPI's copy of the rows.
struct CatalogRow {
    int32 kind;  // 1 provider, 2 model, 3 custom price
    int64 version;
    Text source, provider, model, tier, note;
    JFlat data, minimums;  // minimums.toks is nullptr when NULL
    TimestampTz valid_from, valid_to;
};

enum RowCol { rKind = 1, rVersion, rSource, rProvider, rModel, rTier, rData, rMinimums, rNote, rFrom, rTo };

// fetch_rows reads catalog rows: with providers (Datum)0, every provider
// and custom price (meter._catalog_rows()); with a text[] of provider ids,
// those providers' models (meter._catalog_models). SPI stays connected
// (the caller compiles, then calls SPI_finish).
CatalogRow* fetch_rows(Datum providers, uint64* n) {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    Oid argtype = TEXTARRAYOID;
    int rc = providers == (Datum)0
                 ? SPI_execute("SELECT * FROM meter._catalog_rows()", true, 0)
                 : SPI_execute_with_args("SELECT * FROM meter._catalog_models($1)", 1, &argtype, &providers, nullptr,
                                         true, 0);
    if (rc != SPI_OK_SELECT || SPI_tuptable->tupdesc->natts != rTo) elog(ERROR, "could not read the pg_meter catalog");
    *n = SPI_processed;
    CatalogRow* rows = static_cast<CatalogRow*>(palloc0(sizeof(CatalogRow) * (*n + 1)));
    TupleDesc desc = SPI_tuptable->tupdesc;
    for (uint64 i = 0; i < *n; ++i) {
        HeapTuple t = SPI_tuptable->vals[i];
        CatalogRow& r = rows[i];
        bool isnull;
        auto text = [&](int col) {
            Datum d = SPI_getbinval(t, desc, col, &isnull);
            return isnull ? Text{} : text_value(d);
        };
        auto flat = [&](int col) {
            Datum d = SPI_getbinval(t, desc, col, &isnull);
            return isnull ? JFlat{nullptr, 0} : pm_flatten(DatumGetJsonbP(d));
        };
        r.kind = DatumGetInt32(SPI_getbinval(t, desc, rKind, &isnull));
        r.version = DatumGetInt64(SPI_getbinval(t, desc, rVersion, &isnull));
        r.source = text(rSource);
        r.provider = text(rProvider);
        r.model = text(rModel);
        r.tier = text(rTier);
        r.note = text(rNote);
        r.data = flat(rData);
        r.minimums = flat(rMinimums);
        r.valid_from = DatumGetTimestampTz(SPI_getbinval(t, desc, rFrom, &isnull));
        r.valid_to = DatumGetTimestampTz(SPI_getbinval(t, desc, rTo, &isnull));
    }
    return rows;
}

// document is what Catalog::compile reads: {"providers": [...], "models":
// [...], "custom": [...]}, each row an object of its columns. C++ only.
json::Value document(const CatalogRow* rows, uint64 n) {
    json::Value providers = json::Value::array(), models = json::Value::array(), custom = json::Value::array();
    for (uint64 i = 0; i < n; ++i) {
        const CatalogRow& r = rows[i];
        json::Value o = json::Value::object();
        auto put_text = [&](const char* key, Text v) {
            if (!v.is_null()) o.members.emplace_back(key, json::Value::string(std::string(v.p, v.n)));
        };
        o.members.emplace_back("version", json::Value::integer(r.version));
        put_text("source", r.source);
        put_text("provider", r.provider);
        put_text("model", r.model);
        put_text("service_tier", r.tier);
        put_text("note", r.note);
        o.members.emplace_back(r.kind == 3 ? "prices" : "data", pm_unflatten(r.data));
        if (r.minimums.toks) o.members.emplace_back("minimums", pm_unflatten(r.minimums));
        o.members.emplace_back("valid_from", json::Value::integer(to_micros(r.valid_from)));
        o.members.emplace_back("valid_to", json::Value::integer(to_micros(r.valid_to)));
        (r.kind == 1 ? providers : r.kind == 2 ? models : custom).items.push_back(std::move(o));
    }
    json::Value doc = json::Value::object();
    doc.members.emplace_back("providers", std::move(providers));
    doc.members.emplace_back("models", std::move(models));
    doc.members.emplace_back("custom", std::move(custom));
    return doc;
}

}  // namespace

const Catalog* pm_catalog() {
    if (!g_watch.stale && g_catalog) return g_catalog.get();
    pm_watch_lookup(&g_watch);
    uint64 n = 0;
    CatalogRow* rows = fetch_rows((Datum)0, &n);
    PmFailure* f = pm_run([&] { g_catalog = Catalog::compile(document(rows, n), true); });
    SPI_finish();  // the rows' memory goes with it
    if (f) pm_raise(f);
    g_watch.stale = false;
    return g_catalog.get();
}

const Catalog* pm_catalog_read_wanted() {
    if (g_watch.stale || !g_catalog) return pm_catalog();
    const std::vector<std::string>& wanted = g_catalog->wanted();
    int n_ids = static_cast<int>(wanted.size());
    Datum* ids = static_cast<Datum*>(palloc(sizeof(Datum) * (n_ids + 1)));
    for (int i = 0; i < n_ids; ++i)
        ids[i] = PointerGetDatum(cstring_to_text_with_len(wanted[i].data(), static_cast<int>(wanted[i].size())));
    Datum arr = PointerGetDatum(construct_array(ids, n_ids, TEXTOID, -1, false, TYPALIGN_INT));
    uint64 n = 0;
    CatalogRow* rows = fetch_rows(arr, &n);
    if (g_watch.stale) {
        // a change committed since the providers were read: read them again
        SPI_finish();
        return pm_catalog();
    }
    PmFailure* f = pm_run([&] { g_catalog->add_models(*document(rows, n).get("models")); });
    SPI_finish();
    if (f) pm_raise(f);
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
