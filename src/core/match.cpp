#include "match.hpp"

#include "error.hpp"

namespace pgm {

std::string lower_trim(std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r'))
        ++b;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r'))
        --e;
    std::string out(s.substr(b, e - b));
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::shared_ptr<const std::regex> RegexPool::get(const std::string& pattern) {
    auto it = pool_.find(pattern);
    if (it != pool_.end()) return it->second;
    std::shared_ptr<const std::regex> re;
    try {
        re = std::make_shared<const std::regex>(pattern, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
        throw Error(Code::InvalidCatalog, "invalid regex in match rule",
                    "The pattern \"" + pattern + "\" does not compile: " + e.what() + ".");
    }
    pool_.emplace(pattern, re);
    return re;
}

Match Match::equals(std::string literal) {
    Match m;
    m.kind_ = Kind::Equals;
    m.literal_ = lower_trim(literal);
    return m;
}

Match Match::compile(const json::Value& rule, RegexPool& pool) {
    if (!rule.is_object() || rule.members.size() != 1)
        throw Error(
            Code::InvalidCatalog, "invalid match rule",
            "A match rule is an object with exactly one of equals, starts_with, ends_with, contains, regex, and, or.");
    const auto& [key, arg] = rule.members.front();
    Match m;
    if (key == "and" || key == "or") {
        if (!arg.is_array())
            throw Error(Code::InvalidCatalog, "invalid match rule", "\"" + key + "\" takes an array of rules.");
        m.kind_ = key == "and" ? Kind::And : Kind::Or;
        for (auto& child : arg.items)
            m.children_.push_back(compile(child, pool));
        return m;
    }
    if (!arg.is_string()) throw Error(Code::InvalidCatalog, "invalid match rule", "\"" + key + "\" takes a string.");
    if (key == "regex") {
        m.kind_ = Kind::Regex;
        m.regex_ = pool.get(arg.text);
        return m;
    }
    // the literal kinds compare case-insensitively, as genai-prices does
    std::string lit;
    for (char c : arg.text)
        lit += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    m.literal_ = std::move(lit);
    if (key == "equals")
        m.kind_ = Kind::Equals;
    else if (key == "starts_with")
        m.kind_ = Kind::StartsWith;
    else if (key == "ends_with")
        m.kind_ = Kind::EndsWith;
    else if (key == "contains")
        m.kind_ = Kind::Contains;
    else
        throw Error(Code::InvalidCatalog, "invalid match rule", "Unknown match kind \"" + key + "\".");
    return m;
}

bool Match::matches(std::string_view s) const {
    switch (kind_) {
        case Kind::Never:
            return false;
        case Kind::Equals:
            return s == literal_;
        case Kind::StartsWith:
            return s.substr(0, literal_.size()) == literal_;
        case Kind::EndsWith:
            return s.size() >= literal_.size() && s.substr(s.size() - literal_.size()) == literal_;
        case Kind::Contains:
            return s.find(literal_) != std::string_view::npos;
        case Kind::Regex:
            return std::regex_search(s.begin(), s.end(), *regex_);
        case Kind::And:
            for (auto& c : children_)
                if (!c.matches(s)) return false;
            return true;
        case Kind::Or:
            for (auto& c : children_)
                if (c.matches(s)) return true;
            return false;
    }
    return false;
}

}  // namespace pgm
