// limits.hpp: the arithmetic of quotas and rate limits (issue 5).
//
// Two kinds of limit decide whether a request may go ahead:
//  - a rate ("at most 10 requests a minute"): the generic cell rate
//    algorithm (GCRA), O(1) state per key, no burst at window edges, and
//    an exact retry-after. The state is one number, the theoretical arrival
//    time, kept in ticks of 1/max microsecond so that the emission interval
//    period / max is an exact integer (10 a minute: 6 s a cell).
//  - a budget over a window ("100,000 tokens a day", "5 USD a month"):
//    what was used in the window plus what is reserved plus this request's
//    estimate must stay within the maximum. Windows start by arithmetic:
//    fixed windows from an origin (calendar days and months in a time zone
//    are computed by the caller, who knows the time zone rules), rolling
//    windows end now.
// A request held against several limits passes only if all allow it; the
// verdict names the limit that decided and what an HTTP 429 needs.
#pragma once
#include "core_only.hpp"

#include <cstdint>
#include <vector>

#include "catalog.hpp"  // Micros

namespace pgm::limits {

using i128 = __int128;

// kNever is the retry-after of a request that no wait lets through (it asks
// for more than the limit's maximum).
constexpr Micros kNever = -1;

// Rate is at most max cells per period.
struct Rate {
    int64_t max = 0;
    Micros period = 0;
};

// check_rate throws Code::InvalidValue unless max >= 1 and period >= 1 us.
void check_rate(const Rate& r);

// GcraState is one key's state: the theoretical arrival time in ticks of
// 1/max microsecond (0: never used, as good as fully drained).
struct GcraState {
    i128 tat = 0;
};

// Answer is one limit's decision.
struct Answer {
    bool allowed = false;
    i128 max = 0;           // the limit (cells, tokens, or money units)
    i128 used = 0;          // used in the window (a rate: cells in the bucket)
    i128 reserved = 0;      // held by live reservations (budgets only)
    i128 remaining = 0;     // what could still pass now, after this request if it passed
    Micros retry_after = 0; // 0 when allowed; kNever when no wait helps
    Micros reset_after = 0; // until the window or bucket is empty again
};

// gcra decides whether n cells pass at time now (n >= 0; 0 asks without
// taking). When take is true and they pass, the state moves on; a refusal
// never changes it.
Answer gcra(GcraState& s, const Rate& r, Micros now, int64_t n, bool take);

// budget decides whether estimate more fits beside used and reserved under
// max (a budget already used up refuses even an estimate of 0) in a window that ends at window_end (kMaxTime for a rolling window,
// whose retry-after the caller works out from the usage that leaves it).
Answer budget(i128 max, i128 used, i128 reserved, i128 estimate, Micros now, Micros window_end);

// window_start is the start of the fixed window of the given width, aligned
// to origin, that holds t.
Micros window_start(Micros t, Micros width, Micros origin = 0);

// Verdict is the decision over every limit that applies to a request.
struct Verdict {
    bool allowed = true;
    int decided_by = -1;  // the index of the deciding answer; -1 when no limit applies
};

// decide: a request passes when every answer allows it. A refusal is
// decided by the limit that keeps it waiting longest (kNever first), so its
// retry-after is the wait after which all allow; a pass by the limit with
// the least remaining share of its maximum (what rate-limit headers show).
Verdict decide(const std::vector<Answer>& answers);

}  // namespace pgm::limits
