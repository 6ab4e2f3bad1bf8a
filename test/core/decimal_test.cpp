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

TEST(Amount, WholePicodollarTermsStayNativeAndExact) {
    // 0.15 USD per million tokens is 150,000 picodollars a token: the sum
    // stays in 128 bits; a price per hour is not whole picodollars a second
    // and moves the sum to the 256-bit form without losing the terms before
    Amount a;
    a.add(Decimal::from_int(1000), Decimal::parse("0.15"), 1000000);
    a.add(Decimal::from_int(30), Decimal::parse("0.6"), 1000000);
    EXPECT_FALSE(a.wide());
    EXPECT_EQ(a.to_money().to_string(), "0.000168");
    a.add(Decimal::from_int(1), Decimal::from_int(1), 3600);
    EXPECT_TRUE(a.wide());
    EXPECT_FALSE(a.exact_in_pico());
    EXPECT_EQ(a.to_money().to_string(), "0.000445777778");  // 0.000168 + 0.000277777...
    // a fractional quantity at a whole price takes the 256-bit form too
    Amount f;
    f.add(Decimal::parse("2.5"), Decimal::parse("0.15"), 1000000);
    EXPECT_TRUE(f.wide());
    EXPECT_EQ(f.to_money().to_string(), "0.000000375");
    // sums of amounts: native with native, and native with wide
    Amount n1, n2;
    n1.add(Decimal::from_int(7), Decimal::parse("3"), 1000000);
    n2.add(Decimal::from_int(9), Decimal::parse("15"), 1000000);
    n1.add(n2);
    EXPECT_FALSE(n1.wide());
    EXPECT_EQ(n1.to_money().to_string(), "0.000156");
    n1.add(a);
    EXPECT_TRUE(n1.wide());
    EXPECT_EQ(n1.to_money().to_string(), "0.000601777778");
    Amount w;
    w.add(a);
    w.add(n2);
    EXPECT_EQ(w.to_money().to_string(), "0.000580777778");
}

TEST(Amount, LargeNativeSumsWidenExactlyAndOverflowIsNotAWrap) {
    // 10^30 picodollars (10^18 USD) in 128 bits, then a term that needs
    // the 256-bit form: nothing of the first is lost on the way
    Amount a;
    a.add(Decimal::from_int(1000000000000LL), Decimal::parse("1000000"), 1);  // 1e12 units at 1e18 pico
    EXPECT_FALSE(a.wide());
    a.add(Decimal::from_int(1), Decimal::from_int(1), 3600);
    EXPECT_TRUE(a.wide());
    EXPECT_EQ(a.to_money().to_string(), "1000000000000000000.000277777778");
    // terms of about 8e37 picodollars: two fit in 128 bits, the third does
    // not, and no form holds the sum: an error, never a wrapped total
    Decimal qty = Decimal::from_int(9000000000000000000LL);
    Decimal price = Decimal::parse("9000000");  // 9e18 picodollars a unit
    Amount big;
    big.add(qty, price, 1);
    big.add(qty, price, 1);
    EXPECT_FALSE(big.wide());
    EXPECT_EQ(big.to_money().pico, Int128(2) * Int128(9000000000000000000LL) * Int128(9000000000000000000LL));
    bool refused = false;
    try {
        big.add(qty, price, 1);
        big.to_money();
    } catch (const Error& e) {
        refused = e.code == Code::Overflow;
    } catch (const std::overflow_error&) {
        refused = true;  // Boost's checked integer refused the product
    }
    EXPECT_TRUE(refused);
    Int128 t = Int128(1) << 120;
    EXPECT_TRUE(from_native(to_native(-t)) == -t);
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
