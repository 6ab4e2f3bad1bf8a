// callers.hpp: who called what, hour by hour: the summary the polling
// storms of meter.anomalies are found from (meter._caller_hours, the glue in
// src/pg/callers.cpp, feeds it one event at a time).
//
// A caller is a session, or a subject calling without one; the calls with
// neither make one more group, which is no caller. Per endpoint of an hour,
// the summary holds the calls, how many callers called twice or more and
// their median rate ((calls - 1) a minute from their first call to their
// last, a second at least: a burst within a second counts as a second);
// and each caller with min_busy calls or more, with how many of them were
// empty (no tokens, no cost), its first and last call and its subject (the
// greatest bytewise, when a session had several).
#pragma once
#include "core_only.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgm::callers {

// Text is a nullable text value: nullptr is NULL.
struct Text {
    const char* data = nullptr;
    size_t size = 0;
    bool null() const { return data == nullptr; }
    std::string_view view() const { return {data ? data : "", size}; }
};

struct EndpointHour {
    std::string tenant;
    std::optional<std::string> endpoint;
    int64_t requests = 0;
    int64_t callers = 0;                   // callers with 2 calls or more
    std::optional<double> median_per_min;  // their median rate (percentile_cont(0.5))
};

struct BusyCaller {
    std::string tenant;
    std::optional<std::string> endpoint, session, subject;
    int64_t requests = 0;
    int64_t empty = 0;
    int64_t first_us = 0, last_us = 0;  // microseconds, as the timestamps' own
};

// Hour gathers the events of one UTC hour (of any number of tenants).
class Hour {
public:
    // add counts one event; returns the index of its endpoint group (0, 1,
    // ... in order of first appearance: what the glue sums costs by)
    size_t add(Text tenant, Text endpoint, Text session, Text subject, bool empty, int64_t at_us);
    // endpoints: one row per (tenant, endpoint), index i for group i
    std::vector<EndpointHour> endpoints() const;
    // busy: the callers with min_busy calls or more
    std::vector<BusyCaller> busy(int64_t min_busy) const;

private:
    struct Group {
        std::string tenant;
        std::optional<std::string> endpoint;
        int64_t requests = 0;
        std::vector<size_t> callers;  // indexes into callers_
    };
    struct Caller {
        size_t group;
        std::optional<std::string> session, who, subject;
        int64_t n = 0, empty = 0, first_us = 0, last_us = 0;
    };
    std::unordered_map<std::string, size_t> group_of_;   // key: tenant, endpoint
    std::unordered_map<std::string, size_t> caller_of_;  // key: group, session, who
    std::vector<Group> groups_;
    std::vector<Caller> callers_;
    std::string key_;  // reused between calls
};

// rate_per_min is a caller's rate as the summary states it: (n - 1) calls
// over the minutes from first to last, a second (1/60) at least
double rate_per_min(int64_t n, int64_t first_us, int64_t last_us);

// median is percentile_cont(0.5) of the values (sorted here), as
// PostgreSQL computes it; nullopt for none
std::optional<double> median(std::vector<double> values);

}  // namespace pgm::callers
