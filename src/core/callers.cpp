// callers.cpp: the hour's callers and their runs (callers.hpp).
#include "callers.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

namespace pgm::callers {

namespace {

// keep_greatest keeps the greatest subject bytewise (NULL the least)
void keep_greatest(NString& kept, Text subject) {
    if (subject.is_null()) return;
    if (!kept || std::string_view(subject.p, subject.n) > std::string_view(*kept)) kept = owned(subject);
}

constexpr int64_t kHourUs = INT64_C(3600000000);

}  // namespace

uint32_t Registry::group(Text tenant, Text endpoint, bool& added) {
    if (tenant.is_null()) tenant = Text{"", 0};  // events always have one; kept as ''
    uint64_t h = hash_text(endpoint, hash_text(tenant, 0));
    uint32_t id = group_index_.find_or_add(
        h, [&](uint32_t i) { return same(tenant, groups_[i].tenant) && same(endpoint, groups_[i].endpoint); },
        static_cast<uint32_t>(groups_.size()), added);
    if (added) groups_.push_back(Group{std::string(tenant.p, tenant.n), owned(endpoint)});
    return id;
}

uint32_t Registry::caller(uint32_t group, Text session, Text subject, bool& added) {
    Text who = session.is_null() ? subject : Text{};
    uint64_t h = hash_text(who, hash_text(session, mix(group + UINT64_C(1))));
    uint32_t id = caller_index_.find_or_add(
        h,
        [&](uint32_t i) {
            const Caller& c = callers_[i];
            return c.group == group && same(session, c.session) && same(who, c.who);
        },
        static_cast<uint32_t>(callers_.size()), added);
    if (added) callers_.push_back(Caller{group, owned(session), owned(who)});
    return id;
}

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
    bool added;
    uint32_t g = reg_.group(tenant, endpoint, added);
    if (added) {
        requests_.push_back(0);
        members_.emplace_back();
    }
    requests_[g]++;
    uint32_t c = reg_.caller(g, session, subject, added);
    if (added) {
        tallies_.push_back(Tally{0, 0, at_us, at_us, std::nullopt});
        members_[g].push_back(c);
    }
    Tally& t = tallies_[c];
    keep_greatest(t.subject, subject);
    t.first_us = std::min(t.first_us, at_us);
    t.last_us = std::max(t.last_us, at_us);
    t.n++;
    if (empty) t.empty++;
    return g;
}

std::vector<EndpointHour> Hour::endpoints() const {
    std::vector<EndpointHour> out;
    out.reserve(reg_.groups());
    std::vector<double> rates;
    for (uint32_t g = 0; g < reg_.groups(); ++g) {
        rates.clear();
        for (uint32_t c : members_[g]) {
            const Tally& t = tallies_[c];
            if (reg_.caller_at(c).someone() && t.n >= 2) rates.push_back(rate_per_min(t.n, t.first_us, t.last_us));
        }
        const Registry::Group& grp = reg_.group_at(g);
        out.push_back(
            EndpointHour{grp.tenant, grp.endpoint, requests_[g], static_cast<int64_t>(rates.size()), median(rates)});
    }
    return out;
}

std::vector<BusyCaller> Hour::busy(int64_t min_busy) const {
    std::vector<BusyCaller> out;
    for (uint32_t c = 0; c < reg_.callers(); ++c) {
        const Registry::Caller& who = reg_.caller_at(c);
        const Tally& t = tallies_[c];
        if (!who.someone() || t.n < min_busy) continue;
        const Registry::Group& g = reg_.group_at(who.group);
        out.push_back(BusyCaller{g.tenant, g.endpoint, who.session, t.subject, t.n, t.empty, t.first_us, t.last_us});
    }
    return out;
}

void Runs::add(const BusyHour& b) {
    bool added;
    uint32_t g = reg_.group(b.tenant, b.endpoint, added);
    uint32_t c = reg_.caller(g, b.session, b.subject, added);
    if (added) hours_.emplace_back();
    hours_[c].push_back(Hr{b.bucket_us, b.requests, b.empty, b.first_us, b.last_us, owned(b.subject)});
}

std::vector<Run> Runs::runs() const {
    std::vector<Run> out;
    std::vector<const Hr*> hs;
    for (uint32_t c = 0; c < reg_.callers(); ++c) {
        const Registry::Caller& who = reg_.caller_at(c);
        const Registry::Group& g = reg_.group_at(who.group);
        hs.clear();
        for (const Hr& h : hours_[c]) hs.push_back(&h);
        std::sort(hs.begin(), hs.end(), [](const Hr* a, const Hr* b) { return a->bucket_us < b->bucket_us; });
        Run* run = nullptr;
        int64_t last_bucket = 0;
        for (const Hr* h : hs) {
            if (!run || h->bucket_us > last_bucket + kHourUs) {
                out.push_back(Run{g.tenant, g.endpoint, who.session, std::nullopt, 0, 0, h->first_us, h->last_us});
                run = &out.back();
            }
            last_bucket = h->bucket_us;
            run->requests += h->requests;
            run->empty += h->empty;
            run->first_us = std::min(run->first_us, h->first_us);
            run->last_us = std::max(run->last_us, h->last_us);
            if (h->subject) keep_greatest(run->subject, text_of(h->subject));
        }
    }
    for (Run& r : out) r.per_min = rate_per_min(r.requests, r.first_us, r.last_us);
    return out;
}

}  // namespace pgm::callers
