// quotas.hpp: rate limits and reservations in shared memory (quotas.cpp).
#pragma once

#include <cstdint>

namespace pgm::pg {

// pm_quotas_init defines the settings and, when pg_meter is in
// shared_preload_libraries, asks for the shared memory and its locks
// (from _PG_init).
void pm_quotas_init();

// pm_settle_at_commit settles a reservation when the current transaction
// commits: by the call's actual tokens, or, for a retry already recorded,
// by giving back what it took. A rolled-back record settles nothing (the
// reservation stays until its time-to-live).
void pm_settle_at_commit(int64_t reservation, bool give_back_all, int64_t input_tokens, int64_t output_tokens);

}  // namespace pgm::pg
