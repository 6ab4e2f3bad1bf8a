#include "jsonb_io.hpp"

#include "error.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/numeric.h"
}

namespace pgm::pg {

static void push(JFlat* f, int* cap, uint8 kind, const char* text, int len) {
    if (f->n == *cap) {
        *cap *= 2;
        f->toks = static_cast<JTok*>(repalloc(f->toks, sizeof(JTok) * static_cast<size_t>(*cap)));
    }
    f->toks[f->n].kind = kind;
    f->toks[f->n].text = text;
    f->toks[f->n].len = len;
    f->toks[f->n].ival = 0;
    f->n++;
}

static void push_scalar(JFlat* f, int* cap, const JsonbValue* v) {
    switch (v->type) {
        case jbvNull:
            push(f, cap, Null, nullptr, 0);
            break;
        case jbvBool:
            push(f, cap, v->val.boolean ? True : False, nullptr, 0);
            break;
        case jbvString:
            push(f, cap, String, v->val.string.val, v->val.string.len);
            break;
        case jbvNumeric: {
            // token counts are integers: take them without formatting text
            // (a display scale of 0 means no fractional digits)
            Datum num = NumericGetDatum(v->val.numeric);
            if (DatumGetInt32(DirectFunctionCall1(numeric_scale, num)) == 0) {
                bool have_error = false;
                int32 i4 = numeric_int4_opt_error(v->val.numeric, &have_error);
                if (!have_error) {
                    push(f, cap, Number, nullptr, 0);
                    f->toks[f->n - 1].ival = i4;
                    break;
                }
            }
            char* s = DatumGetCString(DirectFunctionCall1(numeric_out, num));
            push(f, cap, Number, s, static_cast<int>(strlen(s)));
            break;
        }
        default:
            elog(ERROR, "unexpected jsonb value type %d", static_cast<int>(v->type));
    }
}

JFlat pm_flatten(Jsonb* jb) {
    JFlat f;
    int cap = 32;
    f.toks = static_cast<JTok*>(palloc(sizeof(JTok) * static_cast<size_t>(cap)));
    f.n = 0;
    JsonbIterator* it = JsonbIteratorInit(&jb->root);
    JsonbValue v;
    JsonbIteratorToken r;
    bool scalar_root = JB_ROOT_IS_SCALAR(jb);
    while ((r = JsonbIteratorNext(&it, &v, false)) != WJB_DONE) {
        switch (r) {
            case WJB_BEGIN_OBJECT:
                push(&f, &cap, ObjBegin, nullptr, 0);
                break;
            case WJB_END_OBJECT:
                push(&f, &cap, ObjEnd, nullptr, 0);
                break;
            case WJB_BEGIN_ARRAY:
                if (!scalar_root) push(&f, &cap, ArrBegin, nullptr, 0);
                break;
            case WJB_END_ARRAY:
                if (!scalar_root) push(&f, &cap, ArrEnd, nullptr, 0);
                break;
            case WJB_KEY:
                push(&f, &cap, Key, v.val.string.val, v.val.string.len);
                break;
            case WJB_VALUE:
            case WJB_ELEM:
                push_scalar(&f, &cap, &v);
                break;
            default:
                break;
        }
    }
    return f;
}

static json::Value build(const JFlat& f, int& i) {
    const JTok& t = f.toks[i++];
    switch (t.kind) {
        case Null:
            return json::Value::null();
        case True:
            return json::Value::boolean_of(true);
        case False:
            return json::Value::boolean_of(false);
        case String:
            return json::Value::string(std::string(t.text, static_cast<size_t>(t.len)));
        case Number:
            if (!t.text) return json::Value::integer(t.ival);
            return json::Value::number(std::string(t.text, static_cast<size_t>(t.len)));
        case ArrBegin: {
            json::Value a = json::Value::array();
            while (i < f.n && f.toks[i].kind != ArrEnd)
                a.items.push_back(build(f, i));
            ++i;
            return a;
        }
        case ObjBegin: {
            json::Value o = json::Value::object();
            o.members.reserve(8);
            while (i < f.n && f.toks[i].kind == Key) {
                std::string key(f.toks[i].text, static_cast<size_t>(f.toks[i].len));
                ++i;
                o.members.emplace_back(std::move(key), build(f, i));
            }
            ++i;
            return o;
        }
        default:
            throw Error(Code::Internal, "malformed jsonb token stream");
    }
}

json::Value pm_unflatten(const JFlat& f) {
    if (f.n == 0) return json::Value::null();
    int i = 0;
    return build(f, i);
}

}  // namespace pgm::pg
