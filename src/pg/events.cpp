// events.cpp: meter._event_before_insert, the row trigger of meter.events.
//
// Every way in (meter.record, meter.record_batch, a plain INSERT or COPY)
// goes through this trigger: it prices the row with the compiled catalog
// (the usage is stored normalized; a model with no price is stored unpriced
// and flagged, never rejected), and it makes the row idempotent on
// (tenant, request_id) through meter.request_ids, whose primary key
// serializes concurrent retries: the second waits for the first to commit
// and is then skipped (or inserted, if the first aborted).
#include <cstring>
#include <string>

#include "bridge.hpp"
#include "catalog_cache.hpp"
#include "jsonb_io.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
}

using namespace pgm;
using namespace pgm::pg;

namespace {

constexpr int64 kUnixToPgMicros = INT64CONST(946684800000000);

enum Col { cTenant, cProvider, cModel, cUsage, cCached, cTier, cCost, cPotential, cVersion, cPriced, cReason, cRequestId, cEventId, cOccurredAt, cTxid, NCols };
const char* const kColNames[NCols] = {"tenant", "provider", "model", "usage", "cached", "service_tier", "cost",
                                      "potential_cost", "price_version", "priced", "unpriced_reason", "request_id",
                                      "event_id", "occurred_at", "txid"};

// attribute numbers per partition (partitions may differ after dropped columns)
struct AttMap {
    Oid relid;
    int att[NCols];
};
AttMap g_maps[32];
int g_nmaps = 0;

const AttMap* attmap_for(Relation rel) {
    Oid relid = RelationGetRelid(rel);
    for (int i = 0; i < g_nmaps; ++i)
        if (g_maps[i].relid == relid) return &g_maps[i];
    AttMap m;
    m.relid = relid;
    for (int c = 0; c < NCols; ++c) {
        m.att[c] = SPI_fnumber(RelationGetDescr(rel), kColNames[c]);
        if (m.att[c] <= 0) elog(ERROR, "meter.events has no column \"%s\"", kColNames[c]);
    }
    int slot = g_nmaps < 32 ? g_nmaps++ : static_cast<int>(relid % 32);
    g_maps[slot] = m;
    return &g_maps[slot];
}

struct PmText {
    const char* s;
    int len;
};

PmText text_of(HeapTuple t, TupleDesc d, int att, bool* isnull) {
    Datum v = heap_getattr(t, att, d, isnull);
    if (*isnull) return PmText{"", 0};
    text* tx = DatumGetTextPP(v);
    return PmText{VARDATA_ANY(tx), static_cast<int>(VARSIZE_ANY_EXHDR(tx))};
}

struct Outcome {
    bool priced;
    bool has_cost;
    char cost[96];
    char potential[96];
    int64 version;
    char reason[512];
    char usage[16384];
    bool has_usage;
};

Datum numeric_of(const char* s) {
    return DirectFunctionCall3(numeric_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

SPIPlanPtr g_claim = nullptr;  // INSERT INTO meter.request_ids ... ON CONFLICT DO NOTHING

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(meter_event_before_insert);

// meter_event_before_insert prices and deduplicates one event row.
Datum meter_event_before_insert(PG_FUNCTION_ARGS) {
    if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "meter._event_before_insert must be called as a trigger");
    TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
    if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
        elog(ERROR, "meter._event_before_insert must be a BEFORE INSERT row trigger");
    Relation rel = td->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    HeapTuple tup = td->tg_trigtuple;
    const AttMap* m = attmap_for(rel);

    // a row that carries another transaction's id was written before: a
    // restore (pg_restore, COPY of a dump) keeps it exactly as it was
    bool n_txid;
    Datum txid_d = heap_getattr(tup, m->att[cTxid], desc, &n_txid);
    if (!n_txid && DatumGetInt64(txid_d) != static_cast<int64>(U64FromFullTransactionId(GetTopFullTransactionId())))
        return PointerGetDatum(tup);

    bool n_tenant, n_provider, n_model, n_usage, n_cached, n_tier, n_rid, n_at, n_id;
    PmText tenant = text_of(tup, desc, m->att[cTenant], &n_tenant);
    PmText provider = text_of(tup, desc, m->att[cProvider], &n_provider);
    PmText model = text_of(tup, desc, m->att[cModel], &n_model);
    PmText tier = text_of(tup, desc, m->att[cTier], &n_tier);
    Datum usage_d = heap_getattr(tup, m->att[cUsage], desc, &n_usage);
    Datum cached_d = heap_getattr(tup, m->att[cCached], desc, &n_cached);
    Datum rid_d = heap_getattr(tup, m->att[cRequestId], desc, &n_rid);
    Datum at_d = heap_getattr(tup, m->att[cOccurredAt], desc, &n_at);
    Datum id_d = heap_getattr(tup, m->att[cEventId], desc, &n_id);
    if (n_tenant || tenant.len == 0)
        ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION), errmsg("an event needs a tenant"),
                        errhint("Name the project or application the call belongs to.")));
    bool cached = !n_cached && DatumGetBool(cached_d);
    TimestampTz at = n_at ? GetCurrentTransactionStartTimestamp() : DatumGetTimestampTz(at_d);
    Micros at_us = TIMESTAMP_IS_NOBEGIN(at) ? kMinTime : TIMESTAMP_IS_NOEND(at) ? kMaxTime : at + kUnixToPgMicros;
    JFlat usage = n_usage ? JFlat{nullptr, 0} : pm_flatten(DatumGetJsonbP(usage_d));

    Outcome* o = static_cast<Outcome*>(palloc0(sizeof(Outcome)));
    if (n_model || model.len == 0) {
        // a request that called no model (a /health check): counted, costs nothing
        o->priced = true;
        o->has_cost = true;
        strcpy(o->cost, "0");
        strcpy(o->potential, "0");
    } else {
        const Catalog* cat = pm_catalog();
        PmFailure* f = pm_run([&] {
            json::Value u = n_usage ? json::Value::object() : pm_unflatten(usage);
            std::string_view pv(provider.s, static_cast<size_t>(provider.len));
            std::string_view tv = n_tier ? std::string_view("standard") : std::string_view(tier.s, static_cast<size_t>(tier.len));
            try {
                PriceRequest r;
                r.provider = pv;
                r.model = std::string_view(model.s, static_cast<size_t>(model.len));
                r.usage = &u;
                r.at = at_us;
                r.tier = tv;
                Priced p = cat->price(r);
                o->priced = true;
                o->has_cost = true;
                std::string full = p.total.to_string();
                if (full.size() >= sizeof o->cost) throw Error(Code::Overflow, "cost too long");
                strcpy(o->potential, full.c_str());
                strcpy(o->cost, cached ? "0" : full.c_str());
                o->version = p.quote.version;
                std::string nu = json::dump(p.usage.to_json());
                if (nu.size() >= sizeof o->usage) throw Error(Code::Overflow, "usage too large");
                strcpy(o->usage, nu.c_str());
                o->has_usage = true;
            } catch (const Error& e) {
                if (e.code != Code::NoPrice && e.code != Code::UnknownProvider) throw;
                // nothing lost: recorded unpriced, with why, to be priced later
                o->priced = false;
                std::string why = e.message.substr(0, sizeof o->reason - 1);
                strcpy(o->reason, why.c_str());
                Usage nu = cat->normalize(pv, u, at_us);
                std::string t = json::dump(nu.to_json());
                if (t.size() >= sizeof o->usage) throw Error(Code::Overflow, "usage too large");
                strcpy(o->usage, t.c_str());
                o->has_usage = true;
            }
        });
        if (f) pm_raise(f);
    }

    // idempotency: claim (tenant, request_id) first; a claimed one is a duplicate
    if (!n_rid) {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        if (!g_claim) {
            Oid types[7] = {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, NUMERICOID, NUMERICOID, INT8OID};
            SPIPlanPtr plan = SPI_prepare(
                "INSERT INTO meter.request_ids (tenant, request_id, event_id, occurred_at, cost, potential_cost, price_version) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, request_id) DO NOTHING",
                7, types);
            if (!plan) elog(ERROR, "could not prepare the request id claim");
            SPI_keepplan(plan);
            g_claim = plan;
        }
        Datum vals[7];
        char nulls[8] = "       ";
        vals[0] = PointerGetDatum(cstring_to_text_with_len(tenant.s, tenant.len));
        vals[1] = rid_d;
        vals[2] = id_d;
        if (n_id) nulls[2] = 'n';
        vals[3] = TimestampTzGetDatum(at);
        if (o->has_cost) {
            vals[4] = numeric_of(o->cost);
            vals[5] = numeric_of(o->potential);
        } else {
            nulls[4] = 'n';
            nulls[5] = 'n';
        }
        vals[6] = Int64GetDatum(o->version);
        if (o->version == 0) nulls[6] = 'n';
        int rc = SPI_execute_plan(g_claim, vals, nulls, false, 0);
        if (rc != SPI_OK_INSERT) elog(ERROR, "could not claim the request id");
        bool duplicate = SPI_processed == 0;
        SPI_finish();
        if (duplicate) return PointerGetDatum(nullptr);  // counted once: skip the retry
    }

    int cols[6];
    Datum vals[6];
    bool nulls[6] = {false, false, false, false, false, false};
    cols[0] = m->att[cPriced];
    vals[0] = BoolGetDatum(o->priced);
    cols[1] = m->att[cCost];
    cols[2] = m->att[cPotential];
    if (o->has_cost) {
        vals[1] = numeric_of(o->cost);
        vals[2] = numeric_of(o->potential);
    } else {
        nulls[1] = nulls[2] = true;
    }
    cols[3] = m->att[cVersion];
    vals[3] = Int64GetDatum(o->version);
    nulls[3] = o->version == 0;
    cols[4] = m->att[cReason];
    nulls[4] = o->reason[0] == '\0';
    vals[4] = nulls[4] ? Datum(0) : CStringGetTextDatum(o->reason);
    cols[5] = m->att[cUsage];
    nulls[5] = !o->has_usage;
    vals[5] = o->has_usage ? DirectFunctionCall1(jsonb_in, CStringGetDatum(o->usage)) : Datum(0);
    int n = o->has_usage || n_usage ? 6 : 5;  // keep the raw usage when it could not be read
    HeapTuple out = heap_modify_tuple_by_cols(tup, desc, n, cols, vals, nulls);
    return PointerGetDatum(out);
}

}  // extern "C"
