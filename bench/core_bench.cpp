// core_bench: the core's own cost per priced call, without PostgreSQL.
// Usage: build/core_bench [catalog.json] — prints ns per call for three
// provider shapes (parse excluded and included), then ns per limit
// decision (a GCRA rate alone; a rate and two budgets decided together).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "catalog.hpp"
#include "limits.hpp"

using namespace pgm;

int main(int argc, char** argv) {
    std::string path = argc > 1 ? argv[1] : "test/core/data/catalog.json";
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    json::Value providers = json::parse(ss.str());
    auto t0 = std::chrono::steady_clock::now();
    auto cat = Catalog::compile(Catalog::genai_document(providers));
    auto t1 = std::chrono::steady_clock::now();
    std::printf("compile: %.1f ms (%zu models)\n", std::chrono::duration<double, std::milli>(t1 - t0).count(),
                cat->model_count());
    struct Case {
        const char* provider;
        const char* model;
        const char* usage;
    };
    std::vector<Case> cases = {
        {"openai", "gpt-4o-mini",
         R"({"prompt_tokens": 2412, "completion_tokens": 318, "prompt_tokens_details": {"cached_tokens": 1280}})"},
        {"anthropic", "claude-sonnet-4-5",
         R"({"input_tokens": 44, "cache_read_input_tokens": 4735, "output_tokens": 412})"},
        {"google", "gemini-2.5-flash",
         R"({"promptTokenCount": 1830, "candidatesTokenCount": 402, "thoughtsTokenCount": 611})"},
        {"openai", "gpt-4o-mini", R"({"input_tokens": 2412, "cache_read_tokens": 1280, "output_tokens": 318})"},
    };
    const int n = argc > 2 ? std::atoi(argv[2]) : 300000;
    for (auto& c : cases) {
        json::Value u = json::parse(c.usage);
        PriceRequest r;
        r.provider = c.provider;
        r.model = c.model;
        r.usage = &u;
        r.at = 1767225600000000LL;
        Money sum;
        auto a = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i)
            sum += cat->price(r).total;
        auto b = std::chrono::steady_clock::now();
        std::printf("%-10s %-20s %7.0f ns/call  (sum %s)\n", c.provider, c.model,
                    std::chrono::duration<double, std::nano>(b - a).count() / n, sum.to_string().c_str());
    }
    // limit decisions: one key's rate; a request held against a rate and
    // two budgets (asked without taking, decided, then taken)
    {
        limits::GcraState st;
        limits::Rate rate{600, 60000000};
        const int m = 10000000;
        int64_t passed = 0;
        auto a = std::chrono::steady_clock::now();
        for (int i = 0; i < m; ++i)
            passed += limits::gcra(st, rate, 1767225600000000LL + i * 50000LL, 1, true).allowed;
        auto b = std::chrono::steady_clock::now();
        std::printf("gcra, one rate:              %7.1f ns/decision (%lld passed)\n",
                    std::chrono::duration<double, std::nano>(b - a).count() / m, static_cast<long long>(passed));
        std::vector<limits::Answer> answers(3);
        st = limits::GcraState{};
        passed = 0;
        a = std::chrono::steady_clock::now();
        for (int i = 0; i < m; ++i) {
            Micros now = 1767225600000000LL + i * 50000LL;
            answers[0] = limits::gcra(st, rate, now, 1, false);
            answers[1] = limits::budget(100000, i % 90000, 500, 2000, now, now + 3600000000LL);
            answers[2] = limits::budget(static_cast<limits::i128>(5) * 1000000000000, i, 0, 4000000, now,
                                        now + 86400000000LL);
            limits::Verdict v = limits::decide(answers);
            if (v.allowed) passed += limits::gcra(st, rate, now, 1, true).allowed;
        }
        b = std::chrono::steady_clock::now();
        std::printf("rate + two budgets, decided: %7.1f ns/decision (%lld passed)\n",
                    std::chrono::duration<double, std::nano>(b - a).count() / m, static_cast<long long>(passed));
    }
    return 0;
}
