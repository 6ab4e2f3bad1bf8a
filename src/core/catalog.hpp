// catalog.hpp: the compiled price catalog, model resolution and pricing.
//
// The glue hands the core one JSON document with every stored version of
// every provider, model and custom price (each with its validity range);
// Catalog::compile turns it into structures that price a call without
// scanning: the versions are cut into epochs (time ranges in which the set
// of rows in force does not change), each epoch resolves a (provider, model,
// service tier) name once and caches the answer, and every price entry is
// checked and pre-sorted for the meter lattice when compiled.
//
// A Catalog is not thread-safe (its resolution caches are mutable); a
// PostgreSQL backend is single-threaded and owns one.
#pragma once
#include "core_only.hpp"

#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "decimal.hpp"
#include "json.hpp"
#include "match.hpp"
#include "units.hpp"

namespace pgm {

// Times are microseconds since 1970-01-01 00:00 UTC.
using Micros = int64_t;
constexpr Micros kMinTime = std::numeric_limits<Micros>::min();
constexpr Micros kMaxTime = std::numeric_limits<Micros>::max();

// ---- usage -----------------------------------------------------------------

// Usage is a call's normalized meters: unit index -> quantity, sorted by unit.
struct Usage {
    std::vector<std::pair<int, Decimal>> values;
    std::string_view flavor;  // "normalized" or the extractor's api flavor (catalog-owned)
    const Decimal* find(int unit) const;
    void add(int unit, const Decimal& q);
    json::Value to_json() const;
};

// TokenCounts are the four token meters an event keeps as columns (what
// rollups and dashboards sum): zero when the usage does not report one.
struct TokenCounts {
    int64_t input = 0, output = 0, cache_read = 0, cache_write = 0;
};
// token_counts reads them from normalized usage; throws Code::Overflow when
// a count does not fit in 64 bits.
TokenCounts token_counts(const Usage& u);

struct PathStep {
    std::string key;  // a member name, or the field of an array match
    bool array_match = false;
    Match match;  // for array_match: the rule the field's string must meet
};

struct Mapping {
    std::vector<PathStep> path;
    std::string dest;
    int unit = -1;  // -1 when dest is not a reportable meter (ignored)
    bool required = false;
};

struct Extractor {
    std::string flavor;
    std::vector<PathStep> root;
    std::vector<Mapping> mappings;
};

// ---- prices ----------------------------------------------------------------

struct Tier {
    int64_t start;
    Decimal price;
    ScaledPrice scaled;  // Amount::scale_price(price, per)
};

struct PriceValue {
    int unit;
    Decimal base;
    std::vector<Tier> tiers;  // sorted by start; empty when flat
    ScaledPrice scaled;       // Amount::scale_price(base, per)
};

// PriceSet is one set of prices (one entry of a model's price list).
struct PriceSet {
    std::vector<PriceValue> prices;  // ordered by unit specificity, most specific first
    // below[i]: positions j in `prices` whose unit is strictly more specific
    // than prices[i]'s (their leaves are subtracted from prices[i]'s value)
    std::vector<std::vector<int>> below;
    bool tiered = false;
    bool has_requests = false;
    std::vector<std::string> ignored_keys;  // price keys pg_meter does not know
    std::string invalid;                    // non-empty: why this set cannot price (raised on use)

    static PriceSet compile(const json::Value& prices);
};

struct Constraint {
    enum class Kind { None, StartDate, TimeOfDay } kind = Kind::None;
    Micros start = 0;                  // StartDate
    int64_t day_from = 0, day_to = 0;  // TimeOfDay, milliseconds of the UTC day
};

struct PriceEntry {
    Constraint constraint;
    PriceSet set;
};

struct Model {
    int64_t version = 0;
    std::string source, provider_id, id, name, tier = "standard";
    Match match;
    std::vector<PriceEntry> entries;
    std::vector<std::pair<int, Decimal>> minimums;  // billed at least this much when used
    Micros valid_from = kMinTime, valid_to = kMaxTime;
    // entry_at returns the index of the entry in force at t.
    size_t entry_at(Micros t) const;
};

struct Provider {
    int64_t version = 0;
    std::string source, id, name;
    Match provider_match, model_match;
    std::vector<std::string> fallbacks;
    std::vector<Extractor> extractors;
    Micros valid_from = kMinTime, valid_to = kMaxTime;
};

// ---- results ---------------------------------------------------------------

// Quote says which price applies. Its strings belong to the catalog and
// live as long as it does.
struct Quote {
    int64_t version = 0;        // the price version (row) used: provenance
    std::string_view source;    // genai-prices, litellm or custom
    std::string_view provider;  // canonical provider id
    std::string_view model;     // catalog model id (or the custom model name)
    std::string_view model_name;
    std::string_view tier;
    int entry = 0;  // index of the conditional price entry used
    const PriceSet* set = nullptr;
    const std::vector<std::pair<int, Decimal>>* minimums = nullptr;
    const Provider* provider_def = nullptr;  // whose extractors read the usage (may be null)
};

struct Line {
    int unit;
    Decimal quantity;    // the leaf quantity billed at this meter's price
    Decimal unit_price;  // price per `per` units (after tier selection)
    int64_t per;
    bool tier_applied = false;
    Amount amount;
};

struct Priced {
    Quote quote;
    Usage usage;
    std::vector<Line> lines;
    Money total;
    bool exact = true;  // false when the total was rounded to the picodollar
    // by_direction sums the lines of one direction (1 input, 2 output, 0 other)
    Money by_direction(int dir) const;
};

struct PriceRequest {
    std::string_view provider;  // may be empty: resolve by model name
    std::string_view model;
    const json::Value* usage = nullptr;
    Micros at = 0;
    std::string_view tier = "standard";
    std::string_view flavor;  // the provider's API flavor ("chat", "responses", ...); empty: by shape
};

class Catalog {
  public:
    // compile builds a catalog from the glue's document; throws on bad input.
    // With models_on_demand, the document need not hold every model row: a
    // provider's models are read when a name first needs them (wanted,
    // add_models), so a backend compiles the models of the providers it
    // prices, not the whole catalog, at its first priced call.
    static std::unique_ptr<Catalog> compile(const json::Value& doc, bool models_on_demand = false);
    // wanted names the provider ids whose model rows the last price, quote
    // or normalize needed and this catalog has not read. That call threw
    // Code::Internal before using any model; the glue reads those rows,
    // passes them to add_models and calls again. Empty when none is wanted.
    const std::vector<std::string>& wanted() const { return wanted_; }
    // add_models adds the model rows (as the document's "models" holds
    // them) of the providers wanted names; each of those counts as read,
    // also with no row, and none is wanted any more.
    void add_models(const json::Value& rows);
    // from_genai_prices wraps a bare genai-prices provider array (tests, tools).
    static json::Value genai_document(const json::Value& providers);

    Priced price(const PriceRequest& req) const;
    // try_price is price, except that a call with no price in force (an
    // unknown provider, or no price for the model: UnknownProvider,
    // NoPrice) is no error but an answer: nullopt, with why set to the
    // error price would throw. Ingest records such calls unpriced, and a
    // bulk load of a model the catalog does not know yet should not pay a
    // thrown exception per event (2.6 us of a COPY's event, bench/README.md).
    std::optional<Priced> try_price(const PriceRequest& req, std::optional<Error>& why) const;
    // normalize reads a usage object; flavor names the provider's API flavor
    // (empty: chosen by the object's shape).
    Usage normalize(std::string_view provider, const json::Value& usage, Micros at,
                    std::string_view flavor = {}) const;
    Quote quote(std::string_view provider, std::string_view model, Micros at, std::string_view tier) const;
    // find_quote is quote, with no price in force answered as nullopt and
    // why (as try_price)
    std::optional<Quote> find_quote(std::string_view provider, std::string_view model, Micros at, std::string_view tier,
                                    std::optional<Error>& why) const;

    size_t model_count() const { return models_.size(); }
    size_t provider_count() const { return providers_.size(); }
    size_t epoch_count() const { return epochs_.size(); }

    struct Custom;
    struct Resolution {
        const Model* model = nullptr;
        const Provider* provider = nullptr;  // genai provider (extractors), may be null
        std::string provider_id;             // canonical id, or the lowered input
        std::string provider_in, model_in;   // the names as given, lowered
        bool provider_known = false;
        // custom prices for the name as given, then for the catalog's id
        const std::vector<const Custom*>* custom[3] = {nullptr, nullptr, nullptr};
    };

  private:
    struct EpochProvider {
        const Provider* provider;
        std::vector<const Model*> models;
    };
    struct Epoch {
        Micros from, to;
        bool built = false;
        std::vector<EpochProvider> genai, litellm;
        std::vector<const Extractor*> common_extractors;  // for providers without their own
        std::unordered_map<std::string, Resolution> cache;
        // the extractor that fits a usage shape best, by provider and shape
        std::unordered_map<std::string, int> shape_choice;
    };

  public:
    struct Custom {
        int64_t version;
        std::string provider, model, tier, note;
        PriceSet set;
        std::vector<std::pair<int, Decimal>> minimums;
        Micros valid_from, valid_to;
    };

  private:
    void cut_epochs();
    Epoch& epoch_at(Micros t) const;
    void build(Epoch& e) const;
    // genai_provider finds a catalog provider by id, then by provider match.
    static const Provider* genai_provider(const Epoch& e, const std::string& id);
    const Resolution& resolve(Epoch& e, std::string_view provider, std::string_view model, std::string_view tier) const;
    const std::vector<const Custom*>* customs_of(const std::string& provider, const std::string& model,
                                                 std::string_view tier) const;
    Usage read_usage(Epoch& e, const Provider* p, std::string_view provider, const json::Value& usage,
                     std::string_view flavor) const;

    std::deque<Provider> providers_;
    std::deque<Model> models_;
    std::deque<Custom> customs_;
    std::unordered_map<std::string, std::vector<const Custom*>> custom_index_;
    mutable std::vector<Epoch> epochs_;
    RegexPool pool_;                         // rules compiled once, shared by rows read later
    bool on_demand_ = false;                 // models are read by provider (read_)
    std::unordered_set<std::string> read_;   // provider ids whose models are in models_
    mutable std::vector<std::string> wanted_;
    mutable std::string key_;    // reused cache key buffer
    mutable std::string shape_;  // reused usage-shape buffer
};

// compute_cost prices normalized usage with one quote (pure; no catalog).
Priced compute_cost(const Quote& quote, Usage usage);

// extract runs one extractor over a raw usage object; returns false with a
// reason when a required member is missing. Throws on invalid values.
bool extract(const Extractor& ex, const json::Value& usage, Usage& out, int& score, std::string& why);

// normalize_direct reads a usage object whose members are all meter names.
// Returns false when some member is not a meter name.
bool normalize_direct(const json::Value& usage, Usage& out);

// parse helpers shared with tests
Micros parse_date(std::string_view yyyy_mm_dd);
int64_t parse_time_of_day_ms(std::string_view t);
std::string normalize_model_date(std::string_view model);

}  // namespace pgm
