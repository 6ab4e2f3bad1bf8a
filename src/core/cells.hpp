// cells.hpp: the state of rate limits and of reservations, laid out in one
// block of memory that the caller provides (PostgreSQL's shared memory; a
// plain buffer in the tests). Nothing here locks: the glue holds the lock
// of a stripe (cells) or of the table (reservations) around every call.
//
// Rate cells. A key (a limit and the subject, team, tenant, session or
// endpoint it is counted for) hashes to 128 bits and to one stripe of
// `ways` slots, probed linearly from the key's own slot. A slot's key is
// never cleared, so a probe stops at the first never-used slot; a slot
// whose bucket has drained (free_at <= now) holds nothing a fresh cell
// would not, so a new key takes the first such slot of its probe once the
// key is known to be absent. When no never-used slot is left, the stripe
// is compacted (drained buckets dropped, live ones placed again). A stripe
// is full only when all its slots hold buckets that are still draining:
// the caller then answers by its failure mode instead of forgetting a live
// bucket. Keys spread over stripes like balls over bins, so a table should
// hold live buckets for at most about 60 % of its slots (64-slot stripes
// then overflow with a probability near 1e-3).
//
// Budget cells. A budget (a meter over a calendar window, or any cost
// limit) rests on durable counters that each event's transaction writes
// (the glue's table meter.budget_usage); its cell caches the window's
// committed total (used) beside what live reservations hold (reserved).
// A cell is filled (seeded) from the counters and then kept current by
// every commit that counts for its key. The two meet without a lock held
// across the read of the counters:
//  - a committing transaction enters its stripes (pending + 1) before its
//    commit becomes visible, adds to seeded cells after, and leaves;
//  - a seeder raises its stripe's barrier, which new commits wait at,
//    waits until no commit is pending in the stripe, reads the counters in
//    a fresh snapshot and installs the total, and lowers the barrier.
// So every commit is either in the seeder's snapshot (finished before the
// barrier) or added to the seeded cell (entered after it), never both.
// A commit enters all its stripes at once or none (it never waits while
// pending), and a seeder holds one barrier at a time: no cycle can form.
//
// Reservations. A reservation remembers the cells it took, so that a
// release gives them back and a settlement corrects an estimate by the
// actual usage. Its id names its slot and a sequence number, scrambled by a
// salt of the server start, so an id that was settled, released or expired,
// or made before a restart, never finds a newer reservation.
#pragma once
#include "core_only.hpp"

#include <cstddef>
#include <cstdint>

#include "hash.hpp"
#include "limits.hpp"

namespace pgm::limits {

// Key is a 128-bit hash; {0, 0} marks a never-used slot.
struct Key {
    uint64_t a = 0, b = 0;
    bool operator==(const Key& o) const { return a == o.a && b == o.b; }
    bool empty() const { return a == 0 && b == 0; }
};

// key_of hashes a limit id, the space it is unique in (the database) and
// up to two nullable strings (what the limit counts for) into a key that
// is never empty.
Key key_of(uint64_t space, int64_t limit_id, Text x, Text y = {});

// in_space makes a key unique in a space (a database): the keys of the
// durable counters are the same in every database a dump is restored
// into, the shared-memory cells of two databases must not meet.
Key in_space(Key k, uint64_t space);

// Budget is a budget cell's window and its amounts (units of its meter:
// requests, tokens, or picodollars).
struct Budget {
    Micros window = 0;   // the start of the window counted
    i128 used = 0;       // committed usage in the window (when seeded)
    i128 reserved = 0;   // held by live reservations made in the window
    bool seeded = false;
};

// Cell is one rate bucket or one budget.
struct Cell {
    Key key;
    GcraState state;
    Budget budget;
    Micros free_at = 0;  // when the slot may be reused (a bucket drained, a budget idle)
};

// kBudgetKeep is how long an idle budget cell stays cached.
constexpr Micros kBudgetKeep = INT64_C(600000000);

// budget_in moves a budget cell to a window: a new window starts empty and
// unseeded (what was reserved in the old one no longer counts).
Budget& budget_in(Cell& c, Micros window);
// budget_touched sets when an idle budget cell may be reused.
void budget_touched(Cell& c, Micros now);

// Stripe is what commits and seeders of one stripe share.
struct Stripe {
    int32_t pending = 0;  // commits entered and not yet left
    int32_t barrier = 0;  // a seeder is reading the counters
};

// free_at_after is when a bucket in this state has drained.
Micros free_at_after(const GcraState& s, const Rate& r);

class CellTable {
public:
    // bytes is the memory a table of stripes * ways slots needs.
    static size_t bytes(uint32_t stripes, uint32_t ways);
    // The memory must be zeroed before first use (all slots never used).
    CellTable(void* mem, uint32_t stripes, uint32_t ways);

    uint32_t stripes() const { return stripes_; }
    uint32_t stripe_of(const Key& k) const { return static_cast<uint32_t>(k.a % stripes_); }
    // find returns the key's cell, claiming a slot for a new key (a fresh
    // state); nullptr when every slot of its stripe holds a live bucket.
    Cell* find(const Key& k, Micros now);
    // peek returns the key's cell or nullptr, and never claims a slot.
    Cell* peek(const Key& k) const;

    // The seeding protocol (see above); the caller holds the stripe's lock.
    // enter_commit: false while a seeder's barrier is up (wait, try again).
    bool enter_commit(uint32_t stripe);
    void leave_commit(uint32_t stripe);
    // raise_barrier: false while another seeder's is up.
    bool raise_barrier(uint32_t stripe);
    bool barred(uint32_t stripe) const;
    // quiet: no commit is pending in the stripe (the seeder may read).
    bool quiet(uint32_t stripe) const;
    void lower_barrier(uint32_t stripe);

private:
    bool compact(Cell* stripe, Micros now);
    Cell* cells_;
    Stripe* stripe_state_;
    uint32_t stripes_, ways_;
};

// Hold is what a reservation took from one cell: cells of a rate, or an
// amount of a budget's window.
struct Hold {
    Key key;
    Rate rate;           // a rate's; zero for a budget
    int64_t n = 0;
    Micros window = 0;   // a budget's window
    int meter = 0;       // the glue's meter code: how a settlement reads the actual usage
    bool budget = false;
};

// kMaxHolds is also the most limits one request may be held against.
constexpr int kMaxHolds = 16;

struct Reservation {
    uint64_t id = 0;  // 0: free
    Micros expires_at = 0;
    int nholds = 0;
    bool budget = false;  // holds a budget: on expiry, it must be given back
    Hold holds[kMaxHolds];
};

class ReservationTable {
public:
    static size_t bytes(uint32_t capacity);
    // The memory must be zeroed before first use.
    ReservationTable(void* mem, uint32_t capacity);
    // init gives fresh memory its salt: a random number of each server
    // start that ids are scrambled with, so that an id from before a
    // restart (whose slots start again from nothing) finds nothing after it.
    void init(uint64_t salt);

    // claim returns a free slot (or one whose reservation expired and held
    // no budget) with a new id, holding nothing yet; nullptr when every
    // slot is live or awaits expire.
    Reservation* claim(Micros now, Micros ttl);
    // expire ends every expired reservation that holds a budget and copies
    // it to out (at most max); returns how many. More may be left when it
    // returns max. A budget's hold must be given back by the caller.
    int expire(Micros now, Reservation* out, int max);
    // next_expiry is the earliest time a reservation holding a budget may
    // expire (kMaxTime: none); expire and claim keep it.
    Micros next_expiry() const { return header_->next_expiry; }
    void note_budget(const Reservation& r);
    // find returns the live reservation with this id, or nullptr (unknown,
    // settled, released or expired).
    Reservation* find(uint64_t id, Micros now);
    // free ends a reservation.
    void free(Reservation* r) {
        r->id = 0;
        r->nholds = 0;
        r->budget = false;
        header_->full_until = 0;
    }
    uint32_t capacity() const { return capacity_; }

private:
    struct Header {
        uint64_t seq;
        uint64_t salt;  // below 2^63: ids stay positive as bigint
        uint32_t cursor;
        Micros next_expiry;  // no reservation holding a budget expires before
        // full_until: after a claim found every slot live, no slot frees by
        // itself before this time (0: unknown); a free resets it, so that a
        // full table answers at once instead of scanning every slot again
        Micros full_until;
    };
    Header* header_;
    Reservation* slots_;
    uint32_t capacity_;
};

// give_back returns n cells to a bucket (a release, or a settlement whose
// actual usage was below the estimate); a drained bucket stays drained.
void give_back(GcraState& s, const Rate& r, Micros now, int64_t n);
// charge adds n cells to a bucket whatever its level (a settlement whose
// actual usage was above the estimate): later requests wait for it.
void charge(GcraState& s, const Rate& r, Micros now, int64_t n);

// unreserve gives a budget hold back to its cell, when the cell still
// counts the hold's window.
void unreserve(Cell& c, const Hold& h);

}  // namespace pgm::limits
