#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <regex>

#include "dashboard.hpp"
#include "error.hpp"
#include "json.hpp"
#include "test_util.hpp"

using namespace pgm;
namespace db = pgm::dashboard;

namespace {

size_t count_of(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
}

// tags lists every tag of a page, "<...>"
std::vector<std::string> tags(const std::string& page) {
    std::vector<std::string> out;
    for (size_t at = page.find('<'); at != std::string::npos; at = page.find('<', at + 1))
        out.push_back(page.substr(at, page.find('>', at) - at + 1));
    return out;
}

// a page of every kind of block, with hostile names everywhere a name goes
const char* const kHostile = R"({
  "tenant": "<script>alert(\"t\")</script>", "since": "2026-02-01 00:00 UTC", "until": "2026-02-03 00:00 UTC",
  "generated_at": "2026-02-03 00:00 UTC", "requests": 3,
  "sections": {
    "overview": {"title": "Overview", "kind": "tiles",
                 "tiles": [{"label": "Cost", "value": "0.558068175", "format": "money"},
                           {"label": "Requests", "value": 1234567, "format": "number", "note": "a & b"}]},
    "cost_per_day": {"title": "Cost per day by model", "kind": "stacked_bars", "format": "money",
                     "x": ["2026-02-01", "<img src=x onerror=alert(1)>"],
                     "series": [{"name": "m\"1", "values": ["0.1", "0"]}, {"name": "m&2", "values": ["0.2", null]}]},
    "latency": {"title": "Latency", "kind": "hbars", "format": "ms", "categories": ["<b>model</b>"],
                "series": [{"name": "p50", "values": [120.5]}, {"name": "p95", "values": [null]}]},
    "top_subjects": {"title": "Top subjects", "kind": "table",
                     "columns": [{"name": "Subject"}, {"name": "Cost", "format": "money"}],
                     "rows": [{"cells": ["<script>x</script>' \"&", "0.000000000001"], "severity": "critical"}]},
    "x\"><script>": {"title": "Other", "kind": "table", "columns": [{"name": "a"}], "rows": []}
  }})";

}  // namespace

TEST(Dashboard, EscapesHostileNamesEverywhere) {
    EXPECT_EQ(db::escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    std::string page = db::render(json::parse(kHostile));
    // the only tag names are the page's own: nothing hostile survives
    for (const char* tag : {"<script", "<img", "<b>"}) EXPECT_EQ(page.find(tag), std::string::npos) << tag;
    for (const char* text : {"&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;", "&lt;script&gt;x&lt;/script&gt;&#39; &quot;&amp;",
                             "m&quot;1", "m&amp;2", "a &amp; b",
                             "id=\"s-x___script_\""})  // a hostile section key becomes a plain id
        EXPECT_NE(page.find(text), std::string::npos) << text;
    // data never opens a tag: every tag in the page is the page's own
    for (const std::string& tag : tags(page)) {
        EXPECT_EQ(tag.find("onerror"), std::string::npos) << tag;
        EXPECT_NE(tag.rfind("<script", 0), 0u) << tag;
    }
}

TEST(Dashboard, PageIsSelfContained) {
    std::string page = db::render(json::parse(kHostile));
    EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
    EXPECT_NE(page.find("<meta charset=\"utf-8\">"), std::string::npos);
    for (const char* external : {"http:", "https:", "<link", "<script", "@import", "url("})
        EXPECT_EQ(page.find(external), std::string::npos) << external;
    for (const std::string& tag : tags(page)) {  // escaped text may say src=, a tag never does
        EXPECT_EQ(tag.find("src="), std::string::npos) << tag;
        EXPECT_EQ(tag.find("href="), std::string::npos) << tag;
    }
    EXPECT_EQ(count_of(page, "<svg"), count_of(page, "</svg>"));
    EXPECT_EQ(count_of(page, "<section"), 5u);
    for (const char* bad : {"nan", "inf\"", "NaN", "-nan"}) EXPECT_EQ(page.find(bad), std::string::npos) << bad;
}

TEST(Dashboard, NoUsageIsAPageThatSaysSo) {
    std::string page = db::render(json::parse(R"({"tenant": "acme", "since": "a", "until": "b", "requests": 0})"));
    EXPECT_NE(page.find("No usage recorded for acme between a and b."), std::string::npos);
    EXPECT_EQ(page.find("<svg"), std::string::npos);
    EXPECT_NE(page.find("</html>"), std::string::npos);
    // charts without data say so instead of drawing an empty frame
    std::string empty = db::render(json::parse(R"({"tenant": "acme", "requests": 0, "sections": {
        "cost_per_day": {"title": "Cost", "kind": "stacked_bars", "x": [], "series": []},
        "latency": {"title": "Latency", "kind": "hbars", "categories": [], "series": [{"name": "p50", "values": []}]},
        "runway": {"title": "Runway", "kind": "table", "columns": [{"name": "provider"}], "rows": [],
                   "empty": "No balance recorded."}}})"));
    EXPECT_EQ(empty.find("<svg"), std::string::npos);
    EXPECT_EQ(count_of(empty, "No data in this range."), 2u);
    EXPECT_NE(empty.find("No balance recorded."), std::string::npos);
    EXPECT_EQ(empty.find("<table"), std::string::npos);
}

TEST(Dashboard, MoneyStaysExact) {
    EXPECT_EQ(db::money("0.558068175"), "$0.56");
    EXPECT_EQ(db::money("1234567.125"), "$1,234,567.12");  // half to even
    EXPECT_EQ(db::money("1234567.135"), "$1,234,567.14");
    EXPECT_EQ(db::money("12"), "$12.00");
    EXPECT_EQ(db::money("0"), "$0.00");
    EXPECT_EQ(db::money("-0.5"), "-$0.50");
    EXPECT_EQ(db::money("-0.001"), "-$0.001");
    EXPECT_EQ(db::money("0.00000375"), "$0.0000038");  // under a cent: two significant digits
    EXPECT_EQ(db::money("0.000000000001"), "$0.000000000001");
    EXPECT_EQ(db::money("0.009999"), "$0.01");   // rounds up to a cent
    // beyond a double's 15-17 digits, every digit is kept
    EXPECT_EQ(db::money("123456789012345678901234.5"), "$123,456,789,012,345,678,901,234.50");
    EXPECT_EQ(test::error_code([] { db::money("1.5e3x"); }), Code::InvalidValue);
    EXPECT_EQ(test::error_code([] { db::money("<script>"); }), Code::InvalidValue);
    EXPECT_EQ(db::percent("0.953333"), "95.33 %");
    EXPECT_EQ(db::percent("1"), "100.00 %");
    EXPECT_EQ(db::percent("0.00005"), "0.00 %");  // half to even
    EXPECT_EQ(db::number("1234567.50"), "1,234,567.50");
    EXPECT_EQ(db::number("-1000"), "-1,000");
    EXPECT_EQ(db::number("999"), "999");

    std::string page = db::render(json::parse(kHostile));
    for (const char* text : {// the exact amount is printed as given, next to the rounded one
                             "$0.56", "exact: <span class=\"money\">0.558068175</span> USD",
                             // a day's total is an exact sum (a double would say 0.30000000000000004)
                             "2026-02-01: total $0.30 (0.3 USD)",
                             // a money cell carries its exact amount
                             "title=\"0.000000000001 USD\">$0.000000000001</td>"})
        EXPECT_NE(page.find(text), std::string::npos) << text;
}

TEST(Dashboard, ScalesForZeroOneAndHugeValues) {
    db::Scale z = db::nice_scale(0, 200, 0);
    EXPECT_EQ(z.max, 1);
    ASSERT_EQ(z.ticks.size(), 2u);
    EXPECT_EQ(z.px(0), 200);
    EXPECT_EQ(z.px(5), 0);  // clamped
    for (double v : {std::nan(""), -3.0, HUGE_VAL}) EXPECT_EQ(db::nice_scale(v, 200, 0).max, 1) << v;

    db::Scale one = db::nice_scale(1, 200, 0, 5, true);  // one request: whole steps
    ASSERT_EQ(one.ticks.size(), 2u);
    EXPECT_EQ(one.ticks[1].text(), "1");
    db::Scale frac = db::nice_scale(1, 200, 0, 5, false);  // one dollar
    EXPECT_EQ(frac.ticks.size(), 6u);
    EXPECT_EQ(frac.ticks[1].text(), "0.2");
    EXPECT_EQ(db::tick_label(frac.ticks[1], "money"), "$0.2");

    db::Scale seven = db::nice_scale(7, 100, 0);
    EXPECT_EQ(seven.max, 8);
    EXPECT_EQ(seven.ticks[1].text(), "2");

    db::Scale tiny = db::nice_scale(0.0000375, 100, 0);
    EXPECT_EQ(tiny.ticks[1].text(), "0.00001");
    EXPECT_EQ(db::tick_label(tiny.ticks.back(), "money"), "$0.00004");

    db::Scale huge = db::nice_scale(1e15, 100, 0);
    EXPECT_EQ(huge.max, 1e15);
    EXPECT_EQ(db::tick_label(huge.ticks.back(), "number"), "1e15");
    EXPECT_EQ(db::tick_label(huge.ticks[1], "number"), "200T");
    EXPECT_EQ(db::tick_label({25, 5}, "number"), "2.5M");
    EXPECT_EQ(db::tick_label({1, 4}, "money"), "$10k");
    EXPECT_EQ(db::tick_label({5, 3}, "number"), "5,000");
    EXPECT_EQ(db::tick_label({25, 300}, "number"), "2.5e301");

    // any maximum: the top tick covers it, about five steps, pixels in range
    std::mt19937_64 rng(6);
    for (int i = 0; i < 20000; ++i) {
        double max = std::pow(10.0, static_cast<double>(rng() % 400) / 10 - 15) * (1 + (rng() % 1000) / 100.0);
        db::Scale s = db::nice_scale(max, 240, 12);
        ASSERT_GE(s.max, max * (1 - 1e-12)) << max;
        ASSERT_GE(s.ticks.size(), 2u) << max;
        ASSERT_LE(s.ticks.size(), 12u) << max;
        ASSERT_DOUBLE_EQ(s.px(max), 240 - 228 * (max / s.max));
        ASSERT_GE(s.px(max), 12 - 1e-9);
    }
}

TEST(Dashboard, StackedHeightsAddUp) {
    db::Scale s = db::nice_scale(9.0833, 240, 12);
    std::vector<double> values = {1.5, 2.25, 0, 3.3333, -4, 2};
    auto segs = db::stack_bar(values, s);
    ASSERT_EQ(segs.size(), values.size());
    double sum = 0;
    for (auto& g : segs) sum += g.h;
    EXPECT_NEAR(sum, 240 - segs.back().y, 1e-9);          // the heights tile the bar
    EXPECT_NEAR(segs.back().y, s.px(9.0833), 0.005);       // whose top is the total
    EXPECT_EQ(segs[2].h, 0);                               // a zero has no height
    EXPECT_EQ(segs[4].h, 0);                               // nor a negative
    for (size_t i = 1; i < segs.size(); ++i) EXPECT_NEAR(segs[i].y + segs[i].h, segs[i - 1].y, 1e-9);

    // in the page: each bar's rects stack edge to edge up to the total
    std::string page = db::render(json::parse(R"({"tenant": "t", "requests": 9, "sections": {"requests_per_hour": {
        "title": "Requests", "kind": "stacked_bars", "format": "number", "x": ["a", "b", "c"],
        "series": [{"name": "ok", "values": [500000, 0, 1234567]}, {"name": "errors", "values": [200000, 0, 7654321], "color": "error"}]}}})"));
    std::regex group("<g class=\"bar\">([\\s\\S]*?)</g>");
    std::regex rect("y=\"([0-9.]+)\" width=\"[0-9.]+\" height=\"([0-9.]+)\" fill=\"(#[0-9a-f]+)\"");
    std::vector<double> tops, sums;
    for (auto g = std::sregex_iterator(page.begin(), page.end(), group); g != std::sregex_iterator(); ++g) {
        std::string body = (*g)[1];
        double sum_h = 0, top = 1e9;
        std::vector<std::string> colours;
        for (auto r = std::sregex_iterator(body.begin(), body.end(), rect); r != std::sregex_iterator(); ++r) {
            sum_h += std::stod((*r)[2]);
            top = std::min(top, std::stod((*r)[1]));
            colours.push_back((*r)[3]);
        }
        if (!colours.empty()) {
            EXPECT_EQ(colours.front(), "#4e79a7");
            EXPECT_EQ(colours.back(), "#e15759");  // errors are red
        }
        tops.push_back(top);
        sums.push_back(sum_h);
    }
    ASSERT_EQ(tops.size(), 3u);
    EXPECT_EQ(sums[1], 0);  // nothing drawn for an empty hour
    db::Scale ps = db::nice_scale(8888888, 240, 12, 5, true);
    EXPECT_NEAR(sums[0] + tops[0], 240, 1e-6);
    EXPECT_NEAR(sums[2] + tops[2], 240, 1e-6);
    EXPECT_NEAR(tops[2], ps.px(8888888), 0.01);
    EXPECT_NEAR(sums[0], 240 - ps.px(700000), 0.01);
    EXPECT_NE(page.find("c: total 8,888,888"), std::string::npos);
}

TEST(Dashboard, ManySeriesFoldIntoOtherExactly) {
    json::Value doc = json::parse(R"({"tenant": "t", "requests": 1, "sections": {"cost_per_day": {
        "title": "Cost", "kind": "stacked_bars", "format": "money", "x": ["d"], "series": []}}})");
    json::Value* series = nullptr;
    for (auto& [k, v] : doc.members)
        if (k == "sections") series = const_cast<json::Value*>(v.get("cost_per_day")->get("series"));
    ASSERT_NE(series, nullptr);
    for (int i = 0; i < 10; ++i) {
        json::Value s = json::Value::object();
        s.members.emplace_back("name", json::Value::string("model-" + std::to_string(i)));
        json::Value vals = json::Value::array();
        vals.items.push_back(json::Value::string("0.1"));
        s.members.emplace_back("values", vals);
        series->items.push_back(s);
    }
    std::string page = db::render(doc);
    EXPECT_NE(page.find("other (3): $0.30 (0.3 USD)"), std::string::npos);
    EXPECT_NE(page.find("d: total $1.00 (1 USD)"), std::string::npos);
    EXPECT_EQ(count_of(page, "<span class=\"key\">"), 8u);
    EXPECT_EQ(page.find("model-9"), std::string::npos);
}

TEST(Dashboard, SeriesWithoutANameIsNone) {
    std::string page = db::render(json::parse(R"({"tenant": "t", "requests": 1, "sections": {"cost_per_day": {
        "title": "Cost", "kind": "stacked_bars", "format": "money", "x": ["d"],
        "series": [{"name": "m", "values": ["0.1"]}, {"name": null, "values": ["0.2"]}]}}})"));
    EXPECT_NE(page.find("(none): $0.20 (0.2 USD)"), std::string::npos);
    EXPECT_NE(page.find("</i>(none)</span>"), std::string::npos);
}

TEST(Dashboard, TablesShowSeverityAndFormats) {
    std::string page = db::render(json::parse(R"({"tenant": "t", "requests": 1, "sections": {"quota_status": {
        "title": "Quotas", "kind": "table",
        "columns": [{"name": "subject"}, {"name": "used", "format": "number"}, {"name": "share", "format": "percent"},
                    {"name": "p95", "format": "ms"}],
        "rows": [{"cells": ["a", "1500", "0.25", 1234.4]},
                 {"cells": ["b", {"value": "12.5", "format": "money"}, null, 3.14159], "severity": "warning"},
                 {"cells": ["c", "0", "1", null], "severity": "critical"}]}}})"));
    EXPECT_NE(page.find("<tr class=\"sev-ok\"><td>a</td><td class=\"num\">1,500</td><td class=\"num\">25.00 %</td>"
                        "<td class=\"num\">1,234 ms</td></tr>"),
              std::string::npos);
    EXPECT_NE(page.find("<tr class=\"sev-warning\"><td>b</td><td class=\"num\" title=\"12.5 USD\">$12.50</td>"
                        "<td class=\"num\">\xE2\x80\x94</td><td class=\"num\">3.14 ms</td></tr>"),
              std::string::npos);
    EXPECT_NE(page.find("<tr class=\"sev-critical\">"), std::string::npos);
    EXPECT_EQ(page.find("No usage recorded"), std::string::npos);
}

TEST(Dashboard, SectionsInTheirOrderAndAbsentOnesNotDrawn) {
    // jsonb orders keys its own way: the page does not depend on it
    std::string page = db::render(json::parse(R"({"tenant": "t", "requests": 1, "sections": {
        "zz_custom": {"title": "Custom", "kind": "tiles", "tiles": []},
        "runway": {"title": "Runway", "kind": "table", "columns": [], "rows": []},
        "alerts": {"title": "Alerts", "kind": "table", "columns": [], "rows": []},
        "projection": null,
        "overview": {"title": "Overview", "blocks": [{"kind": "tiles", "tiles": []}, {"kind": "tiles", "tiles": []}]}}})"));
    size_t o = page.find("id=\"s-overview\""), a = page.find("id=\"s-alerts\""), r = page.find("id=\"s-runway\""),
           c = page.find("id=\"s-zz_custom\"");
    ASSERT_NE(o, std::string::npos);
    ASSERT_NE(c, std::string::npos);
    EXPECT_LT(o, a);
    EXPECT_LT(a, r);
    EXPECT_LT(r, c);
    EXPECT_EQ(page.find("s-projection"), std::string::npos);
    EXPECT_EQ(count_of(page, "<div class=\"tiles\">"), 3u);
    EXPECT_EQ(db::section_order().front(), "overview");
}

TEST(Dashboard, RefusesMalformedDocuments) {
    EXPECT_EQ(test::error_code([] { db::render(json::parse("[1]")); }), Code::NotAnObject);
    for (const char* bad : {
             R"({"sections": []})",
             R"({"sections": {"a": 1}})",
             R"({"sections": {"a": {"kind": "pie"}}})",
             R"({"sections": {"a": {"kind": "tiles", "tiles": {}}}})",
             R"({"sections": {"a": {"kind": "stacked_bars", "x": [1, 2], "series": [{"values": [1]}]}}})",
             R"({"sections": {"a": {"kind": "stacked_bars", "format": "money", "x": [1], "series": [{"values": ["x"]}]}}})",
             R"({"sections": {"a": {"kind": "table", "columns": [{"name": "a"}], "rows": [{"cells": []}]}}})",
             R"({"sections": {"a": {"kind": "table", "columns": [], "rows": [{"cells": [], "severity": "red"}]}}})",
             R"({"sections": {"a": {"kind": "tiles", "tiles": [{"value": "1x", "format": "money"}]}}})"})
        EXPECT_EQ(test::error_code([&] { db::render(json::parse(bad)); }), Code::InvalidValue) << bad;
}
