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
    add_keyed(v, v == 0 ? 0 : sketch::key_for(v));
}

void SketchBins::add_keyed(double v, int32_t key) {
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
    add_bucket(key, 1);
}

void SketchBins::add_bucket(int32_t key, int64_t n) {
    if (!dense_.empty()) {
        int64_t i = static_cast<int64_t>(key) - base_, size = static_cast<int64_t>(dense_.size());
        if (i >= 0 && i < size) {
            if (dense_[static_cast<size_t>(i)] == 0) ++buckets_;
            dense_[static_cast<size_t>(i)] += n;
            return;
        }
        int64_t lo = std::min<int64_t>(key, base_), hi = std::max<int64_t>(key, base_ + size - 1);
        if (hi - lo + 1 > dense_limit(buckets_ + 1)) {
            to_sparse();  // an outlier far from the rest: sparse again
        } else {
            // widen with room for a few more keys on the side that grew
            int64_t room = std::min<int64_t>(16, dense_limit(buckets_ + 1) - (hi - lo + 1));
            if (i < 0) lo = std::max<int64_t>(lo - room, INT32_MIN);
            else hi = std::min<int64_t>(hi + room, INT32_MAX);
            std::vector<int64_t> wider(static_cast<size_t>(hi - lo + 1), 0);
            std::copy(dense_.begin(), dense_.end(), wider.begin() + (base_ - lo));
            dense_ = std::move(wider);
            base_ = static_cast<int32_t>(lo);
            dense_[static_cast<size_t>(key - lo)] = n;
            ++buckets_;
            return;
        }
    }
    auto it = std::lower_bound(keys_.begin(), keys_.end(), key);
    size_t i = static_cast<size_t>(it - keys_.begin());
    if (it != keys_.end() && *it == key) {
        counts_[i] += n;
        return;
    }
    keys_.insert(it, key);
    counts_.insert(counts_.begin() + static_cast<std::ptrdiff_t>(i), n);
    if (keys_.size() >= kDenseFrom) to_dense(keys_.front(), keys_.back());
}

bool SketchBins::to_dense(int64_t lo, int64_t hi) {
    if (hi - lo + 1 > dense_limit(static_cast<int64_t>(keys_.size()))) return false;
    dense_.assign(static_cast<size_t>(hi - lo + 1), 0);
    base_ = static_cast<int32_t>(lo);
    for (size_t i = 0; i < keys_.size(); ++i)
        dense_[static_cast<size_t>(keys_[i] - lo)] = counts_[i];
    buckets_ = static_cast<int64_t>(keys_.size());
    keys_ = {};
    counts_ = {};
    return true;
}

void SketchBins::to_sparse() {
    std::vector<int32_t> keys;
    std::vector<int64_t> counts;
    keys.reserve(static_cast<size_t>(buckets_) + 1);
    counts.reserve(static_cast<size_t>(buckets_) + 1);
    each_bucket([&](int32_t k, int64_t c) {
        keys.push_back(k);
        counts.push_back(c);
    });
    keys_ = std::move(keys);
    counts_ = std::move(counts);
    dense_ = {};
    buckets_ = 0;
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
    if (!o.dense_.empty() || !dense_.empty()) {
        // a dense one into this: this made dense over both spans when it can
        if (dense_.empty())
            to_dense(std::min<int64_t>(keys_.empty() ? o.base_ : keys_.front(), o.base_),
                     std::max<int64_t>(keys_.empty() ? o.base_ : keys_.back(),
                                       o.base_ + static_cast<int64_t>(o.dense_.size()) - 1));
        o.each_bucket([this](int32_t k, int64_t c) { add_bucket(k, c); });
        return;
    }
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
    if (keys_.size() >= kDenseFrom) to_dense(keys_.front(), keys_.back());
}

sketch::View SketchBins::view() const {
    sketch::View v;
    v.count = count_;
    v.zeros = zeros_;
    v.min = min_;
    v.max = max_;
    v.sum = sum_;
    if (dense_.empty()) {
        v.n = static_cast<int32_t>(keys_.size());
        v.keys = keys_.data();
        v.counts = counts_.data();
        return v;
    }
    view_keys_.clear();
    view_counts_.clear();
    each_bucket([this](int32_t k, int64_t c) {
        view_keys_.push_back(k);
        view_counts_.push_back(c);
    });
    v.n = static_cast<int32_t>(view_keys_.size());
    v.keys = view_keys_.data();
    v.counts = view_counts_.data();
    return v;
}

void Measures::add(const Event& e, int32_t latency_key, int32_t ttft_key) {
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
    if (e.has_latency) latency.add_keyed(e.latency, latency_key);
    if (e.has_ttft) ttft.add_keyed(e.ttft, ttft_key);
}

void Measures::value_keys(const Event& e, int32_t* latency_key, int32_t* ttft_key) {
    *latency_key = *ttft_key = 0;
    if (e.has_latency) {
        sketch::check_value(e.latency);
        if (e.latency != 0) *latency_key = sketch::key_for(e.latency);
    }
    if (e.has_ttft) {
        sketch::check_value(e.ttft);
        if (e.ttft != 0) *ttft_key = sketch::key_for(e.ttft);
    }
}

void Measures::add(const Event& e) {
    int32_t lk, tk;
    value_keys(e, &lk, &tk);
    add(e, lk, tk);
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

uint64_t Aggregator::hash_of(const HourKey& k) {
    return mix(static_cast<uint64_t>(k.hour) * UINT64_C(0x9E3779B97F4A7C15) ^ k.dim);
}
uint64_t Aggregator::hash_of(const DayKey& k) {
    return mix((static_cast<uint64_t>(k.day) * UINT64_C(0x9E3779B97F4A7C15) ^ k.dim) * UINT64_C(0xBF58476D1CE4E5B9) ^
               k.subject);
}

Aggregator::Aggregator() {
    subjects_.push_back(NString{});  // id 0: the null subject
}

uint32_t Aggregator::dim_id(Text tenant, Text provider, Text model, Text endpoint, Text feature) {
    if (tenant.is_null()) throw Error(Code::InvalidValue, "an event without a tenant cannot be rolled up");
    auto eq = [&](uint32_t id) {
        const Dims& d = dims_[id];
        return d.tenant.size() == tenant.n && std::memcmp(d.tenant.data(), tenant.p, tenant.n) == 0 &&
               same(provider, d.provider) && same(model, d.model) && same(endpoint, d.endpoint) &&
               same(feature, d.feature);
    };
    if (last_dim_ != UINT32_MAX && eq(last_dim_)) return last_dim_;
    uint64_t h = hash_text(tenant, 0);
    h = hash_text(provider, h);
    h = hash_text(model, h);
    h = hash_text(endpoint, h);
    h = hash_text(feature, h);
    bool added;
    uint32_t id = dim_index_.find_or_add(h, eq, static_cast<uint32_t>(dims_.size()), added);
    if (added)
        dims_.push_back(Dims{std::string(tenant.p, tenant.n), owned(provider), owned(model), owned(endpoint),
                             owned(feature)});
    last_dim_ = id;
    return id;
}

uint32_t Aggregator::subject_id(Text s) {
    if (s.is_null()) return 0;
    bool added;
    uint32_t id = subject_index_.find_or_add(
        hash_text(s, 0), [&](uint32_t i) { return same(s, subjects_[i]); }, static_cast<uint32_t>(subjects_.size()),
        added);
    if (added) subjects_.push_back(owned(s));
    return id;
}

uint32_t Aggregator::tenant_dim(uint32_t dim) {
    if (tenant_dims_.size() <= dim) tenant_dims_.resize(dims_.size(), UINT32_MAX);
    if (tenant_dims_[dim] == UINT32_MAX) {
        uint32_t last = last_dim_;  // keep the guess for the next event
        const std::string tenant = dims_[dim].tenant;  // dims_ may grow
        uint32_t t = dim_id(Text{tenant.data(), tenant.size()}, Text{}, Text{}, Text{}, Text{});
        last_dim_ = last;
        if (tenant_dims_.size() < dims_.size()) tenant_dims_.resize(dims_.size(), UINT32_MAX);
        tenant_dims_[dim] = t;
    }
    return tenant_dims_[dim];
}

void Aggregator::add(const Event& e) {
    uint32_t dim = dim_id(e.tenant, e.provider, e.model, e.endpoint, e.feature);
    uint32_t subject = subject_id(e.subject);
    // each value's checks and logarithm once, for both groups it joins
    int32_t lk, tk;
    Measures::value_keys(e, &lk, &tk);
    hours_.at(HourKey{dim, bucket_of(e.occurred_at, Grain::Hour)}).add(e, lk, tk);
    subject_days_.at(DayKey{tenant_dim(dim), subject, bucket_of(e.occurred_at, Grain::Day)}).add(e, lk, tk);
    ++events_;
}

std::vector<Row> Aggregator::rows() {
    days_ = Groups<DayKey>{};
    for (size_t i = 0; i < hours_.size(); ++i) {
        const HourKey& k = hours_.keys[i];
        days_.at(DayKey{k.dim, 0, bucket_of(k.hour, Grain::Day)}).merge(hours_.measures[i]);
    }
    std::vector<Row> out;
    out.reserve(hours_.size() + days_.size() + subject_days_.size());
    for (size_t i = 0; i < hours_.size(); ++i)
        out.push_back(Row{Grain::Hour, &dims_[hours_.keys[i].dim], &null_, hours_.keys[i].hour, &hours_.measures[i]});
    for (size_t i = 0; i < days_.size(); ++i)
        out.push_back(Row{Grain::Day, &dims_[days_.keys[i].dim], &null_, days_.keys[i].day, &days_.measures[i]});
    for (size_t i = 0; i < subject_days_.size(); ++i) {
        const DayKey& k = subject_days_.keys[i];
        out.push_back(
            Row{Grain::SubjectDay, &dims_[k.dim], &subjects_[k.subject], k.day, &subject_days_.measures[i]});
    }
    return out;
}

}  // namespace pgm::rollup

// Serialized states. Every number is written in the machine's own byte
// order: a state only travels from a parallel worker to its leader.
namespace pgm::rollup {

void Bytes::put_string(const std::string& v) {
    put<uint64_t>(v.size());
    s_.append(v);
}

void Bytes::put_nstring(const NString& v) {
    put<uint8_t>(v ? 0 : 1);
    if (v) put_string(*v);
}

void BytesIn::need(size_t n) const {
    if (static_cast<size_t>(end_ - p_) < n) throw Error(Code::Internal, "a serialized rollup state is truncated");
}

size_t BytesIn::count(size_t min_size) {
    uint64_t n = get<uint64_t>();
    if (min_size != 0 && n > static_cast<uint64_t>(end_ - p_) / min_size)
        throw Error(Code::Internal, "a serialized rollup state is truncated");
    return static_cast<size_t>(n);
}

std::string BytesIn::get_string() {
    size_t n = count(1);
    std::string v(p_, n);
    p_ += n;
    return v;
}

NString BytesIn::get_nstring() {
    if (get<uint8_t>() != 0) return NString{};
    return get_string();
}

void SketchBins::write(Bytes& out) const {
    out.put(count_);
    out.put(zeros_);
    out.put(min_);
    out.put(max_);
    out.put(sum_);
    out.put<uint64_t>(static_cast<uint64_t>(dense_.empty() ? keys_.size() : buckets_));
    each_bucket([&](int32_t k, int64_t c) {
        out.put(k);
        out.put(c);
    });
}

void SketchBins::read(BytesIn& in) {
    *this = SketchBins{};
    count_ = in.get<int64_t>();
    zeros_ = in.get<int64_t>();
    min_ = in.get<double>();
    max_ = in.get<double>();
    sum_ = in.get<double>();
    size_t n = in.count(sizeof(int32_t) + sizeof(int64_t));
    keys_.reserve(n);
    counts_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        keys_.push_back(in.get<int32_t>());
        counts_.push_back(in.get<int64_t>());
        if (i > 0 && keys_[i] <= keys_[i - 1]) throw Error(Code::Internal, "a serialized sketch is out of order");
    }
    if (keys_.size() >= kDenseFrom) to_dense(keys_.front(), keys_.back());
}

void Measures::write(Bytes& out) const {
    out.put(requests);
    out.put(errors);
    out.put(cache_hits);
    out.put(unpriced);
    for (const i128* v : {&input_tokens, &output_tokens, &cache_read_tokens, &cache_write_tokens, &cost, &potential_cost})
        out.put(*v);
    latency.write(out);
    ttft.write(out);
    out.put(first_at);
    out.put(last_at);
}

void Measures::read(BytesIn& in) {
    requests = in.get<int64_t>();
    errors = in.get<int64_t>();
    cache_hits = in.get<int64_t>();
    unpriced = in.get<int64_t>();
    for (i128* v : {&input_tokens, &output_tokens, &cache_read_tokens, &cache_write_tokens, &cost, &potential_cost})
        *v = in.get<i128>();
    latency.read(in);
    ttft.read(in);
    first_at = in.get<Micros>();
    last_at = in.get<Micros>();
}

std::string Aggregator::serialize() const {
    Bytes out;
    out.put(events_);
    out.put<uint64_t>(dims_.size());
    for (const Dims& d : dims_) {
        out.put_string(d.tenant);
        for (const NString* s : {&d.provider, &d.model, &d.endpoint, &d.feature})
            out.put_nstring(*s);
    }
    out.put<uint64_t>(subjects_.size());
    for (const NString& s : subjects_)
        out.put_nstring(s);
    out.put<uint64_t>(hours_.size());
    for (size_t i = 0; i < hours_.size(); ++i) {
        out.put(hours_.keys[i].dim);
        out.put(hours_.keys[i].hour);
        hours_.measures[i].write(out);
    }
    out.put<uint64_t>(subject_days_.size());
    for (size_t i = 0; i < subject_days_.size(); ++i) {
        out.put(subject_days_.keys[i].dim);
        out.put(subject_days_.keys[i].subject);
        out.put(subject_days_.keys[i].day);
        subject_days_.measures[i].write(out);
    }
    return out.take();
}

void Aggregator::deserialize(const char* p, size_t n) {
    BytesIn in(p, n);
    int64_t events = in.get<int64_t>();
    // the other state's dimension and subject ids, as ids of this one
    std::vector<uint32_t> dim_map(in.count(sizeof(uint64_t) + 4));
    for (uint32_t& id : dim_map) {
        std::string tenant = in.get_string();
        NString d[4];
        for (NString& s : d)
            s = in.get_nstring();
        id = dim_id(Text{tenant.data(), tenant.size()}, text_of(d[0]), text_of(d[1]), text_of(d[2]), text_of(d[3]));
    }
    std::vector<uint32_t> subject_map(in.count(1));
    for (uint32_t& id : subject_map)
        id = subject_id(text_of(in.get_nstring()));
    auto dim = [&](uint32_t i) {
        if (i >= dim_map.size()) throw Error(Code::Internal, "a serialized rollup state names no such dimensions");
        return dim_map[i];
    };
    Measures m;
    for (size_t i = 0, k = in.count(sizeof(uint32_t) + sizeof(int64_t)); i < k; ++i) {
        uint32_t d = dim(in.get<uint32_t>());
        int64_t hour = in.get<int64_t>();
        m.read(in);
        hours_.at(HourKey{d, hour}).merge(m);
    }
    for (size_t i = 0, k = in.count(2 * sizeof(uint32_t) + sizeof(int64_t)); i < k; ++i) {
        uint32_t d = dim(in.get<uint32_t>());
        uint32_t s = in.get<uint32_t>();
        if (s >= subject_map.size()) throw Error(Code::Internal, "a serialized rollup state names no such subject");
        int64_t day = in.get<int64_t>();
        m.read(in);
        subject_days_.at(DayKey{d, subject_map[s], day}).merge(m);
    }
    if (!in.done()) throw Error(Code::Internal, "a serialized rollup state has bytes left over");
    events_ += events;
}

}  // namespace pgm::rollup
