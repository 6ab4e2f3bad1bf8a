// error.hpp: the one error type of the core. Every failure the core can
// report carries a Code; the glue maps each Code to exactly one SQLSTATE
// (src/pg/bridge.cpp), so the mapping lives in one table.
#pragma once
#include "core_only.hpp"

#include <stdexcept>
#include <string>

namespace pgm {

enum class Code {
    InvalidValue,     // a number out of its domain: negative, fractional token count
    InvalidJson,      // text that is not JSON
    NotAnObject,      // a JSON value of the wrong shape where an object is needed
    NotANumber,       // a JSON value that must be a number is not
    MissingMember,    // a required member is absent
    UnknownMeter,     // a meter or price key pg_meter does not know
    UnknownProvider,  // no provider of that name in the catalog
    NoPrice,          // a model with no price in force at that time
    InvalidCatalog,   // a catalog document that cannot be compiled
    InvalidTime,      // a time-of-day or date that does not parse
    Overflow,         // an amount beyond the exact range
    OutOfMemory,
    Internal,
};

// Error is thrown inside the core only; it never crosses into PostgreSQL
// (the glue's bridge catches it and turns it into ereport).
struct Error : std::exception {
    Code code;
    std::string message;  // lower case, no trailing period
    std::string detail;   // a full sentence, may be empty
    std::string hint;     // a full sentence, may be empty

    Error(Code c, std::string msg, std::string det = {}, std::string hnt = {})
        : code(c), message(std::move(msg)), detail(std::move(det)), hint(std::move(hnt)) {}
    const char* what() const noexcept override { return message.c_str(); }
};

// code_name returns a stable lower-case name of a Code (for tests and logs).
const char* code_name(Code c) noexcept;

// sqlstate returns the five-character SQLSTATE a Code is reported with: the
// one table that maps core errors to PostgreSQL errors (the glue turns it
// into an errcode). PM001 and PM002 are pg_meter's own codes.
const char* sqlstate(Code c) noexcept;

}  // namespace pgm
