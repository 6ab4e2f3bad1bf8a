// quotas.cpp: meter.check, meter.reserve, meter.release, meter.quota_status
// and the settlement of meter.record(..., reservation => id).
//
// What lives where:
//  - plans, limits and subjects are tables; each backend keeps a compiled
//    copy (a tenant's limits, and each subject it has seen with the limits
//    that apply to it), dropped at commit of any change by the relcache
//    invalidation the tables' trigger sends;
//  - rate buckets, budget cells and reservations live in shared memory
//    (src/core/cells.hpp), one LWLock per stripe of cells and one for the
//    reservations. Locks are always taken in this order: stripes in
//    ascending order, then the reservations; a release or settlement takes
//    the reservations' lock alone, lets it go, then the stripes. A restart
//    forgets them: buckets start drained, in-flight reservations are gone;
//  - budgets (calendar windows in a time zone, and every cost limit) rest
//    on durable counters, meter.budget_usage: each event's transaction adds
//    its usage at commit (one statement at pre-commit, the backend's own
//    shard row), and a budget's cell is filled from them (the seeding
//    protocol of cells.hpp). After a restart the cells fill again from the
//    counters, so spent amounts are exact (doc/quotas.md).
#include "quotas.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "bridge.hpp"
#include "catalog_cache.hpp"
#include "cells.hpp"
#include "datums.hpp"

extern "C" {
#include "postgres.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "catalog/pg_class.h"
#include "storage/proc.h"
#include "utils/array.h"
}

namespace pgm::pg {

namespace {

using limits::Answer;
using limits::Cell;
using limits::CellTable;
using limits::GcraState;
using limits::Hold;
using limits::Key;
using limits::Rate;
using limits::Reservation;
using limits::ReservationTable;

constexpr uint32_t kWays = 64;
constexpr int kMaxApplying = limits::kMaxHolds;  // limits one request may be held against

enum Meter { mRequests, mInput, mOutput, mTotal, mCost };
enum Scope { sSubject, sTeam, sTenant, sSession };
const char* const kMeterNames[] = {"requests", "input_tokens", "output_tokens", "total_tokens", "cost"};
const char* const kScopeNames[] = {"subject", "team", "tenant", "session"};
const char* const kCalendars[] = {"", "day", "week", "month", "year"};
constexpr int kCostScale = 12;  // cost is counted in picodollars
constexpr int kShards = 16;     // rows per budget window that backends add to

// settings
int g_rate_cells = 65536;
int g_reservations = 16384;
int g_failure = 0;  // 0 closed, 1 open
const struct config_enum_entry kFailureModes[] = {{"closed", 0, false}, {"open", 1, false}, {nullptr, 0, false}};

// shared memory
struct Shared {
    uint32_t stripes;
    uint32_t capacity;
};
Shared* g_shared = nullptr;
void* g_cells_mem = nullptr;
void* g_res_mem = nullptr;
LWLockPadded* g_stripe_locks = nullptr;
LWLockPadded* g_res_lock = nullptr;
shmem_request_hook_type g_prev_request = nullptr;
shmem_startup_hook_type g_prev_startup = nullptr;

uint32_t stripes_for(int cells) { return static_cast<uint32_t>((cells + kWays - 1) / kWays); }

size_t align_up(size_t n) { return (n + 63) & ~static_cast<size_t>(63); }

// The refusal tally: per database and limit, how many requests the limit
// refused, when first and last, and the last subject refused (what the
// alert rule quota_hit reads through meter._quota_refusals). A fixed table
// under one lock; refusals are the slow path. When full, the limit refused
// longest ago gives its slot up.
constexpr int kRefusalSlots = 1024;
struct RefusalSlot {
    Oid db;
    int64 limit_id;  // 0: free
    int64 count;
    TimestampTz first_at, last_at;
    char tenant[64];
    char subject[64];
};
RefusalSlot* g_refusals = nullptr;
LWLockPadded* g_refusal_lock = nullptr;

size_t shared_bytes() {
    return align_up(sizeof(Shared)) + align_up(CellTable::bytes(stripes_for(g_rate_cells), kWays)) +
           align_up(ReservationTable::bytes(static_cast<uint32_t>(g_reservations))) +
           align_up(sizeof(RefusalSlot) * kRefusalSlots);
}

// copy_name: a name into a fixed field, cut at a character boundary
void copy_name(char* dst, size_t cap, Text src) {
    size_t n = std::min(src.n, cap - 1);
    while (n > 0 && n < src.n && (static_cast<unsigned char>(src.p[n]) & 0xC0) == 0x80) n--;
    if (n) memcpy(dst, src.p, n);
    dst[n] = '\0';
}

// note_refusal counts a refusal of limit_id; PostgreSQL calls only
void note_refusal(Text tenant, Text subject, int64 limit_id, TimestampTz at) {
    if (!g_refusals) return;
    LWLockAcquire(&g_refusal_lock->lock, LW_EXCLUSIVE);
    uint64 h = (static_cast<uint64>(limit_id) * 0x9E3779B97F4A7C15ULL) ^ MyDatabaseId;
    RefusalSlot* hit = nullptr;
    RefusalSlot* oldest = nullptr;
    for (int i = 0; i < kRefusalSlots && !hit; i++) {
        RefusalSlot* r = &g_refusals[(h + i) % kRefusalSlots];
        if (r->limit_id == 0 || (r->db == MyDatabaseId && r->limit_id == limit_id)) hit = r;
        else if (!oldest || r->last_at < oldest->last_at) oldest = r;
    }
    if (!hit) {
        hit = oldest;
        hit->limit_id = 0;
    }
    if (hit->limit_id == 0) {
        hit->db = MyDatabaseId;
        hit->limit_id = limit_id;
        hit->count = 0;
        hit->first_at = at;
    }
    hit->count++;
    hit->last_at = at;
    copy_name(hit->tenant, sizeof hit->tenant, tenant);
    copy_name(hit->subject, sizeof hit->subject, subject);
    LWLockRelease(&g_refusal_lock->lock);
}

void shmem_request() {
    if (g_prev_request) g_prev_request();
    RequestAddinShmemSpace(shared_bytes());
    RequestNamedLWLockTranche("pg_meter_rate_cells", static_cast<int>(stripes_for(g_rate_cells)));
    RequestNamedLWLockTranche("pg_meter_reservations", 1);
    RequestNamedLWLockTranche("pg_meter_refusals", 1);
}

void shmem_startup() {
    if (g_prev_startup) g_prev_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    char* base = static_cast<char*>(ShmemInitStruct("pg_meter quotas", shared_bytes(), &found));
    if (!found) {
        memset(base, 0, shared_bytes());
        Shared* s = reinterpret_cast<Shared*>(base);
        s->stripes = stripes_for(g_rate_cells);
        s->capacity = static_cast<uint32_t>(g_reservations);
        uint64_t salt = 0;
        if (!pg_strong_random(&salt, sizeof salt)) salt = static_cast<uint64_t>(GetCurrentTimestamp()) * 0x9E3779B97F4A7C15ULL;
        char* res = base + align_up(sizeof(Shared)) + align_up(CellTable::bytes(s->stripes, kWays));
        ReservationTable(res, s->capacity).init(salt);
    }
    g_shared = reinterpret_cast<Shared*>(base);
    g_cells_mem = base + align_up(sizeof(Shared));
    g_res_mem = static_cast<char*>(g_cells_mem) + align_up(CellTable::bytes(g_shared->stripes, kWays));
    g_stripe_locks = GetNamedLWLockTranche("pg_meter_rate_cells");
    g_res_lock = GetNamedLWLockTranche("pg_meter_reservations");
    g_refusals = reinterpret_cast<RefusalSlot*>(
        static_cast<char*>(g_res_mem) + align_up(ReservationTable::bytes(g_shared->capacity)));
    g_refusal_lock = GetNamedLWLockTranche("pg_meter_refusals");
    LWLockRelease(AddinShmemInitLock);
}

void need_shared() {
    if (!g_shared)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("pg_meter's rate limits need pg_meter in shared_preload_libraries"),
                        errdetail("Rate buckets and reservations live in shared memory, which a library loaded "
                                  "later cannot have."),
                        errhint("Add pg_meter to shared_preload_libraries and restart the server.")));
}

// ---------------------------------------------------------------------------
// Each backend's compiled copy of plans, limits and subjects.

struct LimitDef {
    int64_t id = 0;
    std::string plan, subject, endpoint;
    bool has_plan = false, has_subject = false, has_endpoint = false;
    int scope = sSubject, meter = mRequests;
    Rate rate;        // a rate's
    Interval window;  // per, as the answer shows it
    // a budget's: its maximum in units of the meter, its calendar (0: fixed
    // windows of rate.period) and time zone, and what its counters are named by
    bool budget = false;
    limits::i128 max = 0;
    int calendar = 0;
    std::string period;  // as meter.limits.budget_period names it
    std::string zone, ident;
    Key ident_key;  // the key of all its counters (meter.budget_usage.ident)
    // the window last computed (one per backend, for the usual case: now)
    mutable TimestampTz win_start = 0, win_end = 0;
};

struct TenantConf {
    std::vector<LimitDef> limits;
    std::vector<int> counted;  // one budget of each budget period: what every event counts for
    bool teams = false;        // a counted budget is per team
};

struct SubjectConf {
    bool known = false;  // false: never registered, and no default plan (events still count)
    bool has_plan = false, has_team = false, blocked = false;
    std::string plan, team, reason;
    std::vector<int> applying;  // indexes into the tenant's limits, overrides resolved
};

struct Cache {
    std::unordered_map<std::string, TenantConf> tenants;
    std::unordered_map<std::string, SubjectConf> subjects;  // tenant '\0' subject
};
Cache* g_cache = nullptr;
PmWatch g_watch = {{"plans", "limits", "subjects"}, {InvalidOid, InvalidOid, InvalidOid}, true};
constexpr size_t kMaxSubjects = 200000;  // a backend forgets them all beyond this

std::string str(Text t) { return t.is_null() ? std::string() : std::string(t.p, t.n); }

// subject_key is a subject's key in the cache: tenant '\0' subject. It is
// built in one buffer kept across calls, so that a lookup allocates nothing
// (the buffer is valid until the next call).
const std::string& subject_key(Text tenant, Text subject) {
    static std::string k;
    k.assign(tenant.p, tenant.n);
    k.push_back('\0');
    k.append(subject.p, subject.n);
    return k;
}

// tenant_key is a tenant's key in the cache, in a buffer as subject_key's.
const std::string& tenant_key(Text tenant) {
    static std::string k;
    k.assign(tenant.p, tenant.n);
    return k;
}

bool same_target(const LimitDef& a, const LimitDef& b) {
    return a.scope == b.scope && a.meter == b.meter && a.rate.period == b.rate.period &&
           a.has_endpoint == b.has_endpoint && a.endpoint == b.endpoint;
}

// applying: the limits a subject is held to. Tenant-wide limits and its
// plan's limits, except where a limit of the subject's own has the same
// scope, meter, window and endpoint (an override); and its own limits.
std::vector<int> applying(const TenantConf& tc, const SubjectConf& sc, const std::string& subject) {
    std::vector<int> out;
    auto own = [&](const LimitDef& l) { return l.has_subject && l.subject == subject; };
    for (size_t i = 0; i < tc.limits.size(); ++i) {
        const LimitDef& l = tc.limits[i];
        bool mine = own(l);
        bool general = !l.has_plan && !l.has_subject;
        bool planned = l.has_plan && sc.has_plan && l.plan == sc.plan;
        if (!mine && !general && !planned) continue;
        if (!mine) {
            bool overridden = false;
            for (const LimitDef& o : tc.limits)
                if (own(o) && same_target(o, l)) overridden = true;
            if (overridden) continue;
        }
        out.push_back(static_cast<int>(i));
    }
    return out;
}

// rows read by SPI, as plain data in the caller's memory context
struct LimitRow {
    int64 id, per_us;
    unsigned char max[16];  // an i128, copied: palloc'd memory is aligned to 8 bytes only
    char *plan, *subject, *scope, *endpoint, *meter, *calendar, *zone, *period;
    Interval window;
};
struct SubjectRow {
    bool found, blocked;
    char *plan, *team, *reason;
};

char* col_text(HeapTuple t, TupleDesc d, int col) {
    bool isnull;
    Datum v = SPI_getbinval(t, d, col, &isnull);
    if (isnull) return nullptr;
    return text_to_cstring(DatumGetTextPP(v));
}

int64 col_int8(HeapTuple t, TupleDesc d, int col) {
    bool isnull;
    Datum v = SPI_getbinval(t, d, col, &isnull);
    return isnull ? 0 : DatumGetInt64(v);
}

SPIPlanPtr g_limits_plan = nullptr;

SPIPlanPtr keep_plan(SPIPlanPtr* slot, const char* sql, int nargs) {
    if (!*slot) {
        Oid types[2] = {TEXTOID, TEXTOID};
        SPIPlanPtr p = SPI_prepare(sql, nargs, types);
        if (!p) elog(ERROR, "could not prepare \"%s\"", sql);
        SPI_keepplan(p);
        *slot = p;
    }
    return *slot;
}

// load_limits reads a tenant's limits (PostgreSQL calls only).
LimitRow* load_limits(Text tenant, int* n) {
    MemoryContext upper = CurrentMemoryContext;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    SPIPlanPtr p = keep_plan(&g_limits_plan, "SELECT * FROM meter._quota_limits($1)", 1);
    Datum args[1] = {text_datum(tenant)};
    if (SPI_execute_plan(p, args, nullptr, true, 0) != SPI_OK_SELECT) elog(ERROR, "could not read meter.limits");
    MemoryContext old = MemoryContextSwitchTo(upper);
    *n = static_cast<int>(SPI_processed);
    LimitRow* rows = static_cast<LimitRow*>(palloc0(sizeof(LimitRow) * (SPI_processed + 1)));
    for (uint64 i = 0; i < SPI_processed; ++i) {
        HeapTuple t = SPI_tuptable->vals[i];
        TupleDesc d = SPI_tuptable->tupdesc;
        LimitRow& r = rows[i];
        r.id = col_int8(t, d, 1);
        r.plan = col_text(t, d, 2);
        r.subject = col_text(t, d, 3);
        r.scope = col_text(t, d, 4);
        r.endpoint = col_text(t, d, 5);
        r.meter = col_text(t, d, 6);
        r.per_us = col_int8(t, d, 7);
        bool isnull;
        Datum max = SPI_getbinval(t, d, 8, &isnull);
        limits::i128 m = 0;
        if (!numeric_scaled(max, strcmp(r.meter, "cost") == 0 ? kCostScale : 0, &m))
            elog(ERROR, "limit %lld has a maximum out of range", static_cast<long long>(r.id));
        memcpy(r.max, &m, sizeof m);
        r.window = *DatumGetIntervalP(SPI_getbinval(t, d, 9, &isnull));
        r.calendar = col_text(t, d, 10);
        r.zone = col_text(t, d, 11);
        r.period = col_text(t, d, 12);
    }
    MemoryContextSwitchTo(old);
    SPI_finish();
    return rows;
}

// find_rows calls f on each row of rel whose leading columns atts equal
// the texts keys, as the calling statement's snapshot sees them, until f
// returns true (then so does find_rows). Through the primary key when it
// starts with those columns, else by a sequential scan: a subject is read
// without planning a query (meter.check reads each new subject this way).
template <typename F>
bool find_rows(Relation rel, int nkeys, const AttrNumber* atts, const Datum* keys, F f) {
    Oid pk = RelationGetPrimaryKeyIndex(rel);
    bool by_index = false;
    if (OidIsValid(pk)) {
        Relation ix = index_open(pk, AccessShareLock);
        by_index = ix->rd_index->indnkeyatts >= nkeys;
        for (int i = 0; by_index && i < nkeys; ++i) by_index = ix->rd_index->indkey.values[i] == atts[i];
        index_close(ix, NoLock);
    }
    TupleDesc desc = RelationGetDescr(rel);
    ScanKeyData sk[2];
    Assert(nkeys <= 2);
    for (int i = 0; i < nkeys; ++i)
        ScanKeyEntryInitialize(&sk[i], 0, atts[i], BTEqualStrategyNumber, InvalidOid,
                               TupleDescAttr(desc, atts[i] - 1)->attcollation, F_TEXTEQ, keys[i]);
    Snapshot snap = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
    SysScanDesc scan = systable_beginscan(rel, pk, by_index, snap, nkeys, sk);
    bool done = false;
    HeapTuple t;
    while (!done && HeapTupleIsValid(t = systable_getnext(scan))) done = f(t, desc);
    systable_endscan(scan);
    return done;
}

// column reads a column of a row of rel by name (PostgreSQL calls only).
Datum column(Relation rel, HeapTuple t, TupleDesc desc, const char* name, bool* isnull) {
    AttrNumber a = get_attnum(RelationGetRelid(rel), name);
    if (a == InvalidAttrNumber) elog(ERROR, "%s has no column \"%s\"", RelationGetRelationName(rel), name);
    return heap_getattr(t, a, desc, isnull);
}

char* column_text(Relation rel, HeapTuple t, TupleDesc desc, const char* name) {
    bool isnull;
    Datum v = column(rel, t, desc, name, &isnull);
    return isnull ? nullptr : text_to_cstring(DatumGetTextPP(v));
}

Relation open_table(const char* name) {
    Oid relid = get_relname_relid(name, get_namespace_oid("meter", false));
    if (!OidIsValid(relid))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("meter.%s does not exist", name),
                        errhint("Run CREATE EXTENSION pg_meter.")));
    return table_open(relid, AccessShareLock);
}

// load_subject reads one subject, or the tenant's default plan for a
// subject never seen or none (PostgreSQL calls only), from the tables
// directly whoever the caller is: meter.check's subjects and
// meter._quota_subject's answer to the SQL readers.
SubjectRow load_subject(Text tenant, Text subject) {
    SubjectRow r{};
    Datum tenant_d = text_datum(tenant);
    if (!subject.is_null()) {
        Datum keys[2] = {tenant_d, text_datum(subject)};
        Relation subjects = open_table("subjects");
        AttrNumber atts[2] = {get_attnum(RelationGetRelid(subjects), "tenant"),
                              get_attnum(RelationGetRelid(subjects), "subject")};
        r.found = find_rows(subjects, 2, atts, keys, [&](HeapTuple t, TupleDesc d) {
            bool isnull;
            r.plan = column_text(subjects, t, d, "plan");
            r.team = column_text(subjects, t, d, "team");
            (void)column(subjects, t, d, "blocked_at", &isnull);
            r.blocked = !isnull;
            r.reason = column_text(subjects, t, d, "blocked_reason");
            return true;
        });
        table_close(subjects, NoLock);
        if (r.found) return r;
    }
    Relation plans = open_table("plans");
    AttrNumber tenant_att = get_attnum(RelationGetRelid(plans), "tenant");
    r.found = find_rows(plans, 1, &tenant_att, &tenant_d, [&](HeapTuple t, TupleDesc d) {
        bool isnull;
        Datum is_default = column(plans, t, d, "is_default", &isnull);
        if (isnull || !DatumGetBool(is_default)) return false;
        r.plan = column_text(plans, t, d, "plan");
        return true;
    });
    table_close(plans, NoLock);
    return r;
}

int index_of(const char* s, const char* const* names, int n) {
    for (int i = 0; i < n; ++i)
        if (s && strcmp(s, names[i]) == 0) return i;
    return 0;
}

// ident_text is what a budget's counters are named by: the tenant, the
// scope, the meter, the endpoint and the budget period (key_of hashes it
// with the subject, team, session or tenant counted for).
std::string ident_text(Text tenant, Text scope, Text meter, Text endpoint, Text period) {
    std::string s;
    for (Text t : {tenant, scope, meter, endpoint, period}) {
        if (t.is_null()) s.push_back('\x1e');
        else s.append(t.p, t.n);
        s.push_back('\x1f');
    }
    return s;
}

Text txt(const std::string& s) { return Text{s.data(), s.size()}; }
Text txt(const char* s) { return s ? Text{s, strlen(s)} : Text{}; }

// interval_micros is an interval's length with a month of 30 days (as
// extract(epoch FROM interval) counts it).
int64 interval_micros(const Interval* v) {
    return v->time + (v->day + static_cast<int64>(v->month) * 30) * USECS_PER_DAY;
}

// nullable copies a column read by SPI ("" for NULL); false for NULL.
bool nullable(const char* p, std::string* out) {
    *out = p ? p : "";
    return p != nullptr;
}

// fresh_cache drops the compiled copy after a change to the tables.
void fresh_cache() {
    if (!g_watch.stale) return;
    pm_watch_lookup(&g_watch);
    PmFailure* f = pm_run([&] {
        if (!g_cache) g_cache = new Cache();
        g_cache->tenants.clear();
        g_cache->subjects.clear();
    });
    if (f) pm_raise(f);
    g_watch.stale = false;
}

// tenant_conf returns a tenant's compiled limits, reading them on first
// use. PostgreSQL calls only in this frame.
const TenantConf* tenant_conf(Text tenant) {
    fresh_cache();
    const TenantConf* tc = nullptr;
    PmFailure* f = pm_run([&] {
        auto t = g_cache->tenants.find(tenant_key(tenant));
        if (t != g_cache->tenants.end()) tc = &t->second;
    });
    if (f) pm_raise(f);
    if (tc) return tc;
    int n = 0;
    LimitRow* rows = load_limits(tenant, &n);
    f = pm_run([&] {
        TenantConf c;
        for (int i = 0; i < n; ++i) {
            const LimitRow& r = rows[i];
            LimitDef l;
            l.id = r.id;
            l.has_plan = nullable(r.plan, &l.plan);
            l.has_subject = nullable(r.subject, &l.subject);
            l.has_endpoint = nullable(r.endpoint, &l.endpoint);
            l.scope = index_of(r.scope, kScopeNames, 4);
            l.meter = index_of(r.meter, kMeterNames, 5);
            l.window = r.window;
            memcpy(&l.max, r.max, sizeof l.max);
            l.budget = nullable(r.period, &l.period);
            l.rate = Rate{l.budget ? 0 : static_cast<int64_t>(l.max), r.per_us};
            if (l.budget) {
                l.calendar = r.calendar ? index_of(r.calendar, kCalendars, 5) : 0;
                nullable(r.zone, &l.zone);
                l.ident = ident_text(tenant, txt(r.scope), txt(r.meter), txt(r.endpoint), txt(r.period));
                l.ident_key = limits::key_of(0, 0, txt(l.ident));
            }
            c.limits.push_back(std::move(l));
        }
        for (size_t i = 0; i < c.limits.size(); ++i) {
            const LimitDef& l = c.limits[i];
            if (!l.budget) continue;
            bool seen = false;
            for (int j : c.counted) seen = seen || c.limits[static_cast<size_t>(j)].ident == l.ident;
            if (seen) continue;
            c.counted.push_back(static_cast<int>(i));
            c.teams = c.teams || l.scope == sTeam;
        }
        tc = &(g_cache->tenants[tenant_key(tenant)] = std::move(c));
    });
    if (f) pm_raise(f);
    return tc;
}

// subject_conf returns a subject's compiled entry, reading it on first
// use; one never registered and without a default plan is not known.
// PostgreSQL calls only in this frame.
const SubjectConf* subject_conf(Text tenant, Text subject, const TenantConf* tc) {
    const SubjectConf* sc = nullptr;
    PmFailure* f = pm_run([&] {
        auto s = g_cache->subjects.find(subject_key(tenant, subject));
        if (s != g_cache->subjects.end()) sc = &s->second;
    });
    if (f) pm_raise(f);
    if (sc) return sc;
    SubjectRow r = load_subject(tenant, subject);
    f = pm_run([&] {
        if (g_cache->subjects.size() >= kMaxSubjects) g_cache->subjects.clear();
        SubjectConf c;
        c.known = r.found;
        c.has_plan = nullable(r.plan, &c.plan);
        c.has_team = nullable(r.team, &c.team);
        c.blocked = r.blocked;
        nullable(r.reason, &c.reason);
        c.applying = applying(*tc, c, str(subject));
        sc = &(g_cache->subjects[subject_key(tenant, subject)] = std::move(c));
    });
    if (f) pm_raise(f);
    return sc;
}

// compiled returns the tenant's and a known subject's compiled entries
// (42704 for a subject not known). PostgreSQL calls only in this frame.
void compiled(Text tenant, Text subject, const TenantConf** tc_out, const SubjectConf** sc_out) {
    const TenantConf* tc = tenant_conf(tenant);
    const SubjectConf* sc = subject_conf(tenant, subject, tc);
    if (!sc->known)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("subject \"%.*s\" is not known in tenant \"%.*s\"", static_cast<int>(subject.n),
                               subject.p, static_cast<int>(tenant.n), tenant.p),
                        errhint("Put it on a plan with meter.assign_plan, or make a plan the tenant's default "
                                "with meter.create_plan(..., is_default => true).")));
    *tc_out = tc;
    *sc_out = sc;
}

// ---------------------------------------------------------------------------
// Budget windows and keys.

// budget_window is the window of a calendar unit in a time zone, or of
// fixed windows of width microseconds from the epoch, that holds t.
// PostgreSQL calls only.
void budget_window(int calendar, const char* zone, Micros width, TimestampTz t, TimestampTz* start, TimestampTz* end) {
    if (calendar == 0) {
        Micros w = 0;
        PmFailure* f = pm_run([&] { w = limits::window_start(to_micros(t), width); });
        if (f) pm_raise(f);
        *start = from_micros(w);
        *end = from_micros(w > kMaxTime - width ? kMaxTime : w + width);
        return;
    }
    Datum unit = CStringGetTextDatum(kCalendars[calendar]);
    Datum tz = CStringGetTextDatum(zone);
    Datum s = DirectFunctionCall3(timestamptz_trunc_zone, unit, TimestampTzGetDatum(t), tz);
    Interval one{};
    if (calendar == 1) one.day = 1;
    else if (calendar == 2) one.day = 7;
    else if (calendar == 3) one.month = 1;
    else one.month = 12;
    Datum local = DirectFunctionCall2(timestamptz_zone, tz, s);
    Datum local_end = DirectFunctionCall2(timestamp_pl_interval, local, IntervalPGetDatum(&one));
    *start = DatumGetTimestampTz(s);
    *end = DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone, tz, local_end));
}

// window_of is budget l's window that holds t (the last one kept).
void window_of(const LimitDef& l, TimestampTz t, TimestampTz* start, TimestampTz* end) {
    if (l.win_end == 0 || t < l.win_start || t >= l.win_end)
        budget_window(l.calendar, l.zone.c_str(), l.rate.period, t, &l.win_start, &l.win_end);
    *start = l.win_start;
    *end = l.win_end;
}

// counter_key names the counter of budget l for who.
Key counter_key(const LimitDef& l, Text who) { return limits::key_of(0, 0, txt(l.ident), who); }

Datum uuid_datum(const Key& k) {
    pg_uuid_t* u = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
    for (int i = 0; i < 8; ++i) {
        u->data[i] = static_cast<unsigned char>(k.a >> (56 - 8 * i));
        u->data[8 + i] = static_cast<unsigned char>(k.b >> (56 - 8 * i));
    }
    return UUIDPGetDatum(u);
}

// ---------------------------------------------------------------------------
// The durable counters: what each transaction adds, written at pre-commit.

struct Delta {
    Key key, ident;
    TimestampTz start, end;
    int meter;
    limits::i128 amount;
    int level;  // the transaction nesting level that counted it
    Key cell;          // at pre-commit: the shared-memory cell's key
    uint32_t stripe;   // and its stripe
};
std::vector<Delta>* g_deltas = nullptr;
std::vector<uint32_t>* g_entered = nullptr;  // the stripes this commit entered
bool g_callbacks = false;

void register_callbacks();

// add_delta adds an amount to a counter at the current nesting level.
void add_delta(const Key& key, const Key& ident, TimestampTz start, TimestampTz end, int meter, limits::i128 amount) {
    int level = GetCurrentTransactionNestLevel();
    PmFailure* f = pm_run([&] {
        if (!g_deltas) g_deltas = new std::vector<Delta>();
        // most transactions count one event; a bulk load counts many for
        // few counters: the last few entries are where a match usually is
        size_t n = g_deltas->size();
        for (size_t i = n; i-- > 0 && n - i <= 8;) {
            Delta& d = (*g_deltas)[i];
            if (d.key == key && d.start == start && d.level == level) {
                d.amount += amount;
                return;
            }
        }
        g_deltas->push_back(Delta{key, ident, start, end, meter, amount, level, Key{}, 0});
    });
    if (f) pm_raise(f);
}

Oid g_usage_rel = InvalidOid;  // meter.budget_usage, whose owner reads and writes it
SPIPlanPtr g_flush_plan = nullptr, g_seed_plan = nullptr;

// as_owner runs f as the owner of meter.budget_usage: an application role
// counts its events and reads budgets without any right on the table.
template <class F>
void as_owner(F&& f) {
    if (!OidIsValid(g_usage_rel)) {
        Oid ns = get_rel_namespace(g_watch.rels[1]);
        g_usage_rel = get_relname_relid("budget_usage", ns);
        if (!OidIsValid(g_usage_rel)) elog(ERROR, "meter.budget_usage is missing");
    }
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(g_usage_rel));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", g_usage_rel);
    Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
    Oid saved_user;
    int saved_sec;
    GetUserIdAndSecContext(&saved_user, &saved_sec);
    SetUserIdAndSecContext(owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
    PG_TRY();
    { f(); }
    PG_FINALLY();
    { SetUserIdAndSecContext(saved_user, saved_sec); }
    PG_END_TRY();
}

// flush_deltas writes the transaction's counters in one statement.
void flush_deltas() {
    // merge the levels: one row may be updated once per statement
    std::vector<Delta>& all = *g_deltas;
    int n = 0;
    PmFailure* f = pm_run([&] {
        std::sort(all.begin(), all.end(), [](const Delta& x, const Delta& y) {
            if (x.key.a != y.key.a) return x.key.a < y.key.a;
            if (x.key.b != y.key.b) return x.key.b < y.key.b;
            return x.start < y.start;
        });
        size_t k = 0;
        for (size_t i = 0; i < all.size(); ++i) {
            if (k > 0 && all[k - 1].key == all[i].key && all[k - 1].start == all[i].start)
                all[k - 1].amount += all[i].amount;
            else
                all[k++] = all[i];
        }
        all.resize(k);
        all.erase(std::remove_if(all.begin(), all.end(), [](const Delta& d) { return d.amount == 0; }), all.end());
        n = static_cast<int>(all.size());
    });
    if (f) pm_raise(f);
    if (n == 0) return;
    Datum* keys = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    Datum* idents = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    Datum* starts = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    Datum* ends = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    Datum* amounts = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    for (int i = 0; i < n; ++i) {
        const Delta& d = all[static_cast<size_t>(i)];
        keys[i] = uuid_datum(d.key);
        idents[i] = uuid_datum(d.ident);
        starts[i] = TimestampTzGetDatum(d.start);
        ends[i] = TimestampTzGetDatum(d.end);
        PmMoney m;
        number_out(d.amount, d.meter == mCost ? kCostScale : 0, &m);
        amounts[i] = money_datum(&m);
    }
    Datum args[6] = {
        PointerGetDatum(construct_array(keys, n, UUIDOID, 16, false, TYPALIGN_CHAR)),
        PointerGetDatum(construct_array(idents, n, UUIDOID, 16, false, TYPALIGN_CHAR)),
        PointerGetDatum(construct_array(starts, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
        PointerGetDatum(construct_array(ends, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
        PointerGetDatum(construct_array(amounts, n, NUMERICOID, -1, false, TYPALIGN_INT)),
        Int16GetDatum(static_cast<int16>(MyProc->pgprocno % kShards))};
    as_owner([&] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        if (!g_flush_plan) {
            Oid types[6] = {UUIDARRAYOID, UUIDARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, NUMERICARRAYOID, INT2OID};
            SPIPlanPtr p = SPI_prepare(
                "INSERT INTO meter.budget_usage AS u (key, ident, window_start, window_end, shard, amount) "
                "SELECT k, i, s, e, $6, a FROM unnest($1, $2, $3, $4, $5) AS t(k, i, s, e, a) "
                "ON CONFLICT (key, window_start, shard) DO UPDATE SET amount = u.amount + EXCLUDED.amount",
                6, types);
            if (!p) elog(ERROR, "could not prepare the budget counters' upsert");
            SPI_keepplan(p);
            g_flush_plan = p;
        }
        // at pre-commit no statement's snapshot is active any more
        PushActiveSnapshot(GetTransactionSnapshot());
        if (SPI_execute_plan(g_flush_plan, args, nullptr, false, 0) != SPI_OK_INSERT)
            elog(ERROR, "could not write the budget counters");
        PopActiveSnapshot();
        SPI_finish();
    });
}

// read_counter is a counter's committed total in a window, in a snapshot
// taken now (whatever the isolation level: the seeding protocol needs it).
limits::i128 read_counter(const Key& key, TimestampTz start, int meter) {
    limits::i128 v = 0;
    as_owner([&] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        if (!g_seed_plan) {
            Oid types[2] = {UUIDOID, TIMESTAMPTZOID};
            SPIPlanPtr p = SPI_prepare(
                "SELECT coalesce(sum(amount), 0) FROM meter.budget_usage WHERE key = $1 AND window_start = $2", 2, types);
            if (!p) elog(ERROR, "could not prepare the budget counters' read");
            SPI_keepplan(p);
            g_seed_plan = p;
        }
        Datum args[2] = {uuid_datum(key), TimestampTzGetDatum(start)};
        if (SPI_execute_snapshot(g_seed_plan, args, nullptr, GetLatestSnapshot(), InvalidSnapshot, true, false, 1) !=
                SPI_OK_SELECT ||
            SPI_processed != 1)
            elog(ERROR, "could not read the budget counters");
        bool isnull;
        Datum sum = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (!numeric_scaled(sum, meter == mCost ? kCostScale : 0, &v)) elog(ERROR, "a budget counter is out of range");
        SPI_finish();
    });
    return v;
}

// ---------------------------------------------------------------------------
// The decision, as plain data.

struct Request {
    Text tenant, subject, endpoint, session;
    int64_t input = 0, output = 0;  // the estimate
    int64_t cost = 0;               // the estimate's cost in picodollars
    bool take = false;
    Micros ttl = 0;
};

struct Decision {
    bool allowed = true;
    int status = 0;  // 0 allowed, 1 limited, 2 blocked, 3 unavailable
    uint64_t reservation = 0;
    const LimitDef* by = nullptr;
    Answer a;
    bool has_answer = false;
    PmMoney numbers[4];  // a's max, used, reserved, remaining, ready to be numeric
    const char* reason = nullptr;  // static or the cache's string
};

int64_t units(int meter, const Request& q) {
    switch (meter) {
        case mRequests: return 1;
        case mInput: return q.input;
        case mOutput: return q.output;
        case mTotal: return q.input + q.output;
        default: return q.cost;
    }
}

// who_for: the text a limit is counted for; false when there is none (a
// team limit for a subject in no team, a session limit without a session,
// an endpoint limit for another endpoint).
bool who_for(const LimitDef& l, Text tenant, Text subject, Text endpoint, Text session, const SubjectConf* sc, Text* x) {
    if (l.has_endpoint &&
        (endpoint.is_null() || l.endpoint.size() != endpoint.n || memcmp(l.endpoint.data(), endpoint.p, endpoint.n) != 0))
        return false;
    switch (l.scope) {
        case sSubject:
            *x = subject;
            return !subject.is_null();
        case sTeam:
            if (!sc || !sc->has_team) return false;
            *x = txt(sc->team);
            return true;
        case sTenant: *x = tenant; return true;
        default:
            *x = session;
            return !session.is_null();
    }
}

struct Applied {
    int n = 0;
    const LimitDef* def[kMaxApplying];
    Key key[kMaxApplying];       // the cell's key
    Key counter[kMaxApplying];   // a budget's counter
    int64_t n_units[kMaxApplying];
    uint32_t stripe[kMaxApplying];
    TimestampTz start[kMaxApplying], end[kMaxApplying];  // a budget's window
};

// gather finds the limits a request is held against, with their keys and
// (for budgets) windows. PostgreSQL calls only.
void gather(const TenantConf& tc, const SubjectConf& sc, const Request& q, TimestampTz now, Applied* ap) {
    CellTable cells(g_cells_mem, g_shared->stripes, kWays);
    for (int i : sc.applying) {
        const LimitDef& l = tc.limits[static_cast<size_t>(i)];
        Text x;
        if (!who_for(l, q.tenant, q.subject, q.endpoint, q.session, &sc, &x)) continue;
        if (ap->n == kMaxApplying)
            ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                            errmsg("a request is held against more than %d limits", kMaxApplying),
                            errhint("Drop limits of this tenant (meter.drop_limit) until at most %d apply to one request.",
                                    kMaxApplying)));
        int k = ap->n++;
        ap->def[k] = &l;
        if (l.budget) {
            ap->counter[k] = counter_key(l, x);
            ap->key[k] = limits::in_space(ap->counter[k], MyDatabaseId);
            window_of(l, now, &ap->start[k], &ap->end[k]);
        } else {
            ap->key[k] = l.has_endpoint ? limits::key_of(MyDatabaseId, l.id, x, txt(l.endpoint))
                                        : limits::key_of(MyDatabaseId, l.id, x);
        }
        ap->n_units[k] = units(l.meter, q);
        ap->stripe[k] = cells.stripe_of(ap->key[k]);
    }
}

void nap() {
    pg_usleep(100L);
    CHECK_FOR_INTERRUPTS();
}

struct Seeding {
    uint32_t stripe;
    bool raised;
};

void lower_on_exit(int, Datum arg) {
    Seeding* sd = reinterpret_cast<Seeding*>(DatumGetPointer(arg));
    if (!sd->raised) return;
    LWLockAcquire(&g_stripe_locks[sd->stripe].lock, LW_EXCLUSIVE);
    CellTable(g_cells_mem, g_shared->stripes, kWays).lower_barrier(sd->stripe);
    LWLockRelease(&g_stripe_locks[sd->stripe].lock);
    sd->raised = false;
}

// seed fills a budget's cell for a window from the durable counters (the
// protocol of cells.hpp); false when its stripe has no room.
bool seed(const Key& key, const Key& counter, TimestampTz start, int meter) {
    CellTable cells(g_cells_mem, g_shared->stripes, kWays);
    Seeding sd{cells.stripe_of(key), false};
    LWLock* lock = &g_stripe_locks[sd.stripe].lock;
    Micros now = to_micros(GetCurrentTimestamp());
    Micros window = to_micros(start);
    for (;;) {
        LWLockAcquire(lock, LW_EXCLUSIVE);
        Cell* c = cells.peek(key);
        if (c && c->budget.window == window && c->budget.seeded) {
            LWLockRelease(lock);
            return true;
        }
        if (cells.raise_barrier(sd.stripe)) break;
        LWLockRelease(lock);
        nap();
    }
    sd.raised = true;
    bool ok = false;
    PG_ENSURE_ERROR_CLEANUP(lower_on_exit, PointerGetDatum(&sd));
    {
        while (!cells.quiet(sd.stripe)) {
            LWLockRelease(lock);
            nap();
            LWLockAcquire(lock, LW_EXCLUSIVE);
        }
        LWLockRelease(lock);
        limits::i128 used = read_counter(counter, start, meter);
        LWLockAcquire(lock, LW_EXCLUSIVE);
        if (Cell* c = cells.find(key, now)) {
            limits::Budget& b = limits::budget_in(*c, window);
            b.used = used;
            b.seeded = true;
            limits::budget_touched(*c, now);
            ok = true;
        }
        cells.lower_barrier(sd.stripe);
        sd.raised = false;
        LWLockRelease(lock);
    }
    PG_END_ENSURE_ERROR_CLEANUP(lower_on_exit, PointerGetDatum(&sd));
    return ok;
}

// seeded_then runs locked (an answer under the stripes' locks, false when a
// budget's cell is not seeded for its window) once every gathered budget's
// cell is seeded: seeding reads the counters, so it comes before the locks
// are taken, and a cell may have been reused or moved on by the time they
// are; then it is seeded again, three times at most. Returns false when a
// stripe has no room for a budget's cell or the cells kept moving.
template <class F>
bool seeded_then(const Applied& ap, F&& locked) {
    bool answered = false;
    for (int attempt = 0; attempt < 3 && !answered; ++attempt) {
        bool room = true;
        for (int i = 0; i < ap.n && room; ++i)
            if (ap.def[i]->budget) room = seed(ap.key[i], ap.counter[i], ap.start[i], ap.def[i]->meter);
        if (!room) break;
        PmFailure* f = pm_run([&] { answered = locked(); });
        if (f) pm_raise(f);
    }
    return answered;
}

const char* const kBudgetCellsFull = "the budget cells in shared memory are full (pg_meter.rate_cells)";

// StripeLocks are the stripes of the gathered limits, locked in ascending
// order (the one order every path takes them in): exclusive when the
// request takes or a budget applies (a budget's cell may be claimed or
// moved to a new window), shared otherwise.
struct StripeLocks {
    uint32_t order[kMaxApplying];
    int n = 0;

    StripeLocks(const Applied& ap, bool take) {
        for (int i = 0; i < ap.n; ++i) order[n++] = ap.stripe[i];
        std::sort(order, order + n);
        n = static_cast<int>(std::unique(order, order + n) - order);
        bool budgets = false;
        for (int i = 0; i < ap.n; ++i) budgets = budgets || ap.def[i]->budget;
        LWLockMode mode = take || budgets ? LW_EXCLUSIVE : LW_SHARED;
        for (int i = 0; i < n; ++i) LWLockAcquire(&g_stripe_locks[order[i]].lock, mode);
    }
    void release() {
        for (int i = n; i-- > 0;) LWLockRelease(&g_stripe_locks[order[i]].lock);
        n = 0;
    }
};

// answer_locked answers every gathered limit on its own, under the
// stripes' locks: a budget from its seeded cell, a rate from its bucket
// (with take, found or claimed, and unavailable set when there is no room;
// otherwise only peeked: an unknown bucket is empty). found[i] is the cell
// a reservation would take from. Returns false when a budget's cell is not
// (or no longer) seeded for its window. Runs under pm_run (the core's
// arithmetic throws only for limits set_limit refuses).
bool answer_locked(const Applied& ap, bool take, Micros now, Answer* answers, Cell** found, bool* unavailable) {
    CellTable cells(g_cells_mem, g_shared->stripes, kWays);
    for (int i = 0; i < ap.n; ++i) {
        const LimitDef& l = *ap.def[i];
        found[i] = nullptr;
        if (l.budget) {
            Cell* c = cells.peek(ap.key[i]);
            if (!c || c->budget.window != to_micros(ap.start[i]) || !c->budget.seeded) return false;
            found[i] = c;
            answers[i] = limits::budget(l.max, c->budget.used, c->budget.reserved, ap.n_units[i], now,
                                        to_micros(ap.end[i]));
            continue;
        }
        GcraState st;
        if (take) {
            found[i] = cells.find(ap.key[i], now);
            if (!found[i]) *unavailable = true;
            else st = found[i]->state;
        } else if (const Cell* c = cells.peek(ap.key[i])) {
            st = c->state;
        }
        if (l.rate.max == 0) {
            answers[i] = Answer{};
            answers[i].retry_after = limits::kNever;
        } else {
            answers[i] = limits::gcra(st, l.rate, now, ap.n_units[i], false);
        }
    }
    return true;
}

// decide_locked decides over the gathered limits under their stripes'
// locks; with q.take, it takes what it allowed and makes a reservation.
// Returns false when a budget's cell is not (or no longer) seeded for its
// window: the caller seeds it and asks again. Runs under pm_run; takes and
// releases the LWLocks itself.
bool decide_locked(const Applied& ap, const Request& q, Micros now, Decision* d) {
    static std::vector<Answer> all;  // kept across calls: no allocation per decision
    all.reserve(kMaxApplying);       // before any lock is held
    StripeLocks locks(ap, q.take);
    Answer answers[kMaxApplying];
    Cell* found[kMaxApplying];
    bool unavailable = false;
    if (!answer_locked(ap, q.take, now, answers, found, &unavailable)) {
        locks.release();
        return false;
    }
    all.assign(answers, answers + ap.n);
    limits::Verdict v = limits::decide(all);
    d->allowed = v.allowed;
    d->status = v.allowed ? 0 : 1;
    if (v.decided_by >= 0) {
        d->by = ap.def[v.decided_by];
        d->a = answers[v.decided_by];
        d->has_answer = true;
    }
    if (unavailable && v.allowed) {
        d->status = 3;
        d->allowed = g_failure == 1;
        d->reason = "the rate buckets in shared memory are full (pg_meter.rate_cells)";
    }
    if (q.take && d->allowed) {
        LWLockAcquire(&g_res_lock->lock, LW_EXCLUSIVE);
        ReservationTable rt(g_res_mem, g_shared->capacity);
        Reservation* r = rt.claim(now, q.ttl);
        if (!r) {
            d->status = 3;
            d->allowed = g_failure == 1;
            d->reason = "every reservation slot is in use (pg_meter.reservations)";
        } else {
            d->reservation = r->id;
            for (int i = 0; i < ap.n; ++i) {
                const LimitDef& l = *ap.def[i];
                if (!found[i] || ap.n_units[i] == 0) continue;
                if (l.budget) {
                    found[i]->budget.reserved += ap.n_units[i];
                    limits::budget_touched(*found[i], now);
                    r->holds[r->nholds++] = Hold{ap.key[i], Rate{}, ap.n_units[i], to_micros(ap.start[i]), l.meter, true};
                    r->budget = true;
                    continue;
                }
                if (l.rate.max == 0) continue;
                limits::gcra(found[i]->state, l.rate, now, ap.n_units[i], true);
                found[i]->free_at = limits::free_at_after(found[i]->state, l.rate);
                r->holds[r->nholds++] = Hold{ap.key[i], l.rate, ap.n_units[i], 0, l.meter, false};
            }
            if (r->budget) rt.note_budget(*r);
        }
        LWLockRelease(&g_res_lock->lock);
    }
    locks.release();
    return true;
}

// status_locked answers every gathered limit on its own under the
// stripes' locks, taking nothing (meter.quota_status). Returns false as
// decide_locked does. Runs under pm_run.
bool status_locked(const Applied& ap, Micros now, Answer* answers) {
    StripeLocks locks(ap, false);
    Cell* found[kMaxApplying];
    bool unavailable = false;
    bool seeded = answer_locked(ap, false, now, answers, found, &unavailable);
    locks.release();
    return seeded;
}

// adjust moves the cells a reservation held: give back all (a release),
// or correct each token estimate of a rate by the actual count; a budget's
// hold is always given back (the actual usage reaches the budget through
// its counters). budgets_only leaves the rates as they are (an expiry: the
// call may have happened). Takes the locks.
void adjust(const Reservation& r, bool all, int64_t input, int64_t output, Micros now, bool budgets_only = false) {
    CellTable cells(g_cells_mem, g_shared->stripes, kWays);
    for (int i = 0; i < r.nholds; ++i) {
        const Hold& h = r.holds[i];
        if (budgets_only && !h.budget) continue;
        int64_t actual = h.meter == mInput ? input : h.meter == mOutput ? output : h.meter == mTotal ? input + output : h.n;
        if (!h.budget && !all && actual == h.n) continue;
        LWLock* lock = &g_stripe_locks[cells.stripe_of(h.key)].lock;
        LWLockAcquire(lock, LW_EXCLUSIVE);
        if (h.budget) {
            if (Cell* c = cells.peek(h.key)) {
                limits::unreserve(*c, h);
                limits::budget_touched(*c, now);
            }
        } else if (Cell* c = cells.find(h.key, now)) {
            if (all || actual < h.n)
                limits::give_back(c->state, h.rate, now, all ? h.n : h.n - actual);
            else
                limits::charge(c->state, h.rate, now, actual - h.n);
            c->free_at = limits::free_at_after(c->state, h.rate);
        }
        LWLockRelease(lock);
    }
}

// end_reservation removes a live reservation and moves its cells; false
// when the id is not live.
bool end_reservation(uint64_t id, bool all, int64_t input, int64_t output) {
    Micros now = to_micros(GetCurrentTimestamp());
    Reservation copy;
    LWLockAcquire(&g_res_lock->lock, LW_EXCLUSIVE);
    ReservationTable rt(g_res_mem, g_shared->capacity);
    Reservation* r = rt.find(id, now);
    if (r) {
        copy = *r;
        rt.free(r);
    }
    LWLockRelease(&g_res_lock->lock);
    if (!r) return false;
    adjust(copy, all, input, output, now);
    return true;
}

// expire_budgets gives back the budgets of reservations whose
// time-to-live has passed (at most a few at a time, whoever looks first).
void expire_budgets(Micros now) {
    static Reservation expired[16];
    ReservationTable rt(g_res_mem, g_shared->capacity);
    if (rt.next_expiry() > now) return;  // read without the lock: a hint
    LWLockAcquire(&g_res_lock->lock, LW_EXCLUSIVE);
    int n = rt.next_expiry() <= now ? rt.expire(now, expired, 16) : 0;
    LWLockRelease(&g_res_lock->lock);
    for (int i = 0; i < n; ++i) adjust(expired[i], true, 0, 0, now, true);
}

// ---------------------------------------------------------------------------
// Counting an event, and settlements, at commit.

// count_event adds one event's usage to the counters of every budget
// period of its tenant (cost_only: to the cost budgets alone, for a
// repriced event's change of cost). PostgreSQL calls only.
void count_event(const PmEvent& e, bool cost_only = false) {
    const TenantConf* tc = tenant_conf(e.tenant);
    if (tc->counted.empty()) return;
    const SubjectConf* sc = tc->teams && !e.subject.is_null() ? subject_conf(e.tenant, e.subject, tc) : nullptr;
    register_callbacks();
    for (int i : tc->counted) {
        const LimitDef& l = tc->limits[static_cast<size_t>(i)];
        if (cost_only && l.meter != mCost) continue;
        Text x;
        if (!who_for(l, e.tenant, e.subject, e.endpoint, e.session, sc, &x)) continue;
        limits::i128 amount = l.meter == mRequests ? 1
                              : l.meter == mInput  ? e.input
                              : l.meter == mOutput ? e.output
                              : l.meter == mTotal  ? e.input + e.output
                                                   : e.cost;
        if (amount == 0) continue;
        TimestampTz start, end;
        window_of(l, e.at, &start, &end);
        add_delta(counter_key(l, x), l.ident_key, start, end, l.meter, amount);
    }
}

// enter_stripes: before the commit becomes visible, every stripe of the
// transaction's budget cells counts it as pending. Stripes are entered one
// at a time (a commit may count for more stripes than a backend may hold
// LWLocks); at a seeder's barrier the commit leaves every stripe it
// entered and waits, so it never waits while pending. g_entered holds
// exactly the stripes entered, which an abort leaves.
void enter_stripes(const std::vector<uint32_t>& needed) {
    CellTable cells(g_cells_mem, g_shared->stripes, kWays);
    std::vector<uint32_t>& in = *g_entered;
    for (;;) {
        bool barred = false;
        for (uint32_t s : needed) {
            LWLockAcquire(&g_stripe_locks[s].lock, LW_EXCLUSIVE);
            barred = !cells.enter_commit(s);
            LWLockRelease(&g_stripe_locks[s].lock);
            if (barred) break;
            in.push_back(s);  // capacity reserved: cannot throw
        }
        if (!barred) return;
        for (uint32_t s : in) {
            LWLockAcquire(&g_stripe_locks[s].lock, LW_EXCLUSIVE);
            cells.leave_commit(s);
            LWLockRelease(&g_stripe_locks[s].lock);
        }
        in.clear();
        nap();
    }
}

// leave_stripes: after the commit (add to the filled cells) or an abort.
// The deltas are in the order of their stripes (on_xact sorted them).
void leave_stripes(bool committed) {
    CellTable cells(g_cells_mem, g_shared->stripes, kWays);
    Micros now = to_micros(GetCurrentTimestamp());
    size_t at = 0;
    std::vector<Delta>& ds = *g_deltas;
    for (uint32_t s : *g_entered) {
        LWLockAcquire(&g_stripe_locks[s].lock, LW_EXCLUSIVE);
        for (; at < ds.size() && ds[at].stripe <= s; ++at) {
            const Delta& d = ds[at];
            if (!committed || d.stripe != s) continue;
            Cell* c = cells.peek(d.cell);
            if (c && c->budget.seeded && c->budget.window == to_micros(d.start)) {
                c->budget.used += d.amount;
                limits::budget_touched(*c, now);
            }
        }
        cells.leave_commit(s);
        LWLockRelease(&g_stripe_locks[s].lock);
    }
    g_entered->clear();
}

struct Pending {
    int64 id;
    bool all;
    int64 input, output;
    int level;  // the transaction nesting level that recorded it
};
Pending* g_pending = nullptr;
int g_npending = 0, g_cap_pending = 0;

void on_xact(XactEvent event, void*) {
    bool deltas = g_deltas && !g_deltas->empty();
    if (event == XACT_EVENT_PRE_PREPARE && deltas)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("cannot PREPARE a transaction that recorded events counted by budgets"),
                        errdetail("A budget's counters are written as the transaction commits.")));
    if (event == XACT_EVENT_PRE_COMMIT && deltas) {
        flush_deltas();
        if (g_shared && !g_deltas->empty()) {
            static std::vector<uint32_t> needed;
            PmFailure* f = pm_run([&] {
                if (!g_entered) g_entered = new std::vector<uint32_t>();
                CellTable cells(g_cells_mem, g_shared->stripes, kWays);
                for (Delta& d : *g_deltas) {
                    d.cell = limits::in_space(d.key, MyDatabaseId);
                    d.stripe = cells.stripe_of(d.cell);
                }
                std::sort(g_deltas->begin(), g_deltas->end(),
                          [](const Delta& x, const Delta& y) { return x.stripe < y.stripe; });
                needed.clear();
                for (const Delta& d : *g_deltas)
                    if (needed.empty() || needed.back() != d.stripe) needed.push_back(d.stripe);
                g_entered->clear();
                g_entered->reserve(needed.size());
            });
            if (f) pm_raise(f);
            enter_stripes(needed);
        }
        return;
    }
    bool end = event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
               event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT;
    if (!end) return;
    if (g_entered && !g_entered->empty()) leave_stripes(event == XACT_EVENT_COMMIT);
    if (g_deltas) g_deltas->clear();
    if (g_npending == 0) return;
    if (event == XACT_EVENT_COMMIT && g_shared) {
        for (int i = 0; i < g_npending; ++i)
            end_reservation(static_cast<uint64_t>(g_pending[i].id), g_pending[i].all, g_pending[i].input,
                            g_pending[i].output);
    }
    g_npending = 0;  // the memory goes with TopTransactionContext
    g_pending = nullptr;
    g_cap_pending = 0;
}

void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
    int level = GetCurrentTransactionNestLevel();
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        int k = 0;
        for (int i = 0; i < g_npending; ++i)
            if (g_pending[i].level < level) g_pending[k++] = g_pending[i];
        g_npending = k;
        if (g_deltas)
            g_deltas->erase(std::remove_if(g_deltas->begin(), g_deltas->end(), [&](const Delta& d) { return d.level >= level; }),
                            g_deltas->end());
    } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (int i = 0; i < g_npending; ++i)
            if (g_pending[i].level >= level) g_pending[i].level = level - 1;
        if (g_deltas)
            for (Delta& d : *g_deltas)
                if (d.level >= level) d.level = level - 1;
    }
}

void register_callbacks() {
    if (g_callbacks) return;
    RegisterXactCallback(on_xact, nullptr);
    RegisterSubXactCallback(on_subxact, nullptr);
    g_callbacks = true;
}

// ---------------------------------------------------------------------------
// Arguments and the answer.

void need_arg(FunctionCallInfo fcinfo, int i, const char* name, const char* fn) {
    if (PG_ARGISNULL(i))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name),
                        errhint("Pass %s => ... to %s.", name, fn)));
}

// read_estimate reads {"input_tokens": n, "output_tokens": n, "cost": usd}.
void read_estimate(Jsonb* jb, Request* q) {
    if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("estimate must be a JSON object"),
                        errhint("Pass estimate => '{\"input_tokens\": 1200, \"output_tokens\": 400, \"cost\": 0.02}'.")));
    JsonbIterator* it = JsonbIteratorInit(&jb->root);
    JsonbValue k, v;
    JsonbIteratorToken tok;
    while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE) {
        if (tok != WJB_KEY) continue;
        tok = JsonbIteratorNext(&it, &v, true);
        std::string_view key(k.val.string.val, static_cast<size_t>(k.val.string.len));
        bool cost = key == "cost";
        int64_t* into = key == "input_tokens" ? &q->input : key == "output_tokens" ? &q->output : cost ? &q->cost : nullptr;
        if (!into)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("unknown key \"%.*s\" in the estimate", k.val.string.len, k.val.string.val),
                            errhint("An estimate has input_tokens, output_tokens and cost (USD).")));
        // tokens are whole, up to 1e15; a cost has up to 12 decimals, up to 1,000,000 USD
        __int128 n = 0;
        bool ok = v.type == jbvNumeric && numeric_scaled(NumericGetDatum(v.val.numeric), cost ? kCostScale : 0, &n) &&
                  n >= 0 && n <= (cost ? static_cast<__int128>(1000000) * 1000000000000 : INT64CONST(1000000000000000));
        if (!ok)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            cost ? errmsg("estimate cost must be an amount in USD from 0 to 1000000 with at most 12 decimals")
                                 : errmsg("estimate %.*s must be a whole number of tokens from 0 to 1e15",
                                          k.val.string.len, k.val.string.val)));
        *into = static_cast<int64_t>(n);
    }
}

PmResultDesc g_results[2];  // meter.decision's descriptor: check, reserve

// answer_numbers makes an answer's max, used, reserved and remaining ready
// to be numeric: USD at scale 12 for a cost limit, whole counts otherwise.
// Runs under pm_run.
void answer_numbers(const Answer& a, int meter, PmMoney numbers[4]) {
    int scale = meter == mCost ? kCostScale : 0;
    const limits::i128 nums[4] = {a.max, a.used, a.reserved, a.remaining};
    for (int i = 0; i < 4; ++i) number_out(nums[i], scale, &numbers[i]);
}

// limit_datums fills the four columns that name a limit: limit_id, meter,
// scope and per.
void limit_datums(const LimitDef& l, Datum* v, bool* n) {
    v[0] = Int64GetDatum(l.id);
    v[1] = CStringGetTextDatum(kMeterNames[l.meter]);
    v[2] = CStringGetTextDatum(kScopeNames[l.scope]);
    Interval* w = static_cast<Interval*>(palloc(sizeof(Interval)));
    *w = l.window;
    v[3] = IntervalPGetDatum(w);
    for (int i = 0; i < 4; ++i) n[i] = false;
}

// answer_datums fills the five columns of a limit's state: max, used,
// reserved, remaining (from answer_numbers) and reset_at.
void answer_datums(const PmMoney numbers[4], const Answer& a, Micros now, Datum* v, bool* n) {
    for (int i = 0; i < 4; ++i) v[i] = money_datum(&numbers[i]);
    v[4] = TimestampTzGetDatum(from_micros(now + a.reset_after));
    for (int i = 0; i < 5; ++i) n[i] = false;
}

Datum answer(FunctionCallInfo fcinfo, bool take, const Decision& d, const SubjectConf* sc, Micros now) {
    TupleDesc desc = pm_result_desc(fcinfo, &g_results[take ? 1 : 0]);
    Datum v[16];
    bool n[16];
    for (int i = 0; i < 16; ++i) {
        v[i] = 0;
        n[i] = true;
    }
    static const char* const kStatus[] = {"allowed", "limited", "blocked", "unavailable"};
    v[0] = BoolGetDatum(d.allowed), n[0] = false;
    v[1] = CStringGetTextDatum(kStatus[d.status]), n[1] = false;
    if (d.reservation) v[2] = Int64GetDatum(static_cast<int64>(d.reservation)), n[2] = false;
    if (d.by) limit_datums(*d.by, &v[3], &n[3]);
    if (d.has_answer) {
        answer_datums(d.numbers, d.a, now, &v[7], &n[7]);
        if (!d.a.allowed && d.a.retry_after != limits::kNever)
            v[12] = Int32GetDatum(static_cast<int32>(std::min<int64>((d.a.retry_after + 999999) / 1000000, PG_INT32_MAX))),
            n[12] = false;
    }
    if (sc && sc->has_plan) v[13] = text_datum(sc->plan), n[13] = false;
    if (d.reason) v[14] = CStringGetTextDatum(d.reason), n[14] = false;
    v[15] = CStringGetTextDatum(g_failure == 1 ? "open" : "closed"), n[15] = false;
    return HeapTupleGetDatum(heap_form_tuple(desc, v, n));
}

// read_request reads what every quota answer starts from: tenant and
// subject (22004 when NULL), endpoint and session.
Request read_request(FunctionCallInfo fcinfo, const char* fn) {
    need_arg(fcinfo, 0, "tenant", fn);
    need_arg(fcinfo, 1, "subject", fn);
    Request q;
    q.tenant = text_arg(fcinfo, 0);
    q.subject = text_arg(fcinfo, 1);
    q.endpoint = text_arg(fcinfo, 2);
    q.session = text_arg(fcinfo, 3);
    return q;
}

// Held is what a request is held to, and when it is answered.
struct Held {
    const TenantConf* tc;
    const SubjectConf* sc;
    TimestampTz now_tz;
    Micros now;
};

// held_to looks up the compiled tenant and subject of a request (42704 for
// a subject not known), takes the time it is answered at, and first gives
// back the budgets of the reservations expired by then. PostgreSQL calls
// only.
Held held_to(const Request& q) {
    need_shared();
    Held h;
    compiled(q.tenant, q.subject, &h.tc, &h.sc);
    h.now_tz = GetCurrentTimestamp();
    h.now = to_micros(h.now_tz);
    expire_budgets(h.now);
    return h;
}

Datum check_or_reserve(FunctionCallInfo fcinfo, bool take) {
    const char* fn = take ? "meter.reserve" : "meter.check";
    Request q = read_request(fcinfo, fn);
    if (!PG_ARGISNULL(4)) read_estimate(PG_GETARG_JSONB_P(4), &q);
    q.take = take;
    if (take) {
        need_arg(fcinfo, 5, "ttl", fn);
        Interval* ttl = PG_GETARG_INTERVAL_P(5);
        int64 us = interval_micros(ttl);
        if (us <= 0 || us > 7 * USECS_PER_DAY)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("a reservation's time-to-live must be more than 0 and at most 7 days")));
        q.ttl = us;
    }
    Held h = held_to(q);
    Decision d;
    if (h.sc->blocked) {
        d.allowed = false;
        d.status = 2;
        d.reason = h.sc->reason.c_str();
    } else {
        Applied ap;
        gather(*h.tc, *h.sc, q, h.now_tz, &ap);
        if (!seeded_then(ap, [&] { return decide_locked(ap, q, h.now, &d); })) {
            d = Decision{};
            d.status = 3;
            d.allowed = g_failure == 1;
            d.reason = kBudgetCellsFull;
        }
        PmFailure* f = pm_run([&] { answer_numbers(d.a, d.by ? d.by->meter : mRequests, d.numbers); });
        if (f) pm_raise(f);
        if (d.status == 1 && d.by) note_refusal(q.tenant, q.subject, d.by->id, h.now_tz);
    }
    PG_RETURN_DATUM(answer(fcinfo, take, d, h.sc, h.now));
}

// quota_status answers every limit that holds a request on its own, as
// meter.check with no estimate would, taking nothing: one row each, in the
// order of their ids. A blocked subject's limits are listed too.
Datum quota_status(FunctionCallInfo fcinfo) {
    Request q = read_request(fcinfo, "meter.quota_status");
    Held h = held_to(q);
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsi = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    Applied ap;
    gather(*h.tc, *h.sc, q, h.now_tz, &ap);
    Answer answers[kMaxApplying];
    if (!seeded_then(ap, [&] { return status_locked(ap, h.now, answers); }))
        ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED), errmsg("%s", kBudgetCellsFull),
                        errhint("Raise pg_meter.rate_cells and restart the server.")));
    PmMoney* numbers = static_cast<PmMoney*>(palloc(sizeof(PmMoney) * 4 * (ap.n + 1)));
    PmFailure* f = pm_run([&] {
        for (int i = 0; i < ap.n; ++i) answer_numbers(answers[i], ap.def[i]->meter, &numbers[4 * i]);
    });
    if (f) pm_raise(f);
    for (int i = 0; i < ap.n; ++i) {
        const LimitDef& l = *ap.def[i];
        Datum v[12];
        bool n[12] = {false};
        limit_datums(l, &v[0], &n[0]);
        if (l.budget) v[4] = text_datum(l.period);
        else n[4] = true;
        if (l.has_plan) v[5] = text_datum(l.plan);
        else n[5] = true;
        answer_datums(&numbers[4 * i], answers[i], h.now, &v[6], &n[6]);
        v[11] = BoolGetDatum(answers[i].allowed);
        tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, n);
    }
    return (Datum)0;
}

}  // namespace

void pm_quotas_init() {
    // the sizes of shared memory can be set only by the postmaster, and so
    // only when pg_meter is preloaded (a later load would be refused)
    if (process_shared_preload_libraries_in_progress) {
        DefineCustomIntVariable("pg_meter.rate_cells", "Rate buckets kept in shared memory.",
                                "Keep live buckets (keys with requests in their window) below about 60 % of this.",
                                &g_rate_cells, 65536, 64, 1 << 26, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
        DefineCustomIntVariable("pg_meter.reservations", "Reservations that may be live at once.", nullptr,
                                &g_reservations, 16384, 16, 1 << 24, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    }
    DefineCustomEnumVariable("pg_meter.quota_failure",
                             "Whether a request passes (open) or not (closed) when its quota state cannot be read.",
                             nullptr, &g_failure, 0, kFailureModes, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("pg_meter");
    pm_watch_register(&g_watch);
    if (process_shared_preload_libraries_in_progress) {
        g_prev_request = shmem_request_hook;
        shmem_request_hook = shmem_request;
        g_prev_startup = shmem_startup_hook;
        shmem_startup_hook = shmem_startup;
    }
}

void pm_count_event(const PmEvent& e) { count_event(e); }

void pm_settle_at_commit(int64_t reservation, bool give_back_all, int64_t input_tokens, int64_t output_tokens) {
    register_callbacks();
    if (g_npending == g_cap_pending) {
        int cap = g_cap_pending ? g_cap_pending * 2 : 16;
        Pending* p = static_cast<Pending*>(MemoryContextAlloc(TopTransactionContext, sizeof(Pending) * cap));
        if (g_npending) memcpy(p, g_pending, sizeof(Pending) * g_npending);
        g_pending = p;
        g_cap_pending = cap;
    }
    g_pending[g_npending++] = Pending{reservation, give_back_all, input_tokens, output_tokens,
                                      GetCurrentTransactionNestLevel()};
}

}  // namespace pgm::pg

extern "C" {

PG_FUNCTION_INFO_V1(meter_check);
PG_FUNCTION_INFO_V1(meter_reserve);
PG_FUNCTION_INFO_V1(meter_release);
PG_FUNCTION_INFO_V1(meter_quota_status);
PG_FUNCTION_INFO_V1(meter_quota_subject);
PG_FUNCTION_INFO_V1(meter_quota_refusals);
PG_FUNCTION_INFO_V1(meter_budget_key);
PG_FUNCTION_INFO_V1(meter_count_repriced);
PG_FUNCTION_INFO_V1(meter_budget_window);

// meter.check(tenant, subject, endpoint, session, estimate): the decision,
// taking nothing.
Datum meter_check(PG_FUNCTION_ARGS) { return pgm::pg::check_or_reserve(fcinfo, false); }

// meter.reserve(tenant, subject, endpoint, session, estimate, ttl): the
// decision and, when allowed, the reservation, in one step.
Datum meter_reserve(PG_FUNCTION_ARGS) { return pgm::pg::check_or_reserve(fcinfo, true); }

// meter.quota_status(tenant, subject, endpoint, session): every limit that
// applies, with its live state, taking nothing.
Datum meter_quota_status(PG_FUNCTION_ARGS) { return pgm::pg::quota_status(fcinfo); }

// meter._quota_subject(tenant, subject): a subject's plan, team and block
// as meter.check reads them (load_subject), for the SQL readers; no row for
// a subject neither assigned nor held by a default plan, or no tenant.
Datum meter_quota_subject(PG_FUNCTION_ARGS) {
    using namespace pgm::pg;
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsi = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    if (PG_ARGISNULL(0)) return (Datum)0;
    // no subject (a guest): the default plan, as for a subject never assigned
    SubjectRow r = load_subject(text_arg(fcinfo, 0), text_arg(fcinfo, 1));
    if (!r.found) return (Datum)0;
    auto opt = [](const char* p, bool* isnull) {
        *isnull = p == nullptr;
        return p ? CStringGetTextDatum(p) : Datum(0);
    };
    Datum v[4];
    bool n[4];
    v[0] = opt(r.plan, &n[0]);
    v[1] = opt(r.team, &n[1]);
    v[2] = BoolGetDatum(r.blocked);
    n[2] = false;
    v[3] = opt(r.reason, &n[3]);
    tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, n);
    return (Datum)0;
}

// meter._quota_refusals(): this database's refusal tally, one row per limit
// that refused since the server started (tenant, limit_id, refusals,
// first_at, last_at, last_subject)
Datum meter_quota_refusals(PG_FUNCTION_ARGS) {
    using namespace pgm::pg;
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsi = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    if (!g_refusals) return (Datum)0;  // not preloaded: nothing was refused here
    RefusalSlot* copy = static_cast<RefusalSlot*>(palloc(sizeof(RefusalSlot) * kRefusalSlots));
    LWLockAcquire(&g_refusal_lock->lock, LW_SHARED);
    memcpy(copy, g_refusals, sizeof(RefusalSlot) * kRefusalSlots);
    LWLockRelease(&g_refusal_lock->lock);
    for (int i = 0; i < kRefusalSlots; i++) {
        const RefusalSlot& r = copy[i];
        if (r.limit_id == 0 || r.db != MyDatabaseId) continue;
        Datum v[6] = {CStringGetTextDatum(r.tenant), Int64GetDatum(r.limit_id), Int64GetDatum(r.count),
                      TimestampTzGetDatum(r.first_at), TimestampTzGetDatum(r.last_at), CStringGetTextDatum(r.subject)};
        bool n[6] = {false, false, false, false, false, false};
        tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, n);
    }
    return (Datum)0;
}

// meter._count_repriced(tenant, subject, session, endpoint, at, delta): a
// repriced event's change of cost (new cost less old, an unpriced cost
// being 0) added to its tenant's cost budgets at commit, as the event's
// own cost was when it was recorded; false when there is nothing to add.
Datum meter_count_repriced(PG_FUNCTION_ARGS) {
    using namespace pgm::pg;
    if (PG_ARGISNULL(0) || PG_ARGISNULL(4) || PG_ARGISNULL(5)) PG_RETURN_BOOL(false);
    __int128 delta = 0;
    if (!numeric_scaled(PG_GETARG_DATUM(5), 12, &delta))
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("a change of cost must be a finite amount in picodollars")));
    if (delta == 0) PG_RETURN_BOOL(false);
    PmEvent e;  // (a NULL argument is a null Text)
    e.tenant = text_arg(fcinfo, 0);
    e.subject = text_arg(fcinfo, 1);
    e.session = text_arg(fcinfo, 2);
    e.endpoint = text_arg(fcinfo, 3);
    e.at = PG_GETARG_TIMESTAMPTZ(4);
    e.cost = delta;
    count_event(e, true);
    PG_RETURN_BOOL(true);
}

// meter._budget_key(tenant, scope, meter, endpoint, period, who): the
// uuid of a budget's counter (who NULL: of all its counters).
Datum meter_budget_key(PG_FUNCTION_ARGS) {
    using namespace pgm::pg;
    for (int i : {0, 1, 2, 4})
        if (PG_ARGISNULL(i)) PG_RETURN_NULL();
    std::string ident;
    PmFailure* f = pm_run([&] {
        ident = ident_text(text_arg(fcinfo, 0), text_arg(fcinfo, 1), text_arg(fcinfo, 2), text_arg(fcinfo, 3),
                           text_arg(fcinfo, 4));
    });
    if (f) pm_raise(f);
    PG_RETURN_DATUM(uuid_datum(pgm::limits::key_of(0, 0, txt(ident), text_arg(fcinfo, 5))));
}

// meter._budget_window(calendar, time_zone, per, at): the window of a
// budget that holds a time, as the event path computes it.
Datum meter_budget_window(PG_FUNCTION_ARGS) {
    using namespace pgm::pg;
    if (PG_ARGISNULL(3) || (PG_ARGISNULL(0) && PG_ARGISNULL(2))) PG_RETURN_NULL();
    int calendar = 0;
    char* zone = nullptr;
    pgm::Micros width = 0;
    if (!PG_ARGISNULL(0)) {
        char* c = text_to_cstring(PG_GETARG_TEXT_PP(0));
        calendar = index_of(c, kCalendars, 5);
        if (calendar == 0 || PG_ARGISNULL(1))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("unknown calendar window \"%s\"", c)));
        zone = text_to_cstring(PG_GETARG_TEXT_PP(1));
    } else {
        Interval* per = PG_GETARG_INTERVAL_P(2);
        width = interval_micros(per);
        if (width <= 0) ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("a window must be positive")));
    }
    TimestampTz start, end;
    budget_window(calendar, zone, width, PG_GETARG_TIMESTAMPTZ(3), &start, &end);
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "expected a composite result");
    Datum v[2] = {TimestampTzGetDatum(start), TimestampTzGetDatum(end)};
    bool n[2] = {false, false};
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, n)));
}

// meter.release(reservation): gives back what a reservation took.
Datum meter_release(PG_FUNCTION_ARGS) {
    pgm::pg::need_arg(fcinfo, 0, "reservation", "meter.release");
    pgm::pg::need_shared();
    int64 id = PG_GETARG_INT64(0);
    if (id <= 0) PG_RETURN_BOOL(false);
    PG_RETURN_BOOL(pgm::pg::end_reservation(static_cast<uint64_t>(id), true, 0, 0));
}
}
