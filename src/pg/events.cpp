// events.cpp: the way events get into meter.events.
//
// Every way in (meter.record, meter.record_batch, a plain INSERT or COPY)
// goes through the row trigger meter._event_before_insert: it makes the
// row idempotent on (tenant, request_id) (request_ids.hpp), prices it with
// the compiled catalog (the usage is stored normalized, its token meters
// also as columns; a model with no price is stored unpriced and flagged,
// never rejected), and fills the columns in place. meter.record does the
// same work itself and inserts into the partition directly when nothing
// but pg_meter acts on the table; otherwise it runs one kept INSERT plan
// and answers what the trigger did.
#include <algorithm>
#include <cstring>
#include <utility>
#include <string>

#include "bridge.hpp"
#include "catalog_cache.hpp"
#include "datums.hpp"
#include "events.hpp"
#include "jsonb_io.hpp"
#include "quotas.hpp"
#include "request_ids.hpp"

extern "C" {
#include "postgres.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "storage/proc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
}

using namespace pgm;
using namespace pgm::pg;

namespace {

// every column of meter.events, in table order
enum Col {
    cEventId, cTenant, cSubject, cSession, cProvider, cModel, cEndpoint, cFeature, cUsage, cInput, cOutput,
    cCacheRead, cCacheWrite, cCached, cTier, cCost, cPotential, cVersion, cPriced, cReason, cLatency, cTtft,
    cSuccess, cError, cErrorMessage, cRequestId, cRequestKey, cMetadata, cOccurredAt, cReceivedAt, cTxid, NCols
};
const char* const kColNames[NCols] = {
    "event_id",       "tenant",         "subject",         "session",       "provider",
    "model",          "endpoint",       "feature",         "usage",         "input_tokens",
    "output_tokens",  "cache_read_tokens", "cache_write_tokens", "cached",  "service_tier",
    "cost",           "potential_cost", "price_version",   "priced",        "unpriced_reason",
    "latency_ms",     "ttft_ms",        "success",         "error",         "error_message",
    "request_id",     "request_key",    "metadata",        "occurred_at",   "received_at",
    "txid"};

// the type pg_meter reads and writes in each column
const Oid kColTypes[NCols] = {
    INT8OID,  TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,  TEXTOID, TEXTOID,     JSONBOID,    INT8OID, INT8OID,
    INT8OID,  INT8OID, BOOLOID, TEXTOID, NUMERICOID, NUMERICOID, INT8OID, BOOLOID, TEXTOID, INT4OID, INT4OID,
    BOOLOID,  TEXTOID, TEXTOID, TEXTOID, INT8OID,  JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID};

// attribute numbers per partition (partitions may differ after dropped
// columns); exact says the partition has these columns and no other, so
// meter.record may form its rows directly
struct AttMap {
    Oid relid;
    int att[NCols];
    bool exact;
};
constexpr int kMaxMaps = 64;
AttMap g_maps[kMaxMaps];
int g_nmaps = 0;

const AttMap* attmap_for(Relation rel) {
    Oid relid = RelationGetRelid(rel);
    for (int i = 0; i < g_nmaps; ++i)
        if (g_maps[i].relid == relid) return &g_maps[i];
    AttMap m;
    m.relid = relid;
    TupleDesc d = RelationGetDescr(rel);
    for (int c = 0; c < NCols; ++c) {
        m.att[c] = SPI_fnumber(d, kColNames[c]);
        if (m.att[c] <= 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN), errmsg("meter.events has no column \"%s\"", kColNames[c]),
                            errhint("pg_meter writes every column it created; restore it, or make the extension anew.")));
        Oid t = TupleDescAttr(d, m.att[c] - 1)->atttypid;
        if (t != kColTypes[c])
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("column \"%s\" of meter.events has type %s", kColNames[c], format_type_be(t)),
                            errdetail("pg_meter writes it as %s.", format_type_be(kColTypes[c])),
                            errhint("Change the column back to that type.")));
    }
    int live = 0;
    for (int i = 0; i < d->natts; ++i)
        if (!TupleDescAttr(d, i)->attisdropped) ++live;
    m.exact = live == NCols;
    int slot = g_nmaps < kMaxMaps ? g_nmaps++ : static_cast<int>(relid % kMaxMaps);
    g_maps[slot] = m;
    return &g_maps[slot];
}

// text_of reads a text column of a deformed row (NULL as a NULL Text).
Text text_of(const Datum* vals, const bool* nulls, int att) { return nulls[att - 1] ? Text{} : text_value(vals[att - 1]); }

// check_times refuses a negative latency or time to first token.
void check_times(bool n_latency, int32 latency, bool n_ttft, int32 ttft) {
    if ((!n_latency && latency < 0) || (!n_ttft && ttft < 0)) {
        bool lat = !n_latency && latency < 0;
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s is negative", lat ? "latency_ms" : "ttft_ms"),
                        errdetail("The value is %d.", lat ? latency : ttft),
                        errhint("Times are milliseconds, zero or more.")));
    }
}

void check_tenant(Text tenant) {
    bool isnull = tenant.is_null();
    if (isnull || tenant.n == 0)
        ereport(ERROR, (errcode(isnull ? ERRCODE_NOT_NULL_VIOLATION : ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("an event needs a tenant"), errdetail("The tenant is %s.", isnull ? "NULL" : "empty"),
                        errhint("Name the project or application the call belongs to.")));
}

// check_labels refuses a label of more than 512 bytes, as pricing refuses
// a longer provider or model name: the hourly rollup keeps tenant,
// provider, model, endpoint and feature in one btree key, which holds at
// most 2,704 bytes, so a longer label would stop every later rollup.
void check_labels(Text tenant, Text subject, Text session, Text provider, Text model, Text endpoint, Text feature) {
    constexpr int kMax = 512;
    const std::pair<const char*, Text> labels[] = {{"tenant", tenant},     {"subject", subject},   {"session", session},
                                                   {"provider", provider}, {"model", model},       {"endpoint", endpoint},
                                                   {"feature", feature}};
    for (auto& [field, t] : labels)
        if (t.n > static_cast<size_t>(kMax))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s is too long", field),
                            errdetail("It has %zu bytes; at most %d are accepted.", t.n, kMax),
                            errhint("Labels name a project, user, session, endpoint or feature; keep longer "
                                    "text in metadata.")));
}

// check_time refuses an event at -infinity or infinity: no hour holds it,
// so no rollup or read would ever count it.
void check_time(TimestampTz at) {
    if (TIMESTAMP_NOT_FINITE(at))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("occurred_at must be a finite time"),
                        errdetail("The time is %s.", TIMESTAMP_IS_NOBEGIN(at) ? "-infinity" : "infinity")));
}

// g_rolled_lxid is the local transaction that ran meter.rollup(): its
// watermark already counts this transaction as done, so an event it wrote
// afterwards would never be rolled up or read as tail.
LocalTransactionId g_rolled_lxid = InvalidLocalTransactionId;

void check_not_rolled_here() {
    if (g_rolled_lxid == MyProc->lxid && g_rolled_lxid != InvalidLocalTransactionId)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("cannot record an event after meter.rollup() in the same transaction"),
                        errdetail("The rollup's watermark counts this transaction as finished."),
                        errhint("Record events in a transaction of their own, or before the rollup.")));
}

// Outcome is what pricing decided for a row, as plain data (one per
// backend: the trigger is not reentrant).
struct Outcome {
    bool priced;
    bool has_cost;
    PmMoney cost;
    PmMoney potential;
    int64 version;
    char reason[512];
    bool has_usage;
    PmUsage usage;
    TokenCounts tokens;
    __int128 cost_pico;  // what budgets count (0 unpriced)
};
Outcome g_out;

// the event a skipped retry duplicated, for meter.record's answer
PmDuplicate g_dup;

// price_row prices one event into g_out. PostgreSQL calls before and after
// the bridge only.
// A NULL model is a request that called no model; a NULL tier is the
// standard one.
void price_row(Text provider, Text model, Text tier, const JFlat& usage, bool n_usage, bool cached, Micros at_us) {
    Outcome* o = &g_out;
    o->priced = false;
    o->has_cost = false;
    o->version = 0;
    o->reason[0] = '\0';
    o->has_usage = false;
    o->tokens = TokenCounts{};
    o->cost_pico = 0;
    if (model.n == 0) {
        // a request that called no model (a /health check): counted, costs nothing
        o->priced = true;
        o->has_cost = true;
        o->cost = PmMoney{true, 0, 0, {0}};
        o->potential = o->cost;
        return;
    }
    const Catalog* cat = pm_catalog();
    PmFailure* f = pm_run_pricing(cat, [&] {
        json::Value u = n_usage ? json::Value::object() : pm_unflatten(usage);
        std::string_view pv = provider.view();
        std::string_view tv = tier.is_null() ? std::string_view("standard") : tier.view();
        PriceRequest r;
        r.provider = pv;
        r.model = model.view();
        r.usage = &u;
        r.at = at_us;
        r.tier = tv;
        std::optional<Error> why;
        std::optional<Priced> p = cat->try_price(r, why);
        if (p) {
            money_out(p->total, &o->potential);
            o->cost = cached ? PmMoney{true, 0, 0, {0}} : o->potential;
            o->cost_pico = cached ? 0 : to_native(p->total.pico);
            o->version = p->quote.version;
            o->tokens = token_counts(p->usage);
            usage_out(p->usage, &o->usage);
            o->has_usage = true;
            o->has_cost = true;
            o->priced = true;
        } else {
            // nothing lost: recorded unpriced, with why, to be priced later
            put(o->reason, sizeof o->reason, std::string_view(why->message).substr(0, sizeof o->reason - 1));
            Usage nu = cat->normalize(pv, u, at_us);
            o->tokens = token_counts(nu);
            usage_out(nu, &o->usage);
            o->has_usage = true;
        }
    });
    if (f) pm_raise(f);
}

// same_usage says whether a usage object as given is already its
// normalized form: the same keys, each with the same whole number (jsonb
// keeps keys in one order, but pricing lists them in its own).
bool same_usage(const JFlat& raw, const PmUsage* u) {
    if (raw.n != 2 + 2 * u->n || raw.toks[0].kind != ObjBegin || raw.toks[raw.n - 1].kind != ObjEnd) return false;
    for (int j = 0; j < u->n; ++j) {
        const JTok& k = raw.toks[1 + 2 * j];
        const JTok& v = raw.toks[2 + 2 * j];
        if (k.kind != Key || v.kind != Number || v.text != nullptr) return false;
    }
    for (int i = 0; i < u->n; ++i) {
        const PmUsage::Meter& m = u->meters[i];
        if (!m.whole) return false;
        bool found = false;
        for (int j = 0; j < u->n && !found; ++j) {
            const JTok& k = raw.toks[1 + 2 * j];
            found = k.len == m.key_len && memcmp(k.text, m.key, static_cast<size_t>(k.len)) == 0;
            if (found && raw.toks[2 + 2 * j].ival != m.ival) return false;
        }
        if (!found) return false;
    }
    return true;
}

// priced_columns fills what the trigger and the direct path compute: the
// outcome of pricing, the token columns and the request key. The row's
// usage is replaced by the normalized one unless it is that already.
int priced_columns(const AttMap* m, const Outcome* o, bool has_key, int64 key, const JFlat& usage, bool usage_null,
                   int* cols, Datum* vals, bool* nulls) {
    int n = 0;
    auto set = [&](Col c, Datum v, bool isnull) {
        cols[n] = m->att[c];
        vals[n] = v;
        nulls[n] = isnull;
        ++n;
    };
    set(cPriced, BoolGetDatum(o->priced), false);
    set(cCost, o->has_cost ? money_datum(&o->cost) : Datum(0), !o->has_cost);
    set(cPotential, o->has_cost ? money_datum(&o->potential) : Datum(0), !o->has_cost);
    set(cVersion, Int64GetDatum(o->version), o->version == 0);
    set(cReason, o->reason[0] ? CStringGetTextDatum(o->reason) : Datum(0), o->reason[0] == '\0');
    set(cRequestKey, Int64GetDatum(key), !has_key);
    set(cInput, Int64GetDatum(o->tokens.input), false);
    set(cOutput, Int64GetDatum(o->tokens.output), false);
    set(cCacheRead, Int64GetDatum(o->tokens.cache_read), false);
    set(cCacheWrite, Int64GetDatum(o->tokens.cache_write), false);
    // the usage is stored normalized; kept raw when it could not be read
    bool normal = !usage_null && o->has_usage && same_usage(usage, &o->usage);
    if (!normal && (o->has_usage || usage_null))
        set(cUsage, o->has_usage ? usage_datum(&o->usage) : Datum(0), !o->has_usage);
    return n;
}

// count hands a priced event (g_out) to its tenant's budgets.
void count(Text tenant, Text subject, Text session, Text endpoint, TimestampTz at) {
    PmEvent e;
    e.tenant = tenant;
    e.subject = subject;
    e.session = session;
    e.endpoint = endpoint;
    e.at = at;
    e.input = g_out.tokens.input;
    e.output = g_out.tokens.output;
    e.cost = g_out.cost_pico;
    pm_count_event(e);
}

// Events caches what meter.record's direct path needs of meter.events.
struct EventsInfo {
    Oid relid = InvalidOid;
    Oid seq = InvalidOid;            // meter.event_id_seq
    AttrNumber occurred_at = 0;      // its column in meter.events
};
EventsInfo g_events;

SPIPlanPtr g_record = nullptr;  // meter.record's INSERT ... RETURNING, when the direct path cannot serve

enum Arg {
    aTenant, aProvider, aModel, aUsage, aSubject, aSession, aEndpoint, aFeature, aCached, aLatency, aTtft,
    aSuccess, aError, aErrorMessage, aRequestId, aOccurredAt, aMetadata, aTier, aReservation, NArgs
};
constexpr int NInsert = aReservation;  // the arguments that are columns

// RecordAnswer is meter.recorded as Datums.
struct RecordAnswer {
    Datum v[6];
    bool n[6];
    bool skipped;
};

void answer_duplicate(RecordAnswer* r) {
    r->v[0] = Int64GetDatum(g_dup.event_id);
    r->v[1] = g_dup.cost;
    r->n[1] = g_dup.cost == Datum(0);
    r->v[2] = g_dup.potential_cost;
    r->n[2] = g_dup.potential_cost == Datum(0);
    r->v[3] = BoolGetDatum(true);
    r->v[4] = BoolGetDatum(g_dup.priced);
    r->v[5] = Int64GetDatum(g_dup.price_version);
    r->n[5] = g_dup.price_version == 0;
}

// route finds the leaf partition of meter.events for an event time, as the
// executor's tuple routing does; InvalidOid when the direct path cannot
// route (another partitioning scheme, a sub-partitioned leaf) or no
// partition takes the time.
Oid route(Relation events, AttrNumber occurred_at, Datum at) {
    PartitionKey key = RelationGetPartitionKey(events);
    if (key->strategy != PARTITION_STRATEGY_RANGE || key->partnatts != 1 || key->partattrs[0] != occurred_at)
        return InvalidOid;
    PartitionDesc pd = RelationGetPartitionDesc(events, true);
    if (pd->nparts == 0) return InvalidOid;
    PartitionBoundInfo bi = pd->boundinfo;
    bool equal = false;
    int off = partition_range_datum_bsearch(key->partsupfunc, key->partcollation, bi, 1, &at, &equal);
    int idx = bi->indexes[off + 1];
    if (idx < 0) idx = bi->default_index;
    if (idx < 0) return InvalidOid;
    return pd->is_leaf[idx] ? pd->oids[idx] : InvalidOid;
}

// direct_ok says whether meter.record may insert into the partition itself:
// only pg_meter's own trigger, no row security, no CHECK constraint, no
// rule, no column of the user's (the caller also refuses deferred
// uniqueness), so that the direct insert does exactly what the INSERT would.
bool direct_ok(Relation events, Relation part, const AttMap* m) {
    auto only_ours = [](Relation r, int expect) {
        TriggerDesc* t = r->trigdesc;
        int n = t ? t->numtriggers : 0;
        if (n != expect) return false;
        return n == 0 || strcmp(t->triggers[0].tgname, "event_priced") == 0;
    };
    if (part->rd_rel->relkind != RELKIND_RELATION || part->rd_tableam == nullptr) return false;
    if (!m->exact || !only_ours(events, 1) || !only_ours(part, 1)) return false;
    if (events->rd_rel->relrowsecurity || part->rd_rel->relrowsecurity) return false;
    if (part->rd_att->constr && part->rd_att->constr->num_check > 0) return false;
    if (part->rd_rules || events->rd_rules) return false;
    return true;
}

// record_direct inserts the event into its partition with table AM and
// index calls: what INSERT does, without planning and starting an executor
// for one row. Returns false (having done nothing) when it cannot serve.
bool record_direct(FunctionCallInfo fcinfo, RecordAnswer* r) {
    // locals: opening a relation may run the invalidation callback, which
    // forgets the cached oids
    Oid relid = pm_events_oid();
    if (g_events.relid != relid) {
        g_events.seq = get_relname_relid("event_id_seq", get_rel_namespace(relid));
        g_events.occurred_at = get_attnum(relid, "occurred_at");
        g_events.relid = relid;
    }
    Oid seq = g_events.seq;
    AttrNumber occurred_at = g_events.occurred_at;
    if (!OidIsValid(seq)) return false;
    // without INSERT on the whole table (column grants, or none) the INSERT
    // path checks and reports exactly what PostgreSQL would
    if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK) return false;
    Relation events = table_open(relid, RowExclusiveLock);
    Datum at = PG_ARGISNULL(aOccurredAt) ? TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())
                                         : PG_GETARG_DATUM(aOccurredAt);
    check_time(DatumGetTimestampTz(at));
    Oid partoid = route(events, occurred_at, at);
    if (!OidIsValid(partoid)) {
        table_close(events, NoLock);
        return false;  // the INSERT routes it, or reports that no partition takes it
    }
    Relation part = table_open(partoid, RowExclusiveLock);
    const AttMap* m = attmap_for(part);
    // the partition's indexes, as the executor opens them for an INSERT
    EState* estate = CreateExecutorState();
    ResultRelInfo* rri = makeNode(ResultRelInfo);
    InitResultRelInfo(rri, part, 1, nullptr, 0);
    ExecOpenIndices(rri, false);
    bool ok = direct_ok(events, part, m);
    for (int i = 0; ok && i < rri->ri_NumIndices; ++i)
        ok = rri->ri_IndexRelationDescs[i]->rd_index->indimmediate;  // deferred uniqueness needs the after-trigger queue
    if (!ok) {
        ExecCloseIndices(rri);
        FreeExecutorState(estate);
        table_close(part, NoLock);
        table_close(events, NoLock);
        return false;
    }

    pm_release_claim();
    check_not_rolled_here();
    Text tenant = text_arg(fcinfo, aTenant);
    check_tenant(tenant);
    Text subject = text_arg(fcinfo, aSubject), session = text_arg(fcinfo, aSession),
         provider = text_arg(fcinfo, aProvider), model = text_arg(fcinfo, aModel),
         endpoint = text_arg(fcinfo, aEndpoint);
    check_labels(tenant, subject, session, provider, model, endpoint, text_arg(fcinfo, aFeature));
    int64 key = 0;
    bool has_key = !PG_ARGISNULL(aRequestId);
    if (has_key) {
        Text rid = text_arg(fcinfo, aRequestId);
        key = pm_request_key(tenant, rid);
        g_dup.answer_cxt = CurrentMemoryContext;
        bool fresh = pm_claim_request(part, key, tenant, rid, &g_dup);
        g_dup.answer_cxt = nullptr;
        if (!fresh) {
            ExecCloseIndices(rri);
            FreeExecutorState(estate);
            table_close(part, NoLock);
            table_close(events, NoLock);
            answer_duplicate(r);
            return true;
        }
    }

    bool n_usage = PG_ARGISNULL(aUsage);
    JFlat usage = n_usage ? JFlat{nullptr, 0} : pm_flatten(PG_GETARG_JSONB_P(aUsage));
    bool cached = !PG_ARGISNULL(aCached) && PG_GETARG_BOOL(aCached);
    price_row(provider, model, text_arg(fcinfo, aTier), usage, n_usage, cached,
              to_micros(DatumGetTimestampTz(at)));

    TupleDesc desc = RelationGetDescr(part);
    Datum* vals = static_cast<Datum*>(palloc0(sizeof(Datum) * static_cast<size_t>(desc->natts)));
    bool* nulls = static_cast<bool*>(palloc(sizeof(bool) * static_cast<size_t>(desc->natts)));
    memset(nulls, true, static_cast<size_t>(desc->natts));
    auto set = [&](Col c, Datum v) {
        vals[m->att[c] - 1] = v;
        nulls[m->att[c] - 1] = false;
    };
    auto arg = [&](Col c, int a) {
        if (!PG_ARGISNULL(a)) set(c, PG_GETARG_DATUM(a));
    };
    int64 event_id = nextval_internal(seq, true);
    set(cEventId, Int64GetDatum(event_id));
    arg(cTenant, aTenant);
    arg(cSubject, aSubject);
    arg(cSession, aSession);
    arg(cProvider, aProvider);
    arg(cModel, aModel);
    arg(cEndpoint, aEndpoint);
    arg(cFeature, aFeature);
    arg(cUsage, aUsage);
    set(cCached, BoolGetDatum(cached));
    set(cTier, PG_ARGISNULL(aTier) ? CStringGetTextDatum("standard") : PG_GETARG_DATUM(aTier));
    arg(cLatency, aLatency);
    arg(cTtft, aTtft);
    set(cSuccess, BoolGetDatum(PG_ARGISNULL(aSuccess) || PG_GETARG_BOOL(aSuccess)));
    arg(cError, aError);
    arg(cErrorMessage, aErrorMessage);
    arg(cRequestId, aRequestId);
    arg(cMetadata, aMetadata);
    set(cOccurredAt, at);
    set(cReceivedAt, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
    set(cTxid, Int64GetDatum(static_cast<int64>(U64FromFullTransactionId(GetTopFullTransactionId()))));
    int cols[NCols];
    Datum pv[NCols];
    bool pn[NCols];
    int n = priced_columns(m, &g_out, has_key, key, usage, n_usage, cols, pv, pn);
    for (int i = 0; i < n; ++i) {
        vals[cols[i] - 1] = pv[i];
        nulls[cols[i] - 1] = pn[i];
    }
    // values longer than a page's share go out of line, as in any insert
    HeapTuple tup = heap_form_tuple(desc, vals, nulls);

    TupleTableSlot* slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsHeapTuple);
    ExecStoreHeapTuple(tup, slot, false);
    // NOT NULL as the INSERT checks it (a constraint of the user's included)
    ExecConstraints(rri, slot, estate);
    table_tuple_insert(part, slot, GetCurrentCommandId(true), 0, nullptr);
    if (rri->ri_NumIndices > 0) {
        List* recheck = ExecInsertIndexTuples(rri, slot, estate, false, false, nullptr, NIL);
        list_free(recheck);
    }
    ExecCloseIndices(rri);
    ExecResetTupleTable(estate->es_tupleTable, false);
    FreeExecutorState(estate);
    table_close(part, NoLock);
    table_close(events, NoLock);
    count(tenant, subject, session, endpoint, DatumGetTimestampTz(at));

    // the answer is what the row holds
    auto stored = [&](Col c, Datum* v, bool* isnull) {
        *v = vals[m->att[c] - 1];
        *isnull = nulls[m->att[c] - 1];
    };
    r->v[0] = Int64GetDatum(event_id);
    stored(cCost, &r->v[1], &r->n[1]);
    stored(cPotential, &r->v[2], &r->n[2]);
    r->v[3] = BoolGetDatum(false);
    stored(cPriced, &r->v[4], &r->n[4]);
    stored(cVersion, &r->v[5], &r->n[5]);
    return true;
}

// record_spi records through a kept INSERT plan, so that the user's
// triggers, policies, constraints and columns apply; the trigger answers.
void record_spi(FunctionCallInfo fcinfo, RecordAnswer* r) {
    Datum vals[NInsert];
    char nulls[NInsert + 1];
    for (int a = 0; a < NInsert; ++a) {
        vals[a] = PG_ARGISNULL(a) ? Datum(0) : PG_GETARG_DATUM(a);
        nulls[a] = PG_ARGISNULL(a) ? 'n' : ' ';
    }
    nulls[NInsert] = '\0';
    // the defaults of the SQL signature, also for explicit NULLs
    auto fill = [&](int a, Datum d) {
        if (nulls[a] == 'n') {
            vals[a] = d;
            nulls[a] = ' ';
        }
    };
    fill(aCached, BoolGetDatum(false));
    fill(aSuccess, BoolGetDatum(true));
    fill(aOccurredAt, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
    fill(aTier, CStringGetTextDatum("standard"));
    MemoryContext upper = CurrentMemoryContext;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    if (!g_record) {
        Oid types[NInsert] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID,
                            INT4OID, INT4OID, BOOLOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, JSONBOID, TEXTOID};
        SPIPlanPtr plan = SPI_prepare(
            "INSERT INTO meter.events (tenant, provider, model, usage, subject, session, endpoint, feature, cached, "
            "latency_ms, ttft_ms, success, error, error_message, request_id, occurred_at, metadata, service_tier) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) "
            "RETURNING event_id, cost, potential_cost, priced, price_version",
            NInsert, types);
        if (!plan) elog(ERROR, "could not prepare meter.record's insert");
        SPI_keepplan(plan);
        g_record = plan;
    }
    g_dup.found = false;
    g_dup.answer_cxt = upper;  // the trigger copies a duplicate's answer here
    int rc;
    PG_TRY();
    { rc = SPI_execute_plan(g_record, vals, nulls, false, 1); }
    PG_FINALLY();
    { g_dup.answer_cxt = nullptr; }
    PG_END_TRY();
    if (rc != SPI_OK_INSERT_RETURNING) elog(ERROR, "meter.record's insert failed (%d)", rc);
    if (SPI_processed == 1) {
        HeapTuple t = SPI_tuptable->vals[0];
        TupleDesc d = SPI_tuptable->tupdesc;
        bool isnull;
        MemoryContext old = MemoryContextSwitchTo(upper);
        r->v[0] = SPI_getbinval(t, d, 1, &r->n[0]);
        Datum c = SPI_getbinval(t, d, 2, &r->n[1]);
        r->v[1] = r->n[1] ? Datum(0) : datumCopy(c, false, -1);
        Datum p = SPI_getbinval(t, d, 3, &r->n[2]);
        r->v[2] = r->n[2] ? Datum(0) : datumCopy(p, false, -1);
        r->v[3] = BoolGetDatum(false);
        r->v[4] = SPI_getbinval(t, d, 4, &isnull);
        r->v[5] = SPI_getbinval(t, d, 5, &r->n[5]);
        MemoryContextSwitchTo(old);
    } else if (g_dup.found) {
        answer_duplicate(r);  // the trigger skipped a retry
    } else {
        r->skipped = true;  // a trigger of the user's skipped the row
    }
    SPI_finish();
}

// meter.record's result descriptor, for the function it was looked up for
PmResultDesc g_result;

// relcache_changed forgets the column maps, meter.events' oid and the
// result descriptor: a column added or dropped, a partition replaced or
// the extension made anew changes them.
void relcache_changed(Datum, Oid) {
    g_nmaps = 0;
    g_events.relid = InvalidOid;
    g_result.fn = InvalidOid;
}

// TriggersSeen is the most BEFORE INSERT row triggers the relcache has
// shown for a partition in the current transaction.
struct TriggersSeen {
    Oid relid;
    LocalTransactionId lxid;
    int most;
};
TriggersSeen g_seen[16];

// only_before_insert_row says that pg_meter's trigger is the only BEFORE
// INSERT row trigger of a partition (no other one reads the tuple after it),
// and has been all along this transaction. The executor runs the triggers
// of its own copy of the list, made when the statement first routed a row
// to the partition; the relcache shows the list as it is now. A statement
// that drops another trigger after its first row (DROP TRIGGER in a
// function it calls) would still run that trigger after pg_meter's, on the
// tuple the in-place path has freed; once the relcache has shown two in
// the transaction, rows take the other path, which every later trigger
// reads safely. Past 16 partitions in one transaction, so do the others.
bool only_before_insert_row(Relation rel) {
    TriggerDesc* t = rel->trigdesc;
    int n = 0;
    for (int i = 0; t && i < t->numtriggers; ++i)
        if (TRIGGER_TYPE_MATCHES(t->triggers[i].tgtype, TRIGGER_TYPE_ROW, TRIGGER_TYPE_BEFORE, TRIGGER_TYPE_INSERT)) ++n;
    Oid relid = RelationGetRelid(rel);
    LocalTransactionId lxid = MyProc->lxid;
    TriggersSeen* unused = nullptr;
    for (TriggersSeen& s : g_seen) {
        if (s.lxid == lxid && s.relid == relid) {
            s.most = std::max(s.most, n);
            return s.most == 1;
        }
        if (s.lxid != lxid && !unused) unused = &s;
    }
    if (!unused) return false;
    *unused = TriggersSeen{relid, lxid, n};
    return n == 1;
}

}  // namespace

void pgm::pg::pm_events_register() { CacheRegisterRelcacheCallback(relcache_changed, (Datum)0); }

extern "C" {

PG_FUNCTION_INFO_V1(meter_event_before_insert);
PG_FUNCTION_INFO_V1(meter_record);
PG_FUNCTION_INFO_V1(meter_rollup_mark);
PG_FUNCTION_INFO_V1(meter_price_event);

// meter_price_event prices a stored event again the way it was priced on
// the way in (meter._price_event(provider, model, usage, service_tier,
// cached, occurred_at)): cost, potential cost, price version, priced and
// why not. meter.reprice() calls it.
Datum meter_price_event(PG_FUNCTION_ARGS) {
    bool n_usage = PG_ARGISNULL(2);
    JFlat usage = n_usage ? JFlat{nullptr, 0} : pm_flatten(PG_GETARG_JSONB_P(2));
    bool cached = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);
    if (PG_ARGISNULL(5)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("occurred_at is null")));
    price_row(text_arg(fcinfo, 0), text_arg(fcinfo, 1), text_arg(fcinfo, 3), usage, n_usage, cached,
              to_micros(PG_GETARG_TIMESTAMPTZ(5)));
    const Outcome* o = &g_out;
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "meter._price_event must return a composite");
    Datum v[5];
    bool n[5] = {!o->has_cost, !o->has_cost, o->version == 0, false, o->reason[0] == '\0'};
    v[0] = o->has_cost ? money_datum(&o->cost) : Datum(0);
    v[1] = o->has_cost ? money_datum(&o->potential) : Datum(0);
    v[2] = Int64GetDatum(o->version);
    v[3] = BoolGetDatum(o->priced);
    v[4] = o->reason[0] ? CStringGetTextDatum(o->reason) : Datum(0);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, n)));
}

// meter_rollup_mark notes that this transaction runs meter.rollup(), so
// that an event it records afterwards is refused instead of lost.
Datum meter_rollup_mark(PG_FUNCTION_ARGS) {
    g_rolled_lxid = MyProc->lxid;
    PG_RETURN_VOID();
}

// meter_event_before_insert deduplicates and prices one event row.
Datum meter_event_before_insert(PG_FUNCTION_ARGS) {
    if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "meter._event_before_insert must be called as a trigger");
    TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
    if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
        elog(ERROR, "meter._event_before_insert must be a BEFORE INSERT row trigger");
    Relation rel = td->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    HeapTuple tup = td->tg_trigtuple;
    const AttMap* m = attmap_for(rel);
    // the previous row of this statement is in, index entry and all
    pm_release_claim();

    // A virtual slot (COPY, INSERT ... SELECT and VALUES into meter.events,
    // routed to a partition of the same columns) is changed in place: the
    // insert forms its row from the slot, so the row is neither taken apart
    // nor formed again here (200,000 rows by COPY: 1.80 s -> 1.55 s). Any
    // other slot, a partition of another table AM, or another BEFORE INSERT
    // row trigger that would read the tuple after this one, gets a new
    // tuple the usual way. The new values live in the row's memory, reset
    // before the next row, as a returned tuple's do: heap's insert forms
    // its tuple at once, and every later reader of the slot (index
    // inserts, constraints, RETURNING, AFTER triggers and transition
    // tables, ON CONFLICT) reads it before that reset or copies it.
    TupleTableSlot* slot = td->tg_trigslot;
    bool in_place = slot != nullptr && TTS_IS_VIRTUAL(slot) && slot->tts_tupleDescriptor->natts == desc->natts &&
                    rel->rd_tableam == GetHeapamTableAmRoutine() && only_before_insert_row(rel);
    Datum* dv;
    bool* dn;
    if (in_place) {
        slot_getallattrs(slot);
        dv = slot->tts_values;
        dn = slot->tts_isnull;
    } else {
        // one pass over the row (attribute access by number walks it each time)
        dv = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<size_t>(desc->natts)));
        dn = static_cast<bool*>(palloc(sizeof(bool) * static_cast<size_t>(desc->natts)));
        heap_deform_tuple(tup, desc, dv, dn);
    }
    auto col = [&](Col c, bool* isnull) {
        *isnull = dn[m->att[c] - 1];
        return dv[m->att[c] - 1];
    };

    // a row that comes with its writing transaction was written before: a
    // restore (pg_restore, COPY of a dump, run by the table's owner) keeps
    // it exactly as it was. Anyone else's txid is replaced, so that no
    // client can skip pricing or idempotency, or hide a row from rollups.
    bool n_txid;
    col(cTxid, &n_txid);
    if (!n_txid && pg_class_ownercheck(pm_events_oid(), GetUserId())) {
        // kept as it came; the executor's copy freed as below (a restore
        // COPYs millions of rows in one statement)
        if (in_place) heap_freetuple(tup);
        return PointerGetDatum(tup);
    }
    check_not_rolled_here();
    int64 txid = static_cast<int64>(U64FromFullTransactionId(GetTopFullTransactionId()));

    bool n_usage, n_cached, n_at, n_lat, n_ttft;
    Text tenant = text_of(dv, dn, m->att[cTenant]);
    check_tenant(tenant);
    Text provider = text_of(dv, dn, m->att[cProvider]), model = text_of(dv, dn, m->att[cModel]);
    // the labels keep their values: pricing sets only the priced columns
    Text subject = text_of(dv, dn, m->att[cSubject]), session = text_of(dv, dn, m->att[cSession]),
         endpoint = text_of(dv, dn, m->att[cEndpoint]);
    check_labels(tenant, subject, session, provider, model, endpoint, text_of(dv, dn, m->att[cFeature]));
    Datum lat = col(cLatency, &n_lat);
    Datum ttft = col(cTtft, &n_ttft);
    check_times(n_lat, DatumGetInt32(lat), n_ttft, DatumGetInt32(ttft));
    Text tier = text_of(dv, dn, m->att[cTier]);
    Text rid = text_of(dv, dn, m->att[cRequestId]);
    Datum usage_d = col(cUsage, &n_usage);
    Datum cached_d = col(cCached, &n_cached);
    Datum at_d = col(cOccurredAt, &n_at);

    // idempotency first: a retry is neither priced nor stored
    int64 key = 0;
    if (!rid.is_null()) {
        key = pm_request_key(tenant, rid);
        if (!pm_claim_request(rel, key, tenant, rid, &g_dup))
            return PointerGetDatum(nullptr);  // counted once: skip the retry
    }

    bool cached = !n_cached && DatumGetBool(cached_d);
    TimestampTz at = n_at ? GetCurrentTransactionStartTimestamp() : DatumGetTimestampTz(at_d);
    check_time(at);
    JFlat usage = n_usage ? JFlat{nullptr, 0} : pm_flatten(DatumGetJsonbP(usage_d));
    price_row(provider, model, tier, usage, n_usage, cached, to_micros(at));

    // the row is formed again from the values deformed above
    int cols[NCols];
    Datum vals[NCols];
    bool nulls[NCols];
    int n = priced_columns(m, &g_out, !rid.is_null(), key, usage, n_usage, cols, vals, nulls);
    for (int i = 0; i < n; ++i) {
        dv[cols[i] - 1] = vals[i];
        dn[cols[i] - 1] = nulls[i];
    }
    dv[m->att[cTxid] - 1] = Int64GetDatum(txid);
    dn[m->att[cTxid] - 1] = false;
    count(tenant, subject, session, endpoint, at);
    if (in_place) {
        // the slot holds the priced row (its new values live in the row's
        // memory, as a tuple a trigger returns does). The same pointer back
        // tells the executor to keep the slot; the copy it made for this
        // trigger is not needed by anyone (it frees it only when the tuple
        // is replaced).
        heap_freetuple(tup);
        return PointerGetDatum(tup);
    }
    HeapTuple out = heap_form_tuple(desc, dv, dn);
    // as heap_modify_tuple does: the new row keeps the old one's identity
    out->t_data->t_ctid = tup->t_data->t_ctid;
    out->t_self = tup->t_self;
    out->t_tableOid = tup->t_tableOid;
    return PointerGetDatum(out);
}

// meter_record records one API call (meter.recorded): directly into its
// partition when nothing but pg_meter acts on meter.events, else through
// the INSERT every other way in takes.
Datum meter_record(PG_FUNCTION_ARGS) {
    if (PG_NARGS() != NArgs) elog(ERROR, "meter.record expects %d arguments", static_cast<int>(NArgs));
    check_times(PG_ARGISNULL(aLatency), PG_ARGISNULL(aLatency) ? 0 : PG_GETARG_INT32(aLatency), PG_ARGISNULL(aTtft),
                PG_ARGISNULL(aTtft) ? 0 : PG_GETARG_INT32(aTtft));
    RecordAnswer r;
    memset(&r, 0, sizeof r);
    if (!record_direct(fcinfo, &r)) record_spi(fcinfo, &r);
    // a reservation of meter.reserve is settled when this commits: by the
    // actual tokens, or all given back for a retry counted before
    if (!PG_ARGISNULL(aReservation) && !r.skipped)
        pm_settle_at_commit(PG_GETARG_INT64(aReservation), DatumGetBool(r.v[3]), g_out.tokens.input, g_out.tokens.output);
    if (r.skipped) PG_RETURN_NULL();
    // meter.recorded's descriptor (after the insert: a nested meter.record
    // may have looked it up anew)
    TupleDesc rdesc = pm_result_desc(fcinfo, &g_result);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(rdesc, r.v, r.n)));
}

}  // extern "C"
