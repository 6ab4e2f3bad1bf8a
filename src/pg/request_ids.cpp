// request_ids.cpp: idempotency of meter.events (the protocol is described
// in request_ids.hpp).
#include "request_ids.hpp"

#include <cstring>

extern "C" {
#include "access/genam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
}

namespace pgm::pg {

namespace {

// kLockClass tells pg_meter's key locks from user advisory locks (which
// use 1 and 2 in the fourth field of the tag).
constexpr uint16 kLockClass = 0x504d;  // "PM"

enum Att { aTenant, aRequestId, aEventId, aCost, aPotential, aPriced, aVersion, NAtts };
const char* const kAttNames[NAtts] = {"tenant", "request_id", "event_id", "cost", "potential_cost", "priced",
                                      "price_version"};

// Part is what a probe needs of one partition, cached per backend.
struct Part {
    Oid relid;
    Oid index;  // the partial btree on request_key
    AttrNumber att[NAtts];
};
constexpr int kMaxCached = 256;
Part g_parts[kMaxCached];
int g_nparts = 0;
Oid g_events = InvalidOid;  // meter.events

LOCKTAG g_held;
bool g_holding = false;

void relcache_changed(Datum, Oid relid) {
    // any change may add, drop or re-index a partition: forget everything
    // (rebuilding costs a few catalog lookups)
    g_nparts = 0;
    if (relid == InvalidOid || relid == g_events) g_events = InvalidOid;
}

const Part* part_of(Relation rel) {
    Oid relid = RelationGetRelid(rel);
    for (int i = 0; i < g_nparts; ++i)
        if (g_parts[i].relid == relid) return &g_parts[i];
    if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_tableam == nullptr)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("partition \"%s\" of meter.events is not a plain table", RelationGetRelationName(rel)),
                        errdetail("Request ids are deduplicated through an index of every partition, which needs "
                                  "table partitions (not sub-partitioned or foreign ones)."),
                        errhint("Create partitions with meter.create_partition.")));
    Part p;
    p.relid = relid;
    p.index = InvalidOid;
    for (int a = 0; a < NAtts; ++a) {
        p.att[a] = get_attnum(relid, kAttNames[a]);
        if (p.att[a] == InvalidAttrNumber) elog(ERROR, "meter.events has no column \"%s\"", kAttNames[a]);
    }
    AttrNumber key = get_attnum(relid, "request_key");
    List* indexes = RelationGetIndexList(rel);
    ListCell* lc;
    foreach (lc, indexes) {
        Relation ix = index_open(lfirst_oid(lc), AccessShareLock);
        Form_pg_index f = ix->rd_index;
        bool fits = f->indnatts == 1 && f->indkey.values[0] == key && ix->rd_rel->relam == BTREE_AM_OID && f->indisvalid;
        index_close(ix, AccessShareLock);
        if (fits) {
            p.index = lfirst_oid(lc);
            break;
        }
    }
    list_free(indexes);
    if (!OidIsValid(p.index))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("partition \"%s\" of meter.events has no index on request_key", RelationGetRelationName(rel)),
                        errdetail("Request ids are deduplicated across partitions through that index."),
                        errhint("Create partitions with meter.create_partition, or add the index: "
                                "CREATE INDEX ON meter.%s (request_key) WHERE request_key IS NOT NULL.",
                                quote_identifier(RelationGetRelationName(rel)))));
    int slot = g_nparts < kMaxCached ? g_nparts++ : static_cast<int>(relid % kMaxCached);
    g_parts[slot] = p;
    return &g_parts[slot];
}

bool same_text(TupleTableSlot* slot, AttrNumber att, const char* s, int len) {
    bool isnull;
    Datum d = slot_getattr(slot, att, &isnull);
    if (isnull) return false;
    text* t = DatumGetTextPP(d);
    return static_cast<int>(VARSIZE_ANY_EXHDR(t)) == len && memcmp(VARDATA_ANY(t), s, static_cast<size_t>(len)) == 0;
}

Datum numeric_copy(TupleTableSlot* slot, AttrNumber att, MemoryContext cxt) {
    bool isnull;
    Datum d = slot_getattr(slot, att, &isnull);
    if (isnull) return Datum(0);
    MemoryContext old = MemoryContextSwitchTo(cxt);
    Datum c = datumCopy(d, false, -1);
    MemoryContextSwitchTo(old);
    return c;
}

// probe looks for (tenant, rid) in one partition. Returns true when found
// (dup filled); sets *xwait when an insert or delete of it is in progress
// in another transaction.
bool probe(Relation heap, const Part* p, int64 key, const char* tenant, int tenant_len, const char* rid, int rid_len,
           PmDuplicate* dup, TransactionId* xwait) {
    Relation index = index_open(p->index, AccessShareLock);
    SnapshotData dirty;
    InitDirtySnapshot(dirty);
    ScanKeyData sk;
    ScanKeyInit(&sk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(key));
    IndexScanDesc scan = index_beginscan(heap, index, &dirty, 1, 0);
    index_rescan(scan, &sk, 1, nullptr, 0);
    // the slot is made only when the index has the key: a new request (the
    // usual case) costs one descent per partition. The loop is
    // index_getnext_slot's, HOT chains included.
    TupleTableSlot* slot = nullptr;
    bool found = false;
    for (;;) {
        if (!scan->xs_heap_continue && index_getnext_tid(scan, ForwardScanDirection) == nullptr) break;
        if (!slot) slot = table_slot_create(heap, nullptr);
        if (!index_fetch_heap(scan, slot)) continue;
        if (!same_text(slot, p->att[aTenant], tenant, tenant_len) || !same_text(slot, p->att[aRequestId], rid, rid_len))
            continue;  // another request with the same hash
        TransactionId w = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
        if (TransactionIdIsValid(w)) {
            *xwait = w;
            break;
        }
        bool isnull;
        found = true;
        dup->found = true;
        if (!dup->answer_cxt) break;  // nobody asks what the first one was
        dup->event_id = DatumGetInt64(slot_getattr(slot, p->att[aEventId], &isnull));
        dup->cost = numeric_copy(slot, p->att[aCost], dup->answer_cxt);
        dup->potential_cost = numeric_copy(slot, p->att[aPotential], dup->answer_cxt);
        Datum pr = slot_getattr(slot, p->att[aPriced], &isnull);
        dup->priced = !isnull && DatumGetBool(pr);
        Datum v = slot_getattr(slot, p->att[aVersion], &isnull);
        dup->price_version = isnull ? 0 : DatumGetInt64(v);
        break;
    }
    if (slot) ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    index_close(index, AccessShareLock);
    return found;
}

// key_lock takes or releases a key lock as the top transaction's: locks of
// a statement's or a savepoint's resource owner move to its parent when it
// ends, and LockRelease could no longer find them.
void key_lock(const LOCKTAG* tag, bool take) {
    ResourceOwner saved = CurrentResourceOwner;
    CurrentResourceOwner = TopTransactionResourceOwner;
    PG_TRY();
    {
        if (take)
            (void)LockAcquire(tag, ExclusiveLock, false, false);
        else
            LockRelease(tag, ExclusiveLock, false);
    }
    PG_FINALLY();
    { CurrentResourceOwner = saved; }
    PG_END_TRY();
}

void xact_ended(XactEvent event, void*) {
    // the transaction's locks are gone with it
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
        event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
        g_holding = false;
}

}  // namespace

Oid pm_events_oid() {
    Oid relid = g_events;
    if (!OidIsValid(relid)) {
        relid = get_relname_relid("events", get_namespace_oid("meter", false));
        if (!OidIsValid(relid))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("meter.events does not exist"),
                            errhint("Run CREATE EXTENSION pg_meter.")));
        g_events = relid;
    }
    return relid;
}

int64 pm_request_key(const char* tenant, int tenant_len, const char* rid, int rid_len) {
    uint64 h = hash_bytes_extended(reinterpret_cast<const unsigned char*>(tenant), tenant_len, 0x706d6d6574657231ULL);
    return static_cast<int64>(hash_bytes_extended(reinterpret_cast<const unsigned char*>(rid), rid_len, h));
}

void pm_release_claim() {
    if (!g_holding) return;
    g_holding = false;
    if (LockHeldByMe(&g_held, ExclusiveLock)) key_lock(&g_held, false);
}

bool pm_claim_request(Relation leaf, int64 key, const char* tenant, int tenant_len, const char* rid, int rid_len,
                      PmDuplicate* dup) {
    pm_release_claim();
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(static_cast<uint64>(key) >> 32),
                         static_cast<uint32>(key), kLockClass);
    Relation events = table_open(pm_events_oid(), AccessShareLock);
    for (;;) {
        key_lock(&tag, true);
        TransactionId xwait = InvalidTransactionId;
        dup->found = false;
        // the row's own partition first: a retry usually lands there
        bool found = probe(leaf, part_of(leaf), key, tenant, tenant_len, rid, rid_len, dup, &xwait);
        PartitionDesc pd = RelationGetPartitionDesc(events, true);
        for (int i = 0; i < pd->nparts && !found && !TransactionIdIsValid(xwait); ++i) {
            if (pd->oids[i] == RelationGetRelid(leaf)) continue;
            Relation part = table_open(pd->oids[i], AccessShareLock);
            found = probe(part, part_of(part), key, tenant, tenant_len, rid, rid_len, dup, &xwait);
            table_close(part, NoLock);
        }
        if (TransactionIdIsValid(xwait)) {
            // never wait while holding the key: the other transaction may
            // need it for another row
            key_lock(&tag, false);
            XactLockTableWait(xwait, nullptr, nullptr, XLTW_None);
            continue;
        }
        table_close(events, NoLock);
        if (found) {
            key_lock(&tag, false);
            return false;
        }
        g_held = tag;
        g_holding = true;
        return true;
    }
}

void pm_request_ids_register() {
    CacheRegisterRelcacheCallback(relcache_changed, (Datum)0);
    RegisterXactCallback(xact_ended, nullptr);
}

}  // namespace pgm::pg
