// A run as its backend's records describe it, read by id alone: from a process that did not start
// the run and does not know its workflow's type (client.describe(id)).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <weft/json.hpp>
#include <weft/run.hpp>

namespace weft {

struct run_description {
    std::string backend;
    std::string workflow;  // empty when the backend's records do not name it (a run weft did not start)
    std::string id;        // as given to describe(), or the weft id the backend knows it by
    run_state state = run_state::running;
    // Each step the backend knows of, in the workflow's node order when it knows the workflow's
    // nodes, else in the order the steps began (a backend that records only what ran says so in its
    // docs).
    std::vector<step_description> steps;
    std::optional<std::chrono::system_clock::time_point> created, started, finished;
    json::value output;       // succeeded: the run's output (an array for several last steps); else null
    std::string failed_step;  // failed: the step that failed first, when the backend says which
    std::string error;        // failed: its error (or the run's); cancelled: why, when known
};

}  // namespace weft
