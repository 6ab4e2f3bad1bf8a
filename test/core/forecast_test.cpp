// forecast_test.cpp: the projection's fit recovers what the baseline holds.
#include <gtest/gtest.h>

#include <cmath>

#include "error.hpp"
#include "forecast.hpp"

using namespace pgm;
using namespace pgm::forecast;

namespace {

// 2026-11-02 was a Monday: days since 1970-01-01
constexpr int64_t kMonday = 20759;

struct Series {
    std::vector<int64_t> days;
    std::vector<double> values;
};

template <class F>
Series series(int64_t first, int n, F f) {
    Series s;
    for (int i = 0; i < n; i++) {
        s.days.push_back(first + i);
        s.values.push_back(f(first + i, i));
    }
    return s;
}

}  // namespace

TEST(Forecast, Weekday) {
    EXPECT_EQ(weekday(0), 3);  // 1970-01-01, a Thursday
    EXPECT_EQ(weekday(kMonday), 0);
    EXPECT_EQ(weekday(kMonday + 6), 6);
    EXPECT_EQ(weekday(-1), 2);  // a Wednesday
}

TEST(Forecast, EmptyAndZeroBaselinesProjectZero) {
    Model m = fit({}, {});
    EXPECT_EQ(predict(m, kMonday), 0);
    EXPECT_NE(describe(m).find("no whole day"), std::string::npos);
    auto s = series(kMonday, 28, [](int64_t, int) { return 0.0; });
    m = fit(s.days, s.values);
    EXPECT_EQ(predict(m, kMonday + 40), 0);
    EXPECT_NE(describe(m).find("nothing spent"), std::string::npos);
}

TEST(Forecast, FlatSeriesStaysFlat) {
    auto s = series(kMonday, 28, [](int64_t, int) { return 12.5; });
    Model m = fit(s.days, s.values);
    EXPECT_TRUE(m.weekly);
    EXPECT_TRUE(m.trend);
    EXPECT_NEAR(m.slope, 0, 1e-12);
    for (int d = 0; d < 60; d++) EXPECT_NEAR(predict(m, kMonday + 28 + d), 12.5, 1e-9);
}

TEST(Forecast, RecoversWeekdayPattern) {
    // weekdays 10, weekends 2
    auto s = series(kMonday, 28, [](int64_t d, int) { return weekday(d) >= 5 ? 2.0 : 10.0; });
    Model m = fit(s.days, s.values);
    ASSERT_TRUE(m.weekly);
    EXPECT_NEAR(m.slope, 0, 1e-9);
    EXPECT_NEAR(predict(m, kMonday + 28), 10, 1e-9);      // a Monday
    EXPECT_NEAR(predict(m, kMonday + 28 + 5), 2, 1e-9);  // a Saturday
    double week = 0;
    for (int d = 0; d < 7; d++) week += m.factor[d];
    EXPECT_NEAR(week, 7, 1e-9);
    EXPECT_NE(describe(m).find("Sat 0.26"), std::string::npos) << describe(m);
}

TEST(Forecast, RecoversTrendUnderThePattern) {
    // grows 1 a day, times 1.5 on weekdays and 0.25 on weekends
    auto f = [](int64_t d, int i) { return (100.0 + i) * (weekday(d) >= 5 ? 0.25 : 1.5); };
    auto s = series(kMonday, 56, f);
    Model m = fit(s.days, s.values);
    ASSERT_TRUE(m.trend);
    EXPECT_NEAR(m.slope * m.factor[0], 1.5, 0.05);  // per day on a weekday
    for (int d = 56; d < 90; d++) EXPECT_NEAR(predict(m, kMonday + d), f(kMonday + d, d), 0.02 * f(kMonday + d, d));
}

TEST(Forecast, ShortBaselineHasNoPatternOrTrend) {
    auto s = series(kMonday, 5, [](int64_t, int i) { return 1.0 + i; });
    Model m = fit(s.days, s.values);
    EXPECT_FALSE(m.weekly);
    EXPECT_FALSE(m.trend);
    EXPECT_NEAR(predict(m, kMonday + 30), 3, 1e-12);  // the mean
    EXPECT_NE(describe(m).find("no trend"), std::string::npos);
    EXPECT_NE(describe(m).find("no weekday pattern"), std::string::npos);
}

TEST(Forecast, FallingTrendNeverProjectsBelowZero) {
    auto s = series(kMonday, 21, [](int64_t, int i) { return 40.0 - 2 * i; });
    Model m = fit(s.days, s.values);
    EXPECT_LT(m.slope, 0);
    EXPECT_EQ(predict(m, kMonday + 200), 0);
}

TEST(Forecast, WeekdayNeverSpendingStaysZero) {
    // nothing on Sundays
    auto s = series(kMonday, 28, [](int64_t d, int) { return weekday(d) == 6 ? 0.0 : 7.0; });
    Model m = fit(s.days, s.values);
    EXPECT_EQ(predict(m, kMonday + 34), 0);  // a Sunday
    EXPECT_NEAR(predict(m, kMonday + 35), 7, 1e-9);
}

TEST(Forecast, RefusesBadInput) {
    EXPECT_THROW(fit({1, 2}, {1.0}), Error);
    EXPECT_THROW(fit({2, 1}, {1.0, 1.0}), Error);
    EXPECT_THROW(fit({1}, {-1.0}), Error);
    EXPECT_THROW(fit({1}, {NAN}), Error);
}
