// quotas.hpp: rate limits and reservations in shared memory (quotas.cpp).
#pragma once

#include <cstdint>

#include "hash.hpp"

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

namespace pgm::pg {

// pm_quotas_init defines the settings and, when pg_meter is in
// shared_preload_libraries, asks for the shared memory and its locks
// (from _PG_init).
void pm_quotas_init();

// PmEvent is what budgets count of one event.
struct PmEvent {
    Text tenant, subject, session, endpoint;  // subject, session, endpoint nullable
    TimestampTz at;
    int64_t input = 0, output = 0;
    __int128 cost = 0;  // picodollars (0 for an unpriced event)
};

// pm_count_event adds an event's usage to the durable counters of its
// tenant's budgets; they are written when the transaction commits (and
// forgotten with a rolled-back savepoint). PostgreSQL calls only.
void pm_count_event(const PmEvent& e);

// pm_settle_at_commit settles a reservation when the current transaction
// commits: by the call's actual tokens, or, for a retry already recorded,
// by giving back what it took. A rolled-back record settles nothing (the
// reservation stays until its time-to-live).
void pm_settle_at_commit(int64_t reservation, bool give_back_all, int64_t input_tokens, int64_t output_tokens);

}  // namespace pgm::pg
