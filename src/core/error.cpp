#include "error.hpp"

namespace pgm {

const char* code_name(Code c) noexcept {
    switch (c) {
        case Code::InvalidValue:
            return "invalid_value";
        case Code::InvalidJson:
            return "invalid_json";
        case Code::NotAnObject:
            return "not_an_object";
        case Code::NotANumber:
            return "not_a_number";
        case Code::MissingMember:
            return "missing_member";
        case Code::UnknownMeter:
            return "unknown_meter";
        case Code::UnknownProvider:
            return "unknown_provider";
        case Code::NoPrice:
            return "no_price";
        case Code::InvalidCatalog:
            return "invalid_catalog";
        case Code::InvalidTime:
            return "invalid_time";
        case Code::Overflow:
            return "overflow";
        case Code::OutOfMemory:
            return "out_of_memory";
        case Code::Internal:
            return "internal";
    }
    return "internal";
}

const char* sqlstate(Code c) noexcept {
    switch (c) {
        case Code::InvalidValue:
            return "22023";  // invalid_parameter_value
        case Code::InvalidJson:
            return "22032";  // invalid_json_text
        case Code::NotAnObject:
            return "2203C";  // sql_json_object_not_found
        case Code::NotANumber:
            return "22036";  // non_numeric_sql_json_item
        case Code::MissingMember:
            return "2203A";  // sql_json_member_not_found
        case Code::UnknownMeter:
            return "42704";  // undefined_object
        case Code::UnknownProvider:
            return "42704";  // undefined_object
        case Code::NoPrice:
            return "PM001";  // pg_meter: no price in force
        case Code::InvalidCatalog:
            return "PM002";  // pg_meter: catalog cannot be compiled
        case Code::InvalidTime:
            return "22007";  // invalid_datetime_format
        case Code::Overflow:
            return "22003";  // numeric_value_out_of_range
        case Code::OutOfMemory:
            return "53200";  // out_of_memory
        case Code::Internal:
            return "XX000";  // internal_error
    }
    return "XX000";
}

}  // namespace pgm
