#include "decide.hpp"

#include <algorithm>

#include <boost/json/serialize.hpp>
#include <optional>

#include <weft/json.hpp>

#include "codec.hpp"

namespace weft::temporal_detail::interpreter {

namespace enums = ::temporal::api::enums::v1;
namespace common = ::temporal::api::common::v1;
namespace failure_v1 = ::temporal::api::failure::v1;

namespace {

enum class phase { idle, scheduled, started, completed, failed, timed_out, cancelled };

struct node_state {
    phase at = phase::idle;
    std::int64_t scheduled_event = 0;
    std::int64_t started_event = 0;
    int attempt = 0;
    bool cancel_requested = false;
    const common::Payloads* result = nullptr;
    const history::HistoryEvent* closed_by = nullptr;  // the Failed/TimedOut/Canceled event
};

bool pending(const node_state& s) { return s.at == phase::scheduled || s.at == phase::started; }

// The run as the history shows it.
struct state {
    std::vector<node_state> nodes;
    const common::Payloads* input = nullptr;
    const common::Header* header = nullptr;  // the start's: its trace context goes on to every step
    run_metadata metadata;                   // the start's memo's: it goes on to every step
    std::string task_queue;
    bool cancel_requested = false;
    bool closed = false;
    std::optional<std::size_t> first_failed;  // the node whose failure ended the run
    std::string nondeterminism;
};

std::optional<std::size_t> node_by_name(const graph_view& g, std::string_view name) {
    for (std::size_t i = 0; i < g.names.size(); ++i)
        if (g.names[i] == name) return i;
    return std::nullopt;
}

std::string event_ref(const history::HistoryEvent& e) { return "history event " + std::to_string(e.event_id()); }

// `memo_codec`: for the memo, which the Python SDK encodes with its payload codec.
state replay(const graph_view& g, const history::History& h, const payload_codec* memo_codec = nullptr) {
    state s;
    s.nodes.resize(g.names.size());
    std::vector<std::pair<std::int64_t, std::size_t>> by_scheduled;  // scheduled event id -> node
    auto node_of = [&](std::int64_t scheduled, const history::HistoryEvent& e) -> node_state* {
        for (auto& [id, n] : by_scheduled)
            if (id == scheduled) return &s.nodes[n];
        s.nondeterminism = event_ref(e) + " refers to activity scheduled by event " + std::to_string(scheduled) +
                           ", which this workflow never scheduled";
        return nullptr;
    };
    for (const history::HistoryEvent& e : h.events()) {
        if (!s.nondeterminism.empty()) break;
        switch (e.event_type()) {
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: {
            const auto& a = e.workflow_execution_started_event_attributes();
            s.input = &a.input();
            if (a.has_header()) s.header = &a.header();
            if (a.has_memo()) {
                ::temporal::api::common::v1::Memo memo = a.memo();
                for (auto& [k, p] : *memo.mutable_fields()) {
                    try {
                        codec::decode(memo_codec, p);
                    } catch (const std::exception&) {  // unreadable: left out, as other encodings are
                    }
                }
                s.metadata = codec::metadata_of_memo(memo);
            }
            s.task_queue = a.task_queue().name();
            break;
        }
        case enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: {
            const auto& a = e.activity_task_scheduled_event_attributes();
            auto n = node_by_name(g, a.activity_id());
            if (!n) {
                s.nondeterminism = event_ref(e) + " schedules activity '" + a.activity_id() + "', which workflow '" +
                                   std::string(g.name) + "' does not have";
                break;
            }
            node_state& ns = s.nodes[*n];
            if (a.activity_type().name() != g.names[*n]) {
                s.nondeterminism = event_ref(e) + " schedules activity '" + a.activity_id() + "' with type '" +
                                   a.activity_type().name() + "'; workflow '" + std::string(g.name) + "' runs step '" +
                                   std::string(g.names[*n]) + "' there";
                break;
            }
            if (ns.at != phase::idle) {
                s.nondeterminism = event_ref(e) + " schedules step '" + a.activity_id() + "' a second time (first: event " +
                                   std::to_string(ns.scheduled_event) + ")";
                break;
            }
            for (std::size_t k = 0; k < g.parent_count(*n); ++k) {
                std::size_t p = g.parent(*n, k);
                if (s.nodes[p].at != phase::completed) {
                    s.nondeterminism = event_ref(e) + " schedules step '" + a.activity_id() + "' before its parent '" +
                                       std::string(g.names[p]) + "' completed";
                    break;
                }
            }
            if (!s.nondeterminism.empty()) break;
            if (s.cancel_requested || s.first_failed) {
                s.nondeterminism = event_ref(e) + " schedules step '" + a.activity_id() + "' after the run " +
                                   (s.cancel_requested ? "was asked to cancel" : "failed");
                break;
            }
            ns.at = phase::scheduled;
            ns.scheduled_event = e.event_id();
            by_scheduled.emplace_back(e.event_id(), *n);
            break;
        }
        case enums::EVENT_TYPE_ACTIVITY_TASK_STARTED: {
            const auto& a = e.activity_task_started_event_attributes();
            if (node_state* n = node_of(a.scheduled_event_id(), e)) {
                n->at = phase::started;
                n->started_event = e.event_id();
                n->attempt = a.attempt();
            }
            break;
        }
        case enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED: {
            const auto& a = e.activity_task_completed_event_attributes();
            if (node_state* n = node_of(a.scheduled_event_id(), e)) {
                n->at = phase::completed;
                n->result = &a.result();
            }
            break;
        }
        case enums::EVENT_TYPE_ACTIVITY_TASK_FAILED:
        case enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        case enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED: {
            std::int64_t scheduled =
                e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_FAILED      ? e.activity_task_failed_event_attributes().scheduled_event_id()
                : e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT ? e.activity_task_timed_out_event_attributes().scheduled_event_id()
                                                                              : e.activity_task_canceled_event_attributes().scheduled_event_id();
            if (node_state* n = node_of(scheduled, e)) {
                n->at = e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_FAILED      ? phase::failed
                        : e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT ? phase::timed_out
                                                                                      : phase::cancelled;
                n->closed_by = &e;
                // A step cancelled because the run was cancelled is not a failure of the run.
                if (!s.first_failed && !(n->at == phase::cancelled && s.cancel_requested))
                    s.first_failed = static_cast<std::size_t>(n - s.nodes.data());
            }
            break;
        }
        case enums::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED: {
            const auto& a = e.activity_task_cancel_requested_event_attributes();
            if (node_state* n = node_of(a.scheduled_event_id(), e)) n->cancel_requested = true;
            break;
        }
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED: s.cancel_requested = true; break;
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: s.closed = true; break;
        default: break;  // workflow task boundaries, signals, markers: nothing a DAG reads
        }
    }
    return s;
}

void set_duration(google::protobuf::Duration& d, std::chrono::milliseconds ms) {
    d.set_seconds(ms.count() / 1000);
    d.set_nanos(static_cast<int>((ms.count() % 1000) * 1'000'000));
}

void schedule(const graph_view& g, const state& s, std::size_t n, const decide_options& o, command::Command& c) {
    c.set_command_type(enums::COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK);
    auto& a = *c.mutable_schedule_activity_task_command_attributes();
    const step_policy& p = g.policies[n];
    a.set_activity_id(std::string(g.names[n]));
    a.mutable_activity_type()->set_name(std::string(g.names[n]));
    a.mutable_task_queue()->set_name(p.queue.empty() ? s.task_queue : std::string(p.queue));
    a.mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
    // The start's trace context, as is: each step's span is a child of the run's (the workflow
    // makes no spans of its own; a replayed workflow task must give the same commands).
    if (s.header)
        if (auto t = s.header->fields().find(std::string(codec::tracer_header)); t != s.header->fields().end())
            (*a.mutable_header()->mutable_fields())[t->first] = t->second;
    if (!s.metadata.empty()) codec::inject_metadata(s.metadata, *a.mutable_header());
    auto& input = *a.mutable_input();
    if (g.parent_count(n) == 0) {
        if (s.input) input = *s.input;
    } else {
        for (std::size_t k = 0; k < g.parent_count(n); ++k) {
            const node_state& parent = s.nodes[g.parent(n, k)];
            if (parent.result && parent.result->payloads_size() > 0) *input.add_payloads() = parent.result->payloads(0);
            else {
                codec::to_payload("null", *input.add_payloads());
                codec::encode(o.codec, *input.mutable_payloads(input.payloads_size() - 1));
            }
        }
    }
    const std::chrono::milliseconds timeout = p.timeout.count() > 0 ? p.timeout : o.default_step_timeout;
    set_duration(*a.mutable_start_to_close_timeout(), timeout);
    set_duration(*a.mutable_heartbeat_timeout(), std::min(timeout, o.heartbeat_timeout));
    auto& r = *a.mutable_retry_policy();
    const auto initial = std::max(p.retry.initial, std::chrono::milliseconds(1));
    set_duration(*r.mutable_initial_interval(), initial);
    r.set_backoff_coefficient(std::max(1.0, p.retry.multiplier));
    set_duration(*r.mutable_maximum_interval(), std::max(p.retry.maximum, initial));
    r.set_maximum_attempts(std::max(1, p.retry.max_attempts));
}

// The error text of a failed step: the application failure's own message, or what timed out.
std::string step_error(const node_state& n) {
    const history::HistoryEvent& e = *n.closed_by;
    switch (e.event_type()) {
    case enums::EVENT_TYPE_ACTIVITY_TASK_FAILED: return codec::from_failure(e.activity_task_failed_event_attributes().failure()).describe();
    case enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        return codec::from_failure(e.activity_task_timed_out_event_attributes().failure()).describe();
    default: return "cancelled";
    }
}

void fail(const graph_view& g, const node_state& n, std::size_t node, const decide_options& o, command::Command& c) {
    c.set_command_type(enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION);
    failure_v1::Failure& f = *c.mutable_fail_workflow_execution_command_attributes()->mutable_failure();
    const std::string name(g.names[node]);
    const std::string error = step_error(n);
    const int attempts = std::max(1, n.attempt);
    f.set_message(step_failed(name, error, attempts).what());
    f.set_source("weft");
    auto& info = *f.mutable_application_failure_info();
    info.set_type(std::string(step_failed_type));
    // Retryable unless the step's own error was: a caller's RetryPolicy on the workflow then runs it
    // again, as it would an SDK workflow whose activity failed.
    const history::HistoryEvent& closed = *n.closed_by;
    info.set_non_retryable(closed.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_FAILED &&
                           closed.activity_task_failed_event_attributes().failure().application_failure_info().non_retryable());
    json::object detail{{"step", name}, {"error", error}, {"attempts", attempts}};
    codec::to_payload(boost::json::serialize(detail), *info.mutable_details()->add_payloads());
    codec::encode(o.codec, *info.mutable_details());

    // The cause is what the server reports for the activity, as the SDKs build it.
    failure_v1::Failure& cause = *f.mutable_cause();
    const history::HistoryEvent& e = *n.closed_by;
    auto& act = *cause.mutable_activity_failure_info();
    act.set_scheduled_event_id(n.scheduled_event);
    act.set_started_event_id(n.started_event);
    act.mutable_activity_type()->set_name(name);
    act.set_activity_id(name);
    if (e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_FAILED) {
        cause.set_message("Activity task failed");
        act.set_identity(e.activity_task_failed_event_attributes().identity());
        act.set_retry_state(e.activity_task_failed_event_attributes().retry_state());
        *cause.mutable_cause() = e.activity_task_failed_event_attributes().failure();
    } else if (e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT) {
        cause.set_message("Activity task timed out");
        act.set_retry_state(e.activity_task_timed_out_event_attributes().retry_state());
        *cause.mutable_cause() = e.activity_task_timed_out_event_attributes().failure();
    } else {
        cause.set_message("Activity cancelled");
    }
}

void complete(const graph_view& g, const state& s, const decide_options& o, command::Command& c) {
    c.set_command_type(enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION);
    auto& result = *c.mutable_complete_workflow_execution_command_attributes()->mutable_result();
    auto sink_payload = [&](std::size_t n) -> const common::Payload* {
        const node_state& ns = s.nodes[n];
        return ns.result && ns.result->payloads_size() > 0 ? &ns.result->payloads(0) : nullptr;
    };
    if (g.sinks.size() == 1) {
        if (const common::Payload* p = sink_payload(g.sinks[0])) {
            *result.add_payloads() = *p;
        } else {
            codec::to_payload("null", *result.add_payloads());
            codec::encode(o.codec, result);
        }
        return;
    }
    // The tuple is one JSON array: each sink's result is decoded to be part of it.
    std::string array = "[";
    for (std::size_t k = 0; k < g.sinks.size(); ++k) {
        std::string item = "null";
        if (const common::Payload* p = sink_payload(g.sinks[k])) {
            common::Payload plain = *p;
            codec::decode(o.codec, plain);
            item = codec::from_payload(plain);
        }
        array += (k ? "," : "") + item;
    }
    codec::to_payload(array + "]", *result.add_payloads());
    codec::encode(o.codec, result);
}

}  // namespace

decision decide(const graph_view& g, const history::History& events, const decide_options& o) {
    decision d;
    state s = replay(g, events, o.codec);
    if (!s.nondeterminism.empty()) {
        d.nondeterminism = "weft: the history of workflow '" + std::string(g.name) + "' does not match its graph: " +
                           s.nondeterminism;
        return d;
    }
    if (s.closed) return d;
    if (s.cancel_requested) {
        for (std::size_t n : g.topological_order) {
            if (!pending(s.nodes[n]) || s.nodes[n].cancel_requested) continue;
            auto& c = d.commands.emplace_back();
            c.set_command_type(enums::COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK);
            c.mutable_request_cancel_activity_task_command_attributes()->set_scheduled_event_id(s.nodes[n].scheduled_event);
        }
        auto& c = d.commands.emplace_back();
        c.set_command_type(enums::COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION);
        c.mutable_cancel_workflow_execution_command_attributes();
        return d;
    }
    if (s.first_failed) {
        fail(g, s.nodes[*s.first_failed], *s.first_failed, o, d.commands.emplace_back());
        return d;
    }
    if (std::all_of(g.sinks.begin(), g.sinks.end(), [&](std::size_t n) { return s.nodes[n].at == phase::completed; })) {
        complete(g, s, o, d.commands.emplace_back());
        return d;
    }
    for (std::size_t n : g.topological_order) {
        if (s.nodes[n].at != phase::idle) continue;
        bool ready = true;
        for (std::size_t k = 0; k < g.parent_count(n) && ready; ++k) ready = s.nodes[g.parent(n, k)].at == phase::completed;
        if (ready) schedule(g, s, n, o, d.commands.emplace_back());
    }
    return d;
}

std::vector<step_status> step_states(const graph_view& g, const history::History& events) {
    state s = replay(g, events);
    std::vector<step_status> out;
    for (std::size_t n = 0; n < g.names.size(); ++n) {
        const node_state& ns = s.nodes[n];
        step_status st{std::string(g.names[n])};
        st.attempts = ns.attempt;
        switch (ns.at) {
        case phase::idle: st.state = s.closed || s.cancel_requested || s.first_failed ? step_state::skipped : step_state::pending; break;
        case phase::scheduled: st.state = step_state::pending; break;
        case phase::started: st.state = step_state::running; break;
        case phase::completed: st.state = step_state::succeeded; break;
        case phase::failed:
        case phase::timed_out:
            st.state = step_state::failed;
            st.error = step_error(ns);
            break;
        case phase::cancelled: st.state = step_state::cancelled; break;
        }
        out.push_back(std::move(st));
    }
    return out;
}

namespace {

// What the server says of the activities in flight, over what the history says: the attempt an
// activity with retries is on, whether it started, and its last failure.
void overlay(std::vector<step_status>& steps, std::span<const ::temporal::api::workflow::v1::PendingActivityInfo> pending) {
    for (const auto& a : pending)
        for (step_status& s : steps) {
            if (s.name != a.activity_id()) continue;
            s.attempts = std::max(s.attempts, a.attempt());
            if (a.state() == enums::PENDING_ACTIVITY_STATE_STARTED) s.state = step_state::running;
            else if (a.attempt() > 1) s.state = step_state::retrying;
            if (a.has_last_failure()) s.error = codec::from_failure(a.last_failure()).describe();
        }
}

json::array steps_json(const std::vector<step_status>& steps) {
    json::array a;
    for (const step_status& s : steps) {
        json::object o{{"name", s.name}, {"state", std::string(to_string(s.state))}, {"attempts", s.attempts}};
        if (!s.error.empty()) o["error"] = s.error;
        a.push_back(std::move(o));
    }
    return a;
}

std::string stack_trace(const graph_view& g, const std::vector<step_status>& steps) {
    std::string out = "weft workflow '" + std::string(g.name) + "': a DAG of " + std::to_string(steps.size()) + " steps\n";
    std::size_t done = 0, shown = 0;
    for (std::size_t n : g.topological_order) {
        const step_status& s = steps[n];
        if (s.state == step_state::succeeded) ++done;
        if (is_final(s.state)) continue;
        bool ready = true;  // a pending step whose parents have not all succeeded is not waiting yet
        for (std::size_t k = 0; k < g.parent_count(n) && ready; ++k) ready = steps[g.parent(n, k)].state == step_state::succeeded;
        if (s.state == step_state::pending && !ready) continue;
        out += "  " + s.name + ": " + std::string(s.state == step_state::pending ? "scheduled" : to_string(s.state));
        if (s.attempts > 0) out += ", attempt " + std::to_string(s.attempts);
        if (!s.error.empty()) out += ", last error: " + s.error;
        out += "\n";
        ++shown;
    }
    if (shown == 0) out += "  no step is running\n";
    out += "  " + std::to_string(done) + " of " + std::to_string(steps.size()) + " steps succeeded\n";
    return out;
}

// The step table, in Markdown: the UI renders a workflow's current details as Markdown.
std::string details(const std::vector<step_status>& steps) {
    std::string out = "| step | state | attempts |\n|---|---|---|\n";
    for (const step_status& s : steps)
        out += "| " + s.name + " | " + std::string(to_string(s.state)) + " | " + std::to_string(s.attempts) + " |\n";
    return out;
}

// Sorted, as the SDKs list them.
constexpr std::string_view builtin_queries[] = {"__stack_trace", "__temporal_workflow_metadata", steps_query};

}  // namespace

bool answers(std::string_view query_type) noexcept {
    return std::find(std::begin(builtin_queries), std::end(builtin_queries), query_type) != std::end(builtin_queries);
}

query_answer answer_query(const graph_view& g, const history::History& events, std::string_view query_type,
                          std::span<const ::temporal::api::workflow::v1::PendingActivityInfo> pending) {
    query_answer a;
    auto known = [&] {
        std::string names;
        for (std::string_view q : builtin_queries) names += (names.empty() ? "" : " ") + std::string(q);
        return names;
    };
    if (!answers(query_type)) {
        // The Python SDK's words, so callers that match on them keep working.
        a.error = "Query handler for '" + std::string(query_type) + "' expected but not found, known queries: [" + known() + "]";
        return a;
    }
    std::vector<step_status> steps = step_states(g, events);
    overlay(steps, pending);
    a.ok = true;
    common::Payload& p = *a.answer.add_payloads();
    if (query_type == steps_query) {
        codec::to_payload(boost::json::serialize(steps_json(steps)), p);
    } else if (query_type == "__stack_trace") {
        codec::to_payload(boost::json::serialize(json::value(stack_trace(g, steps))), p);
    } else {
        json::array queries;
        for (std::string_view q : builtin_queries)
            queries.push_back(json::object{{"name", q},
                                           {"description", q == steps_query ? "each step's state, attempts and last error" : ""}});
        json::object definition{{"type", g.name}, {"queryDefinitions", std::move(queries)},
                                {"signalDefinitions", json::array()}, {"updateDefinitions", json::array()}};
        json::object metadata{{"definition", std::move(definition)}, {"currentDetails", details(steps)}};
        (*p.mutable_metadata())["encoding"] = "json/protobuf";
        (*p.mutable_metadata())["messageType"] = "temporal.api.sdk.v1.WorkflowMetadata";
        p.set_data(boost::json::serialize(metadata));
    }
    return a;
}

}  // namespace weft::temporal_detail::interpreter
