// Exactness: price one million random calls and compare every result, and
// the total, with an exact rational reference (Boost cpp_rational) that is
// computed independently of the cost engine.
#include <gtest/gtest.h>

#include <boost/multiprecision/cpp_int.hpp>
#include <random>

#include "catalog.hpp"
#include "test_util.hpp"

using namespace pgm;
using boost::multiprecision::cpp_int;
using boost::multiprecision::cpp_rational;

static cpp_int round_pico(const cpp_rational& usd) {
    cpp_rational p = usd * cpp_int(1000000000000LL);
    cpp_int n = numerator(p), d = denominator(p);
    cpp_int q = n / d, r = n % d;
    if (r * 2 > d || (r * 2 == d && q % 2 != 0)) q += 1;  // non-negative amounts
    return q;
}

static cpp_rational dec(const char* s) {
    Decimal d = Decimal::parse(s);
    cpp_rational r(cpp_int(d.mant.str()));
    for (int i = 0; i < d.scale; ++i)
        r /= 10;
    return r;
}

TEST(Exactness, OneMillionRandomCallsMatchAnExactRationalReference) {
    auto cat = test::fixture_catalog();
    std::mt19937_64 rng(42);
    const Micros at = test::at_utc("2026-01-15");
    // reference prices per token kind (per million), from the fixture
    const cpp_rational mini_in = dec("0.15"), mini_cache = dec("0.075"), mini_out = dec("0.6");
    const cpp_rational son_in = dec("3"), son_in_t = dec("6"), son_out = dec("15"), son_out_t = dec("22.5"),
                       son_cr = dec("0.3"), son_cw = dec("3.75");
    const cpp_rational whisper = dec("0.111");
    cpp_int sum_pico = 0, ref_sum_pico = 0;
    cpp_rational exact_sum = 0;
    bool all_exact = true;
    int mismatches = 0;
    std::string usage;
    for (int i = 0; i < 1000000; ++i) {
        int kind = static_cast<int>(rng() % 3);
        cpp_rational ref;
        const char* provider;
        const char* model;
        if (kind == 0) {
            uint64_t in = rng() % 300000, cached = in ? rng() % (in + 1) : 0, out = rng() % 50000;
            usage = "{\"prompt_tokens\":" + std::to_string(in) + ",\"completion_tokens\":" + std::to_string(out) +
                    ",\"prompt_tokens_details\":{\"cached_tokens\":" + std::to_string(cached) + "}}";
            ref = (cpp_rational(in - cached) * mini_in + cpp_rational(cached) * mini_cache +
                   cpp_rational(out) * mini_out) /
                  1000000;
            provider = "openai";
            model = "gpt-4o-mini";
        } else if (kind == 1) {
            uint64_t in = rng() % 300000, cr = rng() % 100000, cw = rng() % 20000, out = rng() % 40000;
            usage = "{\"input_tokens\":" + std::to_string(in) + ",\"cache_read_input_tokens\":" + std::to_string(cr) +
                    ",\"cache_creation_input_tokens\":" + std::to_string(cw) +
                    ",\"output_tokens\":" + std::to_string(out) + "}";
            bool tier = in + cr + cw > 200000;
            ref = (cpp_rational(in) * (tier ? son_in_t : son_in) + cpp_rational(cr) * son_cr +
                   cpp_rational(cw) * son_cw + cpp_rational(out) * (tier ? son_out_t : son_out)) /
                  1000000;
            provider = "anthropic";
            model = "claude-sonnet-4-6";
            if (tier) ref += 0;  // cache prices in the fixture are flat
        } else {
            uint64_t centis = 1000 + rng() % 600000;  // 10.00 s .. 6010 s, two decimals
            usage = "{\"audio_seconds\":" + std::to_string(centis / 100) + "." + (centis % 100 < 10 ? "0" : "") +
                    std::to_string(centis % 100) + "}";
            ref = cpp_rational(centis) / 100 * whisper / 3600;
            provider = "groq";
            model = "whisper-large-v3";
        }
        Priced p = test::price_of(*cat, provider, model, json::parse(usage), at);
        cpp_int got(p.total.pico.str());
        cpp_int want = round_pico(ref);
        if (got != want && ++mismatches <= 5)
            ADD_FAILURE() << provider << "/" << model << " " << usage << ": got " << got << " want " << want;
        cpp_rational scaled = ref * cpp_int(1000000000000LL);
        bool exact_ref = denominator(scaled) == 1;
        EXPECT_EQ(p.exact, exact_ref);
        all_exact = all_exact && (kind == 2 || p.exact);
        sum_pico += got;
        ref_sum_pico += want;
        exact_sum += ref;
    }
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(sum_pico, ref_sum_pico);
    EXPECT_TRUE(all_exact);  // every token price with <= 6 decimals is exact
    // the sum of per-call results is within half a picodollar per inexact call
    cpp_rational diff = cpp_rational(sum_pico) / cpp_int(1000000000000LL) - exact_sum;
    if (diff < 0) diff = -diff;
    EXPECT_LE(diff, cpp_rational(1000000, 2) / cpp_int(1000000000000LL));
}
