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

// Cell is one rate bucket.
struct Cell {
    Key key;
    GcraState state;
    Micros free_at = 0;  // when the bucket has drained (the slot may be reused)
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
    const Cell* peek(const Key& k) const;

private:
    bool compact(Cell* stripe, Micros now);
    Cell* cells_;
    uint32_t stripes_, ways_;
};

// Hold is what a reservation took from one rate cell.
struct Hold {
    Key key;
    Rate rate;
    int64_t n = 0;
    int meter = 0;  // the glue's meter code: how a settlement reads the actual usage
};

constexpr int kMaxHolds = 8;

struct Reservation {
    uint64_t id = 0;  // 0: free
    Micros expires_at = 0;
    int nholds = 0;
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

    // claim returns a free slot (or one whose reservation expired) with a
    // new id, holding nothing yet; nullptr when every slot is live.
    Reservation* claim(Micros now, Micros ttl);
    // find returns the live reservation with this id, or nullptr (unknown,
    // settled, released or expired).
    Reservation* find(uint64_t id, Micros now);
    // free ends a reservation.
    static void free(Reservation* r) { r->id = 0; r->nholds = 0; }
    uint32_t capacity() const { return capacity_; }

private:
    struct Header {
        uint64_t seq;
        uint64_t salt;  // below 2^63: ids stay positive as bigint
        uint32_t cursor;
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

}  // namespace pgm::limits
