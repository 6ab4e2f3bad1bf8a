// request_ids.cpp: idempotency of meter.events (the protocol is described
// in request_ids.hpp).
#include "request_ids.hpp"

#include <cstring>

extern "C" {
#include "access/genam.h"
#include "access/hash.h"
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
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "tcop/utility.h"
#include "miscadmin.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "nodes/primnodes.h"
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
    Oid index;  // the hash (or btree) index on request_key
    StrategyNumber strategy;  // its equality strategy
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

// covers_every_key says whether an index holds every row with a request
// key: no predicate, or only "request_key IS NOT NULL".
bool covers_every_key(Relation ix, AttrNumber key) {
    List* pred = RelationGetIndexPredicate(ix);
    if (pred == NIL) return true;
    if (list_length(pred) != 1 || !IsA(linitial(pred), NullTest)) return false;
    NullTest* t = static_cast<NullTest*>(linitial(pred));
    return t->nulltesttype == IS_NOT_NULL && IsA(t->arg, Var) && reinterpret_cast<Var*>(t->arg)->varattno == key;
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
        bool fits = false;
        PG_TRY();
        {
            fits = f->indnatts == 1 && f->indkey.values[0] == key &&
                   (ix->rd_rel->relam == HASH_AM_OID || ix->rd_rel->relam == BTREE_AM_OID) && f->indisvalid &&
                   covers_every_key(ix, key);
        }
        PG_CATCH();
        {
            index_close(ix, AccessShareLock);  // the probes' resource owner outlives the statement
            PG_RE_THROW();
        }
        PG_END_TRY();
        if (fits) p.strategy = ix->rd_rel->relam == HASH_AM_OID ? HTEqualStrategyNumber : BTEqualStrategyNumber;
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
                        errdetail("Request ids are deduplicated across partitions through that index, which must hold every row with a request_key."),
                        errhint("Create partitions with meter.create_partition, or add the index: "
                                "CREATE INDEX ON meter.%s USING hash (request_key) WHERE request_key IS NOT NULL.",
                                quote_identifier(RelationGetRelationName(rel)))));
    int slot = g_nparts < kMaxCached ? g_nparts++ : static_cast<int>(relid % kMaxCached);
    g_parts[slot] = p;
    return &g_parts[slot];
}

bool same_text(TupleTableSlot* slot, AttrNumber att, Text s) {
    bool isnull;
    Datum d = slot_getattr(slot, att, &isnull);
    if (isnull) return false;
    text* t = DatumGetTextPP(d);
    bool same = pgm::same(Text{VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)}, s);
    if (reinterpret_cast<Pointer>(t) != DatumGetPointer(d)) pfree(t);  // detoasted: not kept for the statement
    return same;
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

// Probe is one partition's request index, open for a statement's rows.
struct Probe {
    Relation heap;
    Relation index;
    IndexScanDesc scan;
    TupleTableSlot* slot;  // for the rows the index points to
    Buffer meta;           // a hash index's metapage, while its count of entries is 0 (see holds_no_key)
    Part part;
};

// ProbeSet keeps every partition's request index open, with its scan once
// probed, from one row of a statement to the next: a COPY of a million rows
// opens, locks and starts a scan on each index once, not once a row. Everything in
// it belongs to the top transaction's resource owner (a statement's or a
// savepoint's would report it as leaked when it ends); it is closed when
// the statement ends (ExecutorEnd, or the end of a utility statement such
// as COPY), before any utility statement, before a commit, and when a
// savepoint rolls back, and forgotten on abort, whose resource owner
// releases what it held. Between two probes, the only buffers pinned are
// the metapages of hash request indexes that held no entry when the set
// opened (holds_no_key): no page of an index with entries, nor of a heap.
struct ProbeSet {
    bool open;
    Relation events;
    PartitionDesc pd;  // the partitions it was opened for
    MemoryContext cxt;
    int n;
    int cap;
    Probe* probes;
    SnapshotData dirty;
};
ProbeSet g_ps;
// g_busy counts the claims (with their openings) and closings under way: a
// statement that ends inside one (a function run while an index predicate
// is read) asks for the set to be closed when they are done, not under
// their feet
int g_busy = 0;
bool g_close_asked = false;

ExecutorEnd_hook_type g_prev_executor_end = nullptr;
ProcessUtility_hook_type g_prev_utility = nullptr;

// as_top runs f with the top transaction's resource owner current (scans
// pin and release buffers under the current one), counted in g_busy; the
// caller's owner and memory context are back afterwards, also after an
// error.
template <typename F>
void as_top(F f) {
    ResourceOwner saved = CurrentResourceOwner;
    MemoryContext saved_cxt = CurrentMemoryContext;
    ++g_busy;
    PG_TRY();
    {
        CurrentResourceOwner = TopTransactionResourceOwner;
        f();
    }
    PG_FINALLY();
    {
        --g_busy;
        CurrentResourceOwner = saved;
        MemoryContextSwitchTo(saved_cxt);
    }
    PG_END_TRY();
}

// close_now closes the set (from a claim too); close_probes waits for the
// claims under way.
void close_now() {
    if (!g_ps.open) return;
    g_ps.open = false;  // first: an error below must not come back here
    as_top([] {
        for (int i = g_ps.n - 1; i >= 0; --i) {
            Probe* p = &g_ps.probes[i];
            if (BufferIsValid(p->meta)) ReleaseBuffer(p->meta);
            if (p->slot) ExecDropSingleTupleTableSlot(p->slot);
            if (p->scan) index_endscan(p->scan);
            if (p->index) index_close(p->index, NoLock);
            if (p->heap) table_close(p->heap, NoLock);
        }
        if (g_ps.events) table_close(g_ps.events, NoLock);
    });
    MemoryContextDelete(g_ps.cxt);
    g_close_asked = false;  // whatever asked for it is done
}

void close_probes() {
    if (g_busy > 0) {
        g_close_asked = true;
        return;
    }
    close_now();
}

// forget_probes drops the set without closing it: the transaction's abort
// releases what it held, and its memory goes with the transaction's.
void forget_probes() {
    g_ps.open = false;
    g_close_asked = false;
    g_busy = 0;
}

// holds_no_key says whether a partition's request index still has no
// entry, committed or not, of any key: its metapage counts every insertion
// (pg_meter's, and any other writer's) under the page's lock, and VACUUM
// never counts below the entries it leaves. Asked with the key locked, it
// sees the entry of any earlier writer of the key, which keeps the lock
// until its entry is in. Once the count is not 0, the page is let go and
// the partition is probed as any other.
bool holds_no_key(Probe* pr) {
    if (!BufferIsValid(pr->meta)) return false;
    LockBuffer(pr->meta, BUFFER_LOCK_SHARE);
    bool none = HashPageGetMeta(BufferGetPage(pr->meta))->hashm_ntuples == 0;
    LockBuffer(pr->meta, BUFFER_LOCK_UNLOCK);
    if (!none) {
        ReleaseBuffer(pr->meta);
        pr->meta = InvalidBuffer;
    }
    return none;
}

// open_probe opens one partition's probe at the end of the set (in its
// memory context).
void open_probe(Oid relid) {
    Probe* p = &g_ps.probes[g_ps.n];
    p->heap = table_open(relid, AccessShareLock);
    ++g_ps.n;  // counted as soon as it holds anything, for close_now
    p->part = *part_of(p->heap);
    p->index = index_open(p->part.index, AccessShareLock);
    // the scan and its slot come with the first probe (probe): a statement
    // that records one event opens every partition, and most of them are
    // never probed (their index holds no entry)
    p->scan = nullptr;
    p->slot = nullptr;
    // a hash index counts its entries in its metapage: one with none (a
    // partition ahead of the data, the default one) keeps the page pinned,
    // and its rows skip the probe while the count stays 0. The backend's
    // copy of the metapage (the hash AM's, kept with the index) answers for
    // an index that had entries: it is probed without reading the page.
    p->meta = InvalidBuffer;
    if (p->part.strategy == HTEqualStrategyNumber) {
        Buffer mb = InvalidBuffer;
        bool had = _hash_getcachedmetap(p->index, &mb, false)->hashm_ntuples > 0;
        if (BufferIsValid(mb)) ReleaseBuffer(mb);
        if (had) return;
        p->meta = ReadBuffer(p->index, HASH_METAPAGE);
        (void)holds_no_key(p);  // lets the page go when the index has entries
    }
}

void open_probes() {
    MemoryContext cxt = AllocSetContextCreate(TopTransactionContext, "pg_meter request probes", ALLOCSET_SMALL_SIZES);
    g_ps.cxt = cxt;
    g_ps.events = nullptr;
    g_ps.n = 0;
    g_ps.probes = nullptr;
    g_ps.open = true;  // what is opened below is closed with it, also after an error
    MemoryContext old = MemoryContextSwitchTo(cxt);
    InitDirtySnapshot(g_ps.dirty);
    g_ps.events = table_open(pm_events_oid(), AccessShareLock);
    PartitionDesc pd = RelationGetPartitionDesc(g_ps.events, true);
    g_ps.pd = pd;
    int nparts = pd->nparts;
    // the oids first: opening a partition may take in invalidations
    Oid* oids = static_cast<Oid*>(palloc(sizeof(Oid) * static_cast<size_t>(nparts + 1)));
    memcpy(oids, pd->oids, sizeof(Oid) * static_cast<size_t>(nparts));
    // one more: a row's partition the descriptor leaves out (one pending
    // detach, which a repeatable-read transaction still writes to)
    g_ps.cap = nparts + 1;
    g_ps.probes = static_cast<Probe*>(palloc0(sizeof(Probe) * static_cast<size_t>(g_ps.cap)));
    for (int i = 0; i < nparts; ++i) open_probe(oids[i]);
    MemoryContextSwitchTo(old);
}

// probe looks for (tenant, rid) in one partition. Returns true when found
// (dup filled); sets *xwait when an insert or delete of it is in progress
// in another transaction.
bool probe(Probe* pr, int64 key, Text tenant, Text rid, PmDuplicate* dup, TransactionId* xwait) {
    if (holds_no_key(pr)) return false;
    if (!pr->scan) {  // in the set's memory, under the top transaction's owner (claim)
        pr->scan = index_beginscan(pr->heap, pr->index, &g_ps.dirty, 1, 0);
        pr->slot = table_slot_create(pr->heap, nullptr);
    }
    ScanKeyData sk;
    ScanKeyInit(&sk, 1, pr->part.strategy, F_INT8EQ, Int64GetDatum(key));
    IndexScanDesc scan = pr->scan;
    const Part* p = &pr->part;
    index_rescan(scan, &sk, 1, nullptr, 0);
    // a new request (the usual case) costs one descent per partition. The
    // loop is index_getnext_slot's, HOT chains included.
    TupleTableSlot* slot = pr->slot;
    bool found = false;
    for (;;) {
        if (!scan->xs_heap_continue && index_getnext_tid(scan, ForwardScanDirection) == nullptr) break;
        if (!index_fetch_heap(scan, slot)) continue;
        if (!same_text(slot, p->att[aTenant], tenant) || !same_text(slot, p->att[aRequestId], rid))
            continue;  // another request with the same hash
        TransactionId w = TransactionIdIsValid(g_ps.dirty.xmin) ? g_ps.dirty.xmin : g_ps.dirty.xmax;
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
        Datum pv = slot_getattr(slot, p->att[aPriced], &isnull);
        dup->priced = !isnull && DatumGetBool(pv);
        Datum v = slot_getattr(slot, p->att[aVersion], &isnull);
        dup->price_version = isnull ? 0 : DatumGetInt64(v);
        break;
    }
    ExecClearTuple(slot);
    // the same keys again: releases the index and heap pages the scan holds
    index_rescan(scan, nullptr, 1, nullptr, 0);
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
    switch (event) {
    case XACT_EVENT_PRE_COMMIT:
    case XACT_EVENT_PARALLEL_PRE_COMMIT:
    case XACT_EVENT_PRE_PREPARE:
        close_probes();
        break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
        forget_probes();
        g_holding = false;  // the transaction's locks are gone with it
        break;
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PREPARE:
        forget_probes();
        g_holding = false;
        break;
    }
}

void subxact_ended(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
    // what a probe interrupted by the error held is given back now
    if (event == SUBXACT_EVENT_ABORT_SUB) close_probes();
}

void executor_end(QueryDesc* qd) {
    if (g_prev_executor_end)
        g_prev_executor_end(qd);
    else
        standard_ExecutorEnd(qd);
    close_probes();
}

void utility(PlannedStmt* pstmt, const char* query, bool read_only, ProcessUtilityContext context, ParamListInfo params,
             QueryEnvironment* env, DestReceiver* dest, QueryCompletion* qc) {
    // before too: a set left open by a call outside any executor (a
    // PL/pgSQL expression, a fast-path call) would keep DDL on the
    // partitions from running ("being used by active queries")
    close_probes();
    if (g_prev_utility)
        g_prev_utility(pstmt, query, read_only, context, params, env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query, read_only, context, params, env, dest, qc);
    close_probes();  // a COPY's rows are in
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

int64 pm_request_key(Text tenant, Text rid) {
    auto bytes = [](Text t) { return reinterpret_cast<const unsigned char*>(t.p); };
    uint64 h = hash_bytes_extended(bytes(tenant), static_cast<int>(tenant.n), 0x706d6d6574657231ULL);
    return static_cast<int64>(hash_bytes_extended(bytes(rid), static_cast<int>(rid.n), h));
}

void pm_release_claim() {
    if (!g_holding) return;
    g_holding = false;
    if (LockHeldByMe(&g_held, ExclusiveLock)) key_lock(&g_held, false);
}

namespace {

// own_probe returns the probe of the row's partition, opening the set, or
// adding the partition to it, as needed. The top transaction's resource
// owner is current.
Probe* own_probe(Relation leaf) {
    // partitions attached or detached concurrently: open them anew
    AcceptInvalidationMessages();
    if (g_ps.open && RelationGetPartitionDesc(g_ps.events, true) != g_ps.pd) close_now();
    if (!g_ps.open) open_probes();
    Oid leaf_id = RelationGetRelid(leaf);
    for (int i = 0; i < g_ps.n; ++i)
        if (RelationGetRelid(g_ps.probes[i].heap) == leaf_id) return &g_ps.probes[i];
    if (g_ps.n == g_ps.cap) {  // the one extra place is taken by another
        close_now();
        open_probes();
    }
    MemoryContext old = MemoryContextSwitchTo(g_ps.cxt);
    open_probe(leaf_id);
    MemoryContextSwitchTo(old);
    return &g_ps.probes[g_ps.n - 1];
}

bool claim(Relation leaf, const LOCKTAG& tag, int64 key, Text tenant, Text rid, PmDuplicate* dup) {
    Probe* own = own_probe(leaf);
    // what a scan allocates as it goes (the btree's killed items) must live
    // as long as the scan
    MemoryContextSwitchTo(g_ps.cxt);
    for (;;) {
        key_lock(&tag, true);
        TransactionId xwait = InvalidTransactionId;
        dup->found = false;
        // the row's own partition first: a retry usually lands there
        bool found = probe(own, key, tenant, rid, dup, &xwait);
        for (int i = 0; i < g_ps.n && !found && !TransactionIdIsValid(xwait); ++i)
            if (&g_ps.probes[i] != own) found = probe(&g_ps.probes[i], key, tenant, rid, dup, &xwait);
        if (TransactionIdIsValid(xwait)) {
            // never wait while holding the key: the other transaction may
            // need it for another row
            key_lock(&tag, false);
            XactLockTableWait(xwait, nullptr, nullptr, XLTW_None);
            continue;
        }
        if (found) {
            key_lock(&tag, false);
            return false;
        }
        g_held = tag;
        g_holding = true;
        return true;
    }
}

}  // namespace

bool pm_claim_request(Relation leaf, int64 key, Text tenant, Text rid, PmDuplicate* dup) {
    pm_release_claim();
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(static_cast<uint64>(key) >> 32),
                         static_cast<uint32>(key), kLockClass);
    bool fresh = false;
    as_top([&] { fresh = claim(leaf, tag, key, tenant, rid, dup); });
    if (g_close_asked && g_busy == 0) {
        g_close_asked = false;
        close_now();
    }
    return fresh;
}

void pm_request_ids_register() {
    CacheRegisterRelcacheCallback(relcache_changed, (Datum)0);
    RegisterXactCallback(xact_ended, nullptr);
    RegisterSubXactCallback(subxact_ended, nullptr);
    g_prev_executor_end = ExecutorEnd_hook;
    ExecutorEnd_hook = executor_end;
    g_prev_utility = ProcessUtility_hook;
    ProcessUtility_hook = utility;
}

}  // namespace pgm::pg
