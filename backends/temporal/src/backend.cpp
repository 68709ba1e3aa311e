#include <weft/temporal/backend.hpp>

#include <mutex>
#include <thread>

#include <boost/json/serialize.hpp>

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

// A run of a weft DAG on Temporal, as weft's run handles see it.
class dag_run final : public kit::remote_run {
public:
    dag_run(std::shared_ptr<backend_impl::state> s, const erased_workflow& wf, workflow_execution run)
        : remote_run(wf, run.workflow_id), state_(std::move(s)), run_(std::move(run)) {}

    std::vector<step_status> steps() const override {
        return interpreter::step_states(wf_.graph, history_of(*state_, run_));
    }

    void cancel() override { state_->client.cancel(run_, "cancelled through weft"); }

private:
    run_state live_state() const override {
        switch (state_->client.status(run_)) {
        case workflow_status::completed: return run_state::succeeded;
        case workflow_status::canceled: return run_state::cancelled;
        case workflow_status::failed:
        case workflow_status::terminated:
        case workflow_status::timed_out: return run_state::failed;
        default: return run_state::running;
        }
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
        const failure& f = e.failure();
        if (f.type == interpreter::step_failed_type && !f.details.empty()) {
            try {
                const json::object detail = json::parse(f.details[0]).as_object();
                return std::make_exception_ptr(step_failed(std::string(detail.at("step").as_string()),
                                                           std::string(detail.at("error").as_string()),
                                                           static_cast<int>(detail.at("attempts").to_number<std::int64_t>())));
            } catch (const std::exception&) {  // not weft's shape after all: keep the workflow failure
            }
        }
        return std::make_exception_ptr(e);
    }

    std::shared_ptr<backend_impl::state> state_;
    workflow_execution run_;
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

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    std::vector<std::string> args;
    const json::value values = wf.codec->encode_input(input);
    for (const json::value& v : values.as_array()) args.push_back(boost::json::serialize(v));
    const std::string id = run_id{temporal::name, wf.graph.name, connection::request_id()}.str();
    workflow_execution run = state_->client.start_json(wf.graph.name, args, {.workflow_id = id});
    return handle(wf, std::move(run), std::move(opts));
}

// The workflow id names the run; DescribeWorkflowExecution says whether it exists, which type it is,
// and its latest run.
std::shared_ptr<run_control> backend_impl::attach(const erased_workflow& wf, std::string_view id) {
    wf::DescribeWorkflowExecutionRequest req;
    req.set_namespace_(state_->conn.configuration().namespace_name);
    req.mutable_execution()->set_workflow_id(std::string(id));
    wf::DescribeWorkflowExecutionResponse resp;
    try {
        resp = state_->conn.call("DescribeWorkflowExecution", &connection::service::Stub::DescribeWorkflowExecution, req);
    } catch (const not_found& e) {
        throw run_not_found("temporal", wf.graph.name, id,
                            "namespace '" + state_->conn.configuration().namespace_name + "' has no such workflow id (" +
                                e.what() + ")");
    }
    const auto& info = resp.workflow_execution_info();
    if (info.type().name() != wf.graph.name)
        throw config_error("weft: temporal run '" + std::string(id) + "' is a workflow of type '" + info.type().name() +
                           "', not '" + std::string(wf.graph.name) + "'");
    return handle(wf, {info.execution().workflow_id(), info.execution().run_id()}, {});
}

std::shared_ptr<run_control> backend_impl::handle(const erased_workflow& wf, workflow_execution run, run_options opts) {
    if (opts.on_step)
        state_->watchers.watch(wf.graph, std::move(opts.on_step), follow(*state_, wf.graph, run), std::chrono::milliseconds(0));
    return std::make_shared<dag_run>(state_, wf, std::move(run));
}

}  // namespace weft::temporal_detail
