#include <weft/temporal/backend.hpp>

#include <mutex>
#include <thread>

#include <boost/json/serialize.hpp>

#include "codec.hpp"
#include "connection.hpp"
#include "decide.hpp"

namespace weft::temporal {

namespace wf = ::temporal::api::workflowservice::v1;

struct dag_backend::state {
    temporal::client client;
    connection conn;  // for the history that steps() reads
    explicit state(settings s) : client(s), conn(s) {}
};

namespace {

// A run of a weft DAG on Temporal, as weft's run handles see it.
class dag_run final : public run_control {
public:
    dag_run(std::shared_ptr<dag_backend::state> s, const erased_workflow& wf, workflow_execution run)
        : state_(std::move(s)), wf_(wf), run_(std::move(run)) {}

    std::string_view workflow() const noexcept override { return wf_.name; }
    std::string id() const override { return run_.workflow_id; }

    run_state state() const override {
        {
            std::lock_guard l(m_);
            if (done_) return outcome_;
        }
        switch (state_->client.status(run_)) {
        case workflow_status::completed: return run_state::succeeded;
        case workflow_status::canceled: return run_state::cancelled;
        case workflow_status::failed:
        case workflow_status::terminated:
        case workflow_status::timed_out: return run_state::failed;
        default: return run_state::running;
        }
    }

    std::vector<step_status> steps() const override {
        ::temporal::api::history::v1::History h;
        std::string page;
        do {
            wf::GetWorkflowExecutionHistoryRequest req;
            req.set_namespace_(state_->conn.configuration().namespace_name);
            req.mutable_execution()->set_workflow_id(run_.workflow_id);
            req.mutable_execution()->set_run_id(run_.run_id);
            req.set_next_page_token(page);
            auto resp = state_->conn.call("GetWorkflowExecutionHistory", &connection::service::Stub::GetWorkflowExecutionHistory, req);
            for (auto& e : *resp.mutable_history()->mutable_events()) *h.add_events() = std::move(e);
            page = resp.next_page_token();
        } while (!page.empty());
        return interpreter::step_states(wf_, h);
    }

    void cancel() override { state_->client.cancel(run_, "cancelled through weft"); }

    void wait() const override {
        while (!wait_for(std::chrono::hours(1))) {
        }
    }

    bool wait_for(std::chrono::milliseconds timeout) const override {
        {
            std::lock_guard l(m_);
            if (done_) return true;
        }
        std::shared_ptr<const void> output;
        std::exception_ptr error;
        run_state outcome = run_state::failed;
        try {
            output = wf_.decode_output(state_->client.result_json(run_, timeout));
            outcome = run_state::succeeded;
        } catch (const wait_timeout&) {
            return false;
        } catch (const workflow_cancelled&) {
            error = std::make_exception_ptr(run_cancelled(wf_.name));
            outcome = run_state::cancelled;
        } catch (const workflow_failed& e) {
            error = step_error(e);
        } catch (...) {
            error = std::current_exception();
        }
        std::lock_guard l(m_);
        done_ = true;
        outcome_ = outcome;
        output_ = std::move(output);
        error_ = error;
        return true;
    }

    const void* result() const override {
        wait();
        std::lock_guard l(m_);
        if (error_) std::rethrow_exception(error_);
        return output_.get();
    }

private:
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

    std::shared_ptr<dag_backend::state> state_;
    const erased_workflow& wf_;
    workflow_execution run_;
    mutable std::mutex m_;
    mutable bool done_ = false;
    mutable run_state outcome_ = run_state::running;
    mutable std::shared_ptr<const void> output_;
    mutable std::exception_ptr error_;
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

// run_options::on_step: a thread follows the run's history with long polls (wait_new_event) and reports
// each change of a step's state until the run closes. Temporal writes ActivityTaskStarted only when an
// attempt ends, so steps go from pending to their final state.
void follow(std::shared_ptr<dag_backend::state> st, const erased_workflow& wf, workflow_execution run,
            std::function<void(const step_event&)> on_step) {
    std::thread([st = std::move(st), &wf, run = std::move(run), on_step = std::move(on_step)] {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<step_state> seen(wf.steps.size(), step_state::pending);
        ::temporal::api::history::v1::History h;
        std::string page;
        for (int idle = 0; idle < 1000;) {  // bounded: about 20 s per empty poll
            wf::GetWorkflowExecutionHistoryRequest req;
            req.set_namespace_(st->conn.configuration().namespace_name);
            req.mutable_execution()->set_workflow_id(run.workflow_id);
            req.mutable_execution()->set_run_id(run.run_id);
            req.set_next_page_token(page);
            req.set_wait_new_event(true);
            grpc::ClientContext ctx;
            connection::set_deadline(ctx, std::chrono::seconds(70));
            wf::GetWorkflowExecutionHistoryResponse resp;
            grpc::Status status = st->conn.stub().GetWorkflowExecutionHistory(&ctx, req, &resp);
            if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) continue;
            if (!status.ok()) return;  // the handle reports errors to whoever waits on it
            if (resp.history().events_size() == 0) ++idle;
            for (auto& e : *resp.mutable_history()->mutable_events()) *h.add_events() = std::move(e);
            const auto steps = interpreter::step_states(wf, h);
            for (std::size_t i = 0; i < steps.size(); ++i) {
                if (steps[i].state == seen[i]) continue;
                seen[i] = steps[i].state;
                on_step(step_event{wf.name, wf.steps[i], steps[i].state, std::max(1, steps[i].attempts), steps[i].error,
                                   std::chrono::steady_clock::now() - t0});
            }
            page = resp.next_page_token();
            if (page.empty() || (h.events_size() > 0 && closes_the_run(h.events(h.events_size() - 1)))) return;
        }
    }).detach();
}

}  // namespace

dag_backend::dag_backend(settings s) : state_(std::make_shared<state>(std::move(s))) {}
dag_backend::~dag_backend() = default;

std::shared_ptr<run_control> dag_backend::start(const erased_workflow& wf, const void* input, run_options opts) {
    std::vector<std::string> args;
    const json::value values = json::parse(wf.encode_input(input));
    for (const json::value& v : values.as_array()) args.push_back(boost::json::serialize(v));
    const std::string id = std::string(wf.name) + "-" + connection::request_id();
    workflow_execution run = state_->client.start_json(wf.name, args, {.workflow_id = id});
    if (opts.on_step) follow(state_, wf, run, std::move(opts.on_step));
    return std::make_shared<dag_run>(state_, wf, std::move(run));
}

}  // namespace weft::temporal
