// forecast.hpp: the projection of daily cost (meter.projection). A baseline
// of whole days is fitted with a weekday pattern (each weekday's mean over
// the overall mean, when the baseline holds at least two of each weekday)
// and a linear trend (least squares over the days with the weekday pattern
// taken out, when it holds at least two weeks); a day ahead is projected as
// (level + trend * days) * its weekday's factor, never below 0.
//
// Projections are estimates, so they are doubles; what was spent stays
// exact numeric in SQL and is never passed through here.
#pragma once
#include "core_only.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pgm::forecast {

// Days are counted from 1970-01-01 (a Thursday); weekday 0 is Monday.
int weekday(int64_t day);

constexpr int kWeeklyDays = 14;  // two of each weekday for a pattern
constexpr int kTrendDays = 14;   // two weeks for a trend (a week swings with its weekend)

struct Model {
    int days = 0;            // baseline days
    int64_t first = 0, last = 0;
    double mean = 0;         // mean cost per baseline day
    double level = 0;        // the fitted daily cost (weekday pattern out) at t_mid
    double t_mid = 0;        // the day the level is at
    double slope = 0;        // change of the level per day
    bool weekly = false;
    bool trend = false;
    std::array<double, 7> factor{1, 1, 1, 1, 1, 1, 1};
};

// fit: days[i] (ascending, distinct) cost values[i]; days missing from the
// span count as 0 (pass every day of the baseline).
Model fit(const std::vector<int64_t>& days, const std::vector<double>& values);

// predict: the projected cost of a day (>= 0).
double predict(const Model& m, int64_t day);

// describe: the method in words, with the fitted numbers.
std::string describe(const Model& m);

}  // namespace pgm::forecast
