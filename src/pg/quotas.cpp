// quotas.cpp: meter.check, meter.reserve, meter.release and the settlement
// of meter.record(..., reservation => id).
//
// What lives where:
//  - plans, limits and subjects are tables; each backend keeps a compiled
//    copy (a tenant's limits, and each subject it has seen with the limits
//    that apply to it), dropped at commit of any change by the relcache
//    invalidation the tables' trigger sends;
//  - rate buckets and reservations live in shared memory (src/core/cells.hpp),
//    one LWLock per stripe of buckets and one for the reservations. Locks
//    are always taken in this order: stripes in ascending order, then the
//    reservations; a release or settlement takes the reservations' lock
//    alone, lets it go, then the stripes. A restart forgets both: buckets
//    start drained and in-flight reservations are gone (doc/quotas.md).
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
#include "access/htup_details.h"
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
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
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
constexpr int kMaxApplying = 32;  // limits one request may be held against

enum Meter { mRequests, mInput, mOutput, mTotal, mCost };
enum Scope { sSubject, sTeam, sTenant, sSession };
const char* const kMeterNames[] = {"requests", "input_tokens", "output_tokens", "total_tokens", "cost"};
const char* const kScopeNames[] = {"subject", "team", "tenant", "session"};

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

size_t shared_bytes() {
    return align_up(sizeof(Shared)) + align_up(CellTable::bytes(stripes_for(g_rate_cells), kWays)) +
           align_up(ReservationTable::bytes(static_cast<uint32_t>(g_reservations)));
}

void shmem_request() {
    if (g_prev_request) g_prev_request();
    RequestAddinShmemSpace(shared_bytes());
    RequestNamedLWLockTranche("pg_meter_rate_cells", static_cast<int>(stripes_for(g_rate_cells)));
    RequestNamedLWLockTranche("pg_meter_reservations", 1);
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
    Rate rate;
    Interval window;  // per, as the answer shows it
};

struct TenantConf {
    std::vector<LimitDef> limits;
};

struct SubjectConf {
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

// subject_key is a subject's key in the cache: tenant '\0' subject.
std::string subject_key(Text tenant, Text subject) {
    std::string k = str(tenant);
    k.push_back('\0');
    k.append(subject.p, subject.n);
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
    int64 id, per_us, max;
    char *plan, *subject, *scope, *endpoint, *meter;
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

SPIPlanPtr g_limits_plan = nullptr, g_subject_plan = nullptr;

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
    Datum args[1] = {PointerGetDatum(cstring_to_text_with_len(tenant.p, static_cast<int>(tenant.n)))};
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
        r.max = col_int8(t, d, 8);
        bool isnull;
        r.window = *DatumGetIntervalP(SPI_getbinval(t, d, 9, &isnull));
    }
    MemoryContextSwitchTo(old);
    SPI_finish();
    return rows;
}

// load_subject reads one subject, or the tenant's default plan for a
// subject never seen (PostgreSQL calls only).
SubjectRow load_subject(Text tenant, Text subject) {
    MemoryContext upper = CurrentMemoryContext;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    SPIPlanPtr p = keep_plan(&g_subject_plan, "SELECT * FROM meter._quota_subject($1, $2)", 2);
    Datum args[2] = {PointerGetDatum(cstring_to_text_with_len(tenant.p, static_cast<int>(tenant.n))),
                     PointerGetDatum(cstring_to_text_with_len(subject.p, static_cast<int>(subject.n)))};
    if (SPI_execute_plan(p, args, nullptr, true, 1) != SPI_OK_SELECT) elog(ERROR, "could not read meter.subjects");
    SubjectRow r{};
    if (SPI_processed == 1) {
        MemoryContext old = MemoryContextSwitchTo(upper);
        HeapTuple t = SPI_tuptable->vals[0];
        TupleDesc d = SPI_tuptable->tupdesc;
        bool isnull;
        r.found = true;
        r.plan = col_text(t, d, 1);
        r.team = col_text(t, d, 2);
        r.blocked = DatumGetBool(SPI_getbinval(t, d, 3, &isnull));
        r.reason = col_text(t, d, 4);
        MemoryContextSwitchTo(old);
    }
    SPI_finish();
    return r;
}

int index_of(const char* s, const char* const* names, int n) {
    for (int i = 0; i < n; ++i)
        if (s && strcmp(s, names[i]) == 0) return i;
    return 0;
}

// compiled returns the tenant's and the subject's compiled entries,
// reading them on first use. PostgreSQL calls only in this frame.
void compiled(Text tenant, Text subject, const TenantConf** tc_out, const SubjectConf** sc_out) {
    if (g_watch.stale) {
        pm_watch_lookup(&g_watch);
        PmFailure* f = pm_run([&] {
            if (!g_cache) g_cache = new Cache();
            g_cache->tenants.clear();
            g_cache->subjects.clear();
        });
        if (f) pm_raise(f);
        g_watch.stale = false;
    }
    const TenantConf* tc = nullptr;
    const SubjectConf* sc = nullptr;
    PmFailure* f = pm_run([&] {
        auto t = g_cache->tenants.find(str(tenant));
        if (t == g_cache->tenants.end()) return;
        tc = &t->second;
        auto s = g_cache->subjects.find(subject_key(tenant, subject));
        if (s != g_cache->subjects.end()) sc = &s->second;
    });
    if (f) pm_raise(f);
    if (!tc) {
        int n = 0;
        LimitRow* rows = load_limits(tenant, &n);
        f = pm_run([&] {
            TenantConf c;
            for (int i = 0; i < n; ++i) {
                const LimitRow& r = rows[i];
                LimitDef l;
                l.id = r.id;
                l.has_plan = r.plan != nullptr;
                l.plan = r.plan ? r.plan : "";
                l.has_subject = r.subject != nullptr;
                l.subject = r.subject ? r.subject : "";
                l.has_endpoint = r.endpoint != nullptr;
                l.endpoint = r.endpoint ? r.endpoint : "";
                l.scope = index_of(r.scope, kScopeNames, 4);
                l.meter = index_of(r.meter, kMeterNames, 5);
                l.rate = Rate{r.max, r.per_us};
                l.window = r.window;
                c.limits.push_back(std::move(l));
            }
            tc = &(g_cache->tenants[str(tenant)] = std::move(c));
        });
        if (f) pm_raise(f);
    }
    if (!sc) {
        SubjectRow r = load_subject(tenant, subject);
        if (!r.found)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                            errmsg("subject \"%.*s\" is not known in tenant \"%.*s\"", static_cast<int>(subject.n),
                                   subject.p, static_cast<int>(tenant.n), tenant.p),
                            errhint("Put it on a plan with meter.assign_plan, or make a plan the tenant's default "
                                    "with meter.create_plan(..., is_default => true).")));
        f = pm_run([&] {
            if (g_cache->subjects.size() >= kMaxSubjects) g_cache->subjects.clear();
            SubjectConf c;
            c.has_plan = r.plan != nullptr;
            c.plan = r.plan ? r.plan : "";
            c.has_team = r.team != nullptr;
            c.team = r.team ? r.team : "";
            c.blocked = r.blocked;
            c.reason = r.reason ? r.reason : "";
            c.applying = applying(*tc, c, str(subject));
            sc = &(g_cache->subjects[subject_key(tenant, subject)] = std::move(c));
        });
        if (f) pm_raise(f);
    }
    *tc_out = tc;
    *sc_out = sc;
}

// ---------------------------------------------------------------------------
// The decision, as plain data.

struct Request {
    Text tenant, subject, endpoint, session;
    int64_t input = 0, output = 0;  // the estimate
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
        default: return 0;
    }
}

// counted_for: the text a limit's bucket is counted for; false when the
// request has none (a team limit for a subject in no team, a session limit
// for a request without a session, an endpoint limit for another endpoint).
bool counted_for(const LimitDef& l, const SubjectConf& sc, const Request& q, Text* x) {
    if (l.has_endpoint &&
        (q.endpoint.is_null() || l.endpoint.size() != q.endpoint.n || memcmp(l.endpoint.data(), q.endpoint.p, q.endpoint.n) != 0))
        return false;
    switch (l.scope) {
        case sSubject: *x = q.subject; return true;
        case sTeam:
            if (!sc.has_team) return false;
            *x = Text{sc.team.data(), sc.team.size()};
            return true;
        case sTenant: *x = q.tenant; return true;
        default:
            if (q.session.is_null()) return false;
            *x = q.session;
            return true;
    }
}

struct Applied {
    int n = 0;
    const LimitDef* def[kMaxApplying];
    Key key[kMaxApplying];
    int64_t n_units[kMaxApplying];
    uint32_t stripe[kMaxApplying];
};

// decide_rates decides over every applying limit; with q.take, it takes
// what it allowed and makes a reservation. Runs under pm_run; takes and
// releases the LWLocks itself (an exception cannot happen while they are
// held: the core's arithmetic throws only for rates set_limit refuses).
void decide_rates(const TenantConf& tc, const SubjectConf& sc, const Request& q, Micros now, Decision* d) {
    Applied ap;
    for (int i : sc.applying) {
        const LimitDef& l = tc.limits[static_cast<size_t>(i)];
        Text x;
        if (!counted_for(l, sc, q, &x)) continue;
        if (ap.n == kMaxApplying) throw Error(Code::InvalidValue, "a request is held against more than 32 limits");
        ap.def[ap.n] = &l;
        ap.key[ap.n] = l.has_endpoint ? limits::key_of(MyDatabaseId, l.id, x, Text{l.endpoint.data(), l.endpoint.size()})
                                      : limits::key_of(MyDatabaseId, l.id, x);
        ap.n_units[ap.n] = units(l.meter, q);
        ++ap.n;
    }
    CellTable cells(g_cells_mem, g_shared->stripes, kWays);
    for (int i = 0; i < ap.n; ++i) ap.stripe[i] = cells.stripe_of(ap.key[i]);
    static std::vector<Answer> all;  // kept across calls: no allocation per decision
    all.reserve(kMaxApplying);       // before any lock is held
    uint32_t order[kMaxApplying];
    int nlocks = 0;
    for (int i = 0; i < ap.n; ++i) order[nlocks++] = ap.stripe[i];
    std::sort(order, order + nlocks);
    nlocks = static_cast<int>(std::unique(order, order + nlocks) - order);
    LWLockMode mode = q.take ? LW_EXCLUSIVE : LW_SHARED;
    for (int i = 0; i < nlocks; ++i) LWLockAcquire(&g_stripe_locks[order[i]].lock, mode);

    Answer answers[kMaxApplying];
    Cell* found[kMaxApplying];
    bool unavailable = false;
    for (int i = 0; i < ap.n; ++i) {
        const LimitDef& l = *ap.def[i];
        GcraState st;
        found[i] = nullptr;
        if (q.take) {
            found[i] = cells.find(ap.key[i], now);
            if (!found[i]) unavailable = true;
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
                if (!found[i] || ap.def[i]->rate.max == 0) continue;
                limits::gcra(found[i]->state, ap.def[i]->rate, now, ap.n_units[i], true);
                found[i]->free_at = limits::free_at_after(found[i]->state, ap.def[i]->rate);
                if (r->nholds < limits::kMaxHolds && ap.n_units[i] > 0)
                    r->holds[r->nholds++] = Hold{ap.key[i], ap.def[i]->rate, ap.n_units[i], ap.def[i]->meter};
            }
        }
        LWLockRelease(&g_res_lock->lock);
    }
    for (int i = nlocks; i-- > 0;) LWLockRelease(&g_stripe_locks[order[i]].lock);
}

// adjust moves the buckets a reservation held: give back all (a release),
// or correct each token estimate by the actual count. Takes the locks.
void adjust(const Reservation& r, bool all, int64_t input, int64_t output, Micros now) {
    CellTable cells(g_cells_mem, g_shared->stripes, kWays);
    for (int i = 0; i < r.nholds; ++i) {
        const Hold& h = r.holds[i];
        int64_t actual = h.meter == mInput ? input : h.meter == mOutput ? output : h.meter == mTotal ? input + output : h.n;
        if (!all && actual == h.n) continue;
        LWLock* lock = &g_stripe_locks[cells.stripe_of(h.key)].lock;
        LWLockAcquire(lock, LW_EXCLUSIVE);
        if (Cell* c = cells.find(h.key, now)) {
            if (all || actual < h.n)
                limits::give_back(c->state, h.rate, now, all ? h.n : h.n - actual);
            else
                limits::charge(c->state, h.rate, now, actual - h.n);
            c->free_at = limits::free_at_after(c->state, h.rate);
        }
        LWLockRelease(lock);
    }
}

// end_reservation removes a live reservation and moves its buckets;
// false when the id is not live.
bool end_reservation(uint64_t id, bool all, int64_t input, int64_t output) {
    Micros now = GetCurrentTimestamp();
    Reservation copy;
    LWLockAcquire(&g_res_lock->lock, LW_EXCLUSIVE);
    ReservationTable rt(g_res_mem, g_shared->capacity);
    Reservation* r = rt.find(id, now);
    if (r) {
        copy = *r;
        ReservationTable::free(r);
    }
    LWLockRelease(&g_res_lock->lock);
    if (!r) return false;
    adjust(copy, all, input, output, now);
    return true;
}

// ---------------------------------------------------------------------------
// Settlements wait for the commit of the record that names them.

struct Pending {
    int64 id;
    bool all;
    int64 input, output;
    int level;  // the transaction nesting level that recorded it
};
Pending* g_pending = nullptr;
int g_npending = 0, g_cap_pending = 0;
bool g_callbacks = false;

void on_xact(XactEvent event, void*) {
    if (g_npending == 0) return;
    if (event == XACT_EVENT_COMMIT && g_shared) {
        for (int i = 0; i < g_npending; ++i)
            end_reservation(static_cast<uint64_t>(g_pending[i].id), g_pending[i].all, g_pending[i].input,
                            g_pending[i].output);
    }
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
        event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT) {
        g_npending = 0;  // the memory goes with TopTransactionContext
        g_pending = nullptr;
        g_cap_pending = 0;
    }
}

void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
    int level = GetCurrentTransactionNestLevel();
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        int k = 0;
        for (int i = 0; i < g_npending; ++i)
            if (g_pending[i].level < level) g_pending[k++] = g_pending[i];
        g_npending = k;
    } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (int i = 0; i < g_npending; ++i)
            if (g_pending[i].level >= level) g_pending[i].level = level - 1;
    }
}

// ---------------------------------------------------------------------------
// Arguments and the answer.

Text arg_text(FunctionCallInfo fcinfo, int i) {
    if (PG_ARGISNULL(i)) return Text{};
    text* t = PG_GETARG_TEXT_PP(i);
    return Text{VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)};
}

void need_arg(FunctionCallInfo fcinfo, int i, const char* name, const char* fn) {
    if (PG_ARGISNULL(i))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name),
                        errhint("Pass %s => ... to %s.", name, fn)));
}

// read_estimate reads {"input_tokens": n, "output_tokens": n}.
void read_estimate(Jsonb* jb, Request* q) {
    if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("estimate must be a JSON object"),
                        errhint("Pass estimate => '{\"input_tokens\": 1200, \"output_tokens\": 400}'.")));
    JsonbIterator* it = JsonbIteratorInit(&jb->root);
    JsonbValue k, v;
    JsonbIteratorToken tok;
    while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE) {
        if (tok != WJB_KEY) continue;
        tok = JsonbIteratorNext(&it, &v, true);
        std::string_view key(k.val.string.val, static_cast<size_t>(k.val.string.len));
        int64_t* into = key == "input_tokens" ? &q->input : key == "output_tokens" ? &q->output : nullptr;
        if (!into)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("unknown key \"%.*s\" in the estimate", k.val.string.len, k.val.string.val),
                            errhint("An estimate has input_tokens and output_tokens.")));
        bool ok = v.type == jbvNumeric;
        int64 n = 0;
        if (ok) {
            Numeric num = v.val.numeric;
            ok = !numeric_is_nan(num) &&
                 DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(num),
                                                  DirectFunctionCall2(numeric_trunc, NumericGetDatum(num), Int32GetDatum(0))));
            if (ok) {
                n = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(num)));
                ok = n >= 0 && n <= INT64CONST(1000000000000000);
            }
        }
        if (!ok)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("estimate %.*s must be a whole number of tokens from 0 to 1e15", k.val.string.len,
                                   k.val.string.val)));
        *into = n;
    }
}

PmResultDesc g_results[2];  // meter.decision's descriptor: check, reserve

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
    if (d.by) {
        const LimitDef& l = *d.by;
        v[3] = Int64GetDatum(l.id), n[3] = false;
        v[4] = CStringGetTextDatum(kMeterNames[l.meter]), n[4] = false;
        v[5] = CStringGetTextDatum(kScopeNames[l.scope]), n[5] = false;
        Interval* w = static_cast<Interval*>(palloc(sizeof(Interval)));
        *w = l.window;
        v[6] = IntervalPGetDatum(w), n[6] = false;
    }
    if (d.has_answer) {
        for (int i = 0; i < 4; ++i) v[7 + i] = money_datum(&d.numbers[i]), n[7 + i] = false;
        v[11] = TimestampTzGetDatum(now + d.a.reset_after), n[11] = false;
        if (!d.a.allowed && d.a.retry_after != limits::kNever)
            v[12] = Int32GetDatum(static_cast<int32>(std::min<int64>((d.a.retry_after + 999999) / 1000000, PG_INT32_MAX))),
            n[12] = false;
    }
    if (sc && sc->has_plan) v[13] = PointerGetDatum(cstring_to_text_with_len(sc->plan.data(), static_cast<int>(sc->plan.size()))), n[13] = false;
    if (d.reason) v[14] = CStringGetTextDatum(d.reason), n[14] = false;
    v[15] = CStringGetTextDatum(g_failure == 1 ? "open" : "closed"), n[15] = false;
    return HeapTupleGetDatum(heap_form_tuple(desc, v, n));
}

Datum check_or_reserve(FunctionCallInfo fcinfo, bool take) {
    const char* fn = take ? "meter.reserve" : "meter.check";
    need_arg(fcinfo, 0, "tenant", fn);
    need_arg(fcinfo, 1, "subject", fn);
    Request q;
    q.tenant = arg_text(fcinfo, 0);
    q.subject = arg_text(fcinfo, 1);
    q.endpoint = arg_text(fcinfo, 2);
    q.session = arg_text(fcinfo, 3);
    if (!PG_ARGISNULL(4)) read_estimate(PG_GETARG_JSONB_P(4), &q);
    q.take = take;
    if (take) {
        need_arg(fcinfo, 5, "ttl", fn);
        Interval* ttl = PG_GETARG_INTERVAL_P(5);
        int64 us = ttl->time + (ttl->day + static_cast<int64>(ttl->month) * 30) * USECS_PER_DAY;
        if (us <= 0 || us > 7 * USECS_PER_DAY)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("a reservation's time-to-live must be more than 0 and at most 7 days")));
        q.ttl = us;
    }
    need_shared();
    const TenantConf* tc;
    const SubjectConf* sc;
    compiled(q.tenant, q.subject, &tc, &sc);
    Micros now = GetCurrentTimestamp();
    Decision d;
    if (sc->blocked) {
        d.allowed = false;
        d.status = 2;
        d.reason = sc->reason.c_str();
    } else {
        PmFailure* f = pm_run([&] {
            decide_rates(*tc, *sc, q, now, &d);
            const limits::i128 nums[4] = {d.a.max, d.a.used, d.a.reserved, d.a.remaining};
            for (int i = 0; i < 4; ++i) number_out(nums[i], 0, &d.numbers[i]);
        });
        if (f) pm_raise(f);
    }
    PG_RETURN_DATUM(answer(fcinfo, take, d, sc, now));
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

void pm_settle_at_commit(int64_t reservation, bool give_back_all, int64_t input_tokens, int64_t output_tokens) {
    if (!g_callbacks) {
        RegisterXactCallback(on_xact, nullptr);
        RegisterSubXactCallback(on_subxact, nullptr);
        g_callbacks = true;
    }
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

// meter.check(tenant, subject, endpoint, session, estimate): the decision,
// taking nothing.
Datum meter_check(PG_FUNCTION_ARGS) { return pgm::pg::check_or_reserve(fcinfo, false); }

// meter.reserve(tenant, subject, endpoint, session, estimate, ttl): the
// decision and, when allowed, the reservation, in one step.
Datum meter_reserve(PG_FUNCTION_ARGS) { return pgm::pg::check_or_reserve(fcinfo, true); }

// meter.release(reservation): gives back what a reservation took.
Datum meter_release(PG_FUNCTION_ARGS) {
    pgm::pg::need_arg(fcinfo, 0, "reservation", "meter.release");
    pgm::pg::need_shared();
    int64 id = PG_GETARG_INT64(0);
    if (id <= 0) PG_RETURN_BOOL(false);
    PG_RETURN_BOOL(pgm::pg::end_reservation(static_cast<uint64_t>(id), true, 0, 0));
}
}
