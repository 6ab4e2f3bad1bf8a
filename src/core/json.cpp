#include "json.hpp"

#include "error.hpp"

namespace pgm::json {

const Value* Value::get(std::string_view key) const {
    if (type != Type::Object) return nullptr;
    for (auto it = members.rbegin(); it != members.rend(); ++it)
        if (it->first == key) return &it->second;
    return nullptr;
}

std::string Value::str(std::string_view key, std::string def) const {
    const Value* v = get(key);
    return v && v->is_string() ? v->text : def;
}

const char* type_name(Type t) {
    switch (t) {
        case Type::Null:
            return "null";
        case Type::Bool:
            return "boolean";
        case Type::Number:
            return "number";
        case Type::String:
            return "string";
        case Type::Array:
            return "array";
        case Type::Object:
            return "object";
    }
    return "unknown";
}

namespace {

class Parser {
  public:
    explicit Parser(std::string_view s) : s_(s) {}

    Value document() {
        Value v = value(0);
        ws();
        if (i_ != s_.size()) fail("unexpected trailing characters");
        return v;
    }

  private:
    std::string_view s_;
    size_t i_ = 0;

    [[noreturn]] void fail(const char* what) {
        throw Error(Code::InvalidJson, "invalid JSON: " + std::string(what),
                    "The error is at byte offset " + std::to_string(i_) + ".");
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
            ++i_;
    }
    bool lit(std::string_view w) {
        if (s_.substr(i_, w.size()) == w) {
            i_ += w.size();
            return true;
        }
        return false;
    }

    Value value(int depth) {
        if (depth > 256) fail("nesting too deep");
        ws();
        if (i_ >= s_.size()) fail("unexpected end of input");
        char c = s_[i_];
        if (c == '{') return object(depth);
        if (c == '[') return array(depth);
        if (c == '"') return Value::string(string());
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        if (lit("true")) return Value::boolean_of(true);
        if (lit("false")) return Value::boolean_of(false);
        if (lit("null")) return Value::null();
        fail("unexpected character");
    }

    Value object(int depth) {
        Value v = Value::object();
        ++i_;
        ws();
        if (i_ < s_.size() && s_[i_] == '}') {
            ++i_;
            return v;
        }
        for (;;) {
            ws();
            if (i_ >= s_.size() || s_[i_] != '"') fail("expected a member name");
            std::string key = string();
            ws();
            if (i_ >= s_.size() || s_[i_] != ':') fail("expected ':'");
            ++i_;
            v.members.emplace_back(std::move(key), value(depth + 1));
            ws();
            if (i_ < s_.size() && s_[i_] == ',') {
                ++i_;
                continue;
            }
            if (i_ < s_.size() && s_[i_] == '}') {
                ++i_;
                return v;
            }
            fail("expected ',' or '}'");
        }
    }

    Value array(int depth) {
        Value v = Value::array();
        ++i_;
        ws();
        if (i_ < s_.size() && s_[i_] == ']') {
            ++i_;
            return v;
        }
        for (;;) {
            v.items.push_back(value(depth + 1));
            ws();
            if (i_ < s_.size() && s_[i_] == ',') {
                ++i_;
                continue;
            }
            if (i_ < s_.size() && s_[i_] == ']') {
                ++i_;
                return v;
            }
            fail("expected ',' or ']'");
        }
    }

    Value number() {
        size_t start = i_;
        if (s_[i_] == '-') ++i_;
        auto digits = [&] {
            size_t b = i_;
            while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9')
                ++i_;
            return i_ - b;
        };
        if (i_ < s_.size() && s_[i_] == '0')
            ++i_;
        else if (digits() == 0)
            fail("invalid number");
        if (i_ < s_.size() && s_[i_] == '.') {
            ++i_;
            if (digits() == 0) fail("invalid number");
        }
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
            ++i_;
            if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
            if (digits() == 0) fail("invalid number");
        }
        return Value::number(std::string(s_.substr(start, i_ - start)));
    }

    static void utf8(std::string& out, unsigned cp) {
        if (cp < 0x80)
            out += static_cast<char>(cp);
        else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    unsigned hex4() {
        if (i_ + 4 > s_.size()) fail("short unicode escape");
        unsigned cp = 0;
        for (int k = 0; k < 4; ++k) {
            char h = s_[i_++];
            cp <<= 4;
            if (h >= '0' && h <= '9')
                cp |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f')
                cp |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F')
                cp |= static_cast<unsigned>(h - 'A' + 10);
            else
                fail("invalid unicode escape");
        }
        return cp;
    }

    std::string string() {
        ++i_;  // opening quote
        std::string out;
        for (;;) {
            if (i_ >= s_.size()) fail("unterminated string");
            char c = s_[i_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i_ >= s_.size()) fail("unterminated escape");
            char e = s_[i_++];
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00) {
                        if (i_ + 1 < s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
                            i_ += 2;
                            unsigned lo = hex4();
                            if (lo < 0xDC00 || lo > 0xDFFF) fail("invalid surrogate pair");
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else
                            fail("lone surrogate");
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF)
                        fail("lone surrogate");
                    utf8(out, cp);
                    break;
                }
                default:
                    fail("invalid escape");
            }
        }
    }
};

void dump_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    static const char* hex = "0123456789abcdef";
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else
                    out += static_cast<char>(c);
        }
    }
    out += '"';
}

void dump_to(std::string& out, const Value& v) {
    switch (v.type) {
        case Type::Null:
            out += "null";
            break;
        case Type::Bool:
            out += v.boolean ? "true" : "false";
            break;
        case Type::Number:
            out += v.text;
            break;
        case Type::String:
            dump_string(out, v.text);
            break;
        case Type::Array:
            out += '[';
            for (size_t k = 0; k < v.items.size(); ++k) {
                if (k) out += ',';
                dump_to(out, v.items[k]);
            }
            out += ']';
            break;
        case Type::Object:
            out += '{';
            for (size_t k = 0; k < v.members.size(); ++k) {
                if (k) out += ',';
                dump_string(out, v.members[k].first);
                out += ':';
                dump_to(out, v.members[k].second);
            }
            out += '}';
            break;
    }
}

}  // namespace

Value parse(std::string_view text) { return Parser(text).document(); }

std::string dump(const Value& v) {
    std::string out;
    dump_to(out, v);
    return out;
}

}  // namespace pgm::json
