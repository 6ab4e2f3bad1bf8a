// catalog_cache.hpp: each backend's compiled price catalog.
//
// The catalog is compiled from the meter.catalog_* and meter.custom_prices
// tables on first use and kept in backend memory. Changes to those tables
// fire a statement trigger that sends a relcache invalidation for the
// table; every backend's callback marks its copy stale, so the next call
// (in this transaction after the change, in others after commit) compiles
// it again. A pricing call never scans the tables.
#pragma once

#include "bridge.hpp"
#include "catalog.hpp"

extern "C" {
#include "postgres.h"
}

namespace pgm::pg {

// pm_catalog returns the current compiled catalog, compiling it if stale.
// It holds the providers and custom prices; a provider's models are read
// when a name first needs them (pm_run_pricing). Call only from an
// entry-point frame that owns no C++ object: it may ereport.
const Catalog* pm_catalog();

// pm_catalog_read_wanted reads the model rows the catalog asked for
// (Catalog::wanted) and returns the catalog to price with (compiled again
// when a change to the catalog committed meanwhile). Same rules as
// pm_catalog.
const Catalog* pm_catalog_read_wanted();

// pm_run_pricing is pm_run for code that prices with *cat (read through the
// reference on every run): when f stopped because a name needed models this
// backend has not read, they are read and f runs again. f must not keep
// anything of a run that stopped. A name needs at most one read, or two
// when the catalog changes meanwhile; the bound only guards against a
// catalog that keeps changing.
template <typename F>
PmFailure* pm_run_pricing(const Catalog*& cat, F&& f) {
    for (int reads = 0;; ++reads) {
        PmFailure* failure = pm_run(f);
        if (!failure || cat->wanted().empty() || reads == 8) return failure;
        cat = pm_catalog_read_wanted();
    }
}

// pm_catalog_register installs the relcache callback (from _PG_init).
void pm_catalog_register();

// PmWatch is a backend's copy of up to three of pg_meter's tables: stale
// until loaded, and again once a change to one of them commits (their
// statement trigger, meter._invalidate_caches, sends the invalidation).
struct PmWatch {
    const char* tables[3];
    Oid rels[3];
    bool stale;
};
// pm_watch_register installs its relcache callback (from _PG_init).
void pm_watch_register(PmWatch* w);
// pm_watch_lookup finds the tables' oids (3F000 when pg_meter is not
// installed here); the caller clears stale once its copy is loaded.
// PostgreSQL calls only.
void pm_watch_lookup(PmWatch* w);

}  // namespace pgm::pg
