#include <weft/temporal/backend.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/json/serialize.hpp>

#include <weft/kit/backoff.hpp>
#include <weft/kit/remote_run.hpp>
#include <weft/kit/step_watcher.hpp>

#include "codec.hpp"
#include "connection.hpp"
#include "decide.hpp"

namespace weft::temporal_detail {

namespace wf = ::temporal::api::workflowservice::v1;

struct backend_impl::state {
    temporal_detail::client client;
    connection conn;  // for the history that steps() reads
    kit::step_watchers watchers;  // last: joined before the connections they use go away
    explicit state(options s) : client(s), conn(s) {}
};

namespace {

// The run's history so far, every page.
::temporal::api::history::v1::History history_of(const backend_impl::state& st, const workflow_execution& run) {
    ::temporal::api::history::v1::History h;
    std::string page;
    do {
        wf::GetWorkflowExecutionHistoryRequest req;
        req.set_namespace_(st.conn.configuration().namespace_name);
        req.mutable_execution()->set_workflow_id(run.workflow_id);
        req.mutable_execution()->set_run_id(run.run_id);
        req.set_next_page_token(page);
        auto resp = st.conn.call("GetWorkflowExecutionHistory", &connection::service::Stub::GetWorkflowExecutionHistory, req);
        for (auto& e : *resp.mutable_history()->mutable_events()) *h.add_events() = std::move(e);
        page = resp.next_page_token();
    } while (!page.empty());
    return h;
}

namespace enums = ::temporal::api::enums::v1;
namespace history_v1 = ::temporal::api::history::v1;

// The step that failed a run of weft's interpreter for good (a weft.step_failed failure, whose one
// detail is {"step", "error", "attempts"}); nothing for any other failure.
std::optional<step_failed> step_failure_of(const failure& f) {
    if (f.type != interpreter::step_failed_type || f.details.empty()) return std::nullopt;
    try {
        const json::object detail = json::parse(f.details[0]).as_object();
        return step_failed(std::string(detail.at("step").as_string()), std::string(detail.at("error").as_string()),
                           static_cast<int>(detail.at("attempts").to_number<std::int64_t>()));
    } catch (const std::exception&) {  // not weft's shape after all
        return std::nullopt;
    }
}

std::chrono::system_clock::time_point time_of(const google::protobuf::Timestamp& t) {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
}

wf::DescribeWorkflowExecutionResponse describe_execution(const backend_impl::state& st, const workflow_execution& run) {
    wf::DescribeWorkflowExecutionRequest req;
    req.set_namespace_(st.conn.configuration().namespace_name);
    req.mutable_execution()->set_workflow_id(run.workflow_id);
    req.mutable_execution()->set_run_id(run.run_id);
    return st.conn.call("DescribeWorkflowExecution", &connection::service::Stub::DescribeWorkflowExecution, req);
}

// The latest run of workflow id `id`; run_not_found (for a run of `workflow`, when named) if none.
wf::DescribeWorkflowExecutionResponse latest_run(const backend_impl::state& st, std::string_view workflow, std::string_view id) {
    try {
        return describe_execution(st, {std::string(id), {}});
    } catch (const not_found& e) {
        throw run_not_found("temporal", workflow, id,
                            "namespace '" + st.conn.configuration().namespace_name + "' has no such workflow id (" +
                                e.what() + ")");
    }
}

// Whether a step of the run has begun: an activity the server reports started, or one the history
// shows started or closed (Temporal writes ActivityTaskStarted only when the attempt ends).
bool any_step_began(const wf::DescribeWorkflowExecutionResponse& d, const history_v1::History* h) {
    for (const auto& a : d.pending_activities())
        if (a.state() != enums::PENDING_ACTIVITY_STATE_SCHEDULED || a.attempt() > 1) return true;
    if (h)
        for (const auto& e : h->events())
            switch (e.event_type()) {
            case enums::EVENT_TYPE_ACTIVITY_TASK_STARTED:
            case enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            case enums::EVENT_TYPE_ACTIVITY_TASK_FAILED:
            case enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            case enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED: return true;
            default: break;
            }
    return false;
}

// A run as Temporal reports it: queued while it runs and no step has begun (no worker took its
// workflow task, or none took its first activity).
run_state run_state_of(const backend_impl::state& st, const wf::DescribeWorkflowExecutionResponse& d,
                       const history_v1::History* known) {
    switch (static_cast<workflow_status>(d.workflow_execution_info().status())) {
    case workflow_status::completed: return run_state::succeeded;
    case workflow_status::canceled: return run_state::cancelled;
    case workflow_status::failed:
    case workflow_status::terminated:
    case workflow_status::timed_out: return run_state::failed;
    default: break;
    }
    if (any_step_began(d, nullptr)) return run_state::running;
    if (known) return any_step_began(d, known) ? run_state::running : run_state::queued;
    const auto& e = d.workflow_execution_info().execution();
    const auto h = history_of(st, {e.workflow_id(), e.run_id()});
    return any_step_began(d, &h) ? run_state::running : run_state::queued;
}

// A run of a weft DAG on Temporal, as weft's run handles see it.
class dag_run final : public kit::remote_run {
public:
    dag_run(std::shared_ptr<backend_impl::state> s, const erased_workflow& wf, workflow_execution run, bool attached)
        : remote_run(wf, run.workflow_id, temporal::name, attached), state_(std::move(s)), run_(std::move(run)) {}

    std::vector<step_status> steps() const override {
        return interpreter::step_states(wf_.graph, history_of(*state_, run_));
    }

    void cancel() override { state_->client.cancel(run_, "cancelled through weft"); }

private:
    run_state live_state() const override {
        const auto d = describe_execution(*state_, run_);
        if (d.workflow_execution_info().status() == enums::WORKFLOW_EXECUTION_STATUS_RUNNING && begun_.load()) return run_state::running;
        const run_state s = run_state_of(*state_, d, nullptr);
        if (s == run_state::running) begun_.store(true);  // once begun, one call per state() again
        return s;
    }

    // One long poll for the result (GetWorkflowExecutionHistory with wait_new_event, in the client).
    std::optional<outcome> await(std::chrono::milliseconds timeout) const override {
        try {
            return outcome{run_state::succeeded, json::parse(state_->client.result_json(run_, timeout)), {}};
        } catch (const wait_timeout&) {
            return std::nullopt;
        } catch (const workflow_cancelled&) {
            return cancelled();
        } catch (const workflow_failed& e) {
            return outcome{run_state::failed, {}, step_error(e)};
        } catch (...) {
            return outcome{run_state::failed, {}, std::current_exception()};
        }
    }

    // A run failed by the interpreter because a step failed for good reads as on the embedded engine.
    static std::exception_ptr step_error(const workflow_failed& e) {
        if (auto f = step_failure_of(e.failure())) return std::make_exception_ptr(*f);
        return std::make_exception_ptr(e);
    }

    std::shared_ptr<backend_impl::state> state_;
    workflow_execution run_;
    mutable std::atomic<bool> begun_{false};  // a step was seen begun: running until the run closes
};

bool closes_the_run(const ::temporal::api::history::v1::HistoryEvent& e) {
    namespace enums = ::temporal::api::enums::v1;
    switch (e.event_type()) {
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: return true;
    default: return false;
    }
}

// run_options::on_step: a watcher follows the run's history with long polls (wait_new_event) and
// reports each change of a step's state until the run closes. Temporal writes ActivityTaskStarted only
// when an attempt ends, so steps go from pending to their final state.
kit::step_watchers::poll_fn follow(const backend_impl::state& st, const graph_view& g, workflow_execution run) {
    struct progress {
        ::temporal::api::history::v1::History h;
        std::string page;
        int idle = 0;
        kit::backoff away;
    };
    return [&st, &g, run = std::move(run), p = std::make_shared<progress>()](std::vector<step_status>& steps,
                                                                             std::stop_token stop) {
        wf::GetWorkflowExecutionHistoryRequest req;
        req.set_namespace_(st.conn.configuration().namespace_name);
        req.mutable_execution()->set_workflow_id(run.workflow_id);
        req.mutable_execution()->set_run_id(run.run_id);
        req.set_next_page_token(p->page);
        req.set_wait_new_event(true);
        grpc::ClientContext ctx;
        connection::set_deadline(ctx, std::chrono::seconds(70));
        std::stop_callback cancel(stop, [&ctx] { ctx.TryCancel(); });  // the backend is going away
        wf::GetWorkflowExecutionHistoryResponse resp;
        grpc::Status status = st.conn.stub().GetWorkflowExecutionHistory(&ctx, req, &resp);
        if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
            steps = interpreter::step_states(g, p->h);
            return false;
        }
        // A stream reset by the server, or a server away: polled again after the kit's backoff, as the
        // result's wait does (client.cpp); a stop ends it.
        if ((status.error_code() == grpc::StatusCode::CANCELLED || status.error_code() == grpc::StatusCode::UNAVAILABLE) &&
            !stop.stop_requested()) {
            steps = interpreter::step_states(g, p->h);
            return !kit::sleep_unless_stopped(p->away.failed(), stop);
        }
        p->away.succeeded();
        if (!status.ok()) throw std::runtime_error(status.error_message());  // the handle reports it to waiters
        if (resp.history().events_size() == 0 && ++p->idle >= 1000) return true;  // bounded: ~20 s per empty poll
        for (auto& e : *resp.mutable_history()->mutable_events()) *p->h.add_events() = std::move(e);
        steps = interpreter::step_states(g, p->h);
        p->page = resp.next_page_token();
        return p->page.empty() || (p->h.events_size() > 0 && closes_the_run(p->h.events(p->h.events_size() - 1)));
    };
}

}  // namespace

backend_impl::backend_impl(options s) : state_(std::make_shared<state>(std::move(s))) {}
backend_impl::~backend_impl() = default;

// The memo key holding a weft run's step names, so that describe() lists every node without the
// workflow's type.
constexpr std::string_view steps_memo = "weft_steps";

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    refuse_transactional_steps(wf.graph, name());
    check_metadata(opts.metadata);
    std::vector<std::string> args;
    const json::value values = wf.codec->encode_input(input);
    for (const json::value& v : values.as_array()) args.push_back(boost::json::serialize(v));
    const std::string id = run_id{temporal::name, wf.graph.name, connection::request_id()}.str();
    json::array steps;
    for (auto n : wf.graph.names) steps.push_back(json::value(n));
    start_options so{.workflow_id = id, .memo = {{std::string(steps_memo), boost::json::serialize(steps)}}};
    // The run's metadata: one memo field per key, as a Python caller's memo={...} (codec.hpp).
    for (const auto& [k, v] : opts.metadata) so.memo.emplace_back(k, boost::json::serialize(json::value(v)));
    workflow_execution run = state_->client.start_json(wf.graph.name, args, so);
    return handle(wf, std::move(run), std::move(opts));
}

// DescribeWorkflowExecution (type, status, times, memo, pending activities) and the history (each
// activity's attempts, times and errors, the result or the failure).
run_description backend_impl::describe(std::string_view id) {
    const auto resp = latest_run(*state_, {}, id);
    const auto& info = resp.workflow_execution_info();
    const workflow_execution run{info.execution().workflow_id(), info.execution().run_id()};
    const auto h = history_of(*state_, run);
    run_description d;
    d.backend = temporal::name;
    d.workflow = info.type().name();
    d.id = run.workflow_id;
    d.state = run_state_of(*state_, resp, &h);
    if (info.has_start_time()) d.created = time_of(info.start_time());
    if (info.has_close_time() && d.state != run_state::running && d.state != run_state::queued) d.finished = time_of(info.close_time());

    // Steps: every node named in weft's memo, in node order; else the activities the history shows.
    auto step = [&](std::string_view name) -> step_description& {
        for (auto& s : d.steps)
            if (s.name == name) return s;
        return d.steps.emplace_back(step_description{std::string(name)});
    };
    if (auto m = info.memo().fields().find(std::string(steps_memo)); m != info.memo().fields().end()) {
        try {
            ::temporal::api::common::v1::Payload p = m->second;
            codec::decode(state_->client.configuration().codec.get(), p);
            const json::value names = json::parse(codec::from_payload(p));
            for (auto& n : names.as_array()) step(n.as_string());
        } catch (const std::exception&) {  // not weft's memo after all: the history's activities only
        }
    }
    std::vector<std::pair<std::int64_t, std::string>> scheduled;  // event id -> activity id
    auto by_scheduled = [&](std::int64_t event) -> step_description* {
        for (auto& [e, name] : scheduled)
            if (e == event) return &step(name);
        return nullptr;
    };
    // An attempt ended: its state, time and error (Temporal retries inside one scheduled activity).
    auto close = [&](std::int64_t scheduled, step_state state, const history_v1::HistoryEvent& e, std::string error) {
        if (auto* s = by_scheduled(scheduled)) {
            s->state = state;
            s->finished = time_of(e.event_time());
            s->error = std::move(error);
            if (state != step_state::cancelled) s->attempts = std::max(s->attempts, 1);
        }
    };
    for (const auto& e : h.events()) {
        switch (e.event_type()) {
        case enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled.emplace_back(e.event_id(), e.activity_task_scheduled_event_attributes().activity_id());
            step(scheduled.back().second);
            break;
        case enums::EVENT_TYPE_ACTIVITY_TASK_STARTED:
            if (auto* s = by_scheduled(e.activity_task_started_event_attributes().scheduled_event_id())) {
                s->attempts = e.activity_task_started_event_attributes().attempt();
                s->state = step_state::running;
                if (!s->started) s->started = time_of(e.event_time());
            }
            break;
        case enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            close(e.activity_task_completed_event_attributes().scheduled_event_id(), step_state::succeeded, e, {});
            break;
        case enums::EVENT_TYPE_ACTIVITY_TASK_FAILED: {
            const auto& a = e.activity_task_failed_event_attributes();
            close(a.scheduled_event_id(), step_state::failed, e, codec::from_failure(a.failure()).describe());
            break;
        }
        case enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: {
            const auto& a = e.activity_task_timed_out_event_attributes();
            close(a.scheduled_event_id(), step_state::failed, e, codec::from_failure(a.failure()).describe());
            break;
        }
        case enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            close(e.activity_task_canceled_event_attributes().scheduled_event_id(), step_state::cancelled, e, {});
            break;
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: {
            const auto& r = e.workflow_execution_completed_event_attributes().result();
            ::temporal::api::common::v1::Payloads result = r;
            codec::decode(state_->client.configuration().codec.get(), result);
            d.output = result.payloads_size() == 0 ? json::value() : json::parse(codec::from_payload(result.payloads(0)));
            break;
        }
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: {
            ::temporal::api::failure::v1::Failure raw = e.workflow_execution_failed_event_attributes().failure();
            codec::decode(state_->client.configuration().codec.get(), raw);
            const failure f = codec::from_failure(raw);
            d.error = f.describe();
            if (auto step = step_failure_of(f)) {
                d.failed_step = step->step();
                d.error = step->error();
            }
            break;
        }
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            d.error = "terminated: " + e.workflow_execution_terminated_event_attributes().reason();
            break;
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: d.error = "timed out"; break;
        default: break;
        }
    }
    // What runs now: the server's pending activities (their attempt, start, last failure).
    for (const auto& a : resp.pending_activities()) {
        step_description& s = step(a.activity_id());
        s.attempts = std::max(s.attempts, a.attempt());
        if (a.state() == enums::PENDING_ACTIVITY_STATE_STARTED) {
            s.state = step_state::running;
            if (a.has_last_started_time() && !s.started) s.started = time_of(a.last_started_time());
        } else if (a.attempt() > 1) {
            s.state = step_state::retrying;
        } else {
            s.attempts = 0;
        }
        if (a.has_last_failure()) s.error = codec::from_failure(a.last_failure()).describe();
    }
    if (is_final(d.state))
        for (auto& s : d.steps)
            if (s.state == step_state::pending) s.state = step_state::skipped;
    for (auto& s : d.steps)
        if (s.started && (!d.started || *s.started < *d.started)) d.started = s.started;
    if (d.state != run_state::succeeded) d.output = nullptr;
    return d;
}

// Visibility: ListWorkflowExecutions with WorkflowType = '<workflow>'. The dev server's SQLite
// visibility refuses ORDER BY and lists open runs first, then by close time: so a window of up to
// limit + 100 runs is read and sorted here by start time, newest first (a run started long before
// the others but closed last can push a newer one out of that window only past 100 such runs).
namespace {

// A refused call as an operator reads it: what failed, and what to do.
health_check failed_check(std::string name, const rpc_error& e, const options& o) {
    const std::string at = "Temporal at " + o.address;
    const std::string said = e.code_name() + ": " + e.server_message();
    switch (static_cast<grpc::StatusCode>(e.code())) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
        // A TLS-only frontend drops a plaintext connection: the same UNAVAILABLE, with a hint in the message.
        return {std::move(name), false, "cannot reach " + at + " (" + said + ")",
                "start the server (scripts/services up), or fix address (WEFT_TEMPORAL_ADDRESS); a server that "
                "requires TLS is not reachable: weft connects without TLS"};
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
        return {std::move(name), false, at + " refused the call: " + said,
                "the server requires credentials (an API key or mTLS client certificate), which weft's Temporal "
                "backend does not send: use a server or namespace without authorization"};
    default: return {std::move(name), false, at + ": " + e.rpc() + " failed: " + said, "see the server's log"};
    }
}

}  // namespace

std::vector<health_check> backend_impl::doctor() {
    using stub = connection::service::Stub;
    const options& o = state_->conn.configuration();
    std::vector<health_check> out;
    try {
        const auto info = state_->conn.call("GetSystemInfo", &stub::GetSystemInfo, wf::GetSystemInfoRequest{});
        const auto& c = info.capabilities();
        std::string caps;
        auto cap = [&](bool on, const char* n) {
            if (on) caps += (caps.empty() ? "" : ", ") + std::string(n);
        };
        cap(c.signal_and_query_header(), "signal_and_query_header");
        cap(c.internal_error_differentiation(), "internal_error_differentiation");
        cap(c.supports_schedules(), "supports_schedules");
        cap(c.encoded_failure_attributes(), "encoded_failure_attributes");
        cap(c.upsert_memo(), "upsert_memo");
        cap(c.eager_workflow_start(), "eager_workflow_start");
        cap(c.sdk_metadata(), "sdk_metadata");
        cap(c.nexus(), "nexus");
        out.push_back({"temporal.server", true,
                       "Temporal " + (info.server_version().empty() ? std::string("(version not reported)") : info.server_version()) +
                           " at " + o.address + "; capabilities: " + (caps.empty() ? "none" : caps),
                       {}});
    } catch (const rpc_error& e) {
        out.push_back(failed_check("temporal.server", e, o));
        return out;  // nothing else can be asked
    }
    try {
        wf::DescribeNamespaceRequest req;
        req.set_namespace_(o.namespace_name);
        const auto ns = state_->conn.call("DescribeNamespace", &stub::DescribeNamespace, req);
        const auto& ni = ns.namespace_info();
        const bool registered = ni.state() == ::temporal::api::enums::v1::NAMESPACE_STATE_REGISTERED;
        out.push_back({"temporal.namespace", registered,
                       "namespace '" + o.namespace_name + "' is " +
                           ::temporal::api::enums::v1::NamespaceState_Name(ni.state()),
                       registered ? "" : "use a registered namespace (namespace, WEFT_TEMPORAL_NAMESPACE)"});
    } catch (const rpc_error& e) {
        if (!dynamic_cast<const namespace_not_found*>(&e) && !dynamic_cast<const not_found*>(&e)) {
            out.push_back(failed_check("temporal.namespace", e, o));
            return out;
        }
        out.push_back({"temporal.namespace", false, "namespace '" + o.namespace_name + "' does not exist on " + o.address,
                       "create it: temporal operator namespace create --namespace " + o.namespace_name + " --address " +
                           o.address + ", or set namespace (WEFT_TEMPORAL_NAMESPACE) to an existing one"});
        return out;
    }
    if (o.task_queue.empty()) {
        out.push_back({"temporal.pollers", true, "warning: no task_queue configured, so no queue to look at", {}});
        return out;
    }
    // Workflow tasks and activity tasks are polled separately; weft's worker does both.
    std::string seen;
    bool any = false;
    for (auto type : {::temporal::api::enums::v1::TASK_QUEUE_TYPE_WORKFLOW, ::temporal::api::enums::v1::TASK_QUEUE_TYPE_ACTIVITY}) {
        try {
            wf::DescribeTaskQueueRequest req;
            req.set_namespace_(o.namespace_name);
            req.mutable_task_queue()->set_name(o.task_queue);
            req.mutable_task_queue()->set_kind(::temporal::api::enums::v1::TASK_QUEUE_KIND_NORMAL);
            req.set_task_queue_type(type);
            const auto tq = state_->conn.call("DescribeTaskQueue", &stub::DescribeTaskQueue, req);
            any = any || tq.pollers_size() > 0;
            seen += (seen.empty() ? "" : ", ") + std::to_string(tq.pollers_size()) +
                    (type == ::temporal::api::enums::v1::TASK_QUEUE_TYPE_WORKFLOW ? " workflow" : " activity") + " poller(s)";
        } catch (const rpc_error& e) {
            seen += (seen.empty() ? "" : ", ") + std::string("DescribeTaskQueue failed: ") + e.code_name();
        }
    }
    out.push_back({"temporal.pollers", true,
                   (any ? "" : "warning: ") + std::string("task queue '") + o.task_queue + "': " + seen +
                       (any ? "" : "; runs wait until a worker polls it"),
                   {}});
    return out;
}

std::vector<run_summary> backend_impl::list(std::string_view workflow, std::size_t limit) {
    std::string quoted;
    for (char c : workflow) {
        if (c == '\'' || c == '\\') quoted += '\\';
        quoted += c;
    }
    const std::size_t window = std::min<std::size_t>(limit, 10'000) + 100;
    std::vector<::temporal::api::workflow::v1::WorkflowExecutionInfo> seen;
    std::string page;
    while (limit > 0 && seen.size() < window) {
        wf::ListWorkflowExecutionsRequest req;
        req.set_namespace_(state_->conn.configuration().namespace_name);
        req.set_page_size(static_cast<int>(std::min<std::size_t>(window - seen.size(), 1000)));
        req.set_query("WorkflowType = '" + quoted + "'");
        req.set_next_page_token(page);
        auto resp = state_->conn.call("ListWorkflowExecutions", &connection::service::Stub::ListWorkflowExecutions, req);
        for (auto& info : *resp.mutable_executions()) seen.push_back(std::move(info));
        page = resp.next_page_token();
        if (page.empty() || resp.executions_size() == 0) break;
    }
    auto started = [](const auto& info) { return std::pair(info.start_time().seconds(), info.start_time().nanos()); };
    std::stable_sort(seen.begin(), seen.end(), [&](const auto& a, const auto& b) { return started(a) > started(b); });
    std::vector<run_summary> out;
    for (const auto& info : seen) {
        if (out.size() >= limit) break;
        const std::string& id = info.execution().workflow_id();
        if (std::any_of(out.begin(), out.end(), [&](const run_summary& r) { return r.id == id; })) continue;  // an older run of the id
        run_summary s{id, info.type().name(), run_state::running, {}, {}};
        if (info.has_start_time()) s.created = time_of(info.start_time());
        wf::DescribeWorkflowExecutionResponse d;
        if (info.status() == enums::WORKFLOW_EXECUTION_STATUS_RUNNING)
            d = describe_execution(*state_, {id, info.execution().run_id()});  // queued or running
        else
            *d.mutable_workflow_execution_info() = info;
        s.state = run_state_of(*state_, d, nullptr);
        out.push_back(std::move(s));
    }
    return out;
}

// The workflow id names the run; DescribeWorkflowExecution says whether it exists, which type it is,
// and its latest run.
std::shared_ptr<run_control> backend_impl::attach(const erased_workflow& wf, std::string_view id) {
    const auto resp = latest_run(*state_, wf.graph.name, id);
    const auto& info = resp.workflow_execution_info();
    if (info.type().name() != wf.graph.name)
        throw config_error("weft: temporal run '" + std::string(id) + "' is a workflow of type '" + info.type().name() +
                           "', not '" + std::string(wf.graph.name) + "'");
    return handle(wf, {info.execution().workflow_id(), info.execution().run_id()}, {}, true);
}

std::shared_ptr<run_control> backend_impl::handle(const erased_workflow& wf, workflow_execution run, run_options opts,
                                                  bool attached) {
    if (opts.on_step)
        state_->watchers.watch(wf.graph, std::move(opts.on_step), follow(*state_, wf.graph, run), std::chrono::milliseconds(0));
    return std::make_shared<dag_run>(state_, wf, std::move(run), attached);
}

}  // namespace weft::temporal_detail
