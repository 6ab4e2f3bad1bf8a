// json.hpp: a small JSON document model for the core.
//
// Numbers keep their source text, so a price such as 0.075 reaches the cost
// arithmetic as the decimal 0.075, never as a binary double. The glue builds
// these values straight from jsonb; the parser serves catalog documents and
// the fuzz tests.
#pragma once
#include "core_only.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgm::json {

enum class Type { Null, Bool, Number, String, Array, Object };

struct Value {
    Type type = Type::Null;
    bool boolean = false;
    bool is_int = false;  // a Number held in ival (read from jsonb without text)
    int64_t ival = 0;
    std::string text;  // string contents, or a number's source text (empty when is_int)
    std::vector<Value> items;                            // Array
    std::vector<std::pair<std::string, Value>> members;  // Object, in source order

    static Value null() { return Value(); }
    static Value number(std::string t) {
        Value v;
        v.type = Type::Number;
        v.text = std::move(t);
        return v;
    }
    static Value integer(int64_t i) {
        Value v;
        v.type = Type::Number;
        v.is_int = true;
        v.ival = i;
        return v;
    }
    static Value string(std::string t) {
        Value v;
        v.type = Type::String;
        v.text = std::move(t);
        return v;
    }
    static Value boolean_of(bool b) {
        Value v;
        v.type = Type::Bool;
        v.boolean = b;
        return v;
    }
    static Value array() {
        Value v;
        v.type = Type::Array;
        return v;
    }
    static Value object() {
        Value v;
        v.type = Type::Object;
        return v;
    }

    bool is_object() const { return type == Type::Object; }
    bool is_array() const { return type == Type::Array; }
    bool is_string() const { return type == Type::String; }
    bool is_number() const { return type == Type::Number; }
    bool is_null() const { return type == Type::Null; }

    // get returns the member named key (the last one if repeated), or nullptr.
    const Value* get(std::string_view key) const;
    // number_text returns a number as text (for messages and dumps).
    std::string number_text() const { return is_int ? std::to_string(ival) : text; }
    // str returns the member as a string, or def when absent or not a string.
    std::string str(std::string_view key, std::string def = {}) const;
};

// parse reads one JSON document; throws pgm::Error(Code::InvalidJson) with
// the byte offset. Nesting deeper than 256 levels is refused.
Value parse(std::string_view text);

// dump writes a value back as compact JSON (numbers as their source text).
std::string dump(const Value& v);

// type_name names a JSON type the way error messages do ("object", ...).
const char* type_name(Type t);

}  // namespace pgm::json
