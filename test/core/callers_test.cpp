// callers_test.cpp: the hour's callers, as meter._caller_hours states them.
#include <gtest/gtest.h>

#include <string>

#include "callers.hpp"

using namespace pgm::callers;
using pgm::Text;

namespace {

Text t(const char* s) { return Text{s, std::char_traits<char>::length(s)}; }
const Text kNull{};
constexpr int64_t kSec = 1000000;

}  // namespace

TEST(Callers, GroupsByTenantAndEndpointWithNullApart) {
    Hour h;
    size_t a = h.add(t("app"), t("chat"), t("s1"), kNull, false, 0);
    size_t b = h.add(t("app"), kNull, t("s1"), kNull, false, 0);
    size_t c = h.add(t("app"), t(""), t("s1"), kNull, false, 0);
    size_t d = h.add(t("other"), t("chat"), t("s1"), kNull, false, 0);
    EXPECT_EQ(h.add(t("app"), t("chat"), t("s2"), kNull, false, 0), a);
    EXPECT_EQ((std::vector<size_t>{a, b, c, d}), (std::vector<size_t>{0, 1, 2, 3}));
    auto e = h.endpoints();
    ASSERT_EQ(e.size(), 4u);
    EXPECT_EQ(e[0].requests, 2);
    EXPECT_FALSE(e[1].endpoint.has_value());
    EXPECT_EQ(*e[2].endpoint, "");
    EXPECT_EQ(e[3].tenant, "other");
}

TEST(Callers, KeysDoNotRunTogether) {
    Hour h;
    h.add(t("ab"), t("c"), t("s"), kNull, false, 0);
    h.add(t("a"), t("bc"), t("s"), kNull, false, 0);
    EXPECT_EQ(h.endpoints().size(), 2u);
    // a session "x" and a subject "x" calling without one are two callers
    Hour g;
    for (int i = 0; i < 2; i++) {
        g.add(t("app"), t("e"), t("x"), kNull, false, i * kSec);
        g.add(t("app"), t("e"), kNull, t("x"), false, i * kSec);
    }
    EXPECT_EQ(g.endpoints()[0].callers, 2);
}

TEST(Callers, CallersAreSessionsOrSubjectsWithoutOne) {
    Hour h;
    // a session with two subjects: one caller, named by the greatest subject
    h.add(t("app"), t("e"), t("s1"), t("alice"), false, 10 * kSec);
    h.add(t("app"), t("e"), t("s1"), t("bob"), false, 20 * kSec);
    // a subject without a session
    h.add(t("app"), t("e"), kNull, t("carol"), false, 0);
    h.add(t("app"), t("e"), kNull, t("carol"), true, 60 * kSec);
    // calls with neither: counted, but no caller
    h.add(t("app"), t("e"), kNull, kNull, true, 0);
    h.add(t("app"), t("e"), kNull, kNull, true, 5 * kSec);
    // a caller with one call: not among the callers with two or more
    h.add(t("app"), t("e"), t("s2"), kNull, false, 0);
    auto e = h.endpoints();
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].requests, 7);
    EXPECT_EQ(e[0].callers, 2);
    auto b = h.busy(2);
    ASSERT_EQ(b.size(), 2u);
    EXPECT_EQ(*b[0].session, "s1");
    EXPECT_EQ(*b[0].subject, "bob");
    EXPECT_EQ(b[0].first_us, 10 * kSec);
    EXPECT_EQ(b[0].last_us, 20 * kSec);
    EXPECT_FALSE(b[1].session.has_value());
    EXPECT_EQ(*b[1].subject, "carol");
    EXPECT_EQ(b[1].empty, 1);
    EXPECT_EQ(b[1].requests, 2);
    EXPECT_TRUE(h.busy(3).empty());
}

TEST(Callers, RatesAndTheirMedian) {
    // a call every 10 s for 5 minutes: 30 calls, 29 over 4.83 minutes
    EXPECT_DOUBLE_EQ(rate_per_min(30, 0, 290 * kSec), 29.0 / (290.0 / 60.0));
    // a burst within a second counts as a second
    EXPECT_DOUBLE_EQ(rate_per_min(5, 0, kSec / 2), 240.0);
    // percentile_cont(0.5): the middle one, or the mean of the two middle ones
    EXPECT_EQ(median({}), std::nullopt);
    EXPECT_DOUBLE_EQ(*median({3, 1, 2}), 2.0);
    EXPECT_DOUBLE_EQ(*median({10, 1, 3, 2}), 2.5);
    Hour h;
    for (int i = 0; i < 3; i++) h.add(t("app"), t("e"), t("slow"), kNull, false, i * 60 * kSec);  // 1 a minute
    for (int i = 0; i < 3; i++) h.add(t("app"), t("e"), t("mid"), kNull, false, i * 20 * kSec);   // 3 a minute
    for (int i = 0; i < 61; i++) h.add(t("app"), t("e"), t("fast"), kNull, false, i * kSec);      // 60 a minute
    auto e = h.endpoints();
    EXPECT_EQ(e[0].callers, 3);
    EXPECT_DOUBLE_EQ(*e[0].median_per_min, 3.0);
    auto b = h.busy(15);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(*b[0].session, "fast");
    EXPECT_EQ(b[0].requests, 61);
}

namespace {

constexpr int64_t kHour = 3600 * kSec;

BusyHour busy_hour(const char* session, const char* subject, int64_t hour, int64_t n, int64_t empty = 0) {
    BusyHour b;
    b.tenant = t("app");
    b.endpoint = t("poll");
    b.session = session ? t(session) : kNull;
    b.subject = subject ? t(subject) : kNull;
    b.bucket_us = hour * kHour;
    b.requests = n;
    b.empty = empty;
    b.first_us = hour * kHour + 10 * kSec;
    b.last_us = hour * kHour + 50 * 60 * kSec;
    return b;
}

}  // namespace

TEST(Callers, RunsJoinNeighbouringHoursInAnyOrder) {
    Runs r;
    // s1: hours 3, 1, 2 (given out of order) then 5: two runs
    r.add(busy_hour("s1", "bob", 3, 20, 20));
    r.add(busy_hour("s1", "alice", 1, 15));
    r.add(busy_hour("s1", nullptr, 5, 30, 1));
    r.add(busy_hour("s1", "ann", 2, 16, 2));
    // a subject without a session, and the same name as a session: apart
    r.add(busy_hour(nullptr, "s1", 2, 17));
    r.add(busy_hour(nullptr, "s1", 3, 18));
    auto runs = r.runs();
    ASSERT_EQ(runs.size(), 3u);
    EXPECT_EQ(*runs[0].session, "s1");
    EXPECT_EQ(runs[0].requests, 15 + 16 + 20);
    EXPECT_EQ(runs[0].empty, 22);
    EXPECT_EQ(runs[0].first_us, 1 * kHour + 10 * kSec);
    EXPECT_EQ(runs[0].last_us, 3 * kHour + 50 * 60 * kSec);
    EXPECT_EQ(*runs[0].subject, "bob");  // the greatest bytewise
    // the run's rate, as the endpoint hours' medians are taken
    EXPECT_DOUBLE_EQ(runs[0].per_min, rate_per_min(51, runs[0].first_us, runs[0].last_us));
    EXPECT_DOUBLE_EQ(runs[0].per_min, 50.0 / ((2 * 3600.0 + 49 * 60 + 50) / 60.0));
    EXPECT_EQ(runs[1].requests, 30);
    EXPECT_FALSE(runs[1].subject.has_value());  // its one hour had none
    EXPECT_EQ(runs[1].first_us, 5 * kHour + 10 * kSec);
    EXPECT_FALSE(runs[2].session.has_value());
    EXPECT_EQ(*runs[2].subject, "s1");
    EXPECT_EQ(runs[2].requests, 35);
    EXPECT_EQ(runs[2].tenant, "app");
    EXPECT_EQ(*runs[2].endpoint, "poll");
}

TEST(Callers, RunsKeepEndpointsAndTenantsApart) {
    Runs r;
    BusyHour a = busy_hour("s", nullptr, 1, 15), b = busy_hour("s", nullptr, 2, 15), c = busy_hour("s", nullptr, 3, 15);
    b.endpoint = kNull;   // NULL is not ''
    c.endpoint = t("");
    BusyHour d = busy_hour("s", nullptr, 2, 15);
    d.tenant = t("other");
    for (const BusyHour& x : {a, b, c, d}) r.add(x);
    auto runs = r.runs();
    ASSERT_EQ(runs.size(), 4u);
    EXPECT_FALSE(runs[1].endpoint.has_value());
    EXPECT_EQ(*runs[2].endpoint, "");
    EXPECT_EQ(runs[3].tenant, "other");
    // an hour given twice joins its run
    Runs twice;
    twice.add(a);
    twice.add(a);
    twice.add(busy_hour("s", nullptr, 2, 15));
    ASSERT_EQ(twice.runs().size(), 1u);
    EXPECT_EQ(twice.runs()[0].requests, 45);
    EXPECT_TRUE(Runs().runs().empty());
}
