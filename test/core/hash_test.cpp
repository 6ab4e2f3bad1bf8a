// hash_test.cpp: the core's nullable strings, its string hash and its
// open-addressing index, on which the rollup aggregator, the hour's callers,
// the rate cells and (through the glue) every borrowed text argument rest.
#include <gtest/gtest.h>

#include <string>
#include <unordered_set>
#include <vector>

#include "hash.hpp"

using pgm::NString;
using pgm::Text;

namespace {

Text t(const char* s) { return Text{s, std::char_traits<char>::length(s)}; }

}  // namespace

TEST(Hash, NullAndEmptyAreDifferentStrings) {
    const Text null{};
    const Text empty = t("");
    EXPECT_TRUE(null.is_null());
    EXPECT_FALSE(empty.is_null());
    EXPECT_TRUE(pgm::same(null, null));
    EXPECT_TRUE(pgm::same(empty, empty));
    EXPECT_FALSE(pgm::same(null, empty));
    EXPECT_FALSE(pgm::same(empty, null));
    EXPECT_FALSE(pgm::same(null, std::string()));
    EXPECT_TRUE(pgm::same(empty, std::string()));
    EXPECT_NE(pgm::hash_text(null, 7), pgm::hash_text(empty, 7));
    // a NULL reads as the empty view, for callers that treat both alike
    EXPECT_EQ(null.view(), "");
    EXPECT_EQ(t("gpt-4o").view(), "gpt-4o");
}

TEST(Hash, SameComparesBytesNotPointers) {
    std::string a = "claude-sonnet-4-6", b = a;
    EXPECT_TRUE(pgm::same(Text{a.data(), a.size()}, Text{b.data(), b.size()}));
    EXPECT_FALSE(pgm::same(Text{a.data(), a.size()}, Text{b.data(), b.size() - 1}));
    b.back() = '7';
    EXPECT_FALSE(pgm::same(Text{a.data(), a.size()}, Text{b.data(), b.size()}));
    // an embedded NUL is a byte like any other
    std::string z1("a\0b", 3), z2("a\0c", 3);
    EXPECT_FALSE(pgm::same(Text{z1.data(), 3}, Text{z2.data(), 3}));
}

TEST(Hash, OwnedStringsKeepNullness) {
    NString n = pgm::owned(Text{});
    NString e = pgm::owned(t(""));
    NString s = pgm::owned(t("tenant-a"));
    EXPECT_FALSE(n.has_value());
    ASSERT_TRUE(e.has_value());
    EXPECT_TRUE(pgm::text_of(n).is_null());
    EXPECT_FALSE(pgm::text_of(e).is_null());
    EXPECT_TRUE(pgm::same(Text{}, n));
    EXPECT_FALSE(pgm::same(t(""), n));
    EXPECT_TRUE(pgm::same(t(""), e));
    EXPECT_TRUE(pgm::same(t("tenant-a"), s));
    EXPECT_FALSE(pgm::same(t("tenant-b"), s));
}

TEST(Hash, SeedChainsFieldsApart) {
    // (ab, c) and (a, bc) are different keys
    uint64_t k1 = pgm::hash_text(t("c"), pgm::hash_text(t("ab"), 0));
    uint64_t k2 = pgm::hash_text(t("bc"), pgm::hash_text(t("a"), 0));
    EXPECT_NE(k1, k2);
    // every length up to two words hashes apart from its neighbours
    std::unordered_set<uint64_t> seen;
    std::string s;
    for (int i = 0; i < 17; ++i, s += 'x')
        EXPECT_TRUE(seen.insert(pgm::hash_text(Text{s.data(), s.size()}, 0)).second) << i;
}

TEST(Hash, FlatIndexGivesOneIdPerKeyAcrossGrowth) {
    pgm::FlatIndex idx;
    std::vector<std::string> keys;
    for (int i = 0; i < 5000; ++i) keys.push_back("key-" + std::to_string(i));
    auto add = [&](const std::string& k, uint32_t next, bool& added) {
        Text kt{k.data(), k.size()};
        return idx.find_or_add(pgm::hash_text(kt, 0), [&](uint32_t id) { return pgm::same(kt, keys[id]); }, next, added);
    };
    for (uint32_t i = 0; i < keys.size(); ++i) {
        bool added = false;
        EXPECT_EQ(add(keys[i], i, added), i);
        EXPECT_TRUE(added);
    }
    for (uint32_t i = 0; i < keys.size(); ++i) {
        bool added = true;
        EXPECT_EQ(add(keys[i], 99999, added), i);
        EXPECT_FALSE(added);
    }
}
