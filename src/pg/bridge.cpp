#include "bridge.hpp"

#include <cstring>

extern "C" {
#include "utils/errcodes.h"
}

namespace pgm::pg {

namespace {
PmFailure g_failure;  // one at a time: raised before the next call runs

void copy(char* dst, size_t n, const char* s, size_t slen) noexcept {
    size_t len = slen < n - 1 ? slen : n - 1;
    std::memcpy(dst, s, len);
    dst[len] = '\0';
}
void copy(char* dst, size_t n, const std::string& s) noexcept { copy(dst, n, s.data(), s.size()); }
}  // namespace

int sqlstate_for(Code code) noexcept {
    const char* s = sqlstate(code);
    return MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
}

PmFailure* failure_from(const Error& e) noexcept {
    g_failure.sqlstate = sqlstate_for(e.code);
    copy(g_failure.message, sizeof g_failure.message, e.message);
    copy(g_failure.detail, sizeof g_failure.detail, e.detail);
    copy(g_failure.hint, sizeof g_failure.hint, e.hint);
    g_failure.pg_error = nullptr;
    return &g_failure;
}

PmFailure* failure_from_pg(ErrorData* e) noexcept {
    g_failure.pg_error = e;
    return &g_failure;
}

PmFailure* failure_internal(const char* what, int sqlstate) noexcept {
    g_failure.sqlstate = sqlstate;
    const char* w = what ? what : "internal error";
    copy(g_failure.message, sizeof g_failure.message, w, std::strlen(w));
    g_failure.detail[0] = '\0';
    g_failure.hint[0] = '\0';
    g_failure.pg_error = nullptr;
    return &g_failure;
}

void pm_raise(const PmFailure* f) {
    if (f->pg_error) ReThrowError(f->pg_error);
    ereport(ERROR, (errcode(f->sqlstate), errmsg("%s", f->message), f->detail[0] ? errdetail("%s", f->detail) : 0,
                    f->hint[0] ? errhint("%s", f->hint) : 0));
    pg_unreachable();
}

}  // namespace pgm::pg
