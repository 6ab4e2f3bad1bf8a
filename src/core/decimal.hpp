// decimal.hpp: exact decimal numbers and money for the cost path.
//
// No binary floating point is used anywhere on the cost path. A Decimal is
// an integer mantissa with a power-of-ten scale; Money is an integer count of
// picodollars (1e-12 USD). Products are formed in 256-bit checked integers
// (Boost.Multiprecision), so an overflow raises Code::Overflow instead of
// wrapping.
#pragma once
#include "core_only.hpp"

#include <boost/multiprecision/cpp_int.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "error.hpp"

namespace pgm {

using Int128 = boost::multiprecision::checked_int128_t;
using Int256 = boost::multiprecision::checked_int256_t;

constexpr int kMaxScale = 24;  // digits after the point a Decimal may carry

// pow10_256 returns 10^n for 0 <= n <= 76.
const Int256& pow10_256(int n);

struct Decimal {
    Int128 mant = 0;  // value = mant * 10^-scale
    int scale = 0;    // 0..kMaxScale, trailing zeros of mant removed

    Decimal() = default;
    Decimal(Int128 m, int s) : mant(std::move(m)), scale(s) { normalize(); }
    static Decimal from_int(int64_t v) { return Decimal(Int128(v), 0); }

    // parse reads a JSON number ("-12.5e-3"); throws Code::InvalidValue.
    static Decimal parse(std::string_view text);

    bool is_zero() const { return mant == 0; }
    int sign() const { return mant > 0 ? 1 : (mant < 0 ? -1 : 0); }
    bool is_integer() const { return scale == 0; }
    std::string to_string() const;
    void normalize();
};

Decimal operator+(const Decimal& a, const Decimal& b);
Decimal operator-(const Decimal& a, const Decimal& b);
int compare(const Decimal& a, const Decimal& b);
inline bool operator==(const Decimal& a, const Decimal& b) { return a.mant == b.mant && a.scale == b.scale; }
inline bool operator!=(const Decimal& a, const Decimal& b) { return !(a == b); }
inline bool operator<(const Decimal& a, const Decimal& b) { return compare(a, b) < 0; }
inline bool operator>(const Decimal& a, const Decimal& b) { return compare(a, b) > 0; }

// to_native converts to the compiler's 128-bit integer; throws Code::Overflow
// beyond its range.
__int128 to_native(const Int128& v);

// Money is an exact amount in picodollars.
struct Money {
    Int128 pico = 0;
    std::string to_string() const;  // "0.00000375", trailing zeros trimmed
    Money& operator+=(const Money& o) {
        pico += o.pico;
        return *this;
    }
};
inline bool operator==(const Money& a, const Money& b) { return a.pico == b.pico; }

// ScaledPrice is price / per made ready for Amount: over the common
// denominator, and as a whole number of picodollars per unit when it is one
// (a token price with at most 6 decimals per million is).
struct ScaledPrice {
    Int256 num = 0;         // price / per over the common denominator
    int64_t pico = 0;       // price / per in picodollars, when `whole`
    bool whole = false;
};

// Amount is an exact rational sum of quantity * price / per terms, kept as
// numerator over a fixed denominator so that adding terms loses nothing; it
// is rounded to Money once, at the end of a call. While every term is a
// whole quantity at a whole picodollar price (the usual token call) the sum
// is kept in native 128-bit picodollars, exactly, and the 256-bit form is
// built only for the first term that needs it or would overflow.
class Amount {
  public:
    // scale_price lifts price / per to the common denominator once, so that
    // pricing a quantity costs one multiplication (catalogs keep it).
    static ScaledPrice scale_price(const Decimal& price, int64_t per);
    // add adds qty * price / per.
    void add(const Decimal& qty, const Decimal& price, int64_t per);
    // add_scaled adds qty * price / per for a price from scale_price.
    void add_scaled(const Decimal& qty, const ScaledPrice& price);
    void add(const Amount& other);
    // to_money rounds half to even to picodollars; exact when the sum has
    // at most 12 decimals (every price per million with 6 decimals). When
    // exact is given it says whether nothing was lost.
    Money to_money(bool* exact = nullptr) const;
    bool exact_in_pico() const;  // true when to_money() loses nothing
    bool is_zero() const { return wide_ ? num_ == 0 : pico_ == 0; }
    bool wide() const { return wide_; }  // the 256-bit form is in use (tests)

  private:
    void widen();
    // !wide_: value = pico_ picodollars; wide_: value = num_ /
    // (10^kAmountScale * kAmountPer)
    __int128 pico_ = 0;
    Int256 num_ = 0;
    bool wide_ = false;
};

// from_native converts the compiler's 128-bit integer to Int128.
Int128 from_native(__int128 v);

// kAmountPer is a common multiple of every meter's `per` (1, 1e3, 1e6, 1e9,
// 3600); meters declare only divisors of it.
constexpr int64_t kAmountPer = 9000000000LL;  // 2^9 * 3^2 * 5^9
constexpr int kAmountScale = 2 * kMaxScale;

// round_half_even divides num by den (den > 0) rounding ties to even.
Int256 round_half_even(const Int256& num, const Int256& den);

}  // namespace pgm
