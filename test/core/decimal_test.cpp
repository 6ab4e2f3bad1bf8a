#include <gtest/gtest.h>

#include "decimal.hpp"
#include "error.hpp"

using namespace pgm;

TEST(Decimal, ParsesJsonNumbersExactly) {
    EXPECT_EQ(Decimal::parse("0.075").to_string(), "0.075");
    EXPECT_EQ(Decimal::parse("1.50000").to_string(), "1.5");
    EXPECT_EQ(Decimal::parse("2.5e-06").to_string(), "0.0000025");
    EXPECT_EQ(Decimal::parse("3E2").to_string(), "300");
    EXPECT_EQ(Decimal::parse("-0.0").to_string(), "0");
    EXPECT_EQ(Decimal::parse("0.18000000000000002").to_string(), "0.18000000000000002");
    EXPECT_EQ(Decimal::parse("12345678901234567890").to_string(), "12345678901234567890");
}

TEST(Decimal, RejectsWhatIsNotANumber) {
    for (const char* bad : {"", "-", "1.", ".5x", "abc", "1e", "1e+", "--1", "0x10", "1 "}) {
        try {
            Decimal::parse(bad);
            ADD_FAILURE() << "accepted " << bad;
        } catch (const Error& e) {
            EXPECT_EQ(e.code, Code::InvalidValue) << bad;
        }
    }
}

TEST(Decimal, TooManyDecimalsOrDigitsIsAnError) {
    EXPECT_THROW(Decimal::parse("1e-40"), Error);
    EXPECT_THROW(Decimal::parse("1e500"), Error);
    EXPECT_THROW(Decimal::parse(std::string(80, '9')), Error);
}

TEST(Decimal, AddsAndComparesAtDifferentScales) {
    Decimal a = Decimal::parse("0.1"), b = Decimal::parse("0.02");
    EXPECT_EQ((a + b).to_string(), "0.12");
    EXPECT_EQ((a - b).to_string(), "0.08");
    EXPECT_EQ((b - a).to_string(), "-0.08");
    EXPECT_LT(compare(b, a), 0);
    EXPECT_EQ(compare(Decimal::parse("1.0"), Decimal::parse("1")), 0);
}

TEST(Amount, FiftyTokensOfGeminiFlashAreExact) {
    // the seed report: a Decimal(10,6) column rounds 3.75e-6 USD by 7 %
    Amount a;
    a.add(Decimal::from_int(50), Decimal::parse("0.075"), 1000000);
    EXPECT_TRUE(a.exact_in_pico());
    EXPECT_EQ(a.to_money().to_string(), "0.00000375");
}

TEST(Amount, RoundsHalfToEvenOnlyWhenInexact) {
    Amount third;  // 1 second at 1 USD/hour = 0.000277777...
    third.add(Decimal::from_int(1), Decimal::from_int(1), 3600);
    EXPECT_FALSE(third.exact_in_pico());
    EXPECT_EQ(third.to_money().to_string(), "0.000277777778");
    EXPECT_EQ(round_half_even(Int256(5), Int256(2)), Int256(2));
    EXPECT_EQ(round_half_even(Int256(7), Int256(2)), Int256(4));
    EXPECT_EQ(round_half_even(Int256(-5), Int256(2)), Int256(-2));
    EXPECT_EQ(round_half_even(Int256(-7), Int256(2)), Int256(-4));
}

TEST(Amount, OverflowIsAnErrorNotAWrap) {
    Amount a;
    try {
        for (int i = 0; i < 10; ++i)
            a.add(Decimal::parse("99999999999999999999999999999999999999"),
                  Decimal::parse("99999999999999999999999999999999999999"), 1);
        a.to_money();
        ADD_FAILURE() << "no overflow";
    } catch (const Error& e) {
        EXPECT_EQ(e.code, Code::Overflow);
    } catch (const std::overflow_error&) {
        SUCCEED();  // Boost's checked integer refused the product
    }
}

TEST(Errors, EveryCodeHasOneSqlstate) {
    for (Code c : {Code::InvalidValue, Code::InvalidJson, Code::NotAnObject, Code::NotANumber, Code::MissingMember,
                   Code::UnknownMeter, Code::UnknownProvider, Code::NoPrice, Code::InvalidCatalog, Code::InvalidTime,
                   Code::Overflow, Code::OutOfMemory, Code::Internal}) {
        std::string s = sqlstate(c);
        EXPECT_EQ(s.size(), 5u) << code_name(c);
    }
    // the bad inputs the issue names each get their own SQLSTATE
    EXPECT_STREQ(sqlstate(Code::InvalidValue), "22023");
    EXPECT_STREQ(sqlstate(Code::MissingMember), "2203A");
    EXPECT_STREQ(sqlstate(Code::UnknownProvider), "42704");
    EXPECT_STREQ(sqlstate(Code::NoPrice), "PM001");
}

TEST(Native, ConvertsExactlyAndRefusesWhatDoesNotFit) {
    EXPECT_TRUE(to_native(Int128(0)) == 0);
    EXPECT_TRUE(to_native(Int128(-5)) == -5);
    Int128 big = (Int128(1) << 100) + 7;
    __int128 nb = (static_cast<__int128>(1) << 100) + 7;
    EXPECT_TRUE(to_native(big) == nb);
    EXPECT_TRUE(to_native(-big) == -nb);
    EXPECT_THROW(to_native(Int128(1) << 127), Error);
}
