// rollup.hpp: raw events into rollup rows, in one pass and exactly.
//
// meter.rollup(), meter.backfill() and meter.verify() all aggregate events
// the same way; this is that way. Per event, the aggregator interns the
// dimensions (tenant, provider, model, endpoint, feature) and the subject,
// then adds the event to its hour group and to its subject-and-day group.
// A subject's day is per tenant only (its provider, model, endpoint and
// feature are NULL): per-subject reads sum a subject's days, and a row per
// subject, day and model would be about fifteen times as many rows to
// write and to read for the same answers.
// Day groups are not kept per event: a day is the sum of its hours, formed
// once when the rows are read out. Counts and tokens add as integers and
// money as integers at 24 decimals, so sums are exact; latency and time to
// first token build the same sketches meter.sketch() builds.
#pragma once
#include "core_only.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "catalog.hpp"
#include "hash.hpp"
#include "sketch.hpp"

namespace pgm::rollup {

using i128 = __int128;

// Money in a rollup is an integer count of 1e-24 USD: every cost pg_meter
// prices has at most 12 decimals, and a cost written by hand may have up to
// 24 before the aggregator refuses it.
constexpr int kMoneyScale = 24;

using pgm::Text;

// Event is one raw event as the glue reads it.
struct Event {
    Text tenant, subject, provider, model, endpoint, feature;
    Micros occurred_at = 0;
    bool success = true, cached = false, priced = false;
    int64_t input_tokens = 0, output_tokens = 0, cache_read_tokens = 0, cache_write_tokens = 0;
    i128 cost = 0, potential_cost = 0;  // at kMoneyScale; a NULL cost adds 0
    bool has_latency = false, has_ttft = false;
    double latency = 0, ttft = 0;
};

class Bytes;
class BytesIn;

// SketchBins is a sketch being built: the same numbers a meter.sketch holds.
class SketchBins {
  public:
    void add(double v);  // throws Code::InvalidValue for a negative, NaN or infinite value
    // add_keyed adds a value already checked whose key is sketch::key_for(v)
    // (any key when v is 0): an event adds its latency to two groups and
    // takes the logarithm once.
    void add_keyed(double v, int32_t key);
    void merge(const SketchBins& o);
    bool empty() const { return count_ == 0; }
    sketch::View view() const;
    // write appends the sketch to out; read replaces this one with the
    // next one of in (the partial states of a parallel aggregate)
    void write(Bytes& out) const;
    void read(BytesIn& in);

  private:
    // Buckets are kept sparse (keys_ ascending, counts_) until a sketch has
    // kDenseFrom of them; from then on, while they are dense enough (a span
    // of keys at most max(kDenseSpan, 8 per bucket)), as one count per key
    // of the span (dense_[key - base_], 0 for none): adding a value is an
    // index instead of a binary search and, for a new bucket, an insert.
    // One day's subject-day groups (~170 buckets each) spent an eighth of a
    // backfill in those searches.
    static constexpr size_t kDenseFrom = 24;
    static constexpr int64_t kDenseSpan = 512;
    void add_bucket(int32_t key, int64_t n);
    bool to_dense(int64_t lo, int64_t hi);  // false (nothing changed) when too sparse
    void to_sparse();
    // each_bucket calls f(key, count) for every bucket, ascending, in either form
    template <class F>
    void each_bucket(F&& f) const {
        if (dense_.empty()) {
            for (size_t i = 0; i < keys_.size(); ++i)
                f(keys_[i], counts_[i]);
            return;
        }
        for (size_t i = 0; i < dense_.size(); ++i)
            if (dense_[i] != 0) f(static_cast<int32_t>(base_ + static_cast<int64_t>(i)), dense_[i]);
    }
    static int64_t dense_limit(int64_t buckets) { return std::max(kDenseSpan, 8 * buckets); }

    int64_t count_ = 0, zeros_ = 0;
    double min_ = 0, max_ = 0, sum_ = 0;
    std::vector<int32_t> keys_;  // the sparse form: ascending
    std::vector<int64_t> counts_;
    int32_t base_ = 0;            // the dense form: the key of dense_[0]
    std::vector<int64_t> dense_;  // empty in the sparse form
    int64_t buckets_ = 0;         // buckets > 0 in dense_
    mutable std::vector<int32_t> view_keys_;  // view() of the dense form
    mutable std::vector<int64_t> view_counts_;
};

// Measures are the figures of one rollup row.
struct Measures {
    int64_t requests = 0, errors = 0, cache_hits = 0, unpriced = 0;
    i128 input_tokens = 0, output_tokens = 0, cache_read_tokens = 0, cache_write_tokens = 0;
    i128 cost = 0, potential_cost = 0;  // at kMoneyScale
    SketchBins latency, ttft;
    Micros first_at = 0, last_at = 0;
    // add adds an event whose latency and ttft keys are value_keys' (an
    // event joins two groups and its logarithms are taken once)
    void add(const Event& e, int32_t latency_key, int32_t ttft_key);
    void add(const Event& e);  // one group's event: the keys worked out here
    // value_keys checks an event's latency and ttft (Code::InvalidValue for
    // a negative, NaN or infinite one) and returns their sketch keys
    static void value_keys(const Event& e, int32_t* latency_key, int32_t* ttft_key);
    void merge(const Measures& o);
    void write(Bytes& out) const;
    void read(BytesIn& in);
};

struct Dims {
    std::string tenant;
    NString provider, model, endpoint, feature;
};

// Grain numbers match the rollup SQL: 1 hourly, 2 subject by day, 3 daily.
enum class Grain : int { Hour = 1, SubjectDay = 2, Day = 3 };

// Row is one rollup row; its pointers live as long as the aggregator.
struct Row {
    Grain grain;
    const Dims* dims;
    const NString* subject;  // the null NString at the other grains
    Micros bucket;           // the UTC hour or day
    const Measures* m;
};

// bucket_of returns the start of the UTC hour or day that holds t
// (an infinite time is its own bucket).
Micros bucket_of(Micros t, Grain g);

// Chunked is a vector that grows by fixed chunks: adding a group never
// moves the groups before it (a vector's regrowth copied every group, and
// the fresh pages cost a fault each), and references stay valid.
template <class T>
class Chunked {
  public:
    T& operator[](size_t i) { return chunks_[i / kChunk][i % kChunk]; }
    const T& operator[](size_t i) const { return chunks_[i / kChunk][i % kChunk]; }
    T& emplace_back() {
        if (n_ == chunks_.size() * kChunk) chunks_.emplace_back(new T[kChunk]);
        return (*this)[n_++];
    }

  private:
    static constexpr size_t kChunk = 1024;
    std::vector<std::unique_ptr<T[]>> chunks_;
    size_t n_ = 0;
};

class Aggregator {
  public:
    Aggregator();
    void add(const Event& e);
    // serialize returns the state as bytes; deserialize adds the state of
    // such bytes to this one (the groups of the aggregator they came from,
    // merged into this one's), throwing Code::Internal when they are not
    // one. A parallel rollup's workers send their partial states to the
    // leader so; it is the only way two aggregators' groups are merged.
    std::string serialize() const;
    void deserialize(const char* p, size_t n);

    int64_t events() const { return events_; }
    // rows returns every row: hours, days (formed here) and subject days.
    std::vector<Row> rows();

  private:
    struct HourKey {
        uint32_t dim;
        int64_t hour;  // the bucket's start
        bool operator==(const HourKey& o) const { return dim == o.dim && hour == o.hour; }
    };
    struct DayKey {
        uint32_t dim, subject;
        int64_t day;  // the bucket's start
        bool operator==(const DayKey& o) const { return dim == o.dim && subject == o.subject && day == o.day; }
    };
    static uint64_t hash_of(const HourKey& k);
    static uint64_t hash_of(const DayKey& k);
    uint32_t dim_id(Text tenant, Text provider, Text model, Text endpoint, Text feature);
    uint32_t subject_id(Text s);
    // tenant_dim is the id of the dimensions of dim's tenant alone (NULL
    // provider, model, endpoint and feature): the key of subject days.
    uint32_t tenant_dim(uint32_t dim);

    // Groups are the rows of one grain: keys and measures in id order, and
    // the index that finds a key's id.
    template <class Key>
    struct Groups {
        FlatIndex index;
        std::vector<Key> keys;
        Chunked<Measures> measures;
        size_t size() const { return keys.size(); }
        // at returns the measures of key k, added empty when k is new
        Measures& at(const Key& k) {
            bool added;
            uint32_t id = index.find_or_add(
                hash_of(k), [&](uint32_t i) { return keys[i] == k; }, static_cast<uint32_t>(keys.size()), added);
            if (added) {
                keys.push_back(k);
                measures.emplace_back();
            }
            return measures[id];
        }
    };

    int64_t events_ = 0;
    uint32_t last_dim_ = UINT32_MAX;  // the dimensions of the last event, tried first
    FlatIndex dim_index_;
    std::vector<Dims> dims_;
    std::vector<uint32_t> tenant_dims_;  // tenant_dim of each dim, UINT32_MAX until asked
    FlatIndex subject_index_;
    std::vector<NString> subjects_;  // 0 is the null subject
    Groups<HourKey> hours_;
    Groups<DayKey> subject_days_;
    Groups<DayKey> days_;  // formed by rows()
    NString null_;
};

// Bytes collects a serialized state; BytesIn reads one back, bounds checked.
class Bytes {
  public:
    template <class T>
    void put(const T& v) {
        s_.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    void put_string(const std::string& v);
    void put_nstring(const NString& v);
    std::string take() { return std::move(s_); }

  private:
    std::string s_;
};

class BytesIn {
  public:
    BytesIn(const char* p, size_t n) : p_(p), end_(p + n) {}
    template <class T>
    T get() {
        T v;
        need(sizeof v);
        std::memcpy(&v, p_, sizeof v);
        p_ += sizeof v;
        return v;
    }
    std::string get_string();
    NString get_nstring();
    // count reads an element count, each element at least min_size bytes
    size_t count(size_t min_size);
    bool done() const { return p_ == end_; }

  private:
    void need(size_t n) const;
    const char* p_;
    const char* end_;
};

// to_decimal writes v / 10^scale without trailing zeros ("-0.0375", "12").
std::string to_decimal(i128 v, int scale);

}  // namespace pgm::rollup
