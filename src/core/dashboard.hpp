// dashboard.hpp: the admin dashboard as one self-contained HTML page.
//
// meter.dashboard_html gathers a tenant's figures into one JSON document
// (SQL: meter._dashboard_document) and the glue hands it to render(). The
// page has no script and no external reference: inline CSS, charts drawn as
// inline SVG. Money arrives as exact decimal text and stays exact in what is
// printed (Decimal arithmetic for sums and rounding); doubles serve pixel
// geometry only.
//
// The document:
//   {"tenant": text, "since": text, "until": text, "generated_at": text,
//    "requests": n,           // 0: the page says there is no usage
//    "sections": {key: section, ...}}
// Sections are drawn in section_order() (then any other key, in document
// order); a key that is absent or null is not drawn. A section is
//   {"title": text, "note": text?, "blocks": [block, ...]}
// or, with one block, the block's members next to the title. Blocks, by
// "kind" (every value may be a JSON number or a string of its exact text;
// null shows as a dash):
//   tiles        {"tiles": [{"label", "value", "format", "note"?}]}
//   stacked_bars {"format", "x": [label], "series": [{"name", "values": [v],
//                 "color"?: "error"|"muted"}]}   one bar per x, series
//                 stacked bottom up; more series than colours fold into
//                 "other" (exact sums)
//   hbars        {"format", "categories": [label], "series": [{"name",
//                 "values": [v]}]}   horizontal bars, one group a category
//   table        {"columns": [{"name", "format"?}], "rows": [{"cells": [v],
//                 "severity"?: "ok"|"warning"|"critical"}], "empty"?: text}
//                a cell may be {"value", "format"?} to override its column
// Formats: "money" (USD, exact text), "number" (grouped digits, as given),
// "percent" (a rate: 0.25 is 25 %), "ms", "text" (the default).
#pragma once
#include "core_only.hpp"

#include <string>
#include <string_view>
#include <vector>

#include "json.hpp"

namespace pgm::dashboard {

// render writes the page; throws pgm::Error (InvalidValue, NotAnObject) for
// a document it cannot read.
std::string render(const json::Value& doc);

// section_order lists the known sections in the order they are drawn.
const std::vector<std::string>& section_order();

// escape makes text safe in HTML text and in quoted attribute values.
std::string escape(std::string_view s);

// money shows an exact decimal amount of USD: rounded half to even to cents
// ("$1,234.56", "-$0.50"); an amount under a cent keeps two significant
// digits ("$0.0000038"); 0 is "$0.00". Throws InvalidValue for a non-number.
std::string money(std::string_view exact);
// number groups an exact decimal's integer digits: "1234567.5" -> "1,234,567.5".
std::string number(std::string_view exact);
// percent shows a rate as a percentage to two decimals: "0.953333" -> "95.33 %".
std::string percent(std::string_view rate);
// format_value shows a value (number or string) in a format; null -> dash.
std::string format_value(const json::Value& v, std::string_view format);

// Tick is an exact decimal n * 10^exp.
struct Tick {
    long long n;
    int exp;
    double value() const;
    std::string text() const;  // exact decimal text, e.g. "0.05", "2000"
};

// Scale maps [0, max] onto pixels [bottom, top] (bottom > top in SVG).
struct Scale {
    double max = 1;           // the top tick's value
    std::vector<Tick> ticks;  // 0, step, 2 step, ..., max
    double bottom = 0, top = 0;
    double px(double v) const;  // clamped to [0, max]
};

// nice_scale picks 1, 2 or 5 times a power of ten as the step so that about
// `target` steps cover max (at least one step; max <= 0 or not finite: [0, 1]);
// integers: no step below 1 (counts).
Scale nice_scale(double max, double bottom, double top, int target = 5, bool integers = false);

// tick_label writes a tick for an axis in a format: compact above 9,999
// ("20k", "2.5M"), money with a dollar sign.
std::string tick_label(const Tick& t, std::string_view format);

// Segment is one series' part of a stacked bar (pixels, y down).
struct Segment {
    double y, h;
};
// stack_bar lays values (negatives count as 0) bottom up on a scale; each
// segment's top is rounded to 1/100 px and its height is the difference of
// rounded edges, so the heights add up to the bar's own height exactly.
std::vector<Segment> stack_bar(const std::vector<double>& values, const Scale& s);

// to_double reads a number's text for geometry (0 for null or non-numbers).
double to_double(const json::Value& v);

}  // namespace pgm::dashboard
