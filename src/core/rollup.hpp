// rollup.hpp: raw events into rollup rows, in one pass and exactly.
//
// meter.rollup(), meter.backfill() and meter.verify() all aggregate events
// the same way; this is that way. Per event, the aggregator interns the
// dimensions (tenant, provider, model, endpoint, feature) and the subject,
// then adds the event to its hour group and to its subject-and-day group.
// Day groups are not kept per event: a day is the sum of its hours, formed
// once when the rows are read out. Counts and tokens add as integers and
// money as integers at 24 decimals, so sums are exact; latency and time to
// first token build the same sketches meter.sketch() builds.
#pragma once
#include "core_only.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "catalog.hpp"
#include "sketch.hpp"

namespace pgm::rollup {

using i128 = __int128;

// Money in a rollup is an integer count of 1e-24 USD: every cost pg_meter
// prices has at most 12 decimals, and a cost written by hand may have up to
// 24 before the aggregator refuses it.
constexpr int kMoneyScale = 24;

// Text is a nullable string the caller owns for the duration of add().
struct Text {
    const char* p = nullptr;
    size_t n = 0;
    bool is_null() const { return p == nullptr; }
};

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

// SketchBins is a sketch being built: the same numbers a meter.sketch holds.
class SketchBins {
  public:
    void add(double v);  // throws Code::InvalidValue for a negative, NaN or infinite value
    void merge(const SketchBins& o);
    bool empty() const { return count_ == 0; }
    sketch::View view() const;

  private:
    int64_t count_ = 0, zeros_ = 0;
    double min_ = 0, max_ = 0, sum_ = 0;
    std::vector<int32_t> keys_;  // ascending
    std::vector<int64_t> counts_;
};

// Measures are the figures of one rollup row.
struct Measures {
    int64_t requests = 0, errors = 0, cache_hits = 0, unpriced = 0;
    i128 input_tokens = 0, output_tokens = 0, cache_read_tokens = 0, cache_write_tokens = 0;
    i128 cost = 0, potential_cost = 0;  // at kMoneyScale
    SketchBins latency, ttft;
    Micros first_at = 0, last_at = 0;
    void add(const Event& e);
    void merge(const Measures& o);
};

// NString is an owned nullable string.
struct NString {
    bool null = true;
    std::string s;
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

// FlatIndex maps keys to dense ids with open addressing: one probe into one
// array, where a node-based map costs a cache miss per step.
template <class Key, class Hash>
class FlatIndex {
  public:
    // find_or_add returns the id of key, giving it next_id when it is new
    // (and setting added).
    uint32_t find_or_add(const Key& key, uint32_t next_id, bool& added) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        size_t mask = slots_.size() - 1;
        for (size_t i = Hash()(key) & mask;; i = (i + 1) & mask) {
            Slot& s = slots_[i];
            if (s.id == kEmpty) {
                s.key = key;
                s.id = next_id;
                ++size_;
                added = true;
                return next_id;
            }
            if (s.key == key) {
                added = false;
                return s.id;
            }
        }
    }
    void clear() {
        slots_.clear();
        size_ = 0;
    }

  private:
    static constexpr uint32_t kEmpty = UINT32_MAX;
    struct Slot {
        Key key;
        uint32_t id = kEmpty;
    };
    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
        size_t mask = slots_.size() - 1;
        for (const Slot& s : old) {
            if (s.id == kEmpty) continue;
            size_t i = Hash()(s.key) & mask;
            while (slots_[i].id != kEmpty)
                i = (i + 1) & mask;
            slots_[i] = s;
        }
    }
    std::vector<Slot> slots_;
    size_t size_ = 0;
};

class Aggregator {
  public:
    Aggregator();
    void add(const Event& e);
    // merge adds another aggregator's groups (for partial aggregates).
    void merge(const Aggregator& o);
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
    struct KeyHash {
        size_t operator()(const HourKey& k) const;
        size_t operator()(const DayKey& k) const;
    };
    uint32_t dim_id(const Event& e);
    uint32_t subject_id(Text s);
    uint32_t intern_dims(const Dims& d);
    uint32_t intern_subject(const NString& s);

    int64_t events_ = 0;
    std::string enc_, last_enc_;  // the encoded dimensions of the current and the last event
    uint32_t last_dim_ = 0;
    std::unordered_map<std::string, uint32_t> dim_ids_;
    std::vector<Dims> dims_;
    std::unordered_map<std::string, uint32_t> subject_ids_;  // 0 is the null subject
    std::vector<NString> subjects_;
    FlatIndex<HourKey, KeyHash> hour_ids_;
    std::vector<std::pair<HourKey, Measures>> hours_;
    FlatIndex<DayKey, KeyHash> subject_day_ids_;
    std::vector<std::pair<DayKey, Measures>> subject_days_;
    std::vector<std::pair<DayKey, Measures>> days_;  // formed by rows()
    NString null_;
};

// to_decimal writes v / 10^scale without trailing zeros ("-0.0375", "12").
std::string to_decimal(i128 v, int scale);

}  // namespace pgm::rollup
