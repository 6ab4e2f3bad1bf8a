#include "sketch.hpp"

#include <cmath>
#include <cstdio>
#include <limits>

#include "decimal.hpp"
#include "error.hpp"
#include "json.hpp"

namespace pgm::sketch {

namespace {
const double kGamma = (1 + kAccuracy) / (1 - kAccuracy);
const double kLogGamma = std::log(kGamma);

std::string number(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

int64_t whole(const json::Value& v, const char* what) {
    if (!v.is_number()) throw Error(Code::InvalidValue, std::string("sketch ") + what + " is not a number");
    Decimal d = Decimal::parse(v.text);
    if (!d.is_integer() || d.sign() < 0 || d.mant > Int128(std::numeric_limits<int64_t>::max()))
        throw Error(Code::InvalidValue, std::string("sketch ") + what + " is not a count",
                    "Counts are whole numbers from 0 to 2^63 - 1.");
    return static_cast<int64_t>(d.mant);
}

double real(const json::Value& v, const char* what) {
    if (!v.is_number()) throw Error(Code::InvalidValue, std::string("sketch ") + what + " is not a number");
    double d = std::strtod(v.text.c_str(), nullptr);
    if (!std::isfinite(d)) throw Error(Code::InvalidValue, std::string("sketch ") + what + " is out of range");
    return d;
}
}  // namespace

int32_t key_for(double v) {
    double k = std::ceil(std::log(v) / kLogGamma);
    if (k > 1e9) return 1000000000;
    if (k < -1e9) return -1000000000;
    return static_cast<int32_t>(k);
}

double value_for(int32_t key) { return 2 * std::pow(kGamma, key) / (kGamma + 1); }

void check_value(double v) {
    if (std::isnan(v) || std::isinf(v))
        throw Error(Code::InvalidValue, "a sketch cannot hold " + number(v), "Latencies are finite numbers.");
    if (v < 0)
        throw Error(Code::InvalidValue, "a sketch cannot hold the negative value " + number(v),
                    "Latencies are zero or more.");
}

double quantile(const View& s, double q) {
    if (!(q >= 0 && q <= 1))
        throw Error(Code::InvalidValue, "quantile " + number(q) + " is outside [0, 1]", "",
                    "Ask for a share between 0 and 1, e.g. 0.95 for p95.");
    if (s.count <= 0) throw Error(Code::InvalidValue, "the sketch is empty");
    int64_t rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(s.count))) - 1;
    if (rank < 0) rank = 0;
    if (rank < s.zeros) return 0;
    int64_t seen = s.zeros;
    for (int32_t i = 0; i < s.n; ++i) {
        seen += s.counts[i];
        if (seen > rank) {
            double v = value_for(s.keys[i]);
            return v < s.min ? s.min : (v > s.max ? s.max : v);
        }
    }
    return s.max;
}

int32_t merge_bins(const int32_t* k1, const int64_t* c1, int32_t n1, const int32_t* k2, const int64_t* c2, int32_t n2,
                   int32_t* ko, int64_t* co) {
    int32_t i = 0, j = 0, o = 0;
    while (i < n1 || j < n2) {
        if (j >= n2 || (i < n1 && k1[i] < k2[j])) {
            ko[o] = k1[i];
            co[o++] = c1[i++];
        } else if (i >= n1 || k2[j] < k1[i]) {
            ko[o] = k2[j];
            co[o++] = c2[j++];
        } else {
            ko[o] = k1[i];
            co[o++] = c1[i++] + c2[j++];
        }
    }
    return o;
}

bool add_bins_in_place(const int32_t* k1, int64_t* c1, int32_t n1, const int32_t* k2, const int64_t* c2, int32_t n2) {
    int32_t i = 0;
    for (int32_t j = 0; j < n2; ++j) {
        while (i < n1 && k1[i] < k2[j])
            ++i;
        if (i == n1 || k1[i] != k2[j]) return false;
    }
    i = 0;
    for (int32_t j = 0; j < n2; ++j) {
        while (k1[i] < k2[j])
            ++i;
        c1[i] += c2[j];
    }
    return true;
}

std::string to_text(const View& s) {
    std::string out = "{\"count\":" + std::to_string(s.count) + ",\"zeros\":" + std::to_string(s.zeros) +
                      ",\"min\":" + number(s.min) + ",\"max\":" + number(s.max) + ",\"sum\":" + number(s.sum) +
                      ",\"bins\":[";
    for (int32_t i = 0; i < s.n; ++i) {
        if (i) out += ',';
        out += '[' + std::to_string(s.keys[i]) + ',' + std::to_string(s.counts[i]) + ']';
    }
    out += "]}";
    return out;
}

Parsed from_text(std::string_view text) {
    json::Value v = json::parse(text);
    if (!v.is_object()) throw Error(Code::InvalidValue, "a sketch is a JSON object");
    for (const char* k : {"count", "zeros", "min", "max", "sum", "bins"})
        if (!v.get(k)) throw Error(Code::InvalidValue, std::string("sketch has no \"") + k + "\"");
    Parsed p;
    p.head.count = whole(*v.get("count"), "count");
    p.head.zeros = whole(*v.get("zeros"), "zeros");
    p.head.min = real(*v.get("min"), "min");
    p.head.max = real(*v.get("max"), "max");
    p.head.sum = real(*v.get("sum"), "sum");
    const json::Value& bins = *v.get("bins");
    if (!bins.is_array()) throw Error(Code::InvalidValue, "sketch bins are not an array");
    int64_t total = p.head.zeros;
    for (auto& b : bins.items) {
        if (!b.is_array() || b.items.size() != 2) throw Error(Code::InvalidValue, "a sketch bin is [key, count]");
        int64_t key = 0;
        const json::Value& kv = b.items[0];
        if (!kv.is_number()) throw Error(Code::InvalidValue, "a sketch bin key is not a number");
        Decimal kd = Decimal::parse(kv.text);
        if (!kd.is_integer() || kd.mant > Int128(1000000000) || kd.mant < Int128(-1000000000))
            throw Error(Code::InvalidValue, "a sketch bin key is out of range");
        key = static_cast<int64_t>(kd.mant);
        int64_t c = whole(b.items[1], "bin count");
        if (c <= 0) throw Error(Code::InvalidValue, "a sketch bin count must be positive");
        if (!p.keys.empty() && key <= p.keys.back())
            throw Error(Code::InvalidValue, "sketch bins must be in ascending key order without repeats");
        p.keys.push_back(static_cast<int32_t>(key));
        p.counts.push_back(c);
        if (total > std::numeric_limits<int64_t>::max() - c) throw Error(Code::Overflow, "sketch count overflows");
        total += c;
    }
    if (total != p.head.count)
        throw Error(Code::InvalidValue, "sketch count does not match its bins",
                    "count is " + std::to_string(p.head.count) + " but zeros and bins add up to " +
                        std::to_string(total) + ".");
    if (p.head.count > 0 && (p.head.min < 0 || p.head.min > p.head.max))
        throw Error(Code::InvalidValue, "sketch min and max are inconsistent");
    p.head.n = static_cast<int32_t>(p.keys.size());
    p.head.keys = p.keys.data();
    p.head.counts = p.counts.data();
    return p;
}

}  // namespace pgm::sketch
