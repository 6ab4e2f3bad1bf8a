// callers.cpp: the hour's callers (callers.hpp).
#include "callers.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pgm::callers {

namespace {

// append adds a nullable text to a key so that no two different lists of
// texts make the same key: a tag, the length, the bytes
void append(std::string& key, Text t) {
    if (t.null()) {
        key.push_back('\0');
        return;
    }
    key.push_back('\1');
    uint64_t n = t.size;
    key.append(reinterpret_cast<const char*>(&n), sizeof n);
    key.append(t.data, t.size);
}

std::optional<std::string> copy(Text t) {
    if (t.null()) return std::nullopt;
    return std::string(t.data, t.size);
}

}  // namespace

double rate_per_min(int64_t n, int64_t first_us, int64_t last_us) {
    // as (n - 1) / greatest(date_part('epoch', last - first) / 60, 1.0 / 60)
    double minutes = (static_cast<double>(last_us - first_us) / 1000000.0) / 60.0;
    return static_cast<double>(n - 1) / std::max(minutes, 1.0 / 60.0);
}

std::optional<double> median(std::vector<double> v) {
    if (v.empty()) return std::nullopt;
    std::sort(v.begin(), v.end());
    // percentile_cont(0.5): the two middle values' linear interpolation
    double pos = 0.5 * static_cast<double>(v.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos)), hi = static_cast<size_t>(std::ceil(pos));
    if (hi == lo) return v[lo];
    return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

size_t Hour::add(Text tenant, Text endpoint, Text session, Text subject, bool empty, int64_t at_us) {
    key_.clear();
    append(key_, tenant);
    append(key_, endpoint);
    auto g = group_of_.find(key_);
    size_t gi;
    if (g == group_of_.end()) {
        gi = groups_.size();
        groups_.push_back(Group{std::string(tenant.view()), copy(endpoint), 0, {}});
        group_of_.emplace(key_, gi);
    } else {
        gi = g->second;
    }
    groups_[gi].requests++;
    Text who = session.null() ? subject : Text{};
    key_.clear();
    key_.append(reinterpret_cast<const char*>(&gi), sizeof gi);
    append(key_, session);
    append(key_, who);
    auto c = caller_of_.find(key_);
    Caller* cl;
    if (c == caller_of_.end()) {
        size_t ci = callers_.size();
        callers_.push_back(Caller{gi, copy(session), copy(who), copy(subject), 0, 0, at_us, at_us});
        caller_of_.emplace(key_, ci);
        groups_[gi].callers.push_back(ci);
        cl = &callers_[ci];
    } else {
        cl = &callers_[c->second];
        if (!subject.null() && (!cl->subject || subject.view() > std::string_view(*cl->subject)))
            cl->subject = std::string(subject.view());
        cl->first_us = std::min(cl->first_us, at_us);
        cl->last_us = std::max(cl->last_us, at_us);
    }
    cl->n++;
    if (empty) cl->empty++;
    return gi;
}

std::vector<EndpointHour> Hour::endpoints() const {
    std::vector<EndpointHour> out;
    out.reserve(groups_.size());
    std::vector<double> rates;
    for (const Group& g : groups_) {
        rates.clear();
        for (size_t ci : g.callers) {
            const Caller& c = callers_[ci];
            if ((c.session || c.who) && c.n >= 2) rates.push_back(rate_per_min(c.n, c.first_us, c.last_us));
        }
        out.push_back(EndpointHour{g.tenant, g.endpoint, g.requests, static_cast<int64_t>(rates.size()), median(rates)});
    }
    return out;
}

std::vector<BusyCaller> Hour::busy(int64_t min_busy) const {
    std::vector<BusyCaller> out;
    for (const Caller& c : callers_) {
        if (!(c.session || c.who) || c.n < min_busy) continue;
        const Group& g = groups_[c.group];
        out.push_back(BusyCaller{g.tenant, g.endpoint, c.session, c.subject, c.n, c.empty, c.first_us, c.last_us});
    }
    return out;
}

}  // namespace pgm::callers
