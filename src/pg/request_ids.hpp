// request_ids.hpp: a client request id counts once per tenant, whichever
// partition of meter.events its first event landed in.
//
// Each event with a request id carries request_key, a 64-bit hash of
// (tenant, request_id), and every partition has a partial hash index on it
// (a btree serves too).
// PostgreSQL has no unique index across partitions, so uniqueness is
// enforced here, with one lock per key held only while it matters:
//
//   1. lock the key (a transaction-scoped advisory lock of pg_meter's own
//      class, so it never meets a user's advisory locks);
//   2. probe the request index of every partition with a dirty snapshot,
//      comparing tenant and request id (a hash collision is not a match);
//      an insert still in progress elsewhere: unlock, wait for that
//      transaction to end, and start again;
//   3. found (committed, or earlier in this transaction): a duplicate;
//      unlock and skip the row. Not found: keep the lock until the row and
//      its index entry are in (the next row's trigger, or the end of the
//      transaction, releases it).
//
// Every inserter of a key holds its lock from the probe until its index
// entry exists, so a later prober sees that entry and waits for its
// transaction: two retries in flight never both count, in any partition,
// and an aborted first attempt lets the retry count. A backend holds at
// most two of these locks at a time, so a COPY of millions of rows does
// not fill the lock table. The indexes probed stay open, with their scans,
// from one row of a statement to the next (request_ids.cpp, ProbeSet).
// Everything here is PostgreSQL calls only (it may ereport and owns no C++
// object).
#pragma once

#include "hash.hpp"

extern "C" {
#include "postgres.h"
#include "utils/relcache.h"
}

namespace pgm::pg {

// PmDuplicate is the event a retry was a duplicate of, as meter.record
// answers it. The numerics are copied into answer_cxt when it is set (only
// meter.record asks: a COPY of retries keeps nothing).
struct PmDuplicate {
    MemoryContext answer_cxt;
    bool found;
    int64 event_id;
    Datum cost;  // numeric, or 0 when NULL
    Datum potential_cost;
    bool priced;
    int64 price_version;  // 0 when NULL
};

// pm_request_key hashes (tenant, request_id); stable across versions (it is
// stored). Never 0... it may be any int64.
int64 pm_request_key(Text tenant, Text rid);

// pm_claim_request locks the key and probes every partition. Returns true
// when the request is new (the lock is kept until pm_release_claim), false
// for a duplicate (dup describes the first event; the lock is released).
bool pm_claim_request(Relation leaf, int64 key, Text tenant, Text rid, PmDuplicate* dup);

// pm_release_claim releases the key locked for the previous row, whose
// index entry is in by now.
void pm_release_claim();

// pm_events_oid returns the oid of meter.events (cached, reset by
// relcache invalidation).
Oid pm_events_oid();

// pm_request_ids_register installs the relcache and transaction callbacks
// (from _PG_init).
void pm_request_ids_register();

}  // namespace pgm::pg
