// sketch.hpp: a mergeable quantile sketch with a guaranteed relative error
// (the DDSketch idea): a positive value v falls in bucket ceil(log_g(v)),
// g = (1 + a) / (1 - a), and every value of a bucket is within a relative
// error a of the bucket's representative. Counts per bucket add up exactly,
// so sketches merge by adding counts, in any order, with no loss.
//
// The state is plain data (sorted keys with counts) that the caller owns:
// PostgreSQL keeps it in a varlena or an aggregate's memory context. These
// functions only compute.
#pragma once
#include "core_only.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgm::sketch {

// The relative accuracy: half of the 1 % pg_meter promises, so that the
// rank convention and the clamp to the observed range keep well inside it.
constexpr double kAccuracy = 0.005;

// key_for returns the bucket of a value > 0.
int32_t key_for(double v);
// value_for returns the representative value of a bucket.
double value_for(int32_t key);

// View is a read-only look at a sketch held elsewhere.
struct View {
    int64_t count = 0;  // every value, zeros included
    int64_t zeros = 0;  // values equal to 0
    double min = 0, max = 0, sum = 0;
    int32_t n = 0;                    // buckets
    const int32_t* keys = nullptr;    // ascending
    const int64_t* counts = nullptr;  // > 0
};

// check_value throws Code::InvalidValue for a value a sketch cannot hold
// (negative, NaN, infinite).
void check_value(double v);

// quantile returns the value at rank ceil(q * count) - 1 (the smallest
// value with at least a share q of the values at or below it, as
// percentile_disc), estimated within kAccuracy and clamped to [min, max].
// Throws Code::InvalidValue for q outside [0, 1]; count must be > 0.
double quantile(const View& s, double q);

// merge_bins merges two ascending bucket lists into ko/co (room for n1 + n2)
// and returns the number of buckets written.
int32_t merge_bins(const int32_t* k1, const int64_t* c1, int32_t n1, const int32_t* k2, const int64_t* c2, int32_t n2,
                   int32_t* ko, int64_t* co);

// add_bins_in_place adds the counts of k2 to c1 when every key of k2 is
// already in k1 (both ascending) and returns true; otherwise it changes
// nothing and returns false. Merging many sketches of one distribution
// takes this path almost always, without allocating.
bool add_bins_in_place(const int32_t* k1, int64_t* c1, int32_t n1, const int32_t* k2, const int64_t* c2, int32_t n2);

// to_text writes a sketch as JSON: {"count":..,"zeros":..,"min":..,
// "max":..,"sum":..,"bins":[[key,count],...]}.
std::string to_text(const View& s);

// Parsed owns a sketch read from text.
struct Parsed {
    View head;
    std::vector<int32_t> keys;
    std::vector<int64_t> counts;
};
// from_text reads to_text's format, checking every invariant; throws
// Code::InvalidJson / Code::InvalidValue.
Parsed from_text(std::string_view text);

}  // namespace pgm::sketch
