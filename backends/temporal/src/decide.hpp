// The DAG interpreter: what a weft workflow does next, as a pure function of its graph and its
// history. The workflow worker calls it on every workflow task with the whole history (no sticky
// cache), and the replay test calls it on every prefix of recorded histories, so the same history
// always gives the same commands.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include <temporal/api/command/v1/message.pb.h>
#include <temporal/api/history/v1/message.pb.h>
#include <temporal/api/workflow/v1/message.pb.h>

#include <weft/backend.hpp>
#include <weft/run.hpp>
#include <weft/temporal/payload_codec.hpp>

namespace weft::temporal_detail::interpreter {

namespace history = ::temporal::api::history::v1;
namespace command = ::temporal::api::command::v1;

struct decide_options {
    // start_to_close of a step whose policy has no timeout.
    std::chrono::milliseconds default_step_timeout{std::chrono::minutes(10)};
    // Heartbeat timeout of every step (capped by its start_to_close); the activity worker heartbeats
    // at a third of it, so a worker that dies is noticed within this time.
    std::chrono::milliseconds heartbeat_timeout{std::chrono::seconds(10)};
    // The payloads the interpreter makes (a null input, a failure's detail, the tuple of several
    // sinks) go through it; the ones it copies from step to step stay as they were encoded.
    const payload_codec* codec = nullptr;
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

// ------------------------------------------------------------------------------------------
// Queries: answered from the history (and the server's view of the activities in flight), never
// changing the run, so a query on a closed run answers too.

// The query weft answers for every workflow: each step's state, attempts and last error, as JSON
// [{"name", "state", "attempts"[, "error"]}] (the shape `weft status` prints).
inline constexpr std::string_view steps_query = "weft.steps";

struct query_answer {
    bool ok = false;
    ::temporal::api::common::v1::Payloads answer;  // ok
    std::string error;                             // not ok: why, as the SDKs word it
};

// Answers `query_type`:
//   - weft.steps: as above;
//   - __stack_trace (the UI's stack-trace view, `temporal workflow stack`): the steps running or
//     waiting to run now, one per line;
//   - __temporal_workflow_metadata (the UI's query list): temporal.api.sdk.v1.WorkflowMetadata as
//     json/protobuf, naming these queries, with the step table as its current details;
//   - any other name fails, as an SDK worker fails a query it has no handler for.
// `pending` is DescribeWorkflowExecution's pending activities: only the server knows that an
// activity with retries started, and which attempt it is on (its started event is written when it
// closes). Empty when unknown.
bool answers(std::string_view query_type) noexcept;
query_answer answer_query(const graph_view& graph, const history::History& events, std::string_view query_type,
                          std::span<const ::temporal::api::workflow::v1::PendingActivityInfo> pending = {});

}  // namespace weft::temporal_detail::interpreter
