#include <gtest/gtest.h>

#include <random>

#include "catalog.hpp"
#include "json.hpp"
#include "test_util.hpp"

using namespace pgm;

TEST(Json, ParsesAndDumpsRoundTrip) {
    const char* doc = R"({"a":[1,2.50,-3e2,true,false,null],"b":{"c":"x\"y\u00e9\n"},"d":[]})";
    json::Value v = json::parse(doc);
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.get("a")->items.size(), 6u);
    EXPECT_EQ(v.get("a")->items[1].text, "2.50");  // numbers keep their text
    EXPECT_EQ(v.get("b")->get("c")->text, "x\"y\xC3\xA9\n");
    EXPECT_EQ(json::parse(json::dump(v)).get("b")->get("c")->text, v.get("b")->get("c")->text);
}

TEST(Json, ReportsTheOffsetOfAnError) {
    try {
        json::parse(R"({"a": 1,, })");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code, Code::InvalidJson);
        EXPECT_NE(e.detail.find("offset 8"), std::string::npos) << e.detail;
    }
    for (const char* bad : {"", "{", "[1,]", "{\"a\"}", "\"\\x\"", "01", "1.", "-", "nul", "\"\\ud800\"", "[1] x"})
        EXPECT_THROW(json::parse(bad), Error) << bad;
}

TEST(Json, RefusesDeepNesting) {
    std::string deep(300, '[');
    deep += std::string(300, ']');
    EXPECT_THROW(json::parse(deep), Error);
}

// Fuzz: random mutations of real usage objects must never crash, hang or
// throw anything but pgm::Error, through the parser and the pricing path.
TEST(Fuzz, MutatedUsageNeverCrashes) {
    auto cat = test::fixture_catalog();
    const std::vector<std::string> seeds = {
        R"({"prompt_tokens": 1000, "completion_tokens": 200, "prompt_tokens_details": {"cached_tokens": 400}})",
        R"({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation": {"ephemeral_1h_input_tokens": 3}})",
        R"({"promptTokenCount": 50, "candidatesTokenCount": 7, "thoughtsTokenCount": 9, "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 4}]})",
        R"({"input_tokens": 5, "cache_read_tokens": 2, "output_tokens": 1})"};
    const std::vector<std::pair<const char*, const char*>> models = {{"openai", "gpt-4o"},
                                                                     {"anthropic", "claude-sonnet-4-6"},
                                                                     {"google", "gemini-2.5-flash"},
                                                                     {"deepseek", "deepseek-chat"}};
    const std::string alphabet = "{}[]:,\"-.0123456789eE+ truefalsn\\u";
    std::mt19937 rng(20261124);
    int parsed = 0, priced = 0, refused = 0;
    for (int i = 0; i < 30000; ++i) {
        std::string s = seeds[rng() % seeds.size()];
        int edits = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < edits && !s.empty(); ++k) {
            size_t pos = rng() % s.size();
            switch (rng() % 3) {
                case 0:
                    s[pos] = alphabet[rng() % alphabet.size()];
                    break;
                case 1:
                    s.erase(pos, 1 + rng() % 3);
                    break;
                default:
                    s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
            }
        }
        try {
            json::Value v = json::parse(s);
            ++parsed;
            auto& m = models[rng() % models.size()];
            PriceRequest r;
            r.provider = m.first;
            r.model = m.second;
            r.usage = &v;
            r.at = test::at_utc("2026-01-15");
            cat->price(r);
            ++priced;
        } catch (const Error&) {
            ++refused;
        }
    }
    EXPECT_EQ(parsed + (30000 - parsed), 30000);
    EXPECT_GT(priced, 0);   // some mutations stay valid
    EXPECT_GT(refused, 0);  // and most are refused cleanly
}

// Fuzz: catalogs are user input too (meter.load_prices). Mutating the
// fixture's values and shapes must give a compiled catalog or a pgm::Error,
// never a crash or another exception, and a compiled one must price or
// refuse cleanly.
TEST(Fuzz, MutatedCatalogsNeverCrash) {
    const json::Value base = json::parse(test::read_file(std::string(PGM_TEST_DATA) + "/catalog.json"));
    std::mt19937 rng(99);
    const std::vector<json::Value> replacements = {
        json::Value::null(), json::Value::number("-1"), json::Value::number("1e400"), json::Value::number("0.5"),
        json::Value::string("("), json::Value::string("2026-02-30"), json::Value::string("25:00:00Z"),
        json::Value::array(), json::Value::object(), json::Value::boolean_of(true)};
    // every value slot of the document, addressed by a path of indexes
    std::function<void(json::Value&, int&, int, bool&)> mutate = [&](json::Value& v, int& countdown, int depth, bool& done) {
        if (done) return;
        if (countdown-- == 0) {
            v = replacements[rng() % replacements.size()];
            done = true;
            return;
        }
        if (depth > 12) return;
        for (auto& item : v.items) mutate(item, countdown, depth + 1, done);
        for (auto& m : v.members) mutate(m.second, countdown, depth + 1, done);
    };
    int compiled = 0, refused = 0;
    for (int i = 0; i < 3000; ++i) {
        json::Value doc = base;
        for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
            int countdown = static_cast<int>(rng() % 400);
            bool done = false;
            mutate(doc, countdown, 0, done);
        }
        try {
            auto cat = Catalog::compile(Catalog::genai_document(doc));
            ++compiled;
            json::Value u = json::parse(R"({"input_tokens": 1000, "output_tokens": 10, "cache_read_tokens": 10})");
            for (const char* m : {"gpt-4o", "claude-sonnet-4-6", "gemini-2.5-flash", "deepseek-chat"}) {
                try {
                    test::price_of(*cat, "", m, u, test::at_utc("2026-01-15"));
                } catch (const Error&) {
                }
            }
        } catch (const Error&) {
            ++refused;
        }
    }
    EXPECT_GT(compiled, 0);
    EXPECT_GT(refused, 0);
}
