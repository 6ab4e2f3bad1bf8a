#include "error.hpp"

namespace pgm {

const char* code_name(Code c) noexcept {
    switch (c) {
        case Code::InvalidValue: return "invalid_value";
        case Code::InvalidJson: return "invalid_json";
        case Code::NotAnObject: return "not_an_object";
        case Code::NotANumber: return "not_a_number";
        case Code::MissingMember: return "missing_member";
        case Code::UnknownMeter: return "unknown_meter";
        case Code::UnknownProvider: return "unknown_provider";
        case Code::NoPrice: return "no_price";
        case Code::InvalidCatalog: return "invalid_catalog";
        case Code::InvalidTime: return "invalid_time";
        case Code::Overflow: return "overflow";
        case Code::OutOfMemory: return "out_of_memory";
        case Code::Internal: return "internal";
    }
    return "internal";
}

}  // namespace pgm
