// core_bench: the core's own cost per priced call, without PostgreSQL.
// Usage: build/core_bench catalog.json [calls] — the genai-prices catalog
// (node scripts/catalog/genai-catalog.mjs > catalog.json, bench/README.md):
// the calls below name its models. Prints ns per call for three
// provider shapes (parse excluded and included), then ns per limit
// decision (a GCRA rate alone; a rate and two budgets decided together),
// then events per second through the rollup aggregator for one day of
// bench/summary.sh's shape (333,333 events, 2,000 subjects, 5 models on 3
// endpoints, latencies of 200-6,000 ms): what one backfill batch costs
// besides reading the log.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "catalog.hpp"
#include "limits.hpp"
#include "rollup.hpp"

using namespace pgm;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s catalog.json [calls]\n(node scripts/catalog/genai-catalog.mjs > catalog.json)\n",
                     argv[0]);
        return 2;
    }
    std::ifstream in(argv[1]);
    if (!in) {
        std::fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[1]);
        return 2;
    }
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
    {
        const int n = 333333;
        std::vector<std::string> subjects, models = {"claude-sonnet-4", "gemini-2.5-flash", "gemini-2.5-pro", "gpt-4",
                                                     "gpt-4o-mini"};
        std::vector<std::string> endpoints = {"chat", "summarize", "embed"};
        for (int i = 1; i <= 2000; ++i)
            subjects.push_back("user-" + std::to_string(i));
        std::vector<rollup::Event> events(n);
        uint64_t x = 88172645463325252ULL;  // xorshift: the same events every run
        auto next = [&x] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            return x;
        };
        auto text = [](const std::string& s) { return Text{s.data(), s.size()}; };
        for (int i = 0; i < n; ++i) {
            rollup::Event& e = events[static_cast<size_t>(i)];
            e.tenant = Text{"app", 3};
            e.subject = text(subjects[next() % subjects.size()]);
            e.provider = Text{"p", 1};
            e.model = text(models[next() % models.size()]);
            e.endpoint = text(endpoints[next() % endpoints.size()]);
            e.occurred_at = 1767225600000000LL + static_cast<int64_t>(i) * 259200LL;  // one day
            e.success = next() % 50 != 0;
            e.input_tokens = static_cast<int64_t>(50 + next() % 4000);
            e.output_tokens = static_cast<int64_t>(10 + next() % 1200);
            e.cost = static_cast<limits::i128>(next() % 100000) * 1000000;
            e.potential_cost = e.cost;
            e.has_latency = true;
            e.latency = static_cast<double>(200 + next() % 5800);
        }
        double best = 1e18;
        size_t rows = 0;
        for (int rep = 0; rep < 5; ++rep) {
            auto a = std::chrono::steady_clock::now();
            rollup::Aggregator agg;
            for (const rollup::Event& e : events)
                agg.add(e);
            rows = agg.rows().size();
            auto b = std::chrono::steady_clock::now();
            best = std::min(best, std::chrono::duration<double>(b - a).count());
        }
        std::printf("rollup aggregator, one day:  %7.0f k events/s, %.1f ns/event (%zu rows)\n", n / best / 1000,
                    best * 1e9 / n, rows);
    }
    return 0;
}
