// forecast.cpp: see forecast.hpp.
#include "forecast.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "error.hpp"

namespace pgm::forecast {

int weekday(int64_t day) {
    int64_t w = (day + 3) % 7;  // 1970-01-01 was a Thursday (3 with Monday 0)
    return static_cast<int>(w < 0 ? w + 7 : w);
}

Model fit(const std::vector<int64_t>& days, const std::vector<double>& values) {
    if (days.size() != values.size()) throw Error(Code::InvalidValue, "days and values differ in length");
    Model m;
    m.days = static_cast<int>(days.size());
    if (m.days == 0) return m;
    m.first = days.front();
    m.last = days.back();
    for (size_t i = 0; i < days.size(); i++) {
        if (!std::isfinite(values[i]) || values[i] < 0) throw Error(Code::InvalidValue, "a day's cost must be >= 0");
        if (i > 0 && days[i] <= days[i - 1]) throw Error(Code::InvalidValue, "days must ascend");
    }
    double sum = 0;
    for (double v : values) sum += v;
    m.mean = sum / m.days;
    if (m.mean <= 0) return m;  // nothing spent: level 0, no trend

    // the level and trend by least squares over the days whose weekday
    // spends at all, with the weekday pattern divided out; the pattern as
    // each weekday's mean ratio to the trend line (so a trend does not leak
    // into the pattern), normalized to average 1 over a week. The two are
    // refitted in turn until the pattern settles.
    bool weekly = m.days >= kWeeklyDays, trend = m.days >= kTrendDays;
    for (int round = 0; round < (weekly ? 100 : 1); round++) {
        double sx = 0, sy = 0, k = 0;
        for (size_t i = 0; i < days.size(); i++) {
            double f = m.factor[weekday(days[i])];
            if (f <= 0) continue;
            sx += static_cast<double>(days[i]);
            sy += values[i] / f;
            k += 1;
        }
        m.t_mid = sx / k;
        m.level = sy / k;
        m.slope = 0;
        if (trend) {
            double sxx = 0, sxy = 0;
            for (size_t i = 0; i < days.size(); i++) {
                double f = m.factor[weekday(days[i])];
                if (f <= 0) continue;
                double dx = static_cast<double>(days[i]) - m.t_mid;
                sxx += dx * dx;
                sxy += dx * (values[i] / f - m.level);
            }
            m.trend = sxx > 0;
            if (m.trend) m.slope = sxy / sxx;
        }
        if (!weekly) break;
        std::array<double, 7> s{}, n{};
        for (size_t i = 0; i < days.size(); i++) {
            double line = m.level + m.slope * (static_cast<double>(days[i]) - m.t_mid);
            if (line <= 0) continue;
            int w = weekday(days[i]);
            s[w] += values[i] / line;
            n[w] += 1;
        }
        double week = 0;
        std::array<double, 7> f{};
        for (int w = 0; w < 7; w++) {
            f[w] = n[w] > 0 ? s[w] / n[w] : 0;
            week += f[w];
        }
        if (week <= 0) break;
        m.weekly = true;
        double moved = 0;
        for (int w = 0; w < 7; w++) {
            double nf = f[w] * 7 / week;
            moved = std::max(moved, std::fabs(nf - m.factor[w]));
            m.factor[w] = nf;
        }
        if (moved < 1e-13) break;
    }
    return m;
}

double predict(const Model& m, int64_t day) {
    if (m.days == 0 || m.mean <= 0) return 0;
    double v = (m.level + m.slope * (static_cast<double>(day) - m.t_mid)) * m.factor[weekday(day)];
    return v > 0 ? v : 0;
}

std::string describe(const Model& m) {
    char buf[512];
    if (m.days == 0) return "no whole day in the baseline: projected 0";
    if (m.mean <= 0) {
        std::snprintf(buf, sizeof buf, "nothing spent in the %d baseline days: projected 0", m.days);
        return buf;
    }
    double at_end = m.level + m.slope * (static_cast<double>(m.last) - m.t_mid);
    std::string s;
    std::snprintf(buf, sizeof buf, "%d whole UTC days of baseline, mean %.6f a day; ", m.days, m.mean);
    s += buf;
    if (m.trend)
        std::snprintf(buf, sizeof buf,
                      "linear trend by least squares: %.6f a day at the baseline's end, %+.6f a day per day; ",
                      at_end, m.slope);
    else
        std::snprintf(buf, sizeof buf, "no trend (fewer than %d days): %.6f a day; ", kTrendDays, m.level);
    s += buf;
    if (m.weekly) {
        static const char* names[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
        s += "weekday factors";
        for (int w = 0; w < 7; w++) {
            std::snprintf(buf, sizeof buf, " %s %.2f", names[w], m.factor[w]);
            s += buf;
        }
    } else {
        std::snprintf(buf, sizeof buf, "no weekday pattern (fewer than %d days)", kWeeklyDays);
        s += buf;
    }
    return s;
}

}  // namespace pgm::forecast
