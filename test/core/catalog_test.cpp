#include <gtest/gtest.h>

#include "catalog.hpp"
#include "test_util.hpp"

using namespace pgm;
using test::at_utc;
using test::cost;
using test::error_code;

class CatalogTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { cat_ = test::fixture_catalog().release(); }
    static void TearDownTestSuite() { delete cat_; }
    static Catalog* cat_;
    const Catalog& c() { return *cat_; }
};
Catalog* CatalogTest::cat_ = nullptr;

TEST_F(CatalogTest, AnthropicCacheTokensAreOutsideInputTokens) {
    // input_tokens excludes cache reads and writes in Anthropic's usage
    EXPECT_EQ(
        cost(
            c(), "anthropic", "claude-sonnet-4-6",
            R"({"input_tokens":100,"cache_read_input_tokens":1000,"cache_creation_input_tokens":50,"output_tokens":300})"),
        "0.0052875");
}

TEST_F(CatalogTest, StartDatePricesApplyFromTheirDate) {
    const char* u =
        R"({"input_tokens":100,"cache_read_input_tokens":1000,"cache_creation_input_tokens":50,"output_tokens":300})";
    EXPECT_EQ(cost(c(), "anthropic", "claude-sonnet-4-6", u, at_utc("2026-03-12", 23)), "0.0052875");
    EXPECT_EQ(cost(c(), "anthropic", "claude-sonnet-4-6", u, parse_date("2026-03-13")), "0.003525");
}

TEST_F(CatalogTest, TierSwitchesAboveThresholdForTheWholeRequest) {
    EXPECT_EQ(cost(c(), "anthropic", "claude-sonnet-4-6", R"({"input_tokens":200000,"output_tokens":1000})"), "0.615");
    EXPECT_EQ(cost(c(), "anthropic", "claude-sonnet-4-6", R"({"input_tokens":200001,"output_tokens":1000})"),
              "1.222506");
}

TEST_F(CatalogTest, OneHourCacheWritesArePricedApart) {
    EXPECT_EQ(
        cost(
            c(), "anthropic", "claude-sonnet-4-6",
            R"({"input_tokens":10,"cache_creation_input_tokens":100,"cache_creation":{"ephemeral_1h_input_tokens":40},"output_tokens":0})"),
        "0.000495");
}

TEST_F(CatalogTest, OpenAICachedTokensAreInsidePromptTokens) {
    const char* chat =
        R"({"prompt_tokens":1000,"completion_tokens":200,"prompt_tokens_details":{"cached_tokens":400}})";
    EXPECT_EQ(cost(c(), "openai", "gpt-4o", chat), "0.004");
    EXPECT_EQ(cost(c(), "openai", "gpt-4o-mini-2024-07-18", chat), "0.00024");  // first match wins
    EXPECT_EQ(
        cost(
            c(), "openai", "gpt-4o",
            R"({"input_tokens":1000,"input_tokens_details":{"cached_tokens":400},"output_tokens":200,"total_tokens":1200})"),
        "0.004");                                              // Responses API shape
    EXPECT_EQ(cost(c(), "OpenAI ", "GPT-4o", chat), "0.004");  // names are case-insensitive
}

TEST_F(CatalogTest, RequestPricesCountOncePerCall) {
    EXPECT_EQ(cost(c(), "openai", "gpt-image-1", R"({"input_tokens":0,"output_tokens":0})"), "0.002");
}

TEST_F(CatalogTest, GeminiThoughtsAreBilledAsOutput) {
    EXPECT_EQ(cost(c(), "google", "gemini-2.5-flash",
                   R"({"promptTokenCount":50,"candidatesTokenCount":10,"thoughtsTokenCount":20})"),
              "0.00009");
    EXPECT_EQ(
        cost(
            c(), "google", "gemini-2.5-flash",
            R"({"promptTokenCount":100,"promptTokensDetails":[{"modality":"AUDIO","tokenCount":40}],"candidatesTokenCount":0})"),
        "0.000058");
    // a whole response is accepted too: the extractor finds usageMetadata
    EXPECT_EQ(cost(c(), "google", "gemini-2.5-flash",
                   R"({"modelVersion":"x","usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":30}})"),
              "0.00009");
}

TEST_F(CatalogTest, RegexLookaheadRulesResolveLikeGenaiPrices) {
    EXPECT_EQ(cost(c(), "google", "gemini-2.5-flash-lite", R"({"input_tokens":1000,"output_tokens":1000})"), "0.0005");
    EXPECT_EQ(cost(c(), "anthropic", "claude-3-haiku-20240307", R"({"input_tokens":1000000,"output_tokens":0})"),
              "0.25");
}

TEST_F(CatalogTest, TimeOfDayPrices) {
    const char* u = R"({"prompt_tokens":1000000,"completion_tokens":0})";
    EXPECT_EQ(cost(c(), "deepseek", "deepseek-chat", u, at_utc("2026-01-15", 12)), "0.27");
    EXPECT_EQ(cost(c(), "deepseek", "deepseek-chat", u, at_utc("2026-01-15", 20)), "0.135");
    EXPECT_EQ(cost(c(), "deepseek", "deepseek-chat", u, at_utc("2026-01-15", 0)), "0.135");
}

TEST_F(CatalogTest, FallbackProvidersAndProviderMatch) {
    const char* chat =
        R"({"prompt_tokens":1000,"completion_tokens":200,"prompt_tokens_details":{"cached_tokens":400}})";
    EXPECT_EQ(cost(c(), "azure", "gpt-4o", chat), "0.004");
    EXPECT_EQ(cost(c(), "google-vertex", "gemini-2.5-flash", R"({"input_tokens":1000,"output_tokens":0})"), "0.0003");
    EXPECT_EQ(cost(c(), "", "gpt-4o", chat), "0.004");  // no provider: by model_match
}

TEST_F(CatalogTest, MinimumBilledQuantity) {
    EXPECT_EQ(cost(c(), "groq", "whisper-large-v3", R"({"audio_seconds":3})"), "0.000308333333");
    EXPECT_EQ(cost(c(), "groq", "whisper-large-v3", R"({"audio_seconds":0})"), "0");
    EXPECT_EQ(cost(c(), "groq", "whisper-large-v3", R"({"audio_seconds":36})"), "0.00111");
    EXPECT_EQ(cost(c(), "groq", "whisper-large-v3", R"({"audio_seconds":36.5})"), "0.001125416667");
    // the general meter follows a specific one raised to its minimum
    EXPECT_EQ(cost(c(), "groq", "whisper-large-v3", R"({"audio_seconds":0,"input_audio_seconds":0.25})"),
              "0.000308333333");
    EXPECT_EQ(cost(c(), "groq", "whisper-large-v3", R"({"input_audio_seconds":0.25})"), "0.000308333333");
}

TEST_F(CatalogTest, ModelDatesAreNormalized) {
    EXPECT_EQ(normalize_model_date("claude-3-5-sonnet-20241022"), "claude-3-5-sonnet-2024-10-22");
    EXPECT_EQ(normalize_model_date("x-20241340"), "x-20241340");
    EXPECT_EQ(normalize_model_date("x-20240229:beta"), "x-2024-02-29:beta");
    EXPECT_EQ(normalize_model_date("x-20230229"), "x-20230229");
}

TEST_F(CatalogTest, TryPriceAnswersNoPriceWithoutThrowing) {
    json::Value ok = json::parse(R"({"prompt_tokens":10,"completion_tokens":5})");
    auto attempt = [&](const char* provider, const char* model, std::optional<Error>& why) {
        PriceRequest r;
        r.provider = provider;
        r.model = model;
        r.usage = &ok;
        r.at = at_utc("2026-01-15");
        r.tier = "standard";
        return c().try_price(r, why);
    };
    std::optional<Error> why;
    std::optional<Priced> p = attempt("openai", "gpt-4o", why);
    ASSERT_TRUE(p.has_value());
    EXPECT_FALSE(why.has_value());
    EXPECT_EQ(p->total.to_string(), cost(c(), "openai", "gpt-4o", R"({"prompt_tokens":10,"completion_tokens":5})"));
    // the error price throws, as a value: the same code and message
    EXPECT_FALSE(attempt("openai", "gpt-99", why).has_value());
    ASSERT_TRUE(why.has_value());
    EXPECT_EQ(why->code, Code::NoPrice);
    EXPECT_EQ(why->message, "no price for model \"gpt-99\" of provider \"openai\"");
    why.reset();
    EXPECT_FALSE(attempt("nope", "gpt-4o", why).has_value());
    ASSERT_TRUE(why.has_value());
    EXPECT_EQ(why->code, Code::UnknownProvider);
    // other bad input still throws
    EXPECT_EQ(error_code([&] { attempt("openai", "", why); }), Code::InvalidValue);
}

TEST_F(CatalogTest, BadInputGetsItsOwnCode) {
    const char* ok = R"({"prompt_tokens":10,"completion_tokens":5})";
    EXPECT_EQ(error_code([&] { cost(c(), "nope", "gpt-4o", ok); }), Code::UnknownProvider);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-99", ok); }), Code::NoPrice);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-4o", R"({"prompt_tokens":-1,"completion_tokens":5})"); }),
              Code::InvalidValue);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-4o", R"({"prompt_tokens":1.5,"completion_tokens":5})"); }),
              Code::InvalidValue);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-4o", R"({"prompt_tokens":"10","completion_tokens":5})"); }),
              Code::NotANumber);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-4o", R"([1,2])"); }), Code::NotAnObject);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-4o", R"({"completion_tokens":5,"foo":1})"); }),
              Code::MissingMember);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-4o", R"({"input_tokens":10,"cache_read_tokens":20})"); }),
              Code::InvalidValue);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-4o", R"({"cache_read_tokens":5,"output_tokens":1})"); }),
              Code::MissingMember);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", "gpt-4o", ok, at_utc("2026-01-15"), "economy"); }),
              Code::InvalidValue);
    EXPECT_EQ(error_code([&] { cost(c(), "openai", std::string(600, 'x').c_str(), ok); }), Code::InvalidValue);
}

TEST_F(CatalogTest, ErrorsNameTheFieldAndHint) {
    try {
        cost(c(), "openai", "gpt-4o", R"({"prompt_tokens":-3,"completion_tokens":5})");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(e.message.find("prompt_tokens"), std::string::npos) << e.message;
        EXPECT_FALSE(e.hint.empty());
    }
}

TEST_F(CatalogTest, NormalizesRawUsage) {
    json::Value raw = json::parse(R"({"input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":3})");
    Usage u = c().normalize("anthropic", raw, at_utc("2026-01-15"));
    EXPECT_EQ(json::dump(u.to_json()), R"({"cache_read_tokens":1000,"input_tokens":1100,"output_tokens":3})");
    EXPECT_EQ(u.flavor, "default");
    json::Value norm = json::parse(R"({"input_tokens":5,"output_tokens":1})");
    EXPECT_EQ(c().normalize("anything", norm, 0).flavor, "normalized");
}

TEST_F(CatalogTest, ANamedApiFlavorReadsWithThatExtractorOnly) {
    json::Value raw = json::parse(R"({"input_tokens":900,"output_tokens":20,"total_tokens":920})");
    EXPECT_EQ(c().normalize("openai", raw, 0, "responses").flavor, "responses");
    EXPECT_EQ(error_code([&] { c().normalize("openai", raw, 0, "chat"); }), Code::MissingMember);
    EXPECT_EQ(error_code([&] { c().normalize("openai", raw, 0, "chatty"); }), Code::InvalidValue);
}

TEST_F(CatalogTest, QuoteNamesItsPriceVersion) {
    Quote a = c().quote("anthropic", "claude-sonnet-4-6", at_utc("2026-01-15"), "standard");
    Quote b = c().quote("anthropic", "claude-sonnet-4-6", at_utc("2026-06-15"), "standard");
    EXPECT_EQ(a.version, b.version);  // one model row ...
    EXPECT_EQ(a.entry, 0);            // ... two conditional entries
    EXPECT_EQ(b.entry, 1);
    EXPECT_EQ(a.source, "genai-prices");
    EXPECT_EQ(a.model, "claude-sonnet-4-6");
}

// A catalog document with versions and custom prices, as the glue builds it.
static json::Value versioned_document() {
    return json::parse(R"({
      "providers": [{"version": 1, "source": "genai-prices", "data": {"id": "openai", "model_match": {"starts_with": "gpt"}}},
                    {"version": 2, "source": "litellm", "data": {"id": "openai"}}],
      "models": [
        {"version": 10, "source": "genai-prices", "provider": "openai", "valid_to": 1767225600000000,
         "data": {"id": "gpt-x", "match": {"equals": "gpt-x"}, "prices": {"input_mtok": 1, "output_mtok": 2}}},
        {"version": 11, "source": "genai-prices", "provider": "openai", "valid_from": 1767225600000000,
         "data": {"id": "gpt-x", "match": {"equals": "gpt-x"}, "prices": {"input_mtok": 3, "output_mtok": 4}}},
        {"version": 12, "source": "litellm", "provider": "openai", "service_tier": "batch",
         "data": {"id": "gpt-x", "match": {"equals": "gpt-x"}, "prices": {"input_mtok": 0.5, "output_mtok": 1}}}],
      "custom": [
        {"version": 20, "provider": "openai", "model": "gpt-x", "valid_from": 1769904000000000, "prices": {"input_mtok": 9, "output_mtok": 9}},
        {"version": 21, "provider": "fal", "model": "flux-pro", "prices": {"per_image": 0.05, "per_compute_second": 0.00111}}]
    })");
}
static std::unique_ptr<Catalog> versioned() { return Catalog::compile(versioned_document()); }

// OnDemand is a catalog compiled as the glue compiles it, without its model
// rows, which it reads by provider as the glue does: a call that wants a
// provider's models throws, the rows of the wanted ids are added, the call
// runs again.
struct OnDemand {
    json::Value doc;  // the whole document: the tables
    std::unique_ptr<Catalog> cat;
    std::vector<std::vector<std::string>> reads;  // the ids of each read, in order

    explicit OnDemand(json::Value whole) : doc(std::move(whole)) {
        json::Value head = json::Value::object();
        for (const char* k : {"providers", "custom"})
            if (const json::Value* v = doc.get(k)) head.members.emplace_back(k, *v);
        cat = Catalog::compile(head, true);
    }
    template <typename F>
    auto run(F&& f) -> decltype(f(*cat)) {
        for (int tries = 0;; ++tries) {
            try {
                return f(*cat);
            } catch (const Error& e) {
                if (cat->wanted().empty() || tries > 3) throw;
                std::vector<std::string> ids = cat->wanted();
                json::Value rows = json::Value::array();
                if (const json::Value* ms = doc.get("models"))
                    for (auto& row : ms->items)
                        if (std::find(ids.begin(), ids.end(), row.str("provider")) != ids.end())
                            rows.items.push_back(row);
                cat->add_models(rows);
                reads.push_back(ids);
            }
        }
    }
};

// outcome describes a quote, or the error that refused it, for comparing a
// catalog read on demand with one compiled whole.
static std::string outcome(const std::function<Quote()>& f) {
    try {
        Quote q = f();
        return std::to_string(q.version) + " " + std::string(q.source) + " " + std::string(q.provider) + "/" +
               std::string(q.model) + " entry " + std::to_string(q.entry);
    } catch (const Error& e) {
        return std::string(code_name(e.code)) + ": " + e.message;
    }
}

TEST(OnDemand, AnswersAsTheWholeCatalogDoes) {
    json::Value fixture = Catalog::genai_document(
        json::parse(test::read_file(std::string(PGM_TEST_DATA) + "/catalog.json")));
    for (const json::Value* whole : {&fixture, new json::Value(versioned_document())}) {
        auto full = Catalog::compile(*whole);
        std::vector<std::pair<std::string, std::string>> names{
            {"", "gpt-4o"}, {"azure", "gpt-4o"}, {"OpenAI ", "GPT-4o"}, {"nosuch", "gpt-4o"},
            {"litellm", "openai/gpt-x"}, {"", "no-model-at-all"}, {"fal", "flux-pro"}};
        for (auto& row : whole->get("models")->items)
            names.emplace_back(row.str("provider"), row.get("data")->str("id"));
        int compared = 0;
        for (auto& [prov, model] : names) {
            OnDemand lazy(*whole);  // each name reads what it needs by itself
            for (const char* tier : {"standard", "batch"})
                for (Micros at : {at_utc("2025-06-01"), at_utc("2026-01-15"), at_utc("2026-03-13"), at_utc("2026-06-15")}) {
                    std::string want = outcome([&] { return full->quote(prov, model, at, tier); });
                    std::string got = outcome([&] { return lazy.run([&](const Catalog& c) { return c.quote(prov, model, at, tier); }); });
                    EXPECT_EQ(got, want) << prov << "/" << model << " " << tier << " at " << at;
                    ++compared;
                }
            EXPECT_EQ(lazy.cat->wanted().size(), 0u);
        }
        EXPECT_GT(compared, 40);
        if (whole != &fixture) delete whole;
    }
}

TEST(OnDemand, ReadsOnlyTheModelsANameNeeds) {
    OnDemand lazy(Catalog::genai_document(
        json::parse(test::read_file(std::string(PGM_TEST_DATA) + "/catalog.json"))));
    EXPECT_EQ(lazy.cat->model_count(), 0u);
    const char* chat = R"({"prompt_tokens":1000,"completion_tokens":200,"prompt_tokens_details":{"cached_tokens":400}})";
    json::Value u = json::parse(chat);
    auto price = [&](const char* prov, const char* model) {
        return lazy.run([&](const Catalog& c) { return test::price_of(c, prov, model, u, at_utc("2026-01-15")); });
    };
    // a provider with fallbacks wants them with its own id
    EXPECT_EQ(price("azure", "gpt-4o").total.to_string(), "0.004");
    ASSERT_EQ(lazy.reads.size(), 1u);
    EXPECT_EQ(lazy.reads[0], (std::vector<std::string>{"azure", "openai"}));
    EXPECT_EQ(lazy.cat->model_count(), 3u);  // openai's three rows (azure has none), nobody else's
    EXPECT_EQ(price("openai", "gpt-4o-mini-2024-07-18").total.to_string(), "0.00024");
    EXPECT_EQ(price("openai", "gpt-4o").total.to_string(), "0.004");
    EXPECT_EQ(lazy.reads.size(), 1u);  // openai was read with azure
    // no provider: the one whose model_match takes the name
    json::Value anthropic = json::parse(R"({"input_tokens":100,"output_tokens":300})");
    EXPECT_EQ(lazy.run([&](const Catalog& c) {
                      return test::price_of(c, "", "claude-sonnet-4-6", anthropic, at_utc("2026-01-15"));
                  }).total.to_string(),
              test::price_of(*test::fixture_catalog(), "", "claude-sonnet-4-6", anthropic, at_utc("2026-01-15"))
                  .total.to_string());
    ASSERT_EQ(lazy.reads.size(), 2u);
    EXPECT_EQ(lazy.reads[1], std::vector<std::string>{"anthropic"});
    // an unknown provider is read once (for LiteLLM rows of that id), then refused as before
    EXPECT_EQ(error_code([&] { price("nosuch", "gpt-4o"); }), Code::UnknownProvider);
    EXPECT_EQ(error_code([&] { price("nosuch", "gpt-4o"); }), Code::UnknownProvider);
    ASSERT_EQ(lazy.reads.size(), 3u);
    EXPECT_EQ(lazy.reads[2], std::vector<std::string>{"nosuch"});
    // normalize reads providers only
    EXPECT_NO_THROW(lazy.cat->normalize("google", json::parse(R"({"promptTokenCount":5,"candidatesTokenCount":2})"), 0));
    EXPECT_EQ(lazy.reads.size(), 3u);
}

TEST(OnDemand, ModelsReadLaterCutTheirEpochs) {
    OnDemand lazy(versioned_document());
    EXPECT_EQ(lazy.cat->epoch_count(), 1u);  // providers and custom prices cut nothing
    const char* u = R"({"input_tokens":1000000,"output_tokens":1000000})";
    json::Value uv = json::parse(u);
    auto cost_at = [&](Micros at) {
        return lazy.run([&](const Catalog& c) { return test::price_of(c, "openai", "gpt-x", uv, at); }).total.to_string();
    };
    EXPECT_EQ(cost_at(at_utc("2026-01-15")), "7");      // version 11 from 2026-01-01
    EXPECT_EQ(lazy.cat->epoch_count(), 2u);             // the models' cut
    EXPECT_EQ(cost_at(at_utc("2025-12-31", 23)), "3");  // version 10
    EXPECT_EQ(cost_at(at_utc("2026-02-15")), "18");     // custom from 2026-02-01 wins
    EXPECT_EQ(lazy.reads.size(), 1u);
}

TEST(Versions, PriceInForceAtTheEventTimeIsUsed) {
    auto c = versioned();
    const char* u = R"({"input_tokens":1000000,"output_tokens":1000000})";
    EXPECT_EQ(cost(*c, "openai", "gpt-x", u, at_utc("2025-12-31", 23)), "3");  // version 10 (2025)
    EXPECT_EQ(cost(*c, "openai", "gpt-x", u, at_utc("2026-01-15")), "7");      // version 11 from 2026-01-01
    EXPECT_EQ(cost(*c, "openai", "gpt-x", u, at_utc("2026-02-15")), "18");     // custom from 2026-02-01 wins
    EXPECT_EQ(c->quote("openai", "gpt-x", at_utc("2026-02-15"), "standard").version, 20);
    EXPECT_EQ(cost(*c, "openai", "gpt-x", u, at_utc("2026-01-15"), "batch"), "1.5");  // service tier from LiteLLM
    EXPECT_EQ(error_code([&] { cost(*c, "openai", "gpt-x", u, at_utc("2026-01-15"), "flex"); }), Code::NoPrice);
    EXPECT_EQ(c->epoch_count(), 2u);  // one cut at 2026-01-01; custom prices keep their own ranges
}

TEST(Versions, PrivateModelsPricedPerImageAndSecond) {
    auto c = versioned();
    EXPECT_EQ(cost(*c, "fal", "flux-pro", R"({"images":3,"compute_seconds":12.5})"), "0.163875");
    EXPECT_EQ(error_code([&] { cost(*c, "fal", "other", R"({"images":1})"); }), Code::NoPrice);
}

TEST(PriceSet, IncompleteSetsAreRefusedWhenUsed) {
    PriceSet ps = PriceSet::compile(json::parse(R"({"cache_read_mtok": 1, "output_mtok": 2})"));
    EXPECT_FALSE(ps.invalid.empty());  // cache reads need an input price to be carved from
    PriceSet ok = PriceSet::compile(json::parse(R"({"input_mtok": 1, "cache_read_mtok": 0.1, "unknown_key": 3})"));
    EXPECT_TRUE(ok.invalid.empty());
    ASSERT_EQ(ok.ignored_keys.size(), 1u);
    EXPECT_THROW(PriceSet::compile(json::parse(R"({"input_mtok": -1})")), Error);
    EXPECT_THROW(PriceSet::compile(json::parse(R"({"input_mtok": {"base": 1}})")), Error);
}

TEST(Units, LatticeKnowsWhatContainsWhat) {
    const Units& u = Units::get();
    int input = u.by_usage_key("input_tokens"), cread = u.by_usage_key("cache_read_tokens"),
        audio = u.by_usage_key("input_audio_tokens"), caudio = u.by_usage_key("cache_audio_read_tokens");
    ASSERT_GE(input, 0);
    EXPECT_TRUE(u.at(cread).ancestors.test(static_cast<size_t>(input)));
    EXPECT_FALSE(u.at(input).ancestors.test(static_cast<size_t>(cread)));
    EXPECT_EQ(u.join(audio, cread), caudio);
    EXPECT_EQ(u.by_price_key("input_mtok"), input);
    EXPECT_EQ(u.by_usage_key("no_such_meter"), -1);
    EXPECT_EQ(parse_time_of_day_ms("16:30:00+08:00"), 8 * 3600 * 1000 + 30 * 60 * 1000);
    EXPECT_THROW(parse_time_of_day_ms("25:00:00Z"), Error);
    EXPECT_THROW(parse_date("2026-02-30"), Error);
}

TEST_F(CatalogTest, TokenCountsAreTheGeneralMetersOfNormalizedUsage) {
    // Anthropic reports cache reads and writes outside input_tokens; the
    // normalized input counts every input token, cached ones included
    Usage u = c().normalize(
        "anthropic",
        json::parse(
            R"({"input_tokens":100,"cache_read_input_tokens":1000,"cache_creation_input_tokens":50,"output_tokens":300})"),
        at_utc("2026-01-15"));
    TokenCounts t = token_counts(u);
    EXPECT_EQ(t.input, 1150);
    EXPECT_EQ(t.output, 300);
    EXPECT_EQ(t.cache_read, 1000);
    EXPECT_EQ(t.cache_write, 50);
    // a meter the usage does not report counts zero
    TokenCounts none = token_counts(c().normalize("openai", json::parse(R"({"images": 3})"), 0));
    EXPECT_EQ(none.input + none.output + none.cache_read + none.cache_write, 0);
    // a count past 64 bits is refused, not wrapped
    Usage big = c().normalize("anything", json::parse(R"({"input_tokens": 99999999999999999999})"), 0);
    EXPECT_EQ(error_code([&] { token_counts(big); }), Code::Overflow);
}
