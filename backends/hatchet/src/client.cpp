// The Hatchet client: lowering an erased workflow to a registration (once per client and workflow),
// one TriggerWorkflowRun per run, and a run handle that polls GetRunDetails (as the Python SDK's
// result() does) for the run's status, each task's status and the sinks' outputs.
#include "connection.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <mutex>
#include <set>
#include <thread>

namespace weft::hatchet_detail {

using namespace hatchet_wire;

struct backend_impl::state {
    hatchet::options opts;
    connection conn;
    std::mutex m;
    std::set<std::string, std::less<>> registered;  // workflow names put in this client's lifetime

    explicit state(hatchet::options o) : opts(std::move(o)), conn(opts) {}

    void ensure_registered(const erased_workflow& wf) {
        {
            std::lock_guard lock(m);
            if (registered.count(wf.name)) return;
        }
        put_workflow(conn, lower(wf));
        std::lock_guard lock(m);
        registered.emplace(wf.name);
    }
};

namespace {

step_state step_state_of(v1::RunStatus s) {
    switch (s) {
    case v1::QUEUED: return step_state::pending;
    case v1::RUNNING: return step_state::running;
    case v1::COMPLETED: return step_state::succeeded;
    case v1::FAILED: return step_state::failed;
    case v1::CANCELLED: return step_state::cancelled;
    default: return step_state::running;  // EVICTED: a durable task parked by its worker
    }
}

class hatchet_run final : public run_control {
public:
    hatchet_run(std::shared_ptr<backend_impl::state> st, const erased_workflow& wf, std::string id)
        : st_(std::move(st)), wf_(wf), id_(std::move(id)) {}

    std::string_view workflow() const noexcept override { return wf_.name; }
    std::string id() const override { return id_; }

    run_state state() const override {
        auto d = details();
        if (!d) return run_state::running;
        switch (d->status()) {
        case v1::COMPLETED: return d->done() ? run_state::succeeded : run_state::running;
        case v1::FAILED: return run_state::failed;
        case v1::CANCELLED: return run_state::cancelled;
        default: return run_state::running;
        }
    }

    std::vector<step_status> steps() const override {
        auto d = details();
        std::vector<step_status> out;
        for (std::size_t i = 0; i < wf_.steps.size(); ++i) {
            step_status s;
            s.name = std::string(wf_.steps[i]);
            if (d) {
                if (auto it = d->task_runs().find(s.name); it != d->task_runs().end()) {
                    s.state = step_state_of(it->second.status());
                    // GetRunDetails has no attempt count: a final failure used every attempt.
                    s.attempts = s.state == step_state::pending ? 0
                                 : s.state == step_state::failed ? wf_.policies[i].retry.max_attempts
                                                                 : 1;
                    if (it->second.has_error()) s.error = it->second.error();
                }
            }
            out.push_back(std::move(s));
        }
        return out;
    }

    void cancel() override {
        v1::CancelTasksRequest req;
        req.add_external_ids(id_);
        st_->conn.administer("v1.AdminService/CancelTasks", &connection::admin::Stub::CancelTasks, req);
    }

    void wait() const override {
        while (!poll()) std::this_thread::sleep_for(st_->opts.poll_interval);
    }

    bool wait_for(std::chrono::milliseconds timeout) const override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (poll()) return true;
            auto now = std::chrono::steady_clock::now();
            if (now >= deadline) return false;
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(st_->opts.poll_interval, deadline - now));
        }
    }

    const void* result() const override {
        wait();
        std::lock_guard lock(m_);
        if (output_) return output_.get();
        const v1::GetRunDetailsResponse& d = *final_;
        if (d.status() == v1::CANCELLED) throw run_cancelled(wf_.name);
        auto task = [&](std::size_t i) -> const v1::TaskRunDetail* {
            auto it = d.task_runs().find(std::string(wf_.steps[i]));
            return it == d.task_runs().end() ? nullptr : &it->second;
        };
        if (d.status() == v1::FAILED) {
            for (std::size_t i : wf_.topological_order)
                if (auto t = task(i); t && t->status() == v1::FAILED)
                    throw step_failed(std::string(wf_.steps[i]), t->error(), wf_.policies[i].retry.max_attempts);
            throw step_failed(std::string(wf_.name), "the run failed with no failed task", 1);
        }
        auto sink_value = [&](std::size_t i) {
            const v1::TaskRunDetail* t = task(i);
            if (!t || !t->has_output())
                throw std::runtime_error("weft: hatchet: run " + id_ + " completed without an output of step '" +
                                         std::string(wf_.steps[i]) + "'");
            return step_value(json::parse(t->output()));
        };
        std::string text;
        if (wf_.sinks.size() == 1) {
            text = boost::json::serialize(sink_value(wf_.sinks[0]));
        } else {
            json::array a;
            for (std::size_t s : wf_.sinks) a.push_back(sink_value(s));
            text = boost::json::serialize(a);
        }
        output_ = wf_.decode_output(text);
        return output_.get();
    }

private:
    // The run's details, or nothing while the engine has not written the run yet (a trigger is
    // acknowledged before its run is readable).
    std::optional<v1::GetRunDetailsResponse> details() const {
        {
            std::lock_guard lock(m_);
            if (final_) return final_;
        }
        v1::GetRunDetailsRequest req;
        req.set_external_id(id_);
        grpc::ClientContext ctx;
        st_->conn.prepare(ctx, st_->opts.timeout);
        v1::GetRunDetailsResponse resp;
        grpc::Status s = st_->conn.admin_stub().GetRunDetails(&ctx, req, &resp);
        if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
            if (std::chrono::steady_clock::now() - created_ > std::chrono::seconds(60))
                st_->conn.fail("v1.AdminService/GetRunDetails of run " + id_, s);
            return std::nullopt;
        }
        if (!s.ok()) st_->conn.fail("v1.AdminService/GetRunDetails", s);
        if (resp.done()) {
            std::lock_guard lock(m_);
            final_ = resp;
        }
        return resp;
    }

    bool poll() const {
        auto d = details();
        return d && d->done();
    }

    std::shared_ptr<backend_impl::state> st_;
    const erased_workflow& wf_;
    std::string id_;
    std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
    mutable std::mutex m_;
    mutable std::optional<v1::GetRunDetailsResponse> final_;
    mutable std::shared_ptr<const void> output_;
};

// on_step: a thread polls the run's step states until it is done and reports each change (Hatchet
// has no per-run step event stream this backend subscribes to; a state held for less than one poll
// interval is not seen, e.g. running for a fast step).
void watch(std::shared_ptr<run_control> run, const erased_workflow& wf, std::function<void(const step_event&)> on_step,
           std::chrono::milliseconds interval) {
    std::thread([run = std::move(run), &wf, on_step = std::move(on_step), interval] {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<step_state> seen(wf.steps.size(), step_state::pending);
        for (bool done = false; !done;) {
            try {
                done = run->wait_for(std::chrono::milliseconds(0));
                auto steps = run->steps();
                for (std::size_t i = 0; i < steps.size(); ++i) {
                    if (steps[i].state == seen[i]) continue;
                    seen[i] = steps[i].state;
                    on_step(step_event{wf.name, wf.steps[i], steps[i].state, std::max(1, steps[i].attempts),
                                       steps[i].error, std::chrono::steady_clock::now() - t0});
                }
            } catch (const std::exception&) {
                return;  // the handle reports the same error to whoever waits on it
            }
            if (!done) std::this_thread::sleep_for(interval);
        }
    }).detach();
}

}  // namespace

backend_impl::backend_impl(hatchet::options opts) : state_(std::make_shared<state>(std::move(opts))) {}
backend_impl::~backend_impl() = default;

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    state_->ensure_registered(wf);
    v1::TriggerWorkflowRunRequest req;
    req.set_workflow_name(std::string(wf.name));
    req.set_input(boost::json::serialize(run_input(json::parse(wf.encode_input(input)).as_array())));
    auto resp = state_->conn.administer("v1.AdminService/TriggerWorkflowRun",
                                        &connection::admin::Stub::TriggerWorkflowRun, req);
    auto run = std::make_shared<hatchet_run>(state_, wf, resp.external_id());
    if (opts.on_step) watch(run, wf, std::move(opts.on_step), state_->opts.poll_interval);
    return run;
}

hatchet::options options_from(const config& c) {
    hatchet::options o;
    o.host_port = c.get_string("hatchet.host_port", o.host_port);
    o.token = c.get_string("hatchet.token", "");
    o.token_file = c.get_string("hatchet.token_file", "");
    o.timeout = std::chrono::milliseconds(c.get_unsigned("hatchet.timeout_ms", 10000, 3600000));
    o.poll_interval = std::chrono::milliseconds(c.get_unsigned("hatchet.poll_ms", 100, 60000));
    if (auto tls = c.get_string("hatchet.tls_strategy", "none"); tls != "none")
        throw config_error("weft: hatchet: tls_strategy '" + tls + "' is not supported (only \"none\": plaintext gRPC)");
    return o;
}

}  // namespace weft::hatchet_detail
