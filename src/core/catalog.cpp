#include "catalog.hpp"

#include <algorithm>
#include <set>

namespace pgm {

namespace {

// number_of reads a JSON number exactly (integers read from jsonb need no parse).
Decimal number_of(const json::Value& v) { return v.is_int ? Decimal::from_int(v.ival) : Decimal::parse(v.text); }

int64_t parse_int64(const json::Value& v, const char* what) {
    if (!v.is_number()) throw Error(Code::InvalidCatalog, std::string(what) + " is not a number");
    Decimal d = number_of(v);
    if (!d.is_integer() || d.mant > Int128(std::numeric_limits<int64_t>::max()) ||
        d.mant < Int128(std::numeric_limits<int64_t>::min()))
        throw Error(Code::InvalidCatalog, std::string(what) + " is not a 64-bit integer");
    return static_cast<int64_t>(d.mant);
}

Micros time_or(const json::Value* v, Micros def) {
    if (!v || v->is_null()) return def;
    return parse_int64(*v, "validity time");
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool valid_date(int y, int m, int d) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1) return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int max = mdays[m - 1] + (m == 2 && leap ? 1 : 0);
    return d <= max;
}

bool digits(std::string_view s, size_t at, size_t n) {
    if (at + n > s.size()) return false;
    for (size_t i = at; i < at + n; ++i)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

int num(std::string_view s, size_t at, size_t n) {
    int v = 0;
    for (size_t i = at; i < at + n; ++i)
        v = v * 10 + (s[i] - '0');
    return v;
}

std::vector<PathStep> compile_path(const json::Value& path, RegexPool& pool) {
    std::vector<PathStep> steps;
    auto one = [&](const json::Value& step) {
        PathStep ps;
        if (step.is_string())
            ps.key = step.text;
        else if (step.is_object() && step.str("type") == "array-match" && step.get("match")) {
            ps.array_match = true;
            ps.key = step.str("field");
            ps.match = Match::compile(*step.get("match"), pool);
        } else
            throw Error(Code::InvalidCatalog, "invalid extractor path step");
        steps.push_back(std::move(ps));
    };
    if (path.is_array())
        for (auto& s : path.items)
            one(s);
    else
        one(path);
    if (steps.empty()) throw Error(Code::InvalidCatalog, "empty extractor path");
    return steps;
}

std::vector<std::pair<int, Decimal>> compile_minimums(const json::Value* m) {
    std::vector<std::pair<int, Decimal>> out;
    if (!m || m->is_null()) return out;
    if (!m->is_object()) throw Error(Code::InvalidCatalog, "minimums must be an object");
    for (auto& [k, v] : m->members) {
        int u = Units::get().by_usage_key(k);
        if (u < 0)
            throw Error(Code::UnknownMeter, "unknown meter \"" + k + "\" in minimums",
                        "Minimums are keyed by meter, such as audio_seconds.", "See the view meter.meters.");
        if (!v.is_number()) throw Error(Code::InvalidCatalog, "minimum for \"" + k + "\" is not a number");
        out.emplace_back(u, number_of(v));
    }
    return out;
}

std::string fmt(const Decimal& d) { return d.to_string(); }

}  // namespace

Micros parse_date(std::string_view s) {
    if (s.size() != 10 || !digits(s, 0, 4) || s[4] != '-' || !digits(s, 5, 2) || s[7] != '-' || !digits(s, 8, 2))
        throw Error(Code::InvalidTime, "invalid date \"" + std::string(s) + "\"", "A date is written YYYY-MM-DD.");
    int y = num(s, 0, 4), m = num(s, 5, 2), d = num(s, 8, 2);
    if (!valid_date(y, m, d)) throw Error(Code::InvalidTime, "invalid date \"" + std::string(s) + "\"");
    return days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d)) * 86400LL * 1000000LL;
}

int64_t parse_time_of_day_ms(std::string_view s) {
    auto bad = [&] {
        return Error(Code::InvalidTime, "invalid time of day \"" + std::string(s) + "\"",
                     "A time of day is written HH:MM:SS with Z or an offset such as +08:00.");
    };
    if (!digits(s, 0, 2) || s.size() < 9 || s[2] != ':' || !digits(s, 3, 2) || s[5] != ':' || !digits(s, 6, 2))
        throw bad();
    int h = num(s, 0, 2), mi = num(s, 3, 2), se = num(s, 6, 2);
    size_t i = 8;
    int64_t ms = 0;
    if (i < s.size() && s[i] == '.') {
        ++i;
        size_t b = i;
        int64_t scale = 100;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            ms += (s[i] - '0') * scale;
            scale /= 10;
            ++i;
        }
        if (i == b) throw bad();
    }
    int64_t off = 0;
    if (i < s.size() && s[i] == 'Z')
        ++i;
    else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        bool plus = s[i] == '+';
        if (!digits(s, i + 1, 2) || i + 6 > s.size() || s[i + 3] != ':' || !digits(s, i + 4, 2)) throw bad();
        int oh = num(s, i + 1, 2), om = num(s, i + 4, 2);
        if (oh > 23 || om > 59) throw bad();
        off = (oh * 60 + om) * 60 * 1000LL * (plus ? 1 : -1);
        i += 6;
    } else
        throw bad();
    if (i != s.size() || h > 23 || mi > 59 || se > 59) throw bad();
    int64_t local = ((h * 60 + mi) * 60 + se) * 1000LL + ms;
    const int64_t day = 86400000LL;
    return ((local - off) % day + day) % day;
}

std::string normalize_model_date(std::string_view m) {
    // "-YYYYMMDD" followed by "-", ":" or the end becomes "-YYYY-MM-DD"
    std::string out;
    size_t i = 0;
    while (i < m.size()) {
        if (m[i] == '-' && digits(m, i + 1, 8) && m[i + 1] == '2' && m[i + 2] == '0') {
            size_t end = i + 9;
            bool boundary = end == m.size() || m[end] == '-' || m[end] == ':';
            int y = num(m, i + 1, 4), mo = num(m, i + 5, 2), d = num(m, i + 7, 2);
            if (boundary && valid_date(y, mo, d)) {
                out += '-';
                out.append(m.substr(i + 1, 4));
                out += '-';
                out.append(m.substr(i + 5, 2));
                out += '-';
                out.append(m.substr(i + 7, 2));
                i = end;
                continue;
            }
        }
        out += m[i++];
    }
    return out;
}

// ---- Usage ------------------------------------------------------------------

const Decimal* Usage::find(int unit) const {
    for (auto& [u, q] : values)
        if (u == unit) return &q;
    return nullptr;
}

void Usage::add(int unit, const Decimal& q) {
    for (auto& [u, v] : values)
        if (u == unit) {
            v = v + q;
            return;
        }
    auto it = std::lower_bound(values.begin(), values.end(), unit, [](auto& p, int x) { return p.first < x; });
    values.emplace(it, unit, q);
}

json::Value Usage::to_json() const {
    json::Value o = json::Value::object();
    for (auto& [u, q] : values)
        o.members.emplace_back(Units::get().at(u).usage_key, json::Value::number(q.to_string()));
    return o;
}

TokenCounts token_counts(const Usage& u) {
    static const int units[4] = {Units::get().by_usage_key("input_tokens"), Units::get().by_usage_key("output_tokens"),
                                 Units::get().by_usage_key("cache_read_tokens"),
                                 Units::get().by_usage_key("cache_write_tokens")};
    int64_t out[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; ++i) {
        const Decimal* d = u.find(units[i]);
        if (!d) continue;
        // token meters are whole numbers (quantity_of refuses fractions)
        if (!d->is_integer() || d->mant > Int128(INT64_MAX) || d->mant < 0)
            throw Error(Code::Overflow, "token count out of range for \"" + Units::get().at(units[i]).usage_key + "\"",
                        "The value is " + d->to_string() + ".", "Token counts are whole numbers below 2^63.");
        out[i] = static_cast<int64_t>(d->mant);
    }
    return TokenCounts{out[0], out[1], out[2], out[3]};
}

// field_name is the name a usage value is reported under in errors; built
// only when an error is raised.
using FieldName = std::string (*)(const void*);

static Decimal quantity_of(const json::Value& v, int unit, const void* ctx, FieldName name) {
    if (!v.is_number())
        throw Error(Code::NotANumber, "usage value for \"" + name(ctx) + "\" is not a number",
                    "The value is a JSON " + std::string(json::type_name(v.type)) + ".",
                    "Pass token counts and durations as JSON numbers.");
    Decimal d = number_of(v);
    if (d.sign() < 0)
        throw Error(Code::InvalidValue, "usage value for \"" + name(ctx) + "\" is negative",
                    "The value is " + v.number_text() + ".", "Usage counts are zero or more.");
    if (unit >= 0 && !d.is_integer() && Units::get().at(unit).is_token_count())
        throw Error(Code::InvalidValue, "usage value for \"" + name(ctx) + "\" is not a whole number",
                    "The value is " + v.number_text() + "; \"" + Units::get().at(unit).usage_key + "\" counts whole units.",
                    "Round token counts before recording them.");
    return d;
}

static std::string key_name(const void* k) { return *static_cast<const std::string*>(k); }

bool normalize_direct(const json::Value& usage, Usage& out) {
    if (!usage.is_object())
        throw Error(Code::NotAnObject, "usage must be a JSON object",
                    "The value is a JSON " + std::string(json::type_name(usage.type)) + ".",
                    "Pass the provider's usage object, e.g. {\"prompt_tokens\": 10, \"completion_tokens\": 5}.");
    const Units& units = Units::get();
    for (auto& [k, v] : usage.members) {
        int u = units.by_usage_key(k);
        if (u < 0 || !units.at(u).reportable()) return false;
    }
    out.values.clear();
    out.flavor = "normalized";
    for (auto& [k, v] : usage.members) {
        if (v.is_null()) continue;
        int u = units.by_usage_key(k);
        out.add(u, quantity_of(v, u, &k, key_name));
    }
    return true;
}

// field_matches tests an array element's field the way genai-prices does
// (lower-cased), without allocating for short values.
static bool field_matches(const Match& m, const std::string& text) {
    char buf[64];
    if (text.size() > sizeof buf) return m.matches(lower_trim(text));
    size_t b = 0, e = text.size();
    while (b < e && (text[b] == ' ' || text[b] == '\t' || text[b] == '\n' || text[b] == '\r'))
        ++b;
    while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\n' || text[e - 1] == '\r'))
        --e;
    for (size_t i = b; i < e; ++i)
        buf[i - b] = (text[i] >= 'A' && text[i] <= 'Z') ? static_cast<char>(text[i] - 'A' + 'a') : text[i];
    return m.matches(std::string_view(buf, e - b));
}

// follow walks path steps from v; returns nullptr when a step is absent.
static const json::Value* follow(const json::Value* v, const std::vector<PathStep>& path, size_t upto) {
    for (size_t i = 0; i < upto && v; ++i) {
        const PathStep& st = path[i];
        if (st.array_match) {
            if (!v->is_array()) return nullptr;
            const json::Value* hit = nullptr;
            for (auto& item : v->items) {
                const json::Value* f = item.get(st.key);
                if (f && f->is_string() && field_matches(st.match, f->text)) {
                    hit = &item;
                    break;
                }
            }
            v = hit;
        } else {
            v = v->is_object() ? v->get(st.key) : nullptr;
        }
    }
    return v;
}

static std::string path_text(const std::vector<PathStep>& p) {
    std::string s;
    for (auto& st : p) {
        if (!s.empty()) s += '.';
        s += st.array_match ? "[" + st.key + "=...]" : st.key;
    }
    return s;
}

static std::string mapping_name(const void* m) { return path_text(static_cast<const Mapping*>(m)->path); }

bool extract(const Extractor& ex, const json::Value& usage, Usage& out, int& score, std::string& why) {
    // The catalog's extractors start at the whole response ("usage",
    // "usageMetadata"); a caller may pass that response or the usage object
    // itself, so descend into the root only when it is there.
    const json::Value* root = follow(&usage, ex.root, ex.root.size());
    if (!root || !root->is_object()) root = &usage;
    out.values.clear();
    out.flavor = ex.flavor;
    score = 0;
    int reportable = 0;
    for (auto& m : ex.mappings) {
        if (m.unit < 0) continue;
        ++reportable;
        const json::Value* v = follow(root, m.path, m.path.size());
        if (!v || v->is_null()) {
            if (m.required) {
                why.assign(1, '"');
                why += path_text(m.path);
                why += "\" is missing";
                return false;
            }
            continue;
        }
        out.add(m.unit, quantity_of(*v, m.unit, &m, mapping_name));
        ++score;
    }
    if (reportable && out.values.empty() && score == 0) {
        why = "no usage member found";
        return false;
    }
    return true;
}

// ---- PriceSet ---------------------------------------------------------------

static Decimal price_number(const json::Value& v, const std::string& key) {
    if (!v.is_number()) throw Error(Code::InvalidCatalog, "price for \"" + key + "\" is not a number");
    Decimal d = number_of(v);
    if (d.sign() < 0) throw Error(Code::InvalidCatalog, "price for \"" + key + "\" is negative");
    return d;
}

PriceSet PriceSet::compile(const json::Value& prices) {
    PriceSet ps;
    const Units& units = Units::get();
    if (!prices.is_object()) throw Error(Code::InvalidCatalog, "prices must be an object");
    for (auto& [key, v] : prices.members) {
        if (v.is_null()) continue;
        int u = units.by_price_key(key);
        if (u < 0) {
            ps.ignored_keys.push_back(key);
            continue;
        }
        PriceValue pv{u, {}, {}, 0};
        if (v.is_number())
            pv.base = price_number(v, key);
        else if (v.is_object() && v.get("base") && v.get("tiers") && v.get("tiers")->is_array()) {
            pv.base = price_number(*v.get("base"), key);
            for (auto& t : v.get("tiers")->items) {
                if (!t.is_object() || !t.get("start") || !t.get("price"))
                    throw Error(Code::InvalidCatalog, "invalid tier for \"" + key + "\"");
                int64_t start = parse_int64(*t.get("start"), "tier start");
                if (start < 0) throw Error(Code::InvalidCatalog, "negative tier start for \"" + key + "\"");
                pv.tiers.push_back({start, price_number(*t.get("price"), key), 0});
            }
            std::stable_sort(pv.tiers.begin(), pv.tiers.end(), [](auto& a, auto& b) { return a.start < b.start; });
            ps.tiered = true;
        } else
            throw Error(Code::InvalidCatalog, "invalid price for \"" + key + "\"",
                        "A price is a number or {\"base\": n, \"tiers\": [{\"start\": tokens, \"price\": n}]}.");
        pv.scaled = Amount::scale_price(pv.base, units.at(u).per);
        for (auto& t : pv.tiers)
            t.scaled = Amount::scale_price(t.price, units.at(u).per);
        if (u == units.requests()) ps.has_requests = true;
        // a repeated key keeps its last value, as JSON objects do
        auto same = std::find_if(ps.prices.begin(), ps.prices.end(), [&](auto& p) { return p.unit == u; });
        if (same != ps.prices.end())
            *same = std::move(pv);
        else
            ps.prices.push_back(std::move(pv));
    }
    auto ndims = [&](int u) { return units.at(u).dims.size(); };
    std::stable_sort(ps.prices.begin(), ps.prices.end(), [&](auto& a, auto& b) {
        if (ndims(a.unit) != ndims(b.unit)) return ndims(a.unit) > ndims(b.unit);
        return units.at(a.unit).usage_key < units.at(b.unit).usage_key;
    });
    UnitSet priced;
    for (auto& p : ps.prices)
        priced.set(static_cast<size_t>(p.unit));
    // every ancestor of a priced meter must be priced, and every join of two
    // compatible priced meters too, or the leaves would not partition usage
    for (auto& p : ps.prices) {
        const Unit& u = units.at(p.unit);
        for (size_t a = 0; a < units.size(); ++a)
            if (u.ancestors.test(a) && !priced.test(a) && ps.invalid.empty())
                ps.invalid =
                    "price \"" + u.price_key + "\" needs \"" + units.at(static_cast<int>(a)).price_key + "\" too";
    }
    for (size_t i = 0; i < ps.prices.size() && ps.invalid.empty(); ++i)
        for (size_t j = i + 1; j < ps.prices.size() && ps.invalid.empty(); ++j) {
            int a = ps.prices[i].unit, b = ps.prices[j].unit;
            if (!units.compatible(a, b)) continue;
            int jn = units.join(a, b);
            if (jn < 0)
                ps.invalid = "prices \"" + units.at(a).price_key + "\" and \"" + units.at(b).price_key +
                             "\" overlap with no meter for the overlap";
            else if (!priced.test(static_cast<size_t>(jn)))
                ps.invalid = "prices \"" + units.at(a).price_key + "\" and \"" + units.at(b).price_key + "\" need \"" +
                             units.at(jn).price_key + "\" too";
        }
    ps.below.resize(ps.prices.size());
    for (size_t i = 0; i < ps.prices.size(); ++i)
        for (size_t j = 0; j < ps.prices.size(); ++j)
            if (i != j && units.at(ps.prices[j].unit).ancestors.test(static_cast<size_t>(ps.prices[i].unit)))
                ps.below[i].push_back(static_cast<int>(j));
    return ps;
}

size_t Model::entry_at(Micros t) const {
    for (size_t k = entries.size(); k-- > 0;) {
        const Constraint& c = entries[k].constraint;
        switch (c.kind) {
            case Constraint::Kind::None:
                return k;
            case Constraint::Kind::StartDate:
                if (t >= c.start) return k;
                break;
            case Constraint::Kind::TimeOfDay: {
                const int64_t day = 86400000LL;
                int64_t ms = ((t / 1000) % day + day) % day;
                if (c.day_to < c.day_from) {
                    if (ms >= c.day_from || ms < c.day_to) return k;
                } else if (ms >= c.day_from && ms < c.day_to)
                    return k;
                break;
            }
        }
    }
    return 0;
}

static Constraint compile_constraint(const json::Value* c) {
    Constraint out;
    if (!c || c->is_null()) return out;
    if (!c->is_object()) throw Error(Code::InvalidCatalog, "price constraint must be an object");
    std::string type = c->str("type");
    if (type == "start_date" || (type.empty() && c->get("start_date"))) {
        out.kind = Constraint::Kind::StartDate;
        out.start = parse_date(c->str("start_date"));
    } else if (type == "time_of_date" || (type.empty() && c->get("start_time"))) {
        out.kind = Constraint::Kind::TimeOfDay;
        out.day_from = parse_time_of_day_ms(c->str("start_time"));
        out.day_to = parse_time_of_day_ms(c->str("end_time"));
    } else
        throw Error(Code::InvalidCatalog, "unknown price constraint", "Constraints are start_date or time_of_date.");
    return out;
}

// ---- compile ----------------------------------------------------------------

json::Value Catalog::genai_document(const json::Value& providers) {
    json::Value doc = json::Value::object();
    json::Value ps = json::Value::array(), ms = json::Value::array();
    int64_t version = 0;
    for (auto& p : providers.items) {
        json::Value pr = json::Value::object();
        pr.members.emplace_back("version", json::Value::number(std::to_string(++version)));
        pr.members.emplace_back("source", json::Value::string("genai-prices"));
        pr.members.emplace_back("data", p);
        if (const json::Value* models = p.get("models"))
            for (auto& m : models->items) {
                json::Value mr = json::Value::object();
                mr.members.emplace_back("version", json::Value::number(std::to_string(++version)));
                mr.members.emplace_back("source", json::Value::string("genai-prices"));
                mr.members.emplace_back("provider", json::Value::string(p.str("id")));
                mr.members.emplace_back("data", m);
                ms.items.push_back(std::move(mr));
            }
        ps.items.push_back(std::move(pr));
    }
    // the provider data keeps its models; compile ignores them there
    doc.members.emplace_back("providers", std::move(ps));
    doc.members.emplace_back("models", std::move(ms));
    doc.members.emplace_back("custom", json::Value::array());
    return doc;
}

// compile_model reads one model row of the catalog document.
static Model compile_model(const json::Value& row, RegexPool& pool) {
    const json::Value* d = row.get("data");
    if (!d || !d->is_object()) throw Error(Code::InvalidCatalog, "model row without data");
    Model m;
    m.version = row.get("version") ? parse_int64(*row.get("version"), "version") : 0;
    m.source = row.str("source", "genai-prices");
    m.provider_id = lower_trim(row.str("provider"));
    m.id = d->str("id");
    m.name = d->str("name", m.id);
    m.tier = row.str("service_tier", "standard");
    if (auto* mt = d->get("match"))
        m.match = Match::compile(*mt, pool);
    else
        m.match = Match::equals(m.id);
    const json::Value* prices = d->get("prices");
    if (!prices) throw Error(Code::InvalidCatalog, "model \"" + m.id + "\" has no prices");
    try {
        if (prices->is_array()) {
            for (auto& e : prices->items) {
                const json::Value* p = e.get("prices");
                if (!p) throw Error(Code::InvalidCatalog, "conditional price without prices");
                m.entries.push_back({compile_constraint(e.get("constraint")), PriceSet::compile(*p)});
            }
            if (m.entries.empty()) throw Error(Code::InvalidCatalog, "empty price list");
        } else {
            m.entries.push_back({Constraint{}, PriceSet::compile(*prices)});
        }
    } catch (Error& e) {
        e.detail = "Model \"" + m.provider_id + "/" + m.id + "\"" + (e.detail.empty() ? "." : ": " + e.detail);
        throw;
    }
    m.minimums = compile_minimums(d->get("minimums"));
    m.valid_from = time_or(row.get("valid_from"), kMinTime);
    m.valid_to = time_or(row.get("valid_to"), kMaxTime);
    return m;
}

std::unique_ptr<Catalog> Catalog::compile(const json::Value& doc, bool models_on_demand) {
    auto cat = std::make_unique<Catalog>();
    cat->on_demand_ = models_on_demand;
    RegexPool& pool = cat->pool_;
    const Units& units = Units::get();
    if (!doc.is_object()) throw Error(Code::InvalidCatalog, "catalog document must be an object");
    if (const json::Value* ps = doc.get("providers")) {
        for (auto& row : ps->items) {
            const json::Value* d = row.get("data");
            if (!d || !d->is_object()) throw Error(Code::InvalidCatalog, "provider row without data");
            Provider p;
            p.version = row.get("version") ? parse_int64(*row.get("version"), "version") : 0;
            p.source = row.str("source", "genai-prices");
            p.id = lower_trim(d->str("id"));
            p.name = d->str("name", p.id);
            if (p.id.empty()) throw Error(Code::InvalidCatalog, "provider without id");
            if (auto* m = d->get("provider_match")) p.provider_match = Match::compile(*m, pool);
            if (auto* m = d->get("model_match")) p.model_match = Match::compile(*m, pool);
            if (auto* f = d->get("fallback_model_providers"))
                for (auto& x : f->items)
                    p.fallbacks.push_back(lower_trim(x.text));
            if (auto* exs = d->get("extractors"))
                for (auto& e : exs->items) {
                    Extractor ex;
                    ex.flavor = e.str("api_flavor", "default");
                    if (auto* r = e.get("root")) ex.root = compile_path(*r, pool);
                    if (auto* maps = e.get("mappings"))
                        for (auto& m : maps->items) {
                            Mapping mp;
                            mp.path = compile_path(m.get("path") ? *m.get("path") : json::Value::null(), pool);
                            mp.dest = m.str("dest");
                            int u = units.by_usage_key(mp.dest);
                            mp.unit = (u >= 0 && units.at(u).reportable()) ? u : -1;
                            const json::Value* req = m.get("required");
                            mp.required = req && req->type == json::Type::Bool && req->boolean;
                            ex.mappings.push_back(std::move(mp));
                        }
                    // required members first: an extractor that does not fit fails at once
                    std::stable_partition(ex.mappings.begin(), ex.mappings.end(),
                                          [](const Mapping& m) { return m.required; });
                    p.extractors.push_back(std::move(ex));
                }
            p.valid_from = time_or(row.get("valid_from"), kMinTime);
            p.valid_to = time_or(row.get("valid_to"), kMaxTime);
            cat->providers_.push_back(std::move(p));
        }
    }
    if (const json::Value* ms = doc.get("models"))
        for (auto& row : ms->items)
            cat->models_.push_back(compile_model(row, cat->pool_));
    if (const json::Value* cs = doc.get("custom")) {
        for (auto& row : cs->items) {
            Custom c;
            c.version = row.get("version") ? parse_int64(*row.get("version"), "version") : 0;
            c.provider = lower_trim(row.str("provider"));
            c.model = lower_trim(row.str("model"));
            c.tier = row.str("service_tier", "standard");
            c.note = row.str("note");
            const json::Value* p = row.get("prices");
            if (!p) throw Error(Code::InvalidCatalog, "custom price without prices");
            c.set = PriceSet::compile(*p);
            c.minimums = compile_minimums(row.get("minimums"));
            c.valid_from = time_or(row.get("valid_from"), kMinTime);
            c.valid_to = time_or(row.get("valid_to"), kMaxTime);
            cat->customs_.push_back(std::move(c));
        }
        for (auto& c : cat->customs_)
            cat->custom_index_[c.provider + '\x1f' + c.model + '\x1f' + c.tier].push_back(&c);
    }
    cat->cut_epochs();
    return cat;
}

void Catalog::add_models(const json::Value& rows) {
    if (!rows.is_array()) throw Error(Code::InvalidCatalog, "model rows must be an array");
    for (auto& row : rows.items)
        models_.push_back(compile_model(row, pool_));
    for (auto& id : wanted_)
        read_.insert(id);
    wanted_.clear();
    cut_epochs();
}

// cut_epochs cuts time at every provider's and model's validity bounds; the
// epochs are built again on use (their resolution caches start empty).
void Catalog::cut_epochs() {
    std::set<Micros> cuts{kMinTime, kMaxTime};
    for (auto& p : providers_) {
        cuts.insert(p.valid_from);
        cuts.insert(p.valid_to);
    }
    for (auto& m : models_) {
        cuts.insert(m.valid_from);
        cuts.insert(m.valid_to);
    }
    std::vector<Micros> cv(cuts.begin(), cuts.end());
    epochs_.clear();
    for (size_t i = 0; i + 1 < cv.size(); ++i) {
        Epoch e;
        e.from = cv[i];
        e.to = cv[i + 1];
        epochs_.push_back(std::move(e));
    }
}

Catalog::Epoch& Catalog::epoch_at(Micros t) const {
    auto it = std::upper_bound(epochs_.begin(), epochs_.end(), t, [](Micros x, const Epoch& e) { return x < e.from; });
    Epoch& e = *(it == epochs_.begin() ? it : it - 1);
    if (!e.built) build(e);
    return e;
}

void Catalog::build(Epoch& e) const {
    auto covers = [&](Micros from, Micros to) { return from <= e.from && e.from < to; };
    std::unordered_map<std::string, size_t> gidx, lidx;
    for (auto& p : providers_) {
        if (!covers(p.valid_from, p.valid_to)) continue;
        auto& list = p.source == "litellm" ? e.litellm : e.genai;
        auto& idx = p.source == "litellm" ? lidx : gidx;
        idx[p.id] = list.size();
        list.push_back({&p, {}});
    }
    // models keep their catalog order (position within a load), which is
    // the order genai-prices tries them in
    for (auto& m : models_) {
        if (!covers(m.valid_from, m.valid_to)) continue;
        auto& list = m.source == "litellm" ? e.litellm : e.genai;
        auto& idx = m.source == "litellm" ? lidx : gidx;
        auto it = idx.find(m.provider_id);
        if (it == idx.end()) continue;  // a model whose provider is not in force
        list[it->second].models.push_back(&m);
    }
    // a provider with no extractors of its own is read with the common API shapes
    for (const char* id : {"openai", "anthropic", "google", "aws"})
        for (auto& ep : e.genai)
            if (ep.provider->id == id)
                for (auto& x : ep.provider->extractors)
                    e.common_extractors.push_back(&x);
    e.built = true;
}

static const Model* first_match(const std::vector<const Model*>& models, const std::string& name,
                                std::string_view tier) {
    for (const Model* m : models)
        if (m->tier == tier && m->match.matches(name)) return m;
    return nullptr;
}

const Provider* Catalog::genai_provider(const Epoch& e, const std::string& id) {
    for (auto& ep : e.genai)
        if (ep.provider->id == id) return ep.provider;
    for (auto& ep : e.genai)
        if (ep.provider->provider_match.matches(id)) return ep.provider;
    return nullptr;
}

const std::vector<const Catalog::Custom*>* Catalog::customs_of(const std::string& provider, const std::string& model,
                                                               std::string_view tier) const {
    if (custom_index_.empty()) return nullptr;
    std::string key = provider + '\x1f' + model + '\x1f' + std::string(tier);
    auto it = custom_index_.find(key);
    return it == custom_index_.end() ? nullptr : &it->second;
}

// append_lowered appends s lower-cased and trimmed (the form names are
// compared in) to out.
static void append_lowered(std::string& out, std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r'))
        ++b;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r'))
        --e;
    size_t at = out.size();
    out.append(s.data() + b, e - b);
    for (size_t i = at; i < out.size(); ++i)
        if (out[i] >= 'A' && out[i] <= 'Z') out[i] = static_cast<char>(out[i] - 'A' + 'a');
}

const Catalog::Resolution& Catalog::resolve(Epoch& e, std::string_view provider_in, std::string_view model_in,
                                            std::string_view tier) const {
    key_.assign(tier.data(), tier.size());
    key_ += '\x1f';
    append_lowered(key_, provider_in);
    key_ += '\x1f';
    append_lowered(key_, model_in);
    auto hit = e.cache.find(key_);
    if (hit != e.cache.end()) return hit->second;
    if (e.cache.size() > 50000) e.cache.clear();  // bound memory under random names

    Resolution r;
    r.provider_in = lower_trim(provider_in);
    r.model_in = lower_trim(model_in);
    std::string prov = r.provider_in, name = r.model_in;
    auto find_genai = [&](const std::string& id) -> const EpochProvider* {
        const Provider* p = genai_provider(e, id);
        for (auto& ep : e.genai)
            if (ep.provider == p) return &ep;
        return nullptr;
    };
    // "litellm" with "provider/model" names the provider in the model
    if (prov == "litellm" && name.find('/') != std::string::npos) {
        std::string head = name.substr(0, name.find('/')), tail = name.substr(name.find('/') + 1);
        if (!head.empty() && !tail.empty() && find_genai(head)) {
            prov = head;
            name = tail;
        }
    }
    const EpochProvider* gp = nullptr;
    if (!prov.empty())
        gp = find_genai(prov);
    else
        for (auto& ep : e.genai)
            if (ep.provider->model_match.matches(name)) {
                gp = &ep;
                break;
            }
    // a catalog read by provider: the models this name may be among are
    // the provider's, its fallbacks' and the LiteLLM rows of its id
    if (on_demand_) {
        wanted_.clear();
        auto want = [&](const std::string& id) {
            if (!id.empty() && !read_.count(id) && std::find(wanted_.begin(), wanted_.end(), id) == wanted_.end())
                wanted_.push_back(id);
        };
        want(gp ? gp->provider->id : prov);
        if (gp)
            for (auto& fb : gp->provider->fallbacks)
                want(fb);
        if (!wanted_.empty())
            throw Error(Code::Internal, "the models of provider \"" + wanted_.front() + "\" are not read yet",
                        "The catalog reads a provider's models when a name first needs them.");
    }
    auto models_of = [&](const EpochProvider& ep, const std::string& n) -> const Model* {
        if (const Model* m = first_match(ep.models, n, tier)) return m;
        for (auto& fb : ep.provider->fallbacks)
            for (auto& other : e.genai)
                if (other.provider->id == fb)
                    if (const Model* m = first_match(other.models, n, tier)) return m;
        return nullptr;
    };
    if (gp) {
        r.provider = gp->provider;
        r.provider_id = gp->provider->id;
        r.provider_known = true;
        r.model = models_of(*gp, name);
        if (!r.model) {
            std::string dated = normalize_model_date(name);
            if (dated != name) r.model = models_of(*gp, dated);
        }
    } else {
        r.provider_id = prov;
    }
    if (!r.model) {
        // LiteLLM-sourced rows: by canonical provider id
        for (auto& ep : e.litellm) {
            if (ep.provider->id != r.provider_id) continue;
            r.provider_known = true;
            r.model = first_match(ep.models, name, tier);
            if (!r.model) {
                std::string dated = normalize_model_date(name);
                if (dated != name) r.model = first_match(ep.models, dated, tier);
            }
            break;
        }
    }
    // custom prices: by the name as given, by the catalog's id, by the
    // canonical provider with the name as given
    r.custom[0] = customs_of(r.provider_in, r.model_in, tier);
    if (r.model) r.custom[1] = customs_of(r.provider_id, lower_trim(r.model->id), tier);
    if (r.provider_id != r.provider_in) r.custom[2] = customs_of(r.provider_id, r.model_in, tier);
    if (!r.provider_known && !custom_index_.empty()) {
        std::string prefix = r.provider_in + '\x1f';
        for (auto& kv : custom_index_)
            if (kv.first.compare(0, prefix.size(), prefix) == 0) {
                r.provider_known = true;
                break;
            }
    }
    return e.cache.emplace(key_, std::move(r)).first->second;
}

static void check_name(std::string_view what, std::string_view s) {
    if (s.size() > 512)
        throw Error(Code::InvalidValue, std::string(what) + " name is too long",
                    "It has " + std::to_string(s.size()) + " bytes; at most 512 are accepted.");
}

static bool empty_name(std::string_view s) {
    for (char c : s)
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
    return true;
}

Quote Catalog::quote(std::string_view provider_in, std::string_view model_in, Micros at, std::string_view tier) const {
    std::optional<Error> why;
    std::optional<Quote> q = find_quote(provider_in, model_in, at, tier, why);
    if (!q) throw std::move(*why);
    return *q;
}

std::optional<Quote> Catalog::find_quote(std::string_view provider_in, std::string_view model_in, Micros at,
                                         std::string_view tier, std::optional<Error>& why) const {
    check_name("provider", provider_in);
    check_name("model", model_in);
    static const std::string_view kTiers[] = {"standard", "batch", "flex", "priority"};
    std::string_view tier_name;
    for (auto t : kTiers)
        if (t == tier) tier_name = t;
    if (tier_name.empty())
        throw Error(Code::InvalidValue, "unknown service tier \"" + std::string(tier) + "\"", "",
                    "Use standard, batch, flex or priority.");
    if (empty_name(model_in))
        throw Error(Code::InvalidValue, "model name is empty", "", "Pass the model name the provider reported.");
    Epoch& e = epoch_at(at);
    const Resolution& r = resolve(e, provider_in, model_in, tier_name);
    Quote q;
    q.tier = tier_name;
    q.provider_def = r.provider;
    // a custom price wins; among those in force, the newest version
    const Custom* c = nullptr;
    for (auto* list : r.custom) {
        if (!list) continue;
        for (const Custom* x : *list)
            if (x->valid_from <= at && at < x->valid_to && (!c || x->version > c->version)) c = x;
        if (c) break;
    }
    if (c) {
        q.version = c->version;
        q.source = "custom";
        q.provider = c->provider;
        q.model = c->model;
        q.model_name = c->note.empty() ? std::string_view(c->model) : std::string_view(c->note);
        q.set = &c->set;
        q.minimums = &c->minimums;
        return q;
    }
    if (!r.model) {
        if (!r.provider_known && !r.provider_in.empty())
            why.emplace(Code::UnknownProvider, "unknown provider \"" + r.provider_in + "\"",
                        "No catalog or custom price names this provider.",
                        "Load a catalog with meter.load_prices() or set a price with meter.set_price().");
        else
            why.emplace(Code::NoPrice,
                    "no " + (tier_name == "standard" ? std::string() : std::string(tier_name) + " ") +
                        "price for model \"" + r.model_in + "\"" +
                        (r.provider_in.empty() ? "" : " of provider \"" + r.provider_in + "\""),
                    "No catalog or custom price matches this model at the given time.",
                    "Set one with meter.set_price(provider => ..., model => ..., prices => ...).");
        return std::nullopt;
    }
    q.version = r.model->version;
    q.source = r.model->source;
    q.provider = r.model->provider_id;
    q.model = r.model->id;
    q.model_name = r.model->name;
    q.entry = static_cast<int>(r.model->entry_at(at));
    q.set = &r.model->entries[static_cast<size_t>(q.entry)].set;
    q.minimums = &r.model->minimums;
    return q;
}

// shape_score says how well an extractor fits a usage object by its
// structure alone: -1 when a required member is absent, else the number of
// distinct members it reads (a member feeding two meters counts once, so
// Mistral's plain OCR is not read as annotated OCR). Values play no part, so the choice can be cached by
// shape and every call with that shape is read the same way.
static int shape_score(const Extractor& ex, const json::Value& usage) {
    const json::Value* root = follow(&usage, ex.root, ex.root.size());
    if (!root || !root->is_object()) root = &usage;
    int score = 0, reportable = 0;
    std::vector<const json::Value*> read;  // members counted once, however many meters they feed
    for (auto& m : ex.mappings) {
        if (m.unit < 0) continue;
        ++reportable;
        const json::Value* v = follow(root, m.path, m.path.size());
        if (!v || v->is_null()) {
            if (m.required) return -1;
            continue;
        }
        if (std::find(read.begin(), read.end(), v) != read.end()) continue;
        read.push_back(v);
        ++score;
    }
    return reportable && score == 0 ? -1 : score;
}

// shape_of writes a value's structure (names, string values, where numbers
// and nulls are) to out; false when it is too large to be worth caching.
static bool shape_of(const json::Value& v, std::string& out, int depth) {
    if (out.size() > 2048 || depth > 8) return false;
    switch (v.type) {
        case json::Type::Null:
            out += 'n';
            return true;
        case json::Type::Bool:
            out += 'b';
            return true;
        case json::Type::Number:
            out += '#';
            return true;
        case json::Type::String:
            out += '"';
            out += v.text;
            out += '"';
            return true;
        case json::Type::Array:
            out += '[';
            for (auto& i : v.items) {
                if (!shape_of(i, out, depth + 1)) return false;
                out += ',';
            }
            out += ']';
            return true;
        case json::Type::Object:
            out += '{';
            for (auto& [k, x] : v.members) {
                out += k;
                out += ':';
                if (!shape_of(x, out, depth + 1)) return false;
                out += ',';
            }
            out += '}';
            return true;
    }
    return false;
}

Usage Catalog::read_usage(Epoch& e, const Provider* p, std::string_view provider, const json::Value& usage,
                          std::string_view flavor) const {
    Usage out;
    out.values.reserve(8);
    if (normalize_direct(usage, out)) return out;
    bool own = p && !p->extractors.empty();
    size_t n = own ? p->extractors.size() : e.common_extractors.size();
    auto at = [&](size_t i) -> const Extractor& { return own ? p->extractors[i] : *e.common_extractors[i]; };
    if (!flavor.empty()) {
        // the caller named the API flavor: read with that extractor only
        std::string known;
        for (size_t i = 0; i < n; ++i) {
            if (at(i).flavor != flavor) {
                if (known.find(at(i).flavor) == std::string::npos) known += (known.empty() ? "" : ", ") + at(i).flavor;
                continue;
            }
            int score = 0;
            std::string why;
            if (extract(at(i), usage, out, score, why)) return out;
            throw Error(Code::MissingMember,
                        "usage object does not fit the " + std::string(flavor) + " API of provider \"" +
                            lower_trim(provider) + "\"",
                        "Its " + why + ".", "Pass the usage object as that API returns it.");
        }
        throw Error(Code::InvalidValue,
                    "unknown API flavor \"" + std::string(flavor) + "\" for provider \"" + lower_trim(provider) + "\"",
                    "Known flavors: " + (known.empty() ? std::string("none") : known) + ".",
                    "Omit the flavor to have pg_meter choose it from the usage object's shape.");
    }
    // the extractor that reads the most members wins (the first on a tie)
    int choice = -1;
    shape_.assign(own ? p->id : std::string_view("*"));
    shape_ += '\x1f';
    bool cacheable = shape_of(usage, shape_, 0);
    auto hit = cacheable ? e.shape_choice.find(shape_) : e.shape_choice.end();
    if (hit != e.shape_choice.end())
        choice = hit->second;
    else {
        int best = -1;
        for (size_t i = 0; i < n; ++i) {
            int s = shape_score(at(i), usage);
            if (s > best) {
                best = s;
                choice = static_cast<int>(i);
            }
        }
        if (cacheable) {
            if (e.shape_choice.size() > 10000) e.shape_choice.clear();
            e.shape_choice.emplace(shape_, choice);
        }
    }
    int score = 0;
    std::string why;
    if (choice >= 0 && extract(at(static_cast<size_t>(choice)), usage, out, score, why)) return out;
    std::string keys, reasons;
    for (auto& [k, v] : usage.members)
        keys += (keys.empty() ? "" : ", ") + k;
    for (size_t i = 0; i < n; ++i) {
        Usage scratch;
        if (!extract(at(i), usage, scratch, score, why))
            reasons += (reasons.empty() ? "" : "; ") + at(i).flavor + ": " + why;
    }
    throw Error(Code::MissingMember, "usage object has no known shape for provider \"" + lower_trim(provider) + "\"",
                "Members: " + (keys.empty() ? std::string("none") : keys) + ". Tried " +
                    (reasons.empty() ? std::string("no extractor") : reasons) + ".",
                "Pass the usage object as the provider returns it, or pg_meter's normalized form "
                "(e.g. {\"input_tokens\": 100, \"output_tokens\": 20}).");
}

Usage Catalog::normalize(std::string_view provider_in, const json::Value& usage, Micros at,
                         std::string_view flavor) const {
    check_name("provider", provider_in);
    Epoch& e = epoch_at(at);
    return read_usage(e, genai_provider(e, lower_trim(provider_in)), provider_in, usage, flavor);
}

Priced Catalog::price(const PriceRequest& req) const {
    std::optional<Error> why;
    std::optional<Priced> p = try_price(req, why);
    if (!p) throw std::move(*why);
    return std::move(*p);
}

std::optional<Priced> Catalog::try_price(const PriceRequest& req, std::optional<Error>& why) const {
    if (!req.usage) throw Error(Code::NotAnObject, "usage is missing");
    std::optional<Quote> q = find_quote(req.provider, req.model, req.at, req.tier, why);
    if (!q) return std::nullopt;
    Usage u = read_usage(epoch_at(req.at), q->provider_def, req.provider, *req.usage, req.flavor);
    return compute_cost(*q, std::move(u));
}

// ---- cost -------------------------------------------------------------------

Money Priced::by_direction(int dir) const {
    const Units& units = Units::get();
    Amount sum;
    for (auto& l : lines)
        if (units.at(l.unit).dir == dir) sum.add(l.amount);
    return sum.to_money();
}

namespace {

// reported returns the quantity reported for unit (zero when absent) after
// the checks genai-prices makes: an absent general meter may not hide a
// positive specific one. positive holds the units reported above zero.
Decimal reported(const Usage& u, int unit, const UnitSet& positive) {
    if (const Decimal* d = u.find(unit)) return *d;
    const Units& units = Units::get();
    const Unit& me = units.at(unit);
    UnitSet hidden = positive & me.descendants;
    if (hidden.any()) {
        size_t r = 0;
        while (!hidden.test(r))
            ++r;
        const std::string& part = units.at(static_cast<int>(r)).usage_key;
        throw Error(Code::MissingMember, "usage has \"" + part + "\" but no \"" + me.usage_key + "\"",
                    "\"" + part + "\" is part of \"" + me.usage_key + "\", which must be reported too.",
                    "In the normalized form input_tokens counts every input token, cached ones included.");
    }
    if (positive.count() < 2) return Decimal();
    for (size_t i = 0; i < u.values.size(); ++i)
        for (size_t j = i + 1; j < u.values.size(); ++j) {
            int a = u.values[i].first, b = u.values[j].first;
            if (!positive.test(static_cast<size_t>(a)) || !positive.test(static_cast<size_t>(b))) continue;
            if (!units.compatible(a, b)) continue;
            if (units.at(a).ancestors.test(static_cast<size_t>(b)) ||
                units.at(b).ancestors.test(static_cast<size_t>(a)))
                continue;
            if (units.join(a, b) == unit)
                throw Error(Code::MissingMember,
                            "usage has \"" + units.at(a).usage_key + "\" and \"" + units.at(b).usage_key +
                                "\" but no \"" + me.usage_key + "\"",
                            "The two overlap in \"" + me.usage_key + "\", which must be reported too.");
        }
    return Decimal();
}

}  // namespace

Priced compute_cost(const Quote& q, Usage usage) {
    const Units& units = Units::get();
    const PriceSet& ps = *q.set;
    if (!ps.invalid.empty())
        throw Error(Code::InvalidCatalog, "price version " + std::to_string(q.version) + " cannot be used",
                    "Model \"" + std::string(q.provider) + "/" + std::string(q.model) + "\": " + ps.invalid + ".",
                    "Correct the price with meter.set_price() or load a fixed catalog.");
    // minimum billed quantities (e.g. a 10-second minimum for transcription)
    if (q.minimums && !q.minimums->empty()) {
        for (auto& [unit, min] : *q.minimums)
            for (auto& [u, v] : usage.values)
                if (u == unit && v.sign() > 0 && v < min) v = min;
        // a general meter with a minimum is at least each specific one within
        // it (audio_seconds counts input_audio_seconds), so raising the
        // specific meter cannot make its parts exceed the whole
        for (auto& [unit, min] : *q.minimums) {
            const Decimal* d = usage.find(unit);
            if (!d || d->sign() <= 0) continue;
            Decimal value = *d;
            for (auto& [general, gmin] : *q.minimums) {
                if (!units.at(unit).ancestors.test(static_cast<size_t>(general))) continue;
                bool found = false;
                for (auto& [u, v] : usage.values)
                    if (u == general) {
                        found = true;
                        if (v < value) v = value;
                    }
                if (!found) usage.add(general, value);
            }
        }
    }
    Priced out;
    out.quote = q;
    UnitSet positive;
    for (auto& [u, v] : usage.values)
        if (v.sign() > 0) positive.set(static_cast<size_t>(u));
    Decimal tier_tokens;
    if (ps.tiered && units.input_tokens() >= 0) tier_tokens = reported(usage, units.input_tokens(), positive);
    Amount total;
    Decimal stack_leaves[24];
    std::vector<Decimal> heap_leaves;
    Decimal* leaf = stack_leaves;
    if (ps.prices.size() > 24) {
        heap_leaves.resize(ps.prices.size());
        leaf = heap_leaves.data();
    }
    out.lines.reserve(ps.prices.size());
    for (size_t i = 0; i < ps.prices.size(); ++i) {
        const PriceValue& pv = ps.prices[i];
        const Unit& unit = units.at(pv.unit);
        Decimal qty;
        if (pv.unit == units.requests())
            qty = Decimal::from_int(1);
        else {
            Decimal s = reported(usage, pv.unit, positive);
            Decimal below;
            for (int j : ps.below[i])
                below = below + leaf[j];
            qty = s - below;
            if (qty.sign() < 0) {
                std::string parts;
                for (int j : ps.below[i]) {
                    const Decimal* d = usage.find(ps.prices[static_cast<size_t>(j)].unit);
                    if (d && d->sign() > 0)
                        parts += (parts.empty() ? "" : ", ") +
                                 units.at(ps.prices[static_cast<size_t>(j)].unit).usage_key + " = " + fmt(*d);
                }
                throw Error(Code::InvalidValue, "usage parts exceed \"" + unit.usage_key + "\"",
                            "\"" + unit.usage_key + "\" is " + fmt(s) + " but its parts (" + parts + ") add up to " +
                                fmt(below) + ".",
                            "In the normalized form input_tokens counts every input token, cached ones included.");
            }
        }
        leaf[i] = qty;
        Line line{pv.unit, qty, pv.base, unit.per, false, {}};
        const ScaledPrice* scaled = &pv.scaled;
        for (auto& t : pv.tiers)
            if (compare(tier_tokens, Decimal::from_int(t.start)) > 0) {
                line.unit_price = t.price;
                line.tier_applied = true;
                scaled = &t.scaled;
            }
        line.amount.add_scaled(qty, *scaled);
        total.add(line.amount);
        out.lines.push_back(std::move(line));
    }
    out.total = total.to_money(&out.exact);
    out.usage = std::move(usage);
    return out;
}

}  // namespace pgm
