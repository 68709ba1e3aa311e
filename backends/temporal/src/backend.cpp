#include <weft/temporal/backend.hpp>

#include <mutex>

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

}  // namespace

dag_backend::dag_backend(settings s) : state_(std::make_shared<state>(std::move(s))) {}
dag_backend::~dag_backend() = default;

std::shared_ptr<run_control> dag_backend::start(const erased_workflow& wf, const void* input, run_options) {
    std::vector<std::string> args;
    const json::value values = json::parse(wf.encode_input(input));
    for (const json::value& v : values.as_array()) args.push_back(boost::json::serialize(v));
    const std::string id = std::string(wf.name) + "-" + connection::request_id();
    workflow_execution run = state_->client.start_json(wf.name, args, {.workflow_id = id});
    return std::make_shared<dag_run>(state_, wf, std::move(run));
}

}  // namespace weft::temporal
