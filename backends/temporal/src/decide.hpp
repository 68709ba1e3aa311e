// The DAG interpreter: what a weft workflow does next, as a pure function of its graph and its
// history. The workflow worker calls it on every workflow task with the whole history (no sticky
// cache), and the replay test calls it on every prefix of recorded histories, so the same history
// always gives the same commands.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <temporal/api/command/v1/message.pb.h>
#include <temporal/api/history/v1/message.pb.h>

#include <weft/backend.hpp>
#include <weft/run.hpp>

namespace weft::temporal_detail::interpreter {

namespace history = ::temporal::api::history::v1;
namespace command = ::temporal::api::command::v1;

struct decide_options {
    // start_to_close of a step whose policy has no timeout.
    std::chrono::milliseconds default_step_timeout{std::chrono::minutes(10)};
    // Heartbeat timeout of every step (capped by its start_to_close); the activity worker heartbeats
    // at a third of it, so a worker that dies is noticed within this time.
    std::chrono::milliseconds heartbeat_timeout{std::chrono::seconds(10)};
};

// The application failure type of a workflow that failed because a step failed for good. Its one
// detail is {"step", "error", "attempts"}; its cause is the activity's failure.
inline constexpr std::string_view step_failed_type = "weft.step_failed";

struct decision {
    std::vector<command::Command> commands;
    // Non-empty: the history does not fit the graph; the worker fails the workflow task with
    // NON_DETERMINISTIC_ERROR and this message (which names the event id).
    std::string nondeterminism;
    bool ok() const noexcept { return nondeterminism.empty(); }
};

// Rebuilds the run's state from `events` (the whole history so far, in order) and returns the
// commands for this workflow task:
//   - cancel requested: RequestCancelActivityTask for every pending step, then CancelWorkflowExecution;
//   - a step failed for good: FailWorkflowExecution (weft.step_failed, caused by the step's failure);
//   - every sink completed: CompleteWorkflowExecution with the sink's result (several sinks: one
//     json/plain payload holding the array of their results, in node order, the workflow's tuple);
//   - otherwise ScheduleActivityTask for every step not yet scheduled whose parents all completed, in
//     topological order.
decision decide(const graph_view& graph, const history::History& events, const decide_options& options = {});

// Each step's state as the history shows it (for run handles); attempts from ActivityTaskStarted.
std::vector<step_status> step_states(const graph_view& graph, const history::History& events);

}  // namespace weft::temporal_detail::interpreter
