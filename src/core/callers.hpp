// callers.hpp: who called what, hour by hour, and for how long: what the
// polling storms of meter.anomalies are found from. meter._caller_hours
// (src/pg/callers.cpp) feeds Hour one event at a time; meter._runs feeds
// Runs the busy hours of a range.
//
// A caller is a session, or a subject calling without one; the calls with
// neither make one more group, which is no caller. Per endpoint of an hour,
// the summary holds the calls, how many callers called twice or more and
// their median rate ((calls - 1) a minute from their first call to their
// last, a second at least: a burst within a second counts as a second);
// and each caller with min_busy calls or more, with how many of them were
// empty (no tokens, no cost), its first and last call and its subject (the
// greatest bytewise, when a session had several). A caller's busy hours
// that follow each other make one run.
#pragma once
#include "core_only.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hash.hpp"

namespace pgm::callers {

// Registry interns endpoint groups (a tenant and an endpoint, NULL apart
// from '') and their callers (a session, or the subject of calls without
// one), each under a dense id in order of first appearance.
class Registry {
  public:
    struct Group {
        std::string tenant;
        NString endpoint;
    };
    struct Caller {
        uint32_t group;
        NString session, who;
        bool someone() const { return session || who; }  // not the calls with neither
    };
    uint32_t group(Text tenant, Text endpoint, bool& added);
    // caller: who is the subject, which counts only when there is no session
    uint32_t caller(uint32_t group, Text session, Text subject, bool& added);
    const Group& group_at(uint32_t i) const { return groups_[i]; }
    const Caller& caller_at(uint32_t i) const { return callers_[i]; }
    size_t groups() const { return groups_.size(); }
    size_t callers() const { return callers_.size(); }

  private:
    FlatIndex group_index_, caller_index_;
    std::vector<Group> groups_;
    std::vector<Caller> callers_;
};

struct EndpointHour {
    std::string tenant;
    NString endpoint;
    int64_t requests = 0;
    int64_t callers = 0;                   // callers with 2 calls or more
    std::optional<double> median_per_min;  // their median rate (percentile_cont(0.5))
};

struct BusyCaller {
    std::string tenant;
    NString endpoint, session, subject;
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
    struct Tally {
        int64_t n = 0, empty = 0, first_us = 0, last_us = 0;
        NString subject;
    };
    Registry reg_;
    std::vector<int64_t> requests_;                // per group
    std::vector<std::vector<uint32_t>> members_;  // per group, its callers
    std::vector<Tally> tallies_;                   // per caller
};

// BusyHour is one caller's busy hour (a row of meter.busy_callers).
struct BusyHour {
    Text tenant, endpoint, session, subject;
    int64_t bucket_us = 0;  // the UTC hour
    int64_t requests = 0, empty = 0, first_us = 0, last_us = 0;
};

// Run is a caller's run of busy hours that follow each other.
struct Run {
    std::string tenant;
    NString endpoint, session, subject;  // subject: the greatest bytewise
    int64_t requests = 0, empty = 0, first_us = 0, last_us = 0;
    double per_min = 0;  // rate_per_min over the run, what a storm is judged by
};

// Runs gathers busy hours in any order and joins each caller's neighbouring
// ones (an hour given twice joins its run).
class Runs {
  public:
    void add(const BusyHour& b);
    // runs: per caller in order of first appearance, its runs by time
    std::vector<Run> runs() const;

  private:
    struct Hr {
        int64_t bucket_us, requests, empty, first_us, last_us;
        NString subject;
    };
    Registry reg_;
    std::vector<std::vector<Hr>> hours_;  // per caller
};

// rate_per_min is a caller's rate as the summary states it: (n - 1) calls
// over the minutes from first to last, a second (1/60) at least
double rate_per_min(int64_t n, int64_t first_us, int64_t last_us);

// median is percentile_cont(0.5) of the values (sorted here), as
// PostgreSQL computes it; nullopt for none
std::optional<double> median(std::vector<double> values);

}  // namespace pgm::callers
