#include "dashboard.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "decimal.hpp"
#include "error.hpp"

namespace pgm::dashboard {

namespace {

using json::Type;
using json::Value;

// The series colours (Tableau 10 without its red, which means errors), the
// colour of errors, and of what is muted or folded into "other".
const char* const kPalette[] = {"#4e79a7", "#f28e2b", "#76b7b2", "#59a14f",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f"};
constexpr int kColours = sizeof kPalette / sizeof kPalette[0];
const char* const kError = "#e15759";
const char* const kMuted = "#bab0ac";

constexpr double kWidth = 1160;  // every chart's width in pixels

[[noreturn]] void bad(const std::string& what) {
    throw Error(Code::InvalidValue, "invalid dashboard document: " + what);
}

const Value& empty_array() {
    static const Value a = Value::array();
    return a;
}

// array_of returns the member as an array (empty when absent or null).
const Value& array_of(const Value& o, const char* key, const std::string& where) {
    const Value* v = o.get(key);
    if (!v || v->is_null()) return empty_array();
    if (!v->is_array()) bad(where + "." + key + " must be an array");
    return *v;
}

// text_of returns a string's text or a number's source text ("" otherwise).
std::string text_of(const Value* v) {
    if (!v) return {};
    if (v->is_string()) return v->text;
    if (v->is_number()) return v->number_text();
    if (v->type == Type::Bool) return v->boolean ? "yes" : "no";
    return {};
}

// label_of names an x value or a category; an empty one is "(none)"
std::string label_of(const Value& v) {
    std::string t = text_of(&v);
    return t.empty() ? "(none)" : t;
}

std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", v);
    return b;
}

double round2(double v) { return std::round(v * 100) / 100; }

// group puts thousands separators into a run of digits.
std::string group(const std::string& digits) {
    std::string out;
    size_t n = digits.size();
    for (size_t i = 0; i < n; ++i) {
        if (i > 0 && (n - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// fixed writes d rounded half to even to `keep` decimals, with exactly
// that many decimals and grouped integer digits (no sign for zero).
std::string fixed(const Decimal& d, int keep) {
    Int256 m = Int256(d.mant);
    if (d.scale > keep)
        m = round_half_even(m, pow10_256(d.scale - keep));
    else
        m *= pow10_256(keep - d.scale);
    bool neg = m < 0;
    std::string digits = (neg ? Int256(-m) : m).str();
    if (static_cast<int>(digits.size()) <= keep) digits.insert(0, static_cast<size_t>(keep) + 1 - digits.size(), '0');
    std::string whole = digits.substr(0, digits.size() - static_cast<size_t>(keep));
    std::string out = (neg && m != 0 ? "-" : "") + group(whole);
    if (keep > 0) out += "." + digits.substr(digits.size() - static_cast<size_t>(keep));
    return out;
}

bool plain_decimal(std::string_view s) {
    size_t i = (!s.empty() && s[0] == '-') ? 1 : 0, digits = 0, dots = 0;
    for (; i < s.size(); ++i) {
        if (s[i] == '.')
            ++dots;
        else if (s[i] >= '0' && s[i] <= '9')
            ++digits;
        else
            return false;
    }
    return digits > 0 && dots <= 1;
}

std::string ms(double v) {
    if (!std::isfinite(v)) return "\xE2\x80\x94";
    char b[48];
    if (v >= 100)
        std::snprintf(b, sizeof b, "%.0f", v);
    else
        std::snprintf(b, sizeof b, v >= 10 ? "%.1f" : "%.2f", v);
    return number(b) + " ms";
}

// clip shortens text to at most n code points, ending with an ellipsis.
std::string clip(const std::string& s, size_t n) {
    size_t cps = 0, i = 0;
    for (; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
            if (cps == n) return s.substr(0, i) + "\xE2\x80\xA6";
            ++cps;
        }
    }
    return s;
}

// id_of keeps a section key's letters, digits, '-' and '_' for an id.
std::string id_of(const std::string& key) {
    std::string id = "s-";
    for (char c : key) id += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
    return id;
}

std::string colour_of(const Value& series, int i) {
    std::string c = series.str("color");
    if (c == "error") return kError;
    if (c == "muted") return kMuted;
    return kPalette[i % kColours];
}

// One series of a chart: its name, colour and values (exact text and the
// double for geometry).
struct Series {
    std::string name, colour;
    std::vector<std::string> text;  // "0" for a null
    std::vector<double> v;
    std::vector<bool> null;
};

void legend(std::string& out, const std::vector<Series>& series) {
    out += "<div class=\"legend\">";
    for (auto& s : series)
        out += "<span class=\"key\"><i style=\"background:" + s.colour + "\"></i>" + escape(clip(s.name, 48)) + "</span>";
    out += "</div>";
}

std::vector<Series> read_series(const Value& block, size_t n, const std::string& where) {
    std::vector<Series> out;
    const Value& series = array_of(block, "series", where);
    for (size_t i = 0; i < series.items.size(); ++i) {
        const Value& s = series.items[i];
        if (!s.is_object()) bad(where + ".series[" + std::to_string(i) + "] must be an object");
        const Value& values = array_of(s, "values", where + ".series[" + std::to_string(i) + "]");
        if (values.items.size() != n)
            bad(where + ".series[" + std::to_string(i) + "] has " + std::to_string(values.items.size()) +
                " values for " + std::to_string(n) + " labels");
        std::string name = s.str("name");  // a series without a name (no model) is "(none)", as a label is
        Series r{name.empty() ? "(none)" : name, colour_of(s, static_cast<int>(out.size())), {}, {}, {}};
        for (auto& x : values.items) {
            r.text.push_back(x.is_null() ? "0" : text_of(&x));
            r.v.push_back(to_double(x));
            r.null.push_back(x.is_null());
        }
        out.push_back(std::move(r));
    }
    return out;
}

std::string exact_sum(const std::vector<Series>& series, size_t j) {
    Decimal total;
    for (auto& s : series) total = total + Decimal::parse(s.text[j]);
    return total.to_string();
}

// fold keeps the first kColours - 1 series and adds the rest into "other",
// exactly, when there are more series than colours.
void fold(std::vector<Series>& series, size_t n) {
    if (static_cast<int>(series.size()) <= kColours) return;
    std::vector<Series> rest(series.begin() + (kColours - 1), series.end());
    series.resize(kColours - 1);
    Series other{"other (" + std::to_string(rest.size()) + ")", kMuted, {}, {}, {}};
    for (size_t j = 0; j < n; ++j) {
        other.text.push_back(exact_sum(rest, j));
        other.v.push_back(std::strtod(other.text.back().c_str(), nullptr));
        other.null.push_back(false);
    }
    series.push_back(std::move(other));
}

bool all_integers(const std::vector<Series>& series) {
    for (auto& s : series)
        for (auto& t : s.text)
            if (t.find_first_not_of("-0123456789") != std::string::npos) return false;
    return true;
}

// shown writes a value for a tooltip: money as display and exact text
std::string shown(const std::string& exact, const std::string& format) {
    if (format == "money") return money(exact) + " (" + exact + " USD)";
    return format_value(Value::number(exact), format);
}

void svg_open(std::string& out, double height) {
    out += "<svg class=\"chart\" width=\"" + fmt(kWidth) + "\" height=\"" + fmt(height) + "\" viewBox=\"0 0 " +
           fmt(kWidth) + " " + fmt(height) + "\" role=\"img\">";
}

// Chart is a chart block read: its labels (x values or categories), the
// format of its values and its series.
struct Chart {
    std::vector<std::string> labels;
    size_t n;
    std::string format;
    std::vector<Series> series;
};

// read_chart reads a chart block whose labels are under `key`; false, with
// a line saying so instead of an empty frame, when there is nothing to draw
bool read_chart(std::string& out, const Value& block, const char* key, const std::string& where, Chart& c) {
    const Value& labels = array_of(block, key, where);
    for (auto& l : labels.items) c.labels.push_back(label_of(l));
    c.n = c.labels.size();
    c.format = block.str("format", "number");
    c.series = read_series(block, c.n, where);
    if (c.n > 0 && !c.series.empty()) return true;
    out += "<p class=\"empty\">No data in this range.</p>";
    return false;
}

void y_axis(std::string& out, const Scale& s, double left, double right, const std::string& format) {
    for (auto& t : s.ticks) {
        std::string y = fmt(round2(s.px(t.value())));
        out += "<line class=\"grid\" x1=\"" + fmt(left) + "\" x2=\"" + fmt(right) + "\" y1=\"" + y + "\" y2=\"" + y +
               "\"/><text class=\"tick\" x=\"" + fmt(left - 6) + "\" y=\"" + y + "\" dy=\"4\" text-anchor=\"end\">" +
               escape(tick_label(t, format)) + "</text>";
    }
}

void stacked_bars(std::string& out, const Value& block, const std::string& where) {
    Chart c;
    if (!read_chart(out, block, "x", where, c)) return;
    fold(c.series, c.n);
    std::vector<double> totals(c.n, 0);
    for (auto& s : c.series)
        for (size_t j = 0; j < c.n; ++j) totals[j] += std::max(s.v[j], 0.0);
    const double height = 280, left = 84, right = kWidth - 16, top = 12, bottom = height - 40;
    Scale scale = nice_scale(*std::max_element(totals.begin(), totals.end()), bottom, top, 5, all_integers(c.series));
    svg_open(out, height);
    y_axis(out, scale, left, right, c.format);
    double slot = (right - left) / static_cast<double>(c.n);
    double w = std::min(std::max(slot * 0.8, 0.5), 48.0);
    size_t every = (c.n + 11) / 12;  // at most about a dozen x labels
    for (size_t j = 0; j < c.n; ++j) {
        std::string label = c.labels[j];
        double cx = left + slot * (static_cast<double>(j) + 0.5);
        std::vector<double> vs;
        for (auto& s : c.series) vs.push_back(s.v[j]);
        std::vector<Segment> segs = stack_bar(vs, scale);
        std::string title = label + ": total " + shown(exact_sum(c.series, j), c.format);
        for (auto& s : c.series) title += "\n" + s.name + ": " + shown(s.text[j], c.format);
        out += "<g class=\"bar\"><title>" + escape(title) + "</title>";
        for (size_t i = 0; i < segs.size(); ++i) {
            if (segs[i].h <= 0) continue;
            out += "<rect x=\"" + fmt(round2(cx - w / 2)) + "\" y=\"" + fmt(segs[i].y) + "\" width=\"" +
                   fmt(round2(w)) + "\" height=\"" + fmt(segs[i].h) + "\" fill=\"" + c.series[i].colour + "\"/>";
        }
        out += "</g>";
        if (j % every == 0)
            out += "<text class=\"tick\" x=\"" + fmt(cx) + "\" y=\"" + fmt(bottom + 18) + "\" text-anchor=\"middle\">" +
                   escape(clip(label, 16)) + "</text>";
    }
    out += "<line class=\"axis\" x1=\"" + fmt(left) + "\" x2=\"" + fmt(right) + "\" y1=\"" + fmt(round2(bottom)) +
           "\" y2=\"" + fmt(round2(bottom)) + "\"/></svg>";
    legend(out, c.series);
}

void hbars(std::string& out, const Value& block, const std::string& where) {
    Chart c;
    if (!read_chart(out, block, "categories", where, c)) return;
    const double bar = 14, gap = 3, group_gap = 14, left = 220, right = kWidth - 130, top = 8;
    double group_h = static_cast<double>(c.series.size()) * (bar + gap) - gap;
    double height = top + static_cast<double>(c.n) * (group_h + group_gap) + 24;
    double max = 0;
    for (auto& s : c.series)
        for (double v : s.v) max = std::max(max, v);
    Scale scale = nice_scale(max, left, right, 6, all_integers(c.series));
    double axis_y = height - 24;
    svg_open(out, height);
    for (auto& t : scale.ticks) {
        std::string x = fmt(round2(scale.px(t.value())));
        out += "<line class=\"grid\" x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + fmt(top) + "\" y2=\"" + fmt(axis_y) +
               "\"/><text class=\"tick\" x=\"" + x + "\" y=\"" + fmt(axis_y + 16) + "\" text-anchor=\"middle\">" +
               escape(tick_label(t, c.format)) + "</text>";
    }
    for (size_t j = 0; j < c.n; ++j) {
        double y0 = top + static_cast<double>(j) * (group_h + group_gap);
        std::string label = c.labels[j];
        out += "<text class=\"cat\" x=\"" + fmt(left - 8) + "\" y=\"" + fmt(y0 + group_h / 2) +
               "\" dy=\"4\" text-anchor=\"end\">" + escape(clip(label, 30)) + "</text>";
        for (size_t i = 0; i < c.series.size(); ++i) {
            double y = y0 + static_cast<double>(i) * (bar + gap);
            double w = round2(scale.px(c.series[i].v[j]) - left);
            Value v = c.series[i].null[j] ? Value() : Value::number(c.series[i].text[j]);
            std::string shown_v = format_value(v, c.format);
            std::string tip = c.series[i].null[j] ? shown_v : shown(c.series[i].text[j], c.format);
            out += "<g><title>" + escape(label + " \xC2\xB7 " + c.series[i].name + ": " + tip) +
                   "</title><rect x=\"" + fmt(left) + "\" y=\"" + fmt(y) + "\" width=\"" + fmt(std::max(w, 0.0)) +
                   "\" height=\"" + fmt(bar) + "\" fill=\"" + c.series[i].colour + "\"/><text class=\"val\" x=\"" +
                   fmt(left + std::max(w, 0.0) + 6) + "\" y=\"" + fmt(y + bar - 3) + "\">" + escape(shown_v) +
                   "</text></g>";
        }
    }
    out += "<line class=\"axis\" x1=\"" + fmt(left) + "\" x2=\"" + fmt(left) + "\" y1=\"" + fmt(top) + "\" y2=\"" +
           fmt(axis_y) + "\"/></svg>";
    legend(out, c.series);
}

void tiles(std::string& out, const Value& block, const std::string& where) {
    const Value& ts = array_of(block, "tiles", where);
    out += "<div class=\"tiles\">";
    for (auto& t : ts.items) {
        if (!t.is_object()) bad(where + ".tiles must hold objects");
        std::string format = t.str("format", "text");
        const Value* v = t.get("value");
        out += "<div class=\"tile\"><div class=\"label\">" + escape(t.str("label")) + "</div><div class=\"value\">" +
               escape(format_value(v ? *v : Value(), format)) + "</div>";
        if (format == "money" && v && !v->is_null())
            out += "<div class=\"exact\">exact: <span class=\"money\">" + escape(text_of(v)) + "</span> USD</div>";
        if (!t.str("note").empty()) out += "<div class=\"note\">" + escape(t.str("note")) + "</div>";
        out += "</div>";
    }
    out += "</div>";
}

bool numeric_format(const std::string& f) { return f == "money" || f == "number" || f == "percent" || f == "ms"; }

void table(std::string& out, const Value& block, const std::string& where) {
    const Value& cols = array_of(block, "columns", where);
    const Value& rows = array_of(block, "rows", where);
    std::vector<std::string> formats;
    for (auto& c : cols.items) formats.push_back(c.str("format", "text"));
    if (rows.items.empty()) {
        out += "<p class=\"empty\">" + escape(block.str("empty", "Nothing to show.")) + "</p>";
        return;
    }
    out += "<table><thead><tr>";
    for (size_t i = 0; i < cols.items.size(); ++i)
        out += std::string(numeric_format(formats[i]) ? "<th class=\"num\">" : "<th>") +
               escape(cols.items[i].str("name")) + "</th>";
    out += "</tr></thead><tbody>";
    for (size_t r = 0; r < rows.items.size(); ++r) {
        const Value& row = rows.items[r];
        std::string rw = where + ".rows[" + std::to_string(r) + "]";
        if (!row.is_object()) bad(rw + " must be an object");
        const Value& cells = array_of(row, "cells", rw);
        if (cells.items.size() != cols.items.size())
            bad(rw + " has " + std::to_string(cells.items.size()) + " cells for " + std::to_string(cols.items.size()) +
                " columns");
        std::string sev = row.str("severity", "ok");
        if (sev != "ok" && sev != "warning" && sev != "critical") bad(rw + ".severity must be ok, warning or critical");
        out += "<tr class=\"sev-" + sev + "\">";
        for (size_t i = 0; i < cells.items.size(); ++i) {
            const Value* cell = &cells.items[i];
            std::string format = formats[i];
            if (cell->is_object()) {
                format = cell->str("format", format);
                cell = cell->get("value");
            }
            const Value& v = cell ? *cell : Value();
            std::string attrs = numeric_format(format) ? " class=\"num\"" : "";
            if (format == "money" && !v.is_null()) attrs += " title=\"" + escape(text_of(&v)) + " USD\"";
            out += "<td" + attrs + ">" + escape(format_value(v, format)) + "</td>";
        }
        out += "</tr>";
    }
    out += "</tbody></table>";
}

void block(std::string& out, const Value& b, const std::string& where) {
    if (!b.is_object()) bad(where + " must be an object");
    std::string kind = b.str("kind");
    if (kind == "tiles")
        tiles(out, b, where);
    else if (kind == "stacked_bars")
        stacked_bars(out, b, where);
    else if (kind == "hbars")
        hbars(out, b, where);
    else if (kind == "table")
        table(out, b, where);
    else
        bad(where + " has an unknown kind \"" + clip(kind, 40) + "\" (tiles, stacked_bars, hbars or table)");
}

void section(std::string& out, const std::string& key, const Value& s) {
    if (s.is_null()) return;
    std::string where = "sections." + clip(key, 40);
    if (!s.is_object()) bad(where + " must be an object");
    out += "<section class=\"card\" id=\"" + id_of(key) + "\"><h2>" + escape(s.str("title", key)) + "</h2>";
    if (!s.str("note").empty()) out += "<p class=\"note\">" + escape(s.str("note")) + "</p>";
    if (s.get("kind")) {
        block(out, s, where);
    } else {
        const Value& blocks = array_of(s, "blocks", where);
        for (size_t i = 0; i < blocks.items.size(); ++i)
            block(out, blocks.items[i], where + ".blocks[" + std::to_string(i) + "]");
    }
    out += "</section>";
}

const char* const kStyle =
    "*{box-sizing:border-box}"
    "body{margin:0;padding:24px;background:#f3f4f6;color:#111827;"
    "font:14px/1.45 'DejaVu Sans','Liberation Sans',Arial,sans-serif}"
    "header{margin:0 0 16px}h1{font-size:24px;margin:0 0 4px}header p{margin:0;color:#4b5563}"
    ".card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:0 0 16px;"
    "max-width:1232px;overflow-x:auto}"
    "h2{font-size:17px;margin:0 0 10px}.note{color:#4b5563;margin:-4px 0 10px}"
    ".banner{background:#eef2ff;border:1px solid #c7d2fe;border-radius:8px;padding:20px;margin:0 0 16px;"
    "font-size:18px;max-width:1232px}"
    ".tiles{display:flex;flex-wrap:wrap;gap:12px}"
    ".tile{flex:1 1 240px;border:1px solid #e5e7eb;border-radius:6px;padding:10px 12px;background:#f9fafb}"
    ".tile .label{color:#4b5563;font-size:12px;text-transform:uppercase;letter-spacing:.04em}"
    ".tile .value{font-size:22px;font-weight:bold;margin:2px 0}"
    ".tile .exact,.tile .note{color:#6b7280;font-size:11px;word-break:break-all}"
    ".chart{display:block;margin:4px 0}.grid{stroke:#e5e7eb;stroke-width:1}.axis{stroke:#6b7280;stroke-width:1}"
    ".tick{font-size:11px;fill:#6b7280}.cat{font-size:12px;fill:#111827}.val{font-size:11px;fill:#374151}"
    ".legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12px;color:#374151;margin:6px 0 0}"
    ".key i{display:inline-block;width:11px;height:11px;margin:0 5px -1px 0;border-radius:2px}"
    "table{border-collapse:collapse;width:100%;font-size:13px}"
    "th,td{padding:6px 10px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}"
    "th,td.num{white-space:nowrap}td{overflow-wrap:break-word}"  // long text (a message, advice) wraps
    "th{background:#f9fafb;color:#374151;font-weight:bold}.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.sev-warning td{background:#fef3c7}tr.sev-critical td{background:#fee2e2}"
    "tr.sev-warning td:first-child{border-left:4px solid #d97706}"
    "tr.sev-critical td:first-child{border-left:4px solid #dc2626}"
    ".empty{color:#6b7280;font-style:italic;margin:8px 0}"
    "footer{color:#9ca3af;font-size:12px}";

}  // namespace

const std::vector<std::string>& section_order() {
    static const std::vector<std::string> order = {
        "overview", "alerts",       "cost_per_day",  "projection", "requests_per_hour", "latency",
        "cache",    "top_subjects", "quota_status", "anomalies",  "runway"};
    return order;
}

std::string escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 16);
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string money(std::string_view exact) {
    Decimal d = Decimal::parse(exact);
    int keep = 2;
    if (!d.is_zero()) {
        // under a cent: two significant digits (the first one sits at
        // decimal place scale - digits + 1)
        int digits = static_cast<int>((d.mant < 0 ? Int128(-d.mant) : d.mant).str().size());
        int first = d.scale - digits + 1;
        if (first > 2 && fixed(d, 2).find_first_not_of("-0.,") == std::string::npos)
            keep = std::min(first + 1, d.scale);
    }
    std::string s = fixed(d, keep);
    return s[0] == '-' ? "-$" + s.substr(1) : "$" + s;
}

std::string number(std::string_view exact) {
    if (!plain_decimal(exact)) return std::string(exact);
    bool neg = exact[0] == '-';
    std::string_view body = exact.substr(neg ? 1 : 0);
    size_t dot = body.find('.');
    std::string whole(body.substr(0, dot));
    if (whole.empty()) whole = "0";
    std::string out = (neg ? "-" : "") + group(whole);
    if (dot != std::string_view::npos) out += "." + std::string(body.substr(dot + 1));
    return out;
}

std::string percent(std::string_view rate) {
    Decimal d = Decimal::parse(rate);
    Int128 m = d.mant;  // times 100: two places less, or zeros appended
    int scale = d.scale - 2;
    for (; scale < 0; ++scale) m *= 10;
    return fixed(Decimal(m, scale), 2) + " %";
}

std::string format_value(const Value& v, std::string_view format) {
    if (v.is_null()) return "\xE2\x80\x94";
    std::string t = text_of(&v);
    if (format == "money") return money(t);
    if (format == "percent") return percent(t);
    if (format == "number") return number(t);
    if (format == "ms") return ms(to_double(v));
    return t;
}

double Tick::value() const { return static_cast<double>(n) * std::pow(10.0, exp); }

std::string Tick::text() const {
    std::string d = std::to_string(n);
    if (n == 0) return "0";
    if (exp >= 0) return d + std::string(static_cast<size_t>(exp), '0');
    size_t frac = static_cast<size_t>(-exp);
    if (d.size() <= frac) d.insert(0, frac + 1 - d.size(), '0');
    d.insert(d.size() - frac, ".");
    while (d.back() == '0') d.pop_back();
    if (d.back() == '.') d.pop_back();
    return d;
}

double Scale::px(double v) const {
    if (!(v > 0)) v = 0;  // also NaN
    if (v > max) v = max;
    return bottom + (top - bottom) * (v / max);
}

Scale nice_scale(double max, double bottom, double top, int target, bool integers) {
    Scale s;
    s.bottom = bottom;
    s.top = top;
    if (!(max > 0) || !std::isfinite(max)) {
        s.max = 1;
        s.ticks = {{0, 0}, {1, 0}};
        return s;
    }
    double raw = max / std::max(target, 1);
    int k = static_cast<int>(std::floor(std::log10(raw)));
    double f = raw / std::pow(10.0, k);
    long long m = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    if (m == 10) {
        m = 1;
        ++k;
    }
    if (integers && k < 0) {  // whole steps for counts
        m = 1;
        k = 0;
    }
    double step = static_cast<double>(m) * std::pow(10.0, k);
    long long c = static_cast<long long>(std::ceil(max / step));
    if (c > 1 && static_cast<double>(c - 1) * step >= max * (1 - 1e-12)) --c;  // max on a tick already
    if (c < 1) c = 1;
    for (long long i = 0; i <= c; ++i) s.ticks.push_back({i * m, k});
    s.max = s.ticks.back().value();
    return s;
}

std::string tick_label(const Tick& t, std::string_view format) {
    std::string text = t.text();
    std::string shown;
    if (t.exp >= 0 && text.size() > 15) {  // a thousand trillions and more: 2.5e15
        std::string frac = text.substr(1);
        while (!frac.empty() && frac.back() == '0') frac.pop_back();
        shown = text.substr(0, 1) + (frac.empty() ? "" : "." + frac) + "e" + std::to_string(text.size() - 1);
    } else if (t.value() >= 10000) {
        static const char* const units[] = {"k", "M", "B", "T"};
        int u = std::min(static_cast<int>((text.size() - 1) / 3), 4);
        size_t cut = text.size() - static_cast<size_t>(3 * u);
        std::string frac = text.substr(cut);
        while (!frac.empty() && frac.back() == '0') frac.pop_back();
        shown = text.substr(0, cut) + (frac.empty() ? "" : "." + frac) + units[u - 1];
    } else {
        shown = number(text);
    }
    if (format == "money") return "$" + shown;
    if (format == "ms") return shown + " ms";
    return shown;
}

std::vector<Segment> stack_bar(const std::vector<double>& values, const Scale& s) {
    std::vector<Segment> out;
    double cum = 0, edge = round2(s.px(0));
    for (double v : values) {
        if (v > 0) cum += v;
        double next = round2(s.px(cum));
        out.push_back({next, edge - next});
        edge = next;
    }
    return out;
}

double to_double(const Value& v) {
    if (v.is_number() && v.is_int) return static_cast<double>(v.ival);
    std::string t = text_of(&v);
    if (t.empty() || !(v.is_number() || plain_decimal(t))) return 0;
    double d = std::strtod(t.c_str(), nullptr);
    return std::isfinite(d) ? d : 0;
}

std::string render(const Value& doc) {
    if (!doc.is_object())
        throw Error(Code::NotAnObject, "dashboard document must be a JSON object",
                    "The value is a JSON " + std::string(json::type_name(doc.type)) + ".");
    const Value* sections = doc.get("sections");
    if (sections && !sections->is_null() && !sections->is_object()) bad("sections must be an object");
    std::string tenant = doc.str("tenant");
    std::string out;
    out.reserve(1 << 16);
    out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pg_meter \xC2\xB7 " +
           escape(tenant) + "</title><style>" + kStyle + "</style></head><body><header><h1>Usage of " +
           escape(tenant) + "</h1><p>" + escape(doc.str("since")) + " \xE2\x80\x93 " + escape(doc.str("until")) +
           " \xC2\xB7 generated " + escape(doc.str("generated_at")) + "</p></header>";
    if (to_double(doc.get("requests") ? *doc.get("requests") : Value()) <= 0)
        out += "<div class=\"banner\" id=\"no-usage\">No usage recorded for " + escape(tenant) + " between " +
               escape(doc.str("since")) + " and " + escape(doc.str("until")) + ".</div>";
    if (sections && sections->is_object()) {
        for (auto& key : section_order())
            if (const Value* s = sections->get(key)) section(out, key, *s);
        for (auto& [key, s] : sections->members)
            if (std::find(section_order().begin(), section_order().end(), key) == section_order().end())
                section(out, key, s);
    }
    out += "<footer>pg_meter \xC2\xB7 meter.dashboard_html \xC2\xB7 days are UTC days</footer></body></html>";
    return out;
}

}  // namespace pgm::dashboard
