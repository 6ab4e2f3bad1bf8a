// bridge.hpp: the one crossing between C++ and PostgreSQL error handling.
//
// Rules (see doc/architecture.md):
//  - A C++ exception never reaches PostgreSQL: work that may throw runs in
//    pm_run(), which is noexcept and turns any exception into a PmFailure
//    kept in static storage (no allocation, so it cannot fail itself).
//  - ereport never longjmps over a C++ object: pm_raise() is called only
//    from entry-point frames that own no object with a destructor.
//  - C++ code that must call PostgreSQL does so through pm_pg_call(), which
//    runs the call under PG_TRY, copies the error and rethrows it as
//    PgException; pm_raise() then re-throws the original PostgreSQL error
//    with its own SQLSTATE.
#pragma once

#include <exception>
#include <new>
#include <stdexcept>
#include <type_traits>

#include "error.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

namespace pgm::pg {

// PmFailure is a copied error, ready to be raised from a safe frame.
struct PmFailure {
    int sqlstate;
    char message[512];
    char detail[1024];
    char hint[512];
    ErrorData* pg_error;  // a PostgreSQL error to re-throw as is, or nullptr
};

// sqlstate_for maps a core error code to its SQLSTATE: the one table.
int sqlstate_for(Code code) noexcept;

// PgException carries a PostgreSQL error through C++ frames.
struct PgException : std::exception {
    ErrorData* edata;
    explicit PgException(ErrorData* e) : edata(e) {}
    const char* what() const noexcept override { return edata && edata->message ? edata->message : "postgres error"; }
};

PmFailure* failure_from(const Error& e) noexcept;
PmFailure* failure_from_pg(ErrorData* e) noexcept;
PmFailure* failure_internal(const char* what, int sqlstate) noexcept;

// pm_run runs f, catching every exception. Returns nullptr on success.
template <class F>
PmFailure* pm_run(F&& f) noexcept {
    try {
        f();
        return nullptr;
    } catch (const Error& e) {
        return failure_from(e);
    } catch (const PgException& e) {
        return failure_from_pg(e.edata);
    } catch (const std::bad_alloc&) {
        return failure_internal("out of memory in pg_meter", ERRCODE_OUT_OF_MEMORY);
    } catch (const std::overflow_error&) {  // Boost's checked integers
        return failure_internal("amount out of range", ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE);
    } catch (const std::exception& e) {
        return failure_internal(e.what(), ERRCODE_INTERNAL_ERROR);
    } catch (...) {
        return failure_internal("unknown C++ exception in pg_meter", ERRCODE_INTERNAL_ERROR);
    }
}

// pm_raise reports a failure with ereport(ERROR); it does not return.
// Call it only from a frame that owns no C++ object with a destructor.
[[noreturn]] void pm_raise(const PmFailure* f);

// pm_pg_call runs a PostgreSQL call from C++ code, rethrowing its error as
// PgException. f must return a trivially destructible value and own no C++
// object itself.
template <class F>
auto pm_pg_call(F f) -> decltype(f()) {
    using R = decltype(f());
    static_assert(std::is_void_v<R> || std::is_trivially_destructible_v<R>, "pm_pg_call returns plain data");
    MemoryContext cxt = CurrentMemoryContext;
    ErrorData* volatile edata = nullptr;
    if constexpr (std::is_void_v<R>) {
        PG_TRY();
        { f(); }
        PG_CATCH();
        {
            MemoryContextSwitchTo(cxt);
            edata = CopyErrorData();
            FlushErrorState();
        }
        PG_END_TRY();
        if (edata) throw PgException(edata);
    } else {
        R volatile result{};
        PG_TRY();
        { result = f(); }
        PG_CATCH();
        {
            MemoryContextSwitchTo(cxt);
            edata = CopyErrorData();
            FlushErrorState();
        }
        PG_END_TRY();
        if (edata) throw PgException(edata);
        return result;
    }
}

// pm_owned makes a T that cxt deletes when it is reset or deleted (also
// after an error): a C++ object kept across PostgreSQL calls that may
// raise, whose destructor no longjmp skips. Its own allocations are not
// palloc'd.
template <class T>
T* pm_owned(MemoryContext cxt) {
    MemoryContextCallback* cb =
        static_cast<MemoryContextCallback*>(MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback)));
    T* obj = nullptr;
    PmFailure* f = pm_run([&] { obj = new T(); });
    if (f) pm_raise(f);
    cb->func = [](void* arg) { delete static_cast<T*>(arg); };
    cb->arg = obj;
    MemoryContextRegisterResetCallback(cxt, cb);
    return obj;
}

// pm_agg_state is the C++ state of an aggregate's transition call: made by
// the first call (pm_owned by the aggregate's context), argument 0 after.
template <class T>
T* pm_agg_state(FunctionCallInfo fcinfo, const char* fn) {
    MemoryContext cxt;
    if (!AggCheckCallContext(fcinfo, &cxt)) elog(ERROR, "%s called in non-aggregate context", fn);
    if (!PG_ARGISNULL(0)) return reinterpret_cast<T*>(PG_GETARG_POINTER(0));
    return pm_owned<T>(cxt);
}

}  // namespace pgm::pg
