// bridge_selftest.cpp: meter._bridge_selftest(kind), the bridge's own test.
//
// Each kind makes one failure happen inside pm_run, so that the regression
// test can check the SQLSTATE that reaches SQL and that C++ destructors ran
// before the error was raised (the count of live guards goes back to zero).
#include <new>
#include <stdexcept>
#include <string>

#include "bridge.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"
}

using namespace pgm;
using namespace pgm::pg;

namespace {

int g_live = 0;  // guards alive now
int g_destroyed = 0;

struct Guard {
    std::string payload = std::string(64, 'x');  // owns heap memory
    Guard() { ++g_live; }
    ~Guard() {
        --g_live;
        ++g_destroyed;
    }
};

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(meter_bridge_selftest);

Datum meter_bridge_selftest(PG_FUNCTION_ARGS) {
    char* kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
    if (strcmp(kind, "destroyed") == 0)
        PG_RETURN_TEXT_P(cstring_to_text(psprintf("%d live, %d destroyed", g_live, g_destroyed)));
    PmFailure* f = pm_run([&] {
        Guard g;
        if (strcmp(kind, "core") == 0)
            throw Error(Code::NoPrice, "core error", "A detail sentence.", "A hint sentence.");
        if (strcmp(kind, "bad_alloc") == 0) throw std::bad_alloc();
        if (strcmp(kind, "std") == 0) throw std::runtime_error("a standard exception");
        if (strcmp(kind, "overflow") == 0) throw std::overflow_error("overflow in a checked integer");
        if (strcmp(kind, "unknown") == 0) throw 42;
        if (strcmp(kind, "pg") == 0) {
            // a PostgreSQL error inside C++: caught, carried as PgException
            pm_pg_call([] { return DirectFunctionCall1(int4in, CStringGetDatum("not a number")); });
        }
        if (strcmp(kind, "ok") != 0) throw Error(Code::InvalidValue, "unknown self-test kind");
    });
    if (f) pm_raise(f);
    PG_RETURN_TEXT_P(cstring_to_text("ok"));
}
}
