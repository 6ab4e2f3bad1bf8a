#include "rollup.hpp"

#include <algorithm>
#include <cstring>

#include "error.hpp"

namespace pgm::rollup {

namespace {

constexpr int64_t kHour = INT64_C(3600000000);
constexpr int64_t kDay = INT64_C(86400000000);

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void add_money(i128& to, i128 v) {
    if (__builtin_add_overflow(to, v, &to)) throw Error(Code::Overflow, "a rollup sum of costs is out of range");
}

size_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return static_cast<size_t>(x);
}

// encode appends a nullable string so that distinct tuples encode apart
void encode(std::string& out, Text t) {
    if (t.is_null()) {
        out.push_back('\0');
        return;
    }
    out.push_back('\1');
    uint32_t n = static_cast<uint32_t>(t.n);
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out.append(t.p, t.n);
}

Text text_of(const NString& s) { return s.null ? Text{} : Text{s.s.data(), s.s.size()}; }
NString owned(Text t) { return t.is_null() ? NString{} : NString{false, std::string(t.p, t.n)}; }

}  // namespace

Micros bucket_of(Micros t, Grain g) {
    if (t == kMinTime || t == kMaxTime) return t;
    int64_t width = g == Grain::Hour ? kHour : kDay;
    return floor_div(t, width) * width;
}

std::string to_decimal(i128 v, int scale) {
    bool neg = v < 0;
    // digits of |v|, least significant first (|INT128_MIN| fits as unsigned)
    unsigned __int128 u = neg ? static_cast<unsigned __int128>(-(v + 1)) + 1 : static_cast<unsigned __int128>(v);
    std::string d;
    do {
        d.push_back(static_cast<char>('0' + static_cast<int>(u % 10)));
        u /= 10;
    } while (u != 0);
    while (static_cast<int>(d.size()) <= scale)
        d.push_back('0');
    int frac = scale;
    size_t trim = 0;  // trailing zeros of the fraction
    while (frac > 0 && d[trim] == '0') {
        ++trim;
        --frac;
    }
    std::string out;
    if (neg) out.push_back('-');
    for (size_t i = d.size(); i-- > static_cast<size_t>(scale);)
        out.push_back(d[i]);
    if (frac > 0) {
        out.push_back('.');
        for (size_t i = static_cast<size_t>(scale); i-- > trim;)
            out.push_back(d[i]);
    }
    return out;
}

void SketchBins::add(double v) {
    sketch::check_value(v);
    if (count_ == 0) {
        min_ = max_ = v;
    } else {
        min_ = std::min(min_, v);
        max_ = std::max(max_, v);
    }
    ++count_;
    sum_ += v;
    if (v == 0) {
        ++zeros_;
        return;
    }
    int32_t key = sketch::key_for(v);
    auto it = std::lower_bound(keys_.begin(), keys_.end(), key);
    size_t i = static_cast<size_t>(it - keys_.begin());
    if (it != keys_.end() && *it == key) {
        ++counts_[i];
        return;
    }
    keys_.insert(it, key);
    counts_.insert(counts_.begin() + static_cast<std::ptrdiff_t>(i), 1);
}

void SketchBins::merge(const SketchBins& o) {
    if (o.count_ == 0) return;
    if (count_ == 0) {
        *this = o;
        return;
    }
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
    count_ += o.count_;
    zeros_ += o.zeros_;
    sum_ += o.sum_;
    int32_t n1 = static_cast<int32_t>(keys_.size()), n2 = static_cast<int32_t>(o.keys_.size());
    if (sketch::add_bins_in_place(keys_.data(), counts_.data(), n1, o.keys_.data(), o.counts_.data(), n2)) return;
    std::vector<int32_t> ko(static_cast<size_t>(n1 + n2));
    std::vector<int64_t> co(static_cast<size_t>(n1 + n2));
    int32_t m = sketch::merge_bins(keys_.data(), counts_.data(), n1, o.keys_.data(), o.counts_.data(), n2, ko.data(),
                                   co.data());
    ko.resize(static_cast<size_t>(m));
    co.resize(static_cast<size_t>(m));
    keys_ = std::move(ko);
    counts_ = std::move(co);
}

sketch::View SketchBins::view() const {
    sketch::View v;
    v.count = count_;
    v.zeros = zeros_;
    v.min = min_;
    v.max = max_;
    v.sum = sum_;
    v.n = static_cast<int32_t>(keys_.size());
    v.keys = keys_.data();
    v.counts = counts_.data();
    return v;
}

void Measures::add(const Event& e) {
    if (requests == 0) {
        first_at = last_at = e.occurred_at;
    } else {
        first_at = std::min(first_at, e.occurred_at);
        last_at = std::max(last_at, e.occurred_at);
    }
    ++requests;
    errors += e.success ? 0 : 1;
    cache_hits += e.cached ? 1 : 0;
    unpriced += e.priced ? 0 : 1;
    input_tokens += e.input_tokens;
    output_tokens += e.output_tokens;
    cache_read_tokens += e.cache_read_tokens;
    cache_write_tokens += e.cache_write_tokens;
    add_money(cost, e.cost);
    add_money(potential_cost, e.potential_cost);
    if (e.has_latency) latency.add(e.latency);
    if (e.has_ttft) ttft.add(e.ttft);
}

void Measures::merge(const Measures& o) {
    if (o.requests == 0) return;
    if (requests == 0) {
        first_at = o.first_at;
        last_at = o.last_at;
    } else {
        first_at = std::min(first_at, o.first_at);
        last_at = std::max(last_at, o.last_at);
    }
    requests += o.requests;
    errors += o.errors;
    cache_hits += o.cache_hits;
    unpriced += o.unpriced;
    input_tokens += o.input_tokens;
    output_tokens += o.output_tokens;
    cache_read_tokens += o.cache_read_tokens;
    cache_write_tokens += o.cache_write_tokens;
    add_money(cost, o.cost);
    add_money(potential_cost, o.potential_cost);
    latency.merge(o.latency);
    ttft.merge(o.ttft);
}

size_t Aggregator::KeyHash::operator()(const HourKey& k) const {
    return mix(static_cast<uint64_t>(k.hour) * UINT64_C(0x9E3779B97F4A7C15) ^ k.dim);
}
size_t Aggregator::KeyHash::operator()(const DayKey& k) const {
    return mix((static_cast<uint64_t>(k.day) * UINT64_C(0x9E3779B97F4A7C15) ^ k.dim) * UINT64_C(0xBF58476D1CE4E5B9) ^
               k.subject);
}

Aggregator::Aggregator() {
    subjects_.push_back(NString{});  // id 0: the null subject
}

uint32_t Aggregator::intern_dims(const Dims& d) {
    enc_.clear();
    encode(enc_, Text{d.tenant.data(), d.tenant.size()});
    encode(enc_, text_of(d.provider));
    encode(enc_, text_of(d.model));
    encode(enc_, text_of(d.endpoint));
    encode(enc_, text_of(d.feature));
    auto it = dim_ids_.find(enc_);
    if (it != dim_ids_.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(dims_.size());
    dims_.push_back(d);
    dim_ids_.emplace(enc_, id);
    return id;
}

uint32_t Aggregator::dim_id(const Event& e) {
    if (e.tenant.is_null()) throw Error(Code::InvalidValue, "an event without a tenant cannot be rolled up");
    enc_.clear();
    encode(enc_, e.tenant);
    encode(enc_, e.provider);
    encode(enc_, e.model);
    encode(enc_, e.endpoint);
    encode(enc_, e.feature);
    if (!dims_.empty() && enc_ == last_enc_) return last_dim_;
    auto it = dim_ids_.find(enc_);
    uint32_t id;
    if (it != dim_ids_.end()) {
        id = it->second;
    } else {
        id = static_cast<uint32_t>(dims_.size());
        dims_.push_back(Dims{std::string(e.tenant.p, e.tenant.n), owned(e.provider), owned(e.model),
                             owned(e.endpoint), owned(e.feature)});
        dim_ids_.emplace(enc_, id);
    }
    last_enc_ = enc_;
    last_dim_ = id;
    return id;
}

uint32_t Aggregator::intern_subject(const NString& s) {
    if (s.null) return 0;
    auto it = subject_ids_.find(s.s);
    if (it != subject_ids_.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(subjects_.size());
    subjects_.push_back(s);
    subject_ids_.emplace(s.s, id);
    return id;
}

uint32_t Aggregator::subject_id(Text s) {
    if (s.is_null()) return 0;
    enc_.assign(s.p, s.n);
    auto it = subject_ids_.find(enc_);
    if (it != subject_ids_.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(subjects_.size());
    subjects_.push_back(NString{false, enc_});
    subject_ids_.emplace(enc_, id);
    return id;
}

void Aggregator::add(const Event& e) {
    uint32_t dim = dim_id(e);
    uint32_t subject = subject_id(e.subject);
    bool added;
    HourKey hk{dim, bucket_of(e.occurred_at, Grain::Hour)};
    uint32_t h = hour_ids_.find_or_add(hk, static_cast<uint32_t>(hours_.size()), added);
    if (added) hours_.emplace_back(hk, Measures{});
    hours_[h].second.add(e);
    DayKey dk{dim, subject, bucket_of(e.occurred_at, Grain::Day)};
    uint32_t d = subject_day_ids_.find_or_add(dk, static_cast<uint32_t>(subject_days_.size()), added);
    if (added) subject_days_.emplace_back(dk, Measures{});
    subject_days_[d].second.add(e);
    ++events_;
}

void Aggregator::merge(const Aggregator& o) {
    std::vector<uint32_t> dim_map(o.dims_.size()), subject_map(o.subjects_.size());
    for (size_t i = 0; i < o.dims_.size(); ++i)
        dim_map[i] = intern_dims(o.dims_[i]);
    for (size_t i = 0; i < o.subjects_.size(); ++i)
        subject_map[i] = intern_subject(o.subjects_[i]);
    last_enc_.clear();
    bool added;
    for (auto& [k, m] : o.hours_) {
        HourKey hk{dim_map[k.dim], k.hour};
        uint32_t h = hour_ids_.find_or_add(hk, static_cast<uint32_t>(hours_.size()), added);
        if (added) hours_.emplace_back(hk, Measures{});
        hours_[h].second.merge(m);
    }
    for (auto& [k, m] : o.subject_days_) {
        DayKey dk{dim_map[k.dim], subject_map[k.subject], k.day};
        uint32_t d = subject_day_ids_.find_or_add(dk, static_cast<uint32_t>(subject_days_.size()), added);
        if (added) subject_days_.emplace_back(dk, Measures{});
        subject_days_[d].second.merge(m);
    }
    events_ += o.events_;
}

std::vector<Row> Aggregator::rows() {
    days_.clear();
    FlatIndex<DayKey, KeyHash> day_ids;
    bool added;
    for (auto& [k, m] : hours_) {
        DayKey dk{k.dim, 0, bucket_of(k.hour, Grain::Day)};
        uint32_t d = day_ids.find_or_add(dk, static_cast<uint32_t>(days_.size()), added);
        if (added) days_.emplace_back(dk, Measures{});
        days_[d].second.merge(m);
    }
    std::vector<Row> out;
    out.reserve(hours_.size() + days_.size() + subject_days_.size());
    for (auto& [k, m] : hours_)
        out.push_back(Row{Grain::Hour, &dims_[k.dim], &null_, k.hour, &m});
    for (auto& [k, m] : days_)
        out.push_back(Row{Grain::Day, &dims_[k.dim], &null_, k.day, &m});
    for (auto& [k, m] : subject_days_)
        out.push_back(Row{Grain::SubjectDay, &dims_[k.dim], &subjects_[k.subject], k.day, &m});
    return out;
}

}  // namespace pgm::rollup
