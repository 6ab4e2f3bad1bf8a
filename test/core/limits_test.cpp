#include <gtest/gtest.h>

#include <random>

#include "error.hpp"
#include "limits.hpp"

using namespace pgm;
using namespace pgm::limits;

namespace {
constexpr Micros kSec = 1000000;
constexpr Micros kMin = 60 * kSec;
}  // namespace

TEST(Gcra, TenAMinuteAdmitsABurstOfTenThenOneEverySixSeconds) {
    GcraState s;
    Rate r{10, kMin};
    Micros t0 = 1700000000 * kSec;
    for (int i = 0; i < 10; ++i) {
        Answer a = gcra(s, r, t0, 1, true);
        ASSERT_TRUE(a.allowed) << i;
        EXPECT_EQ(a.remaining, 9 - i);
    }
    Answer no = gcra(s, r, t0, 1, true);
    EXPECT_FALSE(no.allowed);
    EXPECT_EQ(no.remaining, 0);
    EXPECT_EQ(no.retry_after, 6 * kSec);  // exact: one emission interval
    EXPECT_EQ(no.reset_after, kMin);
    EXPECT_FALSE(gcra(s, r, t0 + 6 * kSec - 1, 1, true).allowed);
    EXPECT_EQ(gcra(s, r, t0 + 6 * kSec - 1, 1, true).retry_after, 1);
    EXPECT_TRUE(gcra(s, r, t0 + 6 * kSec, 1, true).allowed);
    EXPECT_FALSE(gcra(s, r, t0 + 6 * kSec, 1, true).allowed);
    // idle for a full period: the whole burst again, never more
    Micros later = t0 + 10 * kMin;
    for (int i = 0; i < 10; ++i)
        ASSERT_TRUE(gcra(s, r, later, 1, true).allowed);
    EXPECT_FALSE(gcra(s, r, later, 1, true).allowed);
}

TEST(Gcra, NoBurstAtWindowEdges) {
    // a fixed-window counter admits 2x max around an edge; GCRA admits at
    // most max in any span of one period (plus what drained in it)
    GcraState s;
    Rate r{10, kMin};
    Micros t0 = 59 * kSec;  // one second before a minute boundary
    int admitted = 0;
    for (Micros t = t0; t < t0 + 2 * kSec; t += 100000)
        admitted += gcra(s, r, t, 1, true).allowed;
    EXPECT_EQ(admitted, 10);
}

TEST(Gcra, AnIntervalThatIsNotWholeMicrosecondsStaysExact) {
    // 7 a minute: 8.571428... s a cell; after 7 the next one is due in
    // exactly 60/7 s, rounded up to the microsecond
    GcraState s;
    Rate r{7, kMin};
    for (int i = 0; i < 7; ++i)
        ASSERT_TRUE(gcra(s, r, 0, 1, true).allowed);
    Answer no = gcra(s, r, 0, 1, true);
    EXPECT_EQ(no.retry_after, 8571429);
    // over a long run exactly 7 a minute pass, no drift: the k-th cell is
    // due at k * 60/7 s, so k = 1..489 fall before 70 minutes (the 490th
    // is due at 4200 s exactly)
    int passed = 0;
    for (Micros t = 0; t < 70 * kMin; t += 1000)
        passed += gcra(s, r, t, 1, true).allowed;
    EXPECT_EQ(passed, 7 * 70 - 1);
    EXPECT_TRUE(gcra(s, r, 70 * kMin, 1, true).allowed);
}

TEST(Gcra, AskingDoesNotTakeAndARefusalChangesNothing) {
    GcraState s;
    Rate r{2, kSec};
    EXPECT_TRUE(gcra(s, r, 0, 1, false).allowed);
    EXPECT_EQ(s.tat, 0);
    EXPECT_TRUE(gcra(s, r, 0, 2, true).allowed);
    i128 tat = s.tat;
    EXPECT_FALSE(gcra(s, r, 0, 1, true).allowed);
    EXPECT_EQ(s.tat, tat);
    Answer probe = gcra(s, r, 0, 0, true);  // zero cells: what is left
    EXPECT_TRUE(probe.allowed);
    EXPECT_EQ(probe.remaining, 0);
    EXPECT_EQ(probe.used, 2);
}

TEST(Gcra, MoreCellsThanTheLimitNeverPassAndBadInputIsRefused) {
    GcraState s;
    Answer a = gcra(s, Rate{5, kSec}, 0, 6, true);
    EXPECT_FALSE(a.allowed);
    EXPECT_EQ(a.retry_after, kNever);
    EXPECT_THROW(gcra(s, Rate{0, kSec}, 0, 1, true), Error);
    EXPECT_THROW(gcra(s, Rate{5, 0}, 0, 1, true), Error);
    EXPECT_THROW(gcra(s, Rate{5, kSec}, 0, -1, true), Error);
}

TEST(Gcra, ConcurrentTakersNeverGetMoreThanTheRateAllows) {
    // any interleaving of takers on one state: in [0, T] at most
    // max + T * max / period cells pass
    std::mt19937_64 rng(5);
    GcraState s;
    Rate r{100, kSec};
    int passed = 0;
    Micros t = 0;
    for (int i = 0; i < 100000; ++i) {
        t += static_cast<Micros>(rng() % 2000);
        passed += gcra(s, r, t, 1 + static_cast<int64_t>(rng() % 3), true).allowed ? 1 : 0;
    }
    EXPECT_LE(passed, 100 + t * 100 / kSec);
    EXPECT_GT(passed, 0);
}

TEST(Budget, FitsUpToTheMaximumAndNotOneUnitMore) {
    Micros now = 1000, end = 1000 + kMin;
    Answer a = budget(100, 60, 30, 10, now, end);
    EXPECT_TRUE(a.allowed);
    EXPECT_EQ(a.remaining, 0);
    Answer b = budget(100, 60, 30, 11, now, end);
    EXPECT_FALSE(b.allowed);
    EXPECT_EQ(b.remaining, 10);
    EXPECT_EQ(b.retry_after, kMin);  // the next window
    EXPECT_EQ(b.reset_after, kMin);
    EXPECT_EQ(budget(100, 0, 0, 101, now, end).retry_after, kNever);
    EXPECT_EQ(budget(100, 90, 0, 20, now, kMaxTime).retry_after, kNever);  // rolling: the caller knows
    EXPECT_THROW(budget(100, 0, 0, -1, now, end), Error);
    // used up: nothing passes, not even a request that estimates nothing
    EXPECT_FALSE(budget(100, 70, 30, 0, now, end).allowed);
    EXPECT_TRUE(budget(100, 70, 29, 0, now, end).allowed);
    EXPECT_FALSE(budget(0, 0, 0, 0, now, end).allowed);
    // money at 24 decimals: exact far beyond 64 bits
    i128 usd = static_cast<i128>(1000000000000) * 1000000000000;  // 1 USD
    EXPECT_TRUE(budget(5 * usd, 4 * usd, usd - 1, 1, now, end).allowed);
    EXPECT_FALSE(budget(5 * usd, 4 * usd, usd - 1, 2, now, end).allowed);
}

TEST(Windows, StartByArithmeticBeforeAndAfterTheEpoch) {
    EXPECT_EQ(window_start(125 * kSec, kMin), 120 * kSec);
    EXPECT_EQ(window_start(-1, kMin), -kMin);
    EXPECT_EQ(window_start(0, kMin), 0);
    EXPECT_EQ(window_start(125 * kSec, kMin, 30 * kSec), 90 * kSec);
    EXPECT_EQ(window_start(kMinTime, kMin), kMinTime);
    EXPECT_EQ(window_start(kMaxTime, 1), kMaxTime);
    EXPECT_THROW(window_start(0, 0), Error);
}

TEST(Decide, ARefusalIsDecidedByTheLongestWaitAndAPassByTheLeastShareLeft) {
    Answer open{true, 100, 10, 0, 90, 0, 0}, tight{true, 10, 8, 0, 2, 0, 0};
    Answer wait5{false, 10, 10, 0, 0, 5 * kSec, 0}, wait60{false, 10, 10, 0, 0, kMin, 0},
        never{false, 10, 10, 0, 0, kNever, 0};
    EXPECT_EQ(decide({}).decided_by, -1);
    EXPECT_TRUE(decide({}).allowed);
    Verdict pass = decide({open, tight});
    EXPECT_TRUE(pass.allowed);
    EXPECT_EQ(pass.decided_by, 1);
    Verdict no = decide({open, wait5, tight, wait60});
    EXPECT_FALSE(no.allowed);
    EXPECT_EQ(no.decided_by, 3);
    EXPECT_EQ(decide({wait60, never, wait5}).decided_by, 1);
}
