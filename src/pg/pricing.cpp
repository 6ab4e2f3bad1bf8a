// pricing.cpp: the SQL functions that price one call.
//
// meter.cost, meter.price, meter.cost_breakdown and meter.normalize_usage
// share one shape: read the arguments with PostgreSQL calls (read_call),
// price inside pm_run with C++ only, copy the answer into plain buffers,
// then build Datums or raise, from a frame that owns no C++ object.
#include <algorithm>
#include <cstring>
#include <string>

#include "bridge.hpp"
#include "catalog_cache.hpp"
#include "datums.hpp"
#include "jsonb_io.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
}

using namespace pgm;
using namespace pgm::pg;

namespace {

// the text arguments are NULL Texts when absent or NULL
struct PmCall {
    Text provider;
    Text model;
    JFlat usage;
    Micros at;
    Text tier;
    Text flavor;
};

// given_text reads argument n, a NULL Text when this signature has none.
Text given_text(FunctionCallInfo fcinfo, int n) { return PG_NARGS() > n ? text_arg(fcinfo, n) : Text{}; }

// read_call reads (provider, model, usage, at, service_tier, api_flavor); false when the
// answer is NULL (a NULL model or usage).
bool read_call(FunctionCallInfo fcinfo, PmCall* c) {
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2)) return false;
    c->provider = text_arg(fcinfo, 0);
    c->model = text_arg(fcinfo, 1);
    c->usage = pm_flatten(PG_GETARG_JSONB_P(2));
    c->at = (PG_NARGS() > 3 && !PG_ARGISNULL(3)) ? to_micros(PG_GETARG_TIMESTAMPTZ(3))
                                                 : to_micros(GetCurrentTransactionStartTimestamp());
    c->tier = given_text(fcinfo, 4);
    c->flavor = given_text(fcinfo, 5);
    return true;
}

Priced run_price(const Catalog* cat, const PmCall* c, json::Value& usage_holder) {
    usage_holder = pm_unflatten(c->usage);
    PriceRequest req;
    req.provider = c->provider.view();
    req.model = c->model.view();
    req.usage = &usage_holder;
    req.at = c->at;
    req.tier = c->tier.is_null() ? std::string_view("standard") : c->tier.view();
    req.flavor = c->flavor.view();
    return cat->price(req);
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(meter_cost);
PG_FUNCTION_INFO_V1(meter_price);
PG_FUNCTION_INFO_V1(meter_cost_breakdown);
PG_FUNCTION_INFO_V1(meter_normalize_usage);
PG_FUNCTION_INFO_V1(meter_meters);
PG_FUNCTION_INFO_V1(meter_check_catalog);
PG_FUNCTION_INFO_V1(meter_check_prices);

// meter_cost returns the exact cost in USD of one call as numeric.
Datum meter_cost(PG_FUNCTION_ARGS) {
    PmCall c;
    if (!read_call(fcinfo, &c)) PG_RETURN_NULL();
    const Catalog* cat = pm_catalog();
    PmMoney total;
    PmFailure* f = pm_run_pricing(cat, [&] {
        json::Value holder;
        Priced p = run_price(cat, &c, holder);
        money_out(p.total, &total);
    });
    if (f) pm_raise(f);
    PG_RETURN_DATUM(money_datum(&total));
}

// meter_price returns the cost with its provenance as meter.priced.
Datum meter_price(PG_FUNCTION_ARGS) {
    PmCall c;
    if (!read_call(fcinfo, &c)) PG_RETURN_NULL();
    const Catalog* cat = pm_catalog();
    struct {
        char total[96], input[96], output[96], other[96];
        bool exact;
        int64 version;
        int32 entry;
        char source[32], provider[520], model[520], model_name[1040], tier[16], flavor[64];
        PmUsage usage;
    }* o = static_cast<decltype(o)>(palloc0(sizeof *o));
    PmFailure* f = pm_run_pricing(cat, [&] {
        json::Value holder;
        Priced p = run_price(cat, &c, holder);
        put(o->total, sizeof o->total, p.total.to_string());
        put(o->input, sizeof o->input, p.by_direction(1).to_string());
        put(o->output, sizeof o->output, p.by_direction(2).to_string());
        put(o->other, sizeof o->other, p.by_direction(0).to_string());
        o->exact = p.exact;
        o->version = p.quote.version;
        o->entry = p.quote.entry;
        put(o->source, sizeof o->source, p.quote.source);
        put(o->provider, sizeof o->provider, p.quote.provider);
        put(o->model, sizeof o->model, p.quote.model);
        put(o->model_name, sizeof o->model_name, p.quote.model_name);
        put(o->tier, sizeof o->tier, p.quote.tier);
        put(o->flavor, sizeof o->flavor, p.usage.flavor);
        usage_out(p.usage, &o->usage);
    });
    if (f) pm_raise(f);
    TupleDesc td;
    if (get_call_result_type(fcinfo, nullptr, &td) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "meter.price must return a composite");
    td = BlessTupleDesc(td);
    Datum vals[14];
    bool nulls[14] = {false};
    vals[0] = numeric_datum(o->total);
    vals[1] = CStringGetTextDatum(o->total);
    vals[2] = numeric_datum(o->input);
    vals[3] = numeric_datum(o->output);
    vals[4] = numeric_datum(o->other);
    vals[5] = BoolGetDatum(o->exact);
    vals[6] = Int64GetDatum(o->version);
    vals[7] = CStringGetTextDatum(o->source);
    vals[8] = CStringGetTextDatum(o->provider);
    vals[9] = CStringGetTextDatum(o->model);
    vals[10] = CStringGetTextDatum(o->model_name);
    vals[11] = Int32GetDatum(o->entry);
    vals[12] = CStringGetTextDatum(o->tier);
    vals[13] = usage_datum(&o->usage);
    HeapTuple tup = heap_form_tuple(td, vals, nulls);
    PG_RETURN_DATUM(HeapTupleGetDatum(tup));
}

// meter_cost_breakdown returns one row per priced meter: why a call cost
// what it cost.
Datum meter_cost_breakdown(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsi = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    PmCall c;
    if (!read_call(fcinfo, &c)) return (Datum)0;
    const Catalog* cat = pm_catalog();
    constexpr int kMax = static_cast<int>(kMaxUnits);
    struct Row {
        char meter[48], price_key[48], direction[16], qty[96], unit_price[96], amount[96];
        int64 per;
        bool tier;
    };
    Row* rows = static_cast<Row*>(palloc0(sizeof(Row) * kMax));
    int n = 0;
    PmFailure* f = pm_run_pricing(cat, [&] {
        json::Value holder;
        Priced p = run_price(cat, &c, holder);
        const Units& units = Units::get();
        std::sort(p.lines.begin(), p.lines.end(), [](const Line& a, const Line& b) { return a.unit < b.unit; });
        for (auto& l : p.lines) {
            if (n >= kMax) break;
            Row& r = rows[n++];
            const Unit& u = units.at(l.unit);
            put(r.meter, sizeof r.meter, u.usage_key);
            put(r.price_key, sizeof r.price_key, u.price_key);
            put(r.direction, sizeof r.direction, u.direction());
            put(r.qty, sizeof r.qty, l.quantity.to_string());
            put(r.unit_price, sizeof r.unit_price, l.unit_price.to_string());
            put(r.amount, sizeof r.amount, l.amount.to_money().to_string());
            r.per = l.per;
            r.tier = l.tier_applied;
        }
    });
    if (f) pm_raise(f);
    for (int i = 0; i < n; ++i) {
        Datum v[8];
        bool nulls[8] = {false};
        v[0] = CStringGetTextDatum(rows[i].meter);
        v[1] = numeric_datum(rows[i].qty);
        v[2] = numeric_datum(rows[i].unit_price);
        v[3] = Int64GetDatum(rows[i].per);
        v[4] = CStringGetTextDatum(rows[i].price_key);
        v[5] = BoolGetDatum(rows[i].tier);
        v[6] = numeric_datum(rows[i].amount);
        if (rows[i].direction[0])
            v[7] = CStringGetTextDatum(rows[i].direction);
        else
            nulls[7] = true;
        tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, nulls);
    }
    return (Datum)0;
}

// meter_normalize_usage shows the normalized meters of a raw usage object.
Datum meter_normalize_usage(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(1)) PG_RETURN_NULL();
    Text prov = text_arg(fcinfo, 0);
    JFlat usage = pm_flatten(PG_GETARG_JSONB_P(1));
    Text flavor = given_text(fcinfo, 2);
    Micros at = to_micros(GetCurrentTransactionStartTimestamp());
    const Catalog* cat = pm_catalog();
    PmUsage* out = static_cast<PmUsage*>(palloc(sizeof(PmUsage)));
    PmFailure* f = pm_run([&] {
        json::Value v = pm_unflatten(usage);
        Usage u = cat->normalize(prov.view(), v, at, flavor.view());
        usage_out(u, out);
    });
    if (f) pm_raise(f);
    PG_RETURN_DATUM(usage_datum(out));
}

// meter_meters lists every meter pg_meter knows (the view meter.meters).
Datum meter_meters(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsi = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    // the table is built on first use, which may throw (bad_alloc): do that
    // inside the bridge; afterwards it is static, plain reading
    const Units* table = nullptr;
    PmFailure* f = pm_run([&] { table = &Units::get(); });
    if (f) pm_raise(f);
    for (auto& u : table->all()) {
        // plain copies: these strings are static for the life of the process
        Datum v[6];
        bool nulls[6] = {false};
        v[0] = PointerGetDatum(cstring_to_text(u.usage_key.c_str()));
        v[1] = PointerGetDatum(cstring_to_text(u.price_key.c_str()));
        v[2] = Int64GetDatum(u.per);
        const char* dir = nullptr;
        for (auto& d : u.dims)
            if (d.first == "direction") dir = d.second.c_str();
        if (dir)
            v[3] = PointerGetDatum(cstring_to_text(dir));
        else
            nulls[3] = true;
        v[4] = BoolGetDatum(u.is_token_count());
        StringInfoData dims;
        initStringInfo(&dims);
        appendStringInfoChar(&dims, '{');
        for (size_t i = 0; i < u.dims.size(); ++i)
            appendStringInfo(&dims, "%s\"%s\": \"%s\"", i ? ", " : "", u.dims[i].first.c_str(),
                             u.dims[i].second.c_str());
        appendStringInfoChar(&dims, '}');
        v[5] = DirectFunctionCall1(jsonb_in, CStringGetDatum(dims.data));
        tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, nulls);
    }
    return (Datum)0;
}

// meter_check_catalog compiles a genai-prices provider array and raises
// the first problem it finds; load_prices calls it before writing.
Datum meter_check_catalog(PG_FUNCTION_ARGS) {
    JFlat doc = pm_flatten(PG_GETARG_JSONB_P(0));
    int32 models = 0;
    PmFailure* f = pm_run([&] {
        json::Value v = pm_unflatten(doc);
        if (!v.is_array())
            throw Error(Code::InvalidCatalog, "catalog must be a JSON array of providers",
                        "The value is a JSON " + std::string(json::type_name(v.type)) + ".",
                        "Pass the providers array of genai-prices (scripts/load-prices does this).");
        for (auto& p : v.items) {
            if (!p.is_object() || p.str("id").empty())
                throw Error(Code::InvalidCatalog, "catalog provider without an id");
            const json::Value* ms = p.get("models");
            if (!ms || !ms->is_array())
                throw Error(Code::InvalidCatalog, "provider \"" + p.str("id") + "\" has no models array");
            for (auto& m : ms->items)
                if (!m.is_object() || m.str("id").empty())
                    throw Error(Code::InvalidCatalog, "a model of provider \"" + p.str("id") + "\" has no id");
        }
        auto cat = Catalog::compile(Catalog::genai_document(v));
        models = static_cast<int32>(cat->model_count());
    });
    if (f) pm_raise(f);
    PG_RETURN_INT32(models);
}

// meter_check_prices validates a user's price object (and minimums): every
// key must be a known price key and the set must partition usage.
Datum meter_check_prices(PG_FUNCTION_ARGS) {
    JFlat prices = pm_flatten(PG_GETARG_JSONB_P(0));
    bool has_min = !PG_ARGISNULL(1);
    JFlat mins = has_min ? pm_flatten(PG_GETARG_JSONB_P(1)) : JFlat{nullptr, 0};
    PmFailure* f = pm_run([&] {
        json::Value v = pm_unflatten(prices);
        if (!v.is_object())
            throw Error(Code::NotAnObject, "prices must be a JSON object",
                        "The value is a JSON " + std::string(json::type_name(v.type)) + ".",
                        "Pass prices per meter, e.g. {\"input_mtok\": 3, \"output_mtok\": 15}.");
        PriceSet ps = PriceSet::compile(v);
        if (!ps.ignored_keys.empty()) {
            throw Error(
                Code::UnknownMeter, "unknown price key \"" + ps.ignored_keys.front() + "\"",
                "A price key names a meter and its unit, such as input_mtok (per million input tokens) or per_image.",
                "The view meter.meters lists every price key.");
        }
        if (ps.prices.empty())
            throw Error(Code::InvalidValue, "prices name no meter", "",
                        "Pass at least one price, e.g. {\"per_image\": 0.04}.");
        if (!ps.invalid.empty()) throw Error(Code::InvalidValue, "prices are incomplete", ps.invalid + ".");
        if (has_min) {
            json::Value m = pm_unflatten(mins);
            json::Value doc = json::Value::object();
            json::Value models = json::Value::array();
            json::Value row = json::Value::object();
            json::Value data = json::Value::object();
            data.members.emplace_back("id", json::Value::string("check"));
            data.members.emplace_back("prices", v);
            data.members.emplace_back("minimums", m);
            row.members.emplace_back("data", data);
            models.items.push_back(row);
            doc.members.emplace_back("models", models);
            Catalog::compile(doc);
        }
    });
    if (f) pm_raise(f);
    PG_RETURN_VOID();
}

}  // extern "C"
