#pragma once
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "catalog.hpp"

namespace pgm::test {

inline std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// fixture_catalog compiles test/core/data/catalog.json (a small hand-made
// catalog in the genai-prices shape).
inline std::unique_ptr<Catalog> fixture_catalog() {
    json::Value providers = json::parse(read_file(std::string(PGM_TEST_DATA) + "/catalog.json"));
    return Catalog::compile(Catalog::genai_document(providers));
}

constexpr Micros kDay = 86400LL * 1000000LL;
inline Micros at_utc(const char* date, int hour = 12) { return parse_date(date) + hour * 3600LL * 1000000LL; }

inline Priced price_of(const Catalog& c, const char* provider, const char* model, const json::Value& usage, Micros at,
                       const char* tier = "standard") {
    PriceRequest r;
    r.provider = provider;
    r.model = model;
    r.usage = &usage;
    r.at = at;
    r.tier = tier;
    return c.price(r);
}

inline std::string cost(const Catalog& c, const char* provider, const char* model, const char* usage,
                        Micros at = at_utc("2026-01-15"), const char* tier = "standard") {
    return price_of(c, provider, model, json::parse(usage), at, tier).total.to_string();
}

inline Code error_code(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code;
    }
    return Code::Internal;  // "no error" shows up as a mismatch
}

}  // namespace pgm::test
