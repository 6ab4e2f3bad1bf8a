// units.hpp: the meters pg_meter prices, and how they nest.
//
// A meter (unit) is a usage key ("cache_read_tokens"), the price key that
// prices it ("cache_read_mtok"), the quantity its price is quoted per
// (1e6 tokens, 3600 seconds, ...) and a set of dimensions. A meter whose
// dimensions are a subset of another's is its ancestor: input_tokens
// {direction=input, family=tokens} contains cache_read_tokens. This lattice
// is what lets one price rule serve every provider's inclusion rules: the
// cost engine subtracts the more specific meters from the general ones.
// The table follows the unit taxonomy of pydantic's genai-prices catalog,
// plus pg_meter's own meters for images and seconds of compute.
#pragma once
#include "core_only.hpp"

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgm {

constexpr size_t kMaxUnits = 128;
using UnitSet = std::bitset<kMaxUnits>;

struct Unit {
    std::string usage_key;
    std::string price_key;
    int64_t per = 1;
    std::vector<std::pair<std::string, std::string>> dims;  // sorted by name
    int index = -1;
    UnitSet ancestors;              // units whose dims are a proper subset of ours
    UnitSet compatible;             // units with no dimension of a different value
    UnitSet descendants;            // units whose dims are a proper superset of ours
    int dir = 0;                    // 0 none, 1 input, 2 output
    std::string direction() const;  // "input", "output" or ""
    bool is_token_count() const;    // integer-only quantities
    bool reportable() const { return usage_key != "requests"; }
};

class Units {
  public:
    static const Units& get();
    size_t size() const { return units_.size(); }
    const Unit& at(int i) const { return units_[static_cast<size_t>(i)]; }
    const std::vector<Unit>& all() const { return units_; }
    int by_usage_key(std::string_view k) const;  // -1 when unknown
    int by_price_key(std::string_view k) const;  // -1 when unknown
    // compatible: no dimension has different values in a and b.
    bool compatible(int a, int b) const { return at(a).compatible.test(static_cast<size_t>(b)); }
    // join returns the unit whose dims are the union of a's and b's, or -1.
    int join(int a, int b) const { return join_[static_cast<size_t>(a) * units_.size() + static_cast<size_t>(b)]; }
    int input_tokens() const { return input_tokens_; }
    int requests() const { return requests_; }

  private:
    Units();
    std::vector<Unit> units_;
    std::vector<int> join_;
    std::vector<std::pair<std::string, int>> by_usage_, by_price_;  // sorted, for binary search
    int input_tokens_ = -1, requests_ = -1;
};

}  // namespace pgm
