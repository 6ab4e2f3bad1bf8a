#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>

#include "error.hpp"
#include "rollup.hpp"

using namespace pgm;
using namespace pgm::rollup;

namespace {

constexpr Micros kHourUs = 3600LL * 1000000LL;

// Owned is an event whose strings the test keeps alive.
struct Owned {
    std::string tenant, subject, provider, model, endpoint, feature;
    bool subject_null, feature_null;
    Event e;
    void bind() {
        e.tenant = Text{tenant.data(), tenant.size()};
        e.subject = subject_null ? Text{} : Text{subject.data(), subject.size()};
        e.provider = Text{provider.data(), provider.size()};
        e.model = Text{model.data(), model.size()};
        e.endpoint = Text{endpoint.data(), endpoint.size()};
        e.feature = feature_null ? Text{} : Text{feature.data(), feature.size()};
    }
};

std::vector<Owned> random_events(int n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const char* tenants[] = {"acme", "globex"};
    const char* models[] = {"gpt-4o", "claude", ""};
    std::vector<Owned> out(static_cast<size_t>(n));
    for (auto& o : out) {
        o.tenant = tenants[rng() % 2];
        o.subject = "user-" + std::to_string(rng() % 7);
        o.subject_null = rng() % 5 == 0;
        o.provider = "openai";
        o.model = models[rng() % 3];
        o.endpoint = "/chat";
        o.feature = "bot";
        o.feature_null = rng() % 3 == 0;
        // three days around the epoch, so that floor division is exercised
        o.e.occurred_at = static_cast<Micros>(rng() % (72 * kHourUs)) - 36 * kHourUs;
        o.e.success = rng() % 4 != 0;
        o.e.cached = rng() % 3 == 0;
        o.e.priced = rng() % 6 != 0;
        o.e.input_tokens = static_cast<int64_t>(rng() % 5000);
        o.e.output_tokens = static_cast<int64_t>(rng() % 900);
        o.e.cache_read_tokens = static_cast<int64_t>(rng() % 100);
        o.e.cost = static_cast<i128>(rng() % 1000000) * static_cast<i128>(1000000000000LL);
        o.e.potential_cost = o.e.cost + 7;
        o.e.has_latency = rng() % 10 != 0;
        o.e.latency = static_cast<double>(rng() % 4000);
        o.e.has_ttft = rng() % 2 == 0;
        o.e.ttft = static_cast<double>(rng() % 300);
    }
    for (auto& o : out)
        o.bind();
    return out;
}

// the reference: plain maps keyed by strings, one per grain
using RefKey = std::tuple<int, std::string, Micros, std::string>;  // grain, dims, bucket, subject

std::string dims_of(const Owned& o) {
    return o.tenant + "|" + o.provider + "|" + o.model + "|" + o.endpoint + "|" + (o.feature_null ? "<null>" : o.feature);
}
std::string dims_of(const Row& r) {
    return r.dims->tenant + "|" + r.dims->provider.value_or("") + "|" + r.dims->model.value_or("") + "|" +
           r.dims->endpoint.value_or("") + "|" + r.dims->feature.value_or("<null>");
}

struct Ref {
    int64_t requests = 0, errors = 0, latencies = 0;
    i128 input = 0, cost = 0;
    Micros first = 0, last = 0;
};

std::map<RefKey, Ref> reference(const std::vector<Owned>& evs) {
    std::map<RefKey, Ref> out;
    for (auto& o : evs) {
        std::string subject = o.subject_null ? "<null>" : o.subject;
        RefKey keys[] = {{1, dims_of(o), bucket_of(o.e.occurred_at, Grain::Hour), ""},
                         {3, dims_of(o), bucket_of(o.e.occurred_at, Grain::Day), ""},
                         // a subject's day is per tenant only: the other dimensions are NULL
                         {2, o.tenant + "||||<null>", bucket_of(o.e.occurred_at, Grain::Day), subject}};
        for (auto& k : keys) {
            Ref& r = out[k];
            if (r.requests == 0) r.first = r.last = o.e.occurred_at;
            r.first = std::min(r.first, o.e.occurred_at);
            r.last = std::max(r.last, o.e.occurred_at);
            ++r.requests;
            r.errors += o.e.success ? 0 : 1;
            r.latencies += o.e.has_latency ? 1 : 0;
            r.input += o.e.input_tokens;
            r.cost += o.e.cost;
        }
    }
    return out;
}

std::map<RefKey, Ref> collect(Aggregator& a) {
    std::map<RefKey, Ref> out;
    for (const Row& r : a.rows()) {
        std::string subject = r.grain == Grain::SubjectDay ? (r.subject->value_or("<null>")) : "";
        RefKey k{static_cast<int>(r.grain), dims_of(r), r.bucket, subject};
        EXPECT_EQ(out.count(k), 0u) << "a group appears twice";
        Ref& x = out[k];
        x.requests = r.m->requests;
        x.errors = r.m->errors;
        x.latencies = r.m->latency.view().count;
        x.input = r.m->input_tokens;
        x.cost = r.m->cost;
        x.first = r.m->first_at;
        x.last = r.m->last_at;
    }
    return out;
}

void expect_same(const std::map<RefKey, Ref>& want, const std::map<RefKey, Ref>& got) {
    ASSERT_EQ(want.size(), got.size());
    for (auto& [k, w] : want) {
        auto it = got.find(k);
        ASSERT_NE(it, got.end()) << std::get<1>(k) << " " << std::get<2>(k);
        const Ref& g = it->second;
        EXPECT_EQ(w.requests, g.requests);
        EXPECT_EQ(w.errors, g.errors);
        EXPECT_EQ(w.latencies, g.latencies);
        EXPECT_TRUE(w.input == g.input);
        EXPECT_TRUE(w.cost == g.cost);
        EXPECT_EQ(w.first, g.first);
        EXPECT_EQ(w.last, g.last);
    }
}

// expect_same_sketch: two views hold the same values' sketch (counts,
// bounds and every bucket)
void expect_same_sketch(const sketch::View& a, const sketch::View& b) {
    EXPECT_EQ(a.count, b.count);
    EXPECT_EQ(a.zeros, b.zeros);
    EXPECT_EQ(a.min, b.min);
    EXPECT_EQ(a.max, b.max);
    ASSERT_EQ(a.n, b.n);
    for (int32_t i = 0; i < a.n; ++i) {
        EXPECT_EQ(a.keys[i], b.keys[i]);
        EXPECT_EQ(a.counts[i], b.counts[i]);
    }
}

}  // namespace

TEST(Rollup, EveryGrainEqualsAPlainGroupByOfTheEvents) {
    auto evs = random_events(20000, 3);
    Aggregator a;
    for (auto& o : evs)
        a.add(o.e);
    EXPECT_EQ(a.events(), 20000);
    expect_same(reference(evs), collect(a));
}

// interleaved partials, one added into the other (which has groups of its own)
TEST(Rollup, MergedPartialsEqualOnePass) {
    auto evs = random_events(9000, 5);
    Aggregator whole, left, right;
    for (size_t i = 0; i < evs.size(); ++i) {
        whole.add(evs[i].e);
        (i % 3 == 0 ? left : right).add(evs[i].e);
    }
    std::string bytes = right.serialize();
    left.deserialize(bytes.data(), bytes.size());
    EXPECT_EQ(left.events(), whole.events());
    expect_same(collect(whole), collect(left));
}

// A parallel rollup's workers send their partial states to the leader as
// bytes: the leader's sum of them must be the one pass, sketches included,
// and bytes that are not a state must be refused, not read past their end.
TEST(Rollup, SerializedPartialsEqualOnePass) {
    auto evs = random_events(12000, 21);
    Aggregator whole, parts[3];
    for (size_t i = 0; i < evs.size(); ++i) {
        whole.add(evs[i].e);
        // contiguous runs, as a parallel scan hands out blocks, and a few strays
        parts[i % 97 == 0 ? 2 : (i * 2 / evs.size())].add(evs[i].e);
    }
    Aggregator leader;
    std::vector<std::string> bytes;
    for (auto& p : parts) {
        bytes.push_back(p.serialize());
        leader.deserialize(bytes.back().data(), bytes.back().size());
    }
    EXPECT_EQ(leader.events(), whole.events());
    expect_same(collect(whole), collect(leader));
    // every group's sketches, bucket by bucket
    std::map<RefKey, const Measures*> want;
    for (const Row& r : whole.rows())
        want[{static_cast<int>(r.grain), dims_of(r), r.bucket, r.subject->value_or("<null>")}] = r.m;
    size_t checked = 0;
    for (const Row& r : leader.rows()) {
        const Measures* w = want.at({static_cast<int>(r.grain), dims_of(r), r.bucket, r.subject->value_or("<null>")});
        expect_same_sketch(w->latency.view(), r.m->latency.view());
        expect_same_sketch(w->ttft.view(), r.m->ttft.view());
        EXPECT_TRUE(w->potential_cost == r.m->potential_cost);
        EXPECT_EQ(w->cache_hits, r.m->cache_hits);
        EXPECT_EQ(w->unpriced, r.m->unpriced);
        ++checked;
    }
    EXPECT_EQ(checked, want.size());
    // an empty state round-trips to nothing
    Aggregator empty, none;
    std::string e = empty.serialize();
    none.deserialize(e.data(), e.size());
    EXPECT_EQ(none.events(), 0);
    EXPECT_TRUE(none.rows().empty());
    // truncated or padded bytes are refused
    for (size_t cut : {size_t{0}, size_t{5}, bytes[0].size() / 2, bytes[0].size() - 1}) {
        Aggregator a;
        EXPECT_THROW(a.deserialize(bytes[0].data(), cut), Error) << cut;
    }
    std::string padded = bytes[0] + "x";
    Aggregator b;
    EXPECT_THROW(b.deserialize(padded.data(), padded.size()), Error);
}

TEST(Rollup, SketchesMatchTheOnesBuiltValueByValue) {
    SketchBins built, half1, half2;
    std::mt19937_64 rng(9);
    for (int i = 0; i < 5000; ++i) {
        double v = static_cast<double>(rng() % 10000) / 7.0;
        built.add(v);
        (i % 2 ? half1 : half2).add(v);
    }
    half1.merge(half2);
    sketch::View a = built.view(), b = half1.view();
    expect_same_sketch(a, b);
    EXPECT_NEAR(sketch::quantile(a, 0.5), sketch::quantile(b, 0.5), 1e-9);
    EXPECT_THROW(built.add(-1), Error);
}

// Buckets change form as a sketch grows (sparse, then one count per key of
// their span, sparse again when an outlier makes the span too wide); every
// form, and merges between forms, must hold the buckets a plain map of
// key_for counts.
TEST(Rollup, SketchBucketsAreExactInEveryForm) {
    std::mt19937_64 rng(11);
    auto expect_buckets = [](const SketchBins& s, const std::map<int32_t, int64_t>& want, const char* what) {
        SCOPED_TRACE(what);
        sketch::View v = s.view();
        ASSERT_EQ(v.n, static_cast<int32_t>(want.size()));
        int32_t i = 0;
        for (const auto& [k, c] : want) {
            EXPECT_EQ(v.keys[i], k);
            EXPECT_EQ(v.counts[i], c);
            ++i;
        }
    };
    SketchBins few, many, wide, merged_into_few, merged_into_many;
    std::map<int32_t, int64_t> want_few, want_many, want_wide;
    for (int i = 0; i < 10; ++i) {  // fewer buckets than the dense form needs
        double v = 100 + static_cast<double>(rng() % 50);
        few.add(v);
        ++want_few[sketch::key_for(v)];
    }
    expect_buckets(few, want_few, "sparse");
    for (int i = 0; i < 20000; ++i) {  // ~170 buckets: dense, widened both ways
        double v = i < 10000 ? 1000 + static_cast<double>(rng() % 5000) : 200 + static_cast<double>(rng() % 5800);
        many.add(v);
        ++want_many[sketch::key_for(v)];
    }
    expect_buckets(many, want_many, "dense");
    wide = many;
    std::map<int32_t, int64_t> want_wider = want_many;
    for (double v : {1e-6, 3e12, 0.5, 7e15}) {  // outliers: too wide a span, sparse again
        wide.add(v);
        ++want_wider[sketch::key_for(v)];
    }
    wide.add(0);  // a zero counts apart
    expect_buckets(wide, want_wider, "dense, then sparse");
    EXPECT_EQ(wide.view().zeros, 1);
    EXPECT_EQ(wide.view().count, 20005);
    merged_into_few = few;
    merged_into_few.merge(many);  // dense into sparse
    std::map<int32_t, int64_t> want_both = want_many;
    for (const auto& [k, c] : want_few) want_both[k] += c;
    expect_buckets(merged_into_few, want_both, "dense into sparse");
    merged_into_many = many;
    merged_into_many.merge(few);  // sparse into dense
    expect_buckets(merged_into_many, want_both, "sparse into dense");
    merged_into_many.merge(wide);  // sparse (wide) into dense: sparse again
    for (const auto& [k, c] : want_wider) want_both[k] += c;
    expect_buckets(merged_into_many, want_both, "wide into dense");
    SketchBins twice = many;
    twice.merge(many);  // dense into dense
    std::map<int32_t, int64_t> want_twice = want_many;
    for (auto& [k, c] : want_twice) c *= 2;
    expect_buckets(twice, want_twice, "dense into dense");
    EXPECT_EQ(sketch::quantile(twice.view(), 0.95), sketch::quantile(many.view(), 0.95));
}

TEST(Rollup, BucketsAreUtcHoursAndDaysFlooredBeforeTheEpoch) {
    EXPECT_EQ(bucket_of(0, Grain::Hour), 0);
    EXPECT_EQ(bucket_of(-1, Grain::Hour), -kHourUs);
    EXPECT_EQ(bucket_of(-1, Grain::Day), -24 * kHourUs);
    EXPECT_EQ(bucket_of(25 * kHourUs + 5, Grain::Day), 24 * kHourUs);
    EXPECT_EQ(bucket_of(kMaxTime, Grain::Day), kMaxTime);
    EXPECT_EQ(bucket_of(kMinTime, Grain::Hour), kMinTime);
}

TEST(Rollup, NullAndEmptyDimensionsAreDifferentGroups) {
    std::string t = "acme", empty;
    Event a, b;
    a.tenant = b.tenant = Text{t.data(), t.size()};
    a.feature = Text{empty.data(), 0};  // '' is not NULL
    Aggregator agg;
    agg.add(a);
    agg.add(b);
    int hours = 0;
    for (const Row& r : agg.rows())
        hours += r.grain == Grain::Hour;
    EXPECT_EQ(hours, 2);
}

TEST(Rollup, MoneyIsExactAndOverflowIsRefused) {
    std::string t = "acme";
    Event e;
    e.tenant = Text{t.data(), t.size()};
    e.cost = 1;  // 1e-24 USD
    Aggregator agg;
    for (int i = 0; i < 3; ++i)
        agg.add(e);
    for (const Row& r : agg.rows())
        EXPECT_EQ(to_decimal(r.m->cost, kMoneyScale), "0.000000000000000000000003");
    Event big = e;
    big.cost = (~static_cast<unsigned __int128>(0)) >> 2;  // a quarter of the range
    Aggregator over;
    over.add(big);
    over.add(big);
    EXPECT_THROW(
        {
            over.add(big);
            over.add(big);
        },
        Error);
}

TEST(Rollup, DecimalsAreWrittenWithoutTrailingZeros) {
    EXPECT_EQ(to_decimal(0, 24), "0");
    EXPECT_EQ(to_decimal(12, 0), "12");
    EXPECT_EQ(to_decimal(-375, 4), "-0.0375");
    EXPECT_EQ(to_decimal(1500, 3), "1.5");
    i128 min = -static_cast<i128>((~static_cast<unsigned __int128>(0)) >> 1) - 1;
    EXPECT_EQ(to_decimal(min, 0), "-170141183460469231731687303715884105728");
}

TEST(Rollup, AnEventWithoutATenantIsRefused) {
    Aggregator agg;
    Event e;
    EXPECT_THROW(agg.add(e), Error);
}

TEST(Rollup, OneGroupsMeasuresEqualTheAggregatorsGroup) {
    // the events of one tenant, model and day, added to one Measures (what
    // meter._measures does for a group of a read) and through the aggregator
    std::vector<Owned> evs = random_events(3000, 11);
    Aggregator agg;
    Measures one;
    int64_t n = 0, errors = 0;
    Micros day = bucket_of(0, Grain::Day);
    for (auto& o : evs) {
        if (o.tenant != "acme" || o.model != "claude" || o.feature_null || bucket_of(o.e.occurred_at, Grain::Day) != day) continue;
        agg.add(o.e);
        one.add(o.e);
        ++n;
        errors += o.e.success ? 0 : 1;
    }
    ASSERT_GT(n, 50);
    const Measures* daily = nullptr;
    for (const Row& r : agg.rows())
        if (r.grain == Grain::Day) daily = r.m;
    ASSERT_NE(daily, nullptr);
    EXPECT_EQ(one.requests, n);
    EXPECT_EQ(one.errors, errors);
    EXPECT_EQ(one.requests, daily->requests);
    EXPECT_EQ(one.errors, daily->errors);
    EXPECT_EQ(one.cache_hits, daily->cache_hits);
    EXPECT_EQ(one.unpriced, daily->unpriced);
    EXPECT_TRUE(one.input_tokens == daily->input_tokens);
    EXPECT_TRUE(one.output_tokens == daily->output_tokens);
    EXPECT_TRUE(one.cache_read_tokens == daily->cache_read_tokens);
    EXPECT_TRUE(one.cost == daily->cost);
    EXPECT_TRUE(one.potential_cost == daily->potential_cost);
    {
        SCOPED_TRACE("latency");
        expect_same_sketch(one.latency.view(), daily->latency.view());
    }
    {
        SCOPED_TRACE("ttft");
        expect_same_sketch(one.ttft.view(), daily->ttft.view());
    }
    Event bad = evs[0].e;
    bad.has_latency = true;
    bad.latency = -1;
    EXPECT_THROW(one.add(bad), Error);
    EXPECT_EQ(one.requests, n);  // a refused event adds nothing
}
