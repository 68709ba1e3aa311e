// The Redis result backend's chord join (Celery's on_chord_part_return, no celery.chord_unlock):
// every header task adds its result, and the one that completes the count sends the body.
#pragma once

#include "codec.hpp"
#include "transport.hpp"

namespace weft::celery_wire {

// What the header that completed a chord must do: send the body with `values` (the header
// results by group_index), or store `error` (ChordError) on the body's id when a header failed.
struct chord_completion {
    json::array values;
    std::optional<exception_info> error;
    std::string token;  // the dispatch claim
};

// `taskset`: the chord's celery-taskset-meta-<gid> key (with the result prefix). Adds header `m`'s
// outcome; returns the completion to the one worker that completes and claims the chord.
std::optional<chord_completion> chord_part_return(redis_connection& results, const std::string& taskset,
                                                  const message& m, task_state state, const json::value& result,
                                                  std::chrono::seconds expires, const log_fn& log);
// After the body was sent: the chord's keys go, and a marker stops a late duplicate header.
void chord_dispatched(redis_connection& results, const std::string& taskset, const std::string& token);
// After a failure: the size goes, so a late copy of a header does not fail the chord again (as Python).
void chord_failed(redis_connection& results, const std::string& taskset);

}  // namespace weft::celery_wire
