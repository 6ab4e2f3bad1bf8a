// match.hpp: model and provider match rules, compiled once.
//
// A rule is a tree of equals / starts_with / ends_with / contains / regex
// leaves under and / or nodes, as in genai-prices. Literals are lower-cased
// when compiled and regexes are compiled once per catalog (shared between
// rules with the same pattern), so matching a name costs no allocation and
// no regex compile.
#pragma once
#include "core_only.hpp"

#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "json.hpp"

namespace pgm {

class RegexPool {
  public:
    std::shared_ptr<const std::regex> get(const std::string& pattern);

  private:
    std::unordered_map<std::string, std::shared_ptr<const std::regex>> pool_;
};

class Match {
  public:
    enum class Kind { Never, Equals, StartsWith, EndsWith, Contains, Regex, And, Or };

    Match() = default;
    // compile builds a rule from its JSON form; throws Code::InvalidCatalog.
    static Match compile(const json::Value& rule, RegexPool& pool);
    static Match equals(std::string literal);
    // matches tests a name that the caller has already lower-cased.
    bool matches(std::string_view lowered) const;
    bool empty() const { return kind_ == Kind::Never; }

  private:
    Kind kind_ = Kind::Never;
    std::string literal_;
    std::shared_ptr<const std::regex> regex_;
    std::vector<Match> children_;
};

// lower_trim returns s lower-cased (ASCII) with surrounding white space removed.
std::string lower_trim(std::string_view s);

}  // namespace pgm
