#include "limits.hpp"

#include <algorithm>

#include "error.hpp"

namespace pgm::limits {

namespace {

// ceil_div for a >= 0, b > 0
i128 ceil_div(i128 a, i128 b) { return (a + b - 1) / b; }

Micros to_micros(i128 v) { return v > static_cast<i128>(kMaxTime) ? kMaxTime : static_cast<Micros>(v); }

long double share(const Answer& a) { return static_cast<long double>(a.remaining) / static_cast<long double>(a.max); }

}  // namespace

void check_rate(const Rate& r) {
    if (r.max < 1) throw Error(Code::InvalidValue, "a rate limit allows at least 1 request a period");
    if (r.period < 1) throw Error(Code::InvalidValue, "a rate limit's period is at least one microsecond");
}

Answer gcra(GcraState& s, const Rate& r, Micros now, int64_t n, bool take) {
    check_rate(r);
    if (n < 0) throw Error(Code::InvalidValue, "a request cannot take a negative number of cells");
    // in ticks of 1/max us: a cell is period ticks, the bucket max cells
    const i128 cell = r.period, capacity = static_cast<i128>(r.period) * r.max;
    const i128 t = static_cast<i128>(now) * r.max;
    const i128 base = std::max(s.tat, t);  // the bucket drains while idle
    const i128 next = base + cell * n;
    Answer a;
    a.max = r.max;
    if (n > r.max) {
        a.allowed = false;
        a.retry_after = kNever;
    } else {
        a.allowed = next - t <= capacity;
        if (!a.allowed) a.retry_after = to_micros(ceil_div(next - t - capacity, r.max));
    }
    const i128 after = a.allowed ? next : base;
    if (a.allowed && take) s.tat = next;
    a.used = ceil_div(after - t, cell);
    a.remaining = std::max<i128>(0, (capacity - (after - t)) / cell);  // 0 when a settlement overfilled it
    a.reset_after = to_micros(ceil_div(after - t, r.max));
    return a;
}

Answer budget(i128 max, i128 used, i128 reserved, i128 estimate, Micros now, Micros window_end) {
    if (estimate < 0) throw Error(Code::InvalidValue, "an estimate cannot be negative");
    Answer a;
    a.max = max;
    a.used = used;
    a.reserved = reserved;
    // an exhausted budget refuses even a request that estimates nothing
    a.allowed = used + reserved + estimate <= max && (estimate > 0 || used + reserved < max);
    a.remaining = std::max<i128>(0, max - used - reserved - (a.allowed ? estimate : 0));
    bool open_ended = window_end == kMaxTime;
    a.reset_after = open_ended ? 0 : std::max<Micros>(0, window_end - now);
    if (!a.allowed) a.retry_after = estimate > max || open_ended ? kNever : std::max<Micros>(1, a.reset_after);
    return a;
}

Micros window_start(Micros t, Micros width, Micros origin) {
    if (width < 1) throw Error(Code::InvalidValue, "a window is at least one microsecond wide");
    // t - origin may overflow for times near the ends of the range
    i128 d = static_cast<i128>(t) - origin;
    i128 q = d / width;
    if (d % width != 0 && d < 0) --q;
    i128 s = q * width + origin;
    return s < static_cast<i128>(kMinTime) ? kMinTime : static_cast<Micros>(s);
}

Verdict decide(const std::vector<Answer>& answers) {
    Verdict v;
    for (size_t i = 0; i < answers.size(); ++i)
        if (!answers[i].allowed) v.allowed = false;
    for (size_t i = 0; i < answers.size(); ++i) {
        const Answer& a = answers[i];
        if (v.decided_by < 0) {
            if (a.allowed == v.allowed) v.decided_by = static_cast<int>(i);
            continue;
        }
        const Answer& d = answers[static_cast<size_t>(v.decided_by)];
        if (!v.allowed) {
            if (a.allowed) continue;
            bool longer = d.retry_after != kNever &&
                          (a.retry_after == kNever || a.retry_after > d.retry_after);
            if (longer) v.decided_by = static_cast<int>(i);
        } else {
            if (a.max > 0 && (d.max <= 0 || share(a) < share(d))) v.decided_by = static_cast<int>(i);
        }
    }
    return v;
}

}  // namespace pgm::limits
