// core_only.hpp: included first by every file in src/core. The core is plain
// C++17 and must never see a PostgreSQL header: if postgres.h was included
// before this file, the build fails here instead of drifting silently.
#pragma once
#ifdef PG_VERSION_NUM
static_assert(false, "src/core must not include PostgreSQL headers");
#endif
#define PG_METER_CORE 1
