// pg_meter.cpp: the module's entry: magic block and _PG_init.
#include "catalog_cache.hpp"
#include "events.hpp"
#include "quotas.hpp"
#include "request_ids.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"

PG_MODULE_MAGIC;

void _PG_init(void);

// _PG_init registers the relcache callbacks of the compiled catalog and of
// the request-id probes and of the events' column maps, and the quotas'
// settings, with their shared memory when pg_meter is preloaded.
void _PG_init(void) {
    pgm::pg::pm_catalog_register();
    pgm::pg::pm_request_ids_register();
    pgm::pg::pm_events_register();
    pgm::pg::pm_quotas_init();
}
}
