// catalog_cache.hpp: each backend's compiled price catalog.
//
// The catalog is compiled from the meter.catalog_* and meter.custom_prices
// tables on first use and kept in backend memory. Changes to those tables
// fire a statement trigger that sends a relcache invalidation for the
// table; every backend's callback marks its copy stale, so the next call
// (in this transaction after the change, in others after commit) compiles
// it again. A pricing call never scans the tables.
#pragma once

#include "catalog.hpp"

namespace pgm::pg {

// pm_catalog returns the current compiled catalog, compiling it if stale.
// Call only from an entry-point frame that owns no C++ object: it may
// ereport.
const Catalog* pm_catalog();

// pm_catalog_register installs the relcache callback (from _PG_init).
void pm_catalog_register();

}  // namespace pgm::pg
