#include "decimal.hpp"

#include <array>

namespace pgm {

const Int256& pow10_256(int n) {
    static const std::array<Int256, 77> table = [] {
        std::array<Int256, 77> t{};
        t[0] = 1;
        for (size_t i = 1; i < t.size(); ++i)
            t[i] = t[i - 1] * 10;
        return t;
    }();
    if (n < 0 || n > 76) throw Error(Code::Overflow, "decimal scale out of range");
    return table[static_cast<size_t>(n)];
}

static Int128 narrow(const Int256& v) {
    static const Int256 max128 = Int256(std::numeric_limits<Int128>::max());
    if (v > max128 || v < -max128)
        throw Error(Code::Overflow, "amount out of range", "The value does not fit in 38 decimal digits.");
    return Int128(v);
}

void Decimal::normalize() {
    while (scale > 0 && mant != 0 && mant % 10 == 0) {
        mant /= 10;
        --scale;
    }
    if (mant == 0) scale = 0;
}

Decimal Decimal::parse(std::string_view s) {
    // fast path: a plain integer of at most 18 digits (token counts)
    if (!s.empty() && s.size() <= 18) {
        size_t k = s[0] == '-' ? 1 : 0;
        if (k < s.size() && (s[k] != '0' || s.size() == k + 1)) {
            int64_t v = 0;
            size_t j = k;
            for (; j < s.size() && s[j] >= '0' && s[j] <= '9'; ++j)
                v = v * 10 + (s[j] - '0');
            if (j == s.size()) {
                Decimal d;
                d.mant = Int128(k ? -v : v);
                return d;
            }
        }
    }
    auto bad = [&] { return Error(Code::InvalidValue, "invalid number \"" + std::string(s.substr(0, 64)) + "\""); };
    size_t i = 0;
    bool neg = false;
    if (i < s.size() && s[i] == '-') {
        neg = true;
        ++i;
    }
    Int256 m = 0;
    int digits = 0, frac = 0;
    bool any = false;
    auto take = [&](bool fractional) {
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            any = true;
            if (m != 0 || s[i] != '0') ++digits;
            if (digits > 60)
                throw Error(Code::Overflow, "number has too many digits",
                            "At most 38 significant digits are kept exactly.");
            m = m * 10 + (s[i] - '0');
            if (fractional) ++frac;
            ++i;
        }
    };
    take(false);
    if (i < s.size() && s[i] == '.') {
        ++i;
        int before = frac;
        take(true);
        if (frac == before) throw bad();
    }
    if (!any) throw bad();
    long exp = 0;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        bool eneg = false;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            ++i;
        }
        if (i >= s.size()) throw bad();
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            exp = exp * 10 + (s[i] - '0');
            if (exp > 1000) throw Error(Code::Overflow, "number exponent out of range");
            ++i;
        }
        if (eneg) exp = -exp;
    }
    if (i != s.size()) throw bad();
    long scale = frac - exp;
    // drop trailing zeros before checking the scale, so 1.50000 is 1.5
    while (scale > 0 && m != 0 && m % 10 == 0) {
        m /= 10;
        --scale;
    }
    if (m == 0) return Decimal();
    if (scale < 0) {
        if (scale < -38) throw Error(Code::Overflow, "number out of range");
        m *= pow10_256(static_cast<int>(-scale));
        scale = 0;
    }
    if (scale > kMaxScale)
        throw Error(Code::InvalidValue, "number \"" + std::string(s.substr(0, 64)) + "\" has too many decimals",
                    "pg_meter keeps at most 24 digits after the decimal point.");
    Decimal d;
    d.mant = narrow(neg ? Int256(-m) : m);
    d.scale = static_cast<int>(scale);
    return d;
}

static std::string format_scaled(Int128 v, int scale) {
    bool neg = v < 0;
    if (neg) v = -v;
    std::string digits = v.str();
    if (scale > 0) {
        if (static_cast<int>(digits.size()) <= scale)
            digits.insert(0, static_cast<size_t>(scale) - digits.size() + 1, '0');
        digits.insert(digits.size() - static_cast<size_t>(scale), ".");
        while (digits.back() == '0')
            digits.pop_back();
        if (digits.back() == '.') digits.pop_back();
    }
    return neg ? "-" + digits : digits;
}

std::string Decimal::to_string() const { return format_scaled(mant, scale); }
std::string Money::to_string() const { return format_scaled(pico, 12); }

static Decimal add_scaled(const Decimal& a, const Decimal& b, int sign) {
    if (a.scale == b.scale) {  // the common case: checked 128-bit arithmetic
        Decimal d;
        d.mant = sign > 0 ? a.mant + b.mant : a.mant - b.mant;
        d.scale = a.scale;
        d.normalize();
        return d;
    }
    int s = std::max(a.scale, b.scale);
    Int256 x = Int256(a.mant) * pow10_256(s - a.scale);
    Int256 y = Int256(b.mant) * pow10_256(s - b.scale);
    return Decimal(narrow(sign > 0 ? x + y : x - y), s);
}
Decimal operator+(const Decimal& a, const Decimal& b) { return add_scaled(a, b, 1); }
Decimal operator-(const Decimal& a, const Decimal& b) { return add_scaled(a, b, -1); }

int compare(const Decimal& a, const Decimal& b) {
    if (a.scale == b.scale) return a.mant < b.mant ? -1 : (a.mant > b.mant ? 1 : 0);
    int s = std::max(a.scale, b.scale);
    Int256 x = Int256(a.mant) * pow10_256(s - a.scale);
    Int256 y = Int256(b.mant) * pow10_256(s - b.scale);
    return x < y ? -1 : (x > y ? 1 : 0);
}

ScaledPrice Amount::scale_price(const Decimal& price, int64_t per) {
    if (per <= 0 || kAmountPer % per != 0)
        throw Error(Code::Internal, "meter divisor does not divide the common denominator");
    ScaledPrice sp;
    // price * 10^(kAmountScale - price.scale) * kAmountPer / per: the price's
    // numerator over the common denominator 10^kAmountScale * kAmountPer
    sp.num = Int256(price.mant) * pow10_256(kAmountScale - price.scale) * Int256(kAmountPer / per);
    if (price.scale <= 12) {
        Int256 p = Int256(price.mant) * pow10_256(12 - price.scale);  // picodollars per `per` units
        if (p % per == 0) {
            Int256 unit = p / per;
            if (unit >= INT64_MIN && unit <= INT64_MAX) {
                sp.pico = static_cast<int64_t>(unit);
                sp.whole = true;
            }
        }
    }
    return sp;
}

static const Int256& pico_den() {
    static const Int256 d = pow10_256(kAmountScale - 12) * Int256(kAmountPer);
    return d;
}

Int128 from_native(__int128 v) {
    bool neg = v < 0;
    unsigned __int128 a = neg ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
    Int128 r = (Int128(static_cast<uint64_t>(a >> 64)) << 64) | Int128(static_cast<uint64_t>(a));
    return neg ? Int128(-r) : r;
}

void Amount::widen() {
    if (wide_) return;
    num_ = Int256(from_native(pico_)) * pico_den();
    wide_ = true;
}

void Amount::add_scaled(const Decimal& qty, const ScaledPrice& price) {
    if (qty.is_zero() || (price.whole && price.pico == 0)) return;
    if (!wide_ && price.whole && qty.scale == 0 && qty.mant >= INT64_MIN && qty.mant <= INT64_MAX) {
        // a whole quantity at a whole picodollar price: exact in 128 bits
        __int128 term = static_cast<__int128>(static_cast<int64_t>(qty.mant)) * price.pico, sum;
        if (!__builtin_add_overflow(pico_, term, &sum)) {
            pico_ = sum;
            return;
        }
    }
    widen();
    // num carries 10^(kAmountScale - price.scale) >= 10^qty.scale, so
    // dividing by 10^qty.scale is exact
    if (qty.scale == 0)
        num_ += Int256(qty.mant) * price.num;
    else
        num_ += Int256(qty.mant) * (price.num / pow10_256(qty.scale));
}

void Amount::add(const Decimal& qty, const Decimal& price, int64_t per) { add_scaled(qty, scale_price(price, per)); }

void Amount::add(const Amount& other) {
    __int128 sum;
    if (!wide_ && !other.wide_ && !__builtin_add_overflow(pico_, other.pico_, &sum)) {
        pico_ = sum;
        return;
    }
    widen();
    if (other.wide_)
        num_ += other.num_;
    else
        num_ += Int256(from_native(other.pico_)) * pico_den();
}

Int256 round_half_even(const Int256& num, const Int256& den) {
    Int256 q = num / den;  // truncates toward zero
    Int256 r = num % den;
    if (r == 0) return q;
    Int256 twice = (r < 0 ? -r : r) * 2;
    bool up = twice > den || (twice == den && (q % 2 != 0));
    if (up) q += (num < 0 ? -1 : 1);
    return q;
}

Money Amount::to_money(bool* exact) const {
    if (!wide_) {
        if (exact) *exact = true;
        Money m;
        m.pico = from_native(pico_);
        return m;
    }
    Int256 q, r;
    boost::multiprecision::divide_qr(num_, pico_den(), q, r);
    if (exact) *exact = r == 0;
    if (r != 0) {
        Int256 twice = (r < 0 ? Int256(-r) : r) * 2;
        if (twice > pico_den() || (twice == pico_den() && q % 2 != 0)) q += (num_ < 0 ? -1 : 1);
    }
    Money m;
    m.pico = narrow(q);
    return m;
}

bool Amount::exact_in_pico() const { return !wide_ || num_ % pico_den() == 0; }

__int128 to_native(const Int128& v) {
    static const Int128 kMax = (Int128(1) << 127) - 1;
    bool neg = v < 0;
    Int128 a = neg ? Int128(-v) : v;
    if (a > kMax) throw Error(Code::Overflow, "a number does not fit in 128 bits");
    uint64_t lo = static_cast<uint64_t>(a & Int128(UINT64_MAX));
    uint64_t hi = static_cast<uint64_t>(a >> 64);
    __int128 r = static_cast<__int128>((static_cast<unsigned __int128>(hi) << 64) | lo);
    return neg ? -r : r;
}

}  // namespace pgm
