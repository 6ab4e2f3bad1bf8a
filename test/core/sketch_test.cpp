#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "error.hpp"
#include "sketch.hpp"

using namespace pgm;
using namespace pgm::sketch;

// A test-side holder: the same plain data the glue keeps.
struct Holder {
    std::map<int32_t, int64_t> bins;
    View head;
    std::vector<int32_t> keys;
    std::vector<int64_t> counts;
    void add(double v) {
        check_value(v);
        if (head.count == 0) head.min = head.max = v;
        head.min = std::min(head.min, v);
        head.max = std::max(head.max, v);
        head.sum += v;
        ++head.count;
        if (v == 0)
            ++head.zeros;
        else
            ++bins[key_for(v)];
    }
    const View& view() {
        keys.clear();
        counts.clear();
        for (auto& [k, c] : bins) {
            keys.push_back(k);
            counts.push_back(c);
        }
        head.n = static_cast<int32_t>(keys.size());
        head.keys = keys.data();
        head.counts = counts.data();
        return head;
    }
};

TEST(Sketch, EveryValueIsWithinTheRelativeAccuracyOfItsBucket) {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> exp10(-3, 9);
    for (int i = 0; i < 200000; ++i) {
        double v = std::pow(10, exp10(rng));
        double r = value_for(key_for(v));
        EXPECT_LE(std::abs(r - v) / v, kAccuracy * (1 + 1e-9)) << v;
    }
}

TEST(Sketch, QuantilesStayWithinOnePercentOfTheExactValues) {
    std::mt19937_64 rng(11);
    std::lognormal_distribution<double> latency(6.5, 1.1);  // ~ms, a long tail
    Holder h;
    std::vector<double> all;
    for (int i = 0; i < 100000; ++i) {
        double v = std::round(latency(rng));
        if (i % 97 == 0) v = 0;  // a few zero latencies (cache hits)
        h.add(v);
        all.push_back(v);
    }
    std::sort(all.begin(), all.end());
    for (double q : {0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0}) {
        int64_t rank = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(q * all.size())) - 1);
        double exact = all[static_cast<size_t>(rank)];
        double est = quantile(h.view(), q);
        if (exact == 0)
            EXPECT_EQ(est, 0) << q;
        else
            EXPECT_LE(std::abs(est - exact) / exact, 0.01) << "q=" << q << " exact " << exact << " est " << est;
    }
}

TEST(Sketch, MergingEqualsSketchingTheUnion) {
    std::mt19937_64 rng(3);
    std::exponential_distribution<double> d(0.002);
    Holder a, b, all;
    for (int i = 0; i < 50000; ++i) {
        double v = d(rng);
        (i % 3 ? a : b).add(v);
        all.add(v);
    }
    View va = a.view(), vb = b.view(), vall = all.view();
    std::vector<int32_t> ko(static_cast<size_t>(va.n + vb.n));
    std::vector<int64_t> co(ko.size());
    int32_t n = merge_bins(va.keys, va.counts, va.n, vb.keys, vb.counts, vb.n, ko.data(), co.data());
    ASSERT_EQ(n, vall.n);
    for (int32_t i = 0; i < n; ++i) {
        EXPECT_EQ(ko[static_cast<size_t>(i)], vall.keys[i]);
        EXPECT_EQ(co[static_cast<size_t>(i)], vall.counts[i]);
    }
}

TEST(Sketch, TextRoundTripsAndRefusesBrokenSketches) {
    Holder h;
    for (double v : {0.0, 1.0, 2.5, 2.5, 1000.0, 123456.0})
        h.add(v);
    std::string t = to_text(h.view());
    Parsed p = from_text(t);
    EXPECT_EQ(to_text(p.head), t);
    EXPECT_EQ(quantile(p.head, 0.5), quantile(h.view(), 0.5));
    for (const char* bad : {"[]", "{}", R"({"count":1,"zeros":0,"min":1,"max":1,"sum":1,"bins":[]})",
                            R"({"count":2,"zeros":0,"min":1,"max":1,"sum":1,"bins":[[5,1],[5,1]]})",
                            R"({"count":1,"zeros":0,"min":1,"max":1,"sum":1,"bins":[[5,0]]})",
                            R"({"count":1,"zeros":0,"min":1,"max":1,"sum":1,"bins":[[5]]})",
                            R"({"count":-1,"zeros":0,"min":1,"max":1,"sum":1,"bins":[]})",
                            R"({"count":1,"zeros":0,"min":2,"max":1,"sum":1,"bins":[[1,1]]})", "not json"}) {
        EXPECT_THROW(from_text(bad), Error) << bad;
    }
}

TEST(Sketch, RefusesValuesAndQuantilesItCannotHold) {
    EXPECT_THROW(check_value(-1), Error);
    EXPECT_THROW(check_value(std::nan("")), Error);
    EXPECT_THROW(check_value(INFINITY), Error);
    Holder h;
    h.add(5);
    EXPECT_THROW(quantile(h.view(), 1.5), Error);
    EXPECT_THROW(quantile(h.view(), -0.1), Error);
    EXPECT_EQ(quantile(h.view(), 0.5), 5);  // clamped to the observed range
}

TEST(Sketch, BinsAddInPlaceOnlyWhenEveryKeyIsPresent) {
    int32_t k1[] = {3, 5, 9};
    int64_t c1[] = {1, 2, 3};
    int32_t sub[] = {5, 9};
    int64_t csub[] = {10, 20};
    EXPECT_TRUE(sketch::add_bins_in_place(k1, c1, 3, sub, csub, 2));
    EXPECT_EQ(c1[0], 1);
    EXPECT_EQ(c1[1], 12);
    EXPECT_EQ(c1[2], 23);
    // a key the state lacks: nothing changes, the caller merges with room
    int32_t other[] = {5, 7};
    int64_t cother[] = {100, 100};
    EXPECT_FALSE(sketch::add_bins_in_place(k1, c1, 3, other, cother, 2));
    EXPECT_EQ(c1[1], 12);
    int32_t past[] = {10};
    int64_t cpast[] = {1};
    EXPECT_FALSE(sketch::add_bins_in_place(k1, c1, 3, past, cpast, 1));
    EXPECT_TRUE(sketch::add_bins_in_place(k1, c1, 3, past, cpast, 0));
    EXPECT_FALSE(sketch::add_bins_in_place(k1, c1, 0, sub, csub, 2));
}
