// dashboard.cpp: meter._dashboard_render(jsonb), the page of
// meter.dashboard_html. The document is read with PostgreSQL calls only
// (flattened into palloc'd tokens), the page is drawn by the core inside
// pm_run and copied into a palloc'd text before its std::string is gone.
#include <cstring>
#include <string>

#include "bridge.hpp"
#include "dashboard.hpp"
#include "jsonb_io.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/jsonb.h"
}

using namespace pgm;
using namespace pgm::pg;

extern "C" {

PG_FUNCTION_INFO_V1(meter_dashboard_render);

Datum meter_dashboard_render(PG_FUNCTION_ARGS) {
    JFlat doc = pm_flatten(PG_GETARG_JSONB_P(0));
    text* out = nullptr;
    PmFailure* f = pm_run([&] {
        std::string page = dashboard::render(pm_unflatten(doc));
        size_t n = page.size();
        out = pm_pg_call([&] { return static_cast<text*>(palloc(VARHDRSZ + n)); });
        SET_VARSIZE(out, VARHDRSZ + n);
        memcpy(VARDATA(out), page.data(), n);
    });
    if (f) pm_raise(f);
    PG_RETURN_TEXT_P(out);
}
}
