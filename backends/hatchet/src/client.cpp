// The Hatchet client: lowering an erased workflow to a registration (once per client and workflow),
// one TriggerWorkflowRun per run, and a run handle that polls GetRunDetails (as the Python SDK's
// result() does) for the run's status, each task's status and the sinks' outputs.
#include "connection.hpp"
#include <weft/kit/remote_run.hpp>
#include <weft/kit/settings.hpp>
#include <weft/kit/step_watcher.hpp>

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

    kit::step_watchers watchers;  // last: joined before the connection they read goes away

    explicit state(hatchet::options o) : opts(std::move(o)), conn(opts) {}

    void ensure_registered(const erased_workflow& wf) {
        {
            std::lock_guard lock(m);
            if (registered.count(wf.graph.name)) return;
        }
        put_workflow(conn, lower(wf.graph));
        std::lock_guard lock(m);
        registered.emplace(wf.graph.name);
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

// The run's details, or nothing while the engine has not written the run yet (a trigger is
// acknowledged before its run is readable; after a minute, NOT_FOUND is an error).
std::optional<v1::GetRunDetailsResponse> read_details(const backend_impl::state& st, const std::string& id,
                                                      std::chrono::steady_clock::time_point created) {
    v1::GetRunDetailsRequest req;
    req.set_external_id(id);
    grpc::ClientContext ctx;
    st.conn.prepare(ctx, st.opts.timeout);
    v1::GetRunDetailsResponse resp;
    grpc::Status s = st.conn.admin_stub().GetRunDetails(&ctx, req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        if (std::chrono::steady_clock::now() - created > std::chrono::seconds(60))
            st.conn.fail("v1.AdminService/GetRunDetails of run " + id, s);
        return std::nullopt;
    }
    if (!s.ok()) st.conn.fail("v1.AdminService/GetRunDetails", s);
    return resp;
}

std::vector<step_status> steps_of(const graph_view& g, const std::optional<v1::GetRunDetailsResponse>& d) {
    std::vector<step_status> out;
    for (std::size_t i = 0; i < g.size(); ++i) {
        step_status s;
        s.name = std::string(g.names[i]);
        if (d) {
            if (auto it = d->task_runs().find(s.name); it != d->task_runs().end()) {
                s.state = step_state_of(it->second.status());
                // GetRunDetails has no attempt count: a final failure used every attempt.
                s.attempts = s.state == step_state::pending ? 0
                             : s.state == step_state::failed ? g.policies[i].retry.max_attempts
                                                             : 1;
                if (it->second.has_error()) s.error = it->second.error();
            }
        }
        out.push_back(std::move(s));
    }
    return out;
}

// The run's id: hatchet:<workflow>:<the engine's external id> (run_id), since the engine draws its ids.
std::string weft_id(std::string_view workflow, std::string_view external_id) {
    return run_id{hatchet::name, workflow, external_id}.str();
}

// The engine's external id in `id`: the key of a weft id of this backend, or `id` itself (an id a
// Python client got from the engine).
std::string_view external_id_of(std::string_view id) {
    if (auto parts = run_id::parse(id); parts && parts->backend == hatchet::name) return parts->key;
    return id;
}

class hatchet_run final : public kit::remote_run {
public:
    hatchet_run(std::shared_ptr<backend_impl::state> st, const erased_workflow& wf, std::string id)
        : remote_run(wf, weft_id(wf.graph.name, id)), st_(std::move(st)), id_(std::move(id)) {}

    std::vector<step_status> steps() const override { return steps_of(wf_.graph, details()); }

    void cancel() override {
        v1::CancelTasksRequest req;
        req.add_external_ids(id_);
        st_->conn.administer("v1.AdminService/CancelTasks", &connection::admin::Stub::CancelTasks, req);
    }

private:
    run_state live_state() const override {
        auto d = details();
        if (!d) return run_state::running;
        switch (d->status()) {
        case v1::COMPLETED: return d->done() ? run_state::succeeded : run_state::running;
        case v1::FAILED: return run_state::failed;
        case v1::CANCELLED: return run_state::cancelled;
        default: return run_state::running;
        }
    }

    // Polls GetRunDetails every poll_interval until the run is done or `timeout` passes.
    std::optional<outcome> await(std::chrono::milliseconds timeout) const override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (auto d = details(); d && d->done()) return outcome_of(*d);
            auto now = std::chrono::steady_clock::now();
            if (now >= deadline) return std::nullopt;
            std::this_thread::sleep_for(
                std::min<std::chrono::steady_clock::duration>(st_->opts.poll_interval, deadline - now));
        }
    }

    outcome outcome_of(const v1::GetRunDetailsResponse& d) const {
        if (d.status() == v1::CANCELLED) return cancelled();
        auto task = [&](std::size_t i) -> const v1::TaskRunDetail* {
            auto it = d.task_runs().find(std::string(wf_.graph.names[i]));
            return it == d.task_runs().end() ? nullptr : &it->second;
        };
        if (d.status() == v1::FAILED)
            return failed_at_first(
                [&](std::size_t i) -> std::optional<step_error> {
                    if (auto t = task(i); t && t->status() == v1::FAILED)
                        return step_error{t->error(), wf_.graph.policies[i].retry.max_attempts};
                    return std::nullopt;
                },
                std::make_exception_ptr(step_failed(std::string(wf_.graph.name), "the run failed with no failed task", 1)));
        try {
            return {run_state::succeeded, sinks_output([&](std::size_t i) {
                        const v1::TaskRunDetail* t = task(i);
                        if (!t || !t->has_output())
                            throw std::runtime_error("weft: hatchet: run " + id_ + " completed without an output of step '" +
                                                     std::string(wf_.graph.names[i]) + "'");
                        return step_value(json::parse(t->output()));
                    }),
                    {}};
        } catch (...) {
            return outcome{run_state::failed, {}, std::current_exception()};
        }
    }

    std::optional<v1::GetRunDetailsResponse> details() const { return read_details(*st_, id_, created_); }

    std::shared_ptr<backend_impl::state> st_;
    std::string id_;
    std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
};

}  // namespace

backend_impl::backend_impl(hatchet::options opts) : state_(std::make_shared<state>(std::move(opts))) {}
backend_impl::~backend_impl() = default;

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    state_->ensure_registered(wf);
    v1::TriggerWorkflowRunRequest req;
    req.set_workflow_name(std::string(wf.graph.name));
    req.set_input(boost::json::serialize(run_input(wf.codec->encode_input(input).as_array())));
    auto resp = state_->conn.administer("v1.AdminService/TriggerWorkflowRun",
                                        &connection::admin::Stub::TriggerWorkflowRun, req);
    return handle(wf, resp.external_id(), std::move(opts));
}

// The run's external id names it. GetRunDetails says whether it exists (a run just triggered may
// not be readable for a moment) and which tasks it has: those must be steps of `wf`.
std::shared_ptr<run_control> backend_impl::attach(const erased_workflow& wf, std::string_view id) {
    if (auto parts = run_id::parse(id); parts && parts->backend == hatchet::name && parts->workflow != wf.graph.name)
        throw config_error("weft: hatchet run '" + std::string(id) + "' is a run of workflow '" + std::string(parts->workflow) +
                           "', not '" + std::string(wf.graph.name) + "'");
    const std::string external(external_id_of(id));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    std::optional<v1::GetRunDetailsResponse> d;
    try {
        while (!(d = read_details(*state_, external, std::chrono::steady_clock::now())) &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(state_->opts.poll_interval);
    } catch (const rpc_error& e) {
        if (e.code() != grpc::StatusCode::INVALID_ARGUMENT) throw;
        throw run_not_found("hatchet", wf.graph.name, id, "not a Hatchet run id (the engine's external ids are UUIDs)");
    }
    if (!d) throw run_not_found("hatchet", wf.graph.name, id, "the engine has no run with that external id");
    for (const auto& [task, _] : d->task_runs())
        if (std::find(wf.graph.names.begin(), wf.graph.names.end(), task) == wf.graph.names.end())
            throw config_error("weft: hatchet run '" + std::string(id) + "' has a task '" + task + "' that workflow '" +
                               std::string(wf.graph.name) + "' does not declare: it is a run of another workflow");
    return handle(wf, external, {});
}

std::shared_ptr<run_control> backend_impl::handle(const erased_workflow& wf, std::string id, run_options opts) {
    // on_step: polled (Hatchet has no per-run step event stream this backend subscribes to), so a
    // state held for less than one poll interval is not seen, e.g. running for a fast step.
    if (opts.on_step)
        state_->watchers.watch(wf.graph, std::move(opts.on_step),
                               [st = state_.get(), &g = wf.graph, id, created = std::chrono::steady_clock::now()](
                                   std::vector<step_status>& steps, std::stop_token) {
                                   auto d = read_details(*st, id, created);
                                   steps = steps_of(g, d);
                                   return d && d->done();
                               },
                               state_->opts.poll_interval);
    return std::make_shared<hatchet_run>(state_, wf, std::move(id));
}

namespace {
const kit::settings_table<hatchet::options>& table() {
    using o = hatchet::options;
    static const kit::settings_table<o> t{
        "hatchet",
        {
            {"host_port", &o::host_port, "the engine's gRPC address"},
            {"token", &o::token, "the tenant's API token (a JWT); never logged"},
            {"token_file", &o::token_file, "a file holding the token, read when token is empty"},
            {"timeout_ms", &o::timeout, "deadline of each unary call"},
            {"poll_ms", &o::poll_interval, "how often a run handle reads the run's details"},
            {"tls_strategy", {}, "only \"none\" (plaintext gRPC)",
             0,
             [](const o&, const config::setting& s) {
                 if (s.value != "none")
                     throw config_error("weft: hatchet: tls_strategy '" + s.value + "' (from " + s.origin +
                                        ") is not supported (only \"none\": plaintext gRPC)");
             }},
            {"tenant_id", {}, "accepted, unused: the token names the tenant"},
            {"api_url", {}, "accepted, unused"},
            {"version", {}, "accepted, unused"},
        }};
    return t;
}
}  // namespace

hatchet::options options_from(const config& c) { return table().read(c); }
std::vector<setting_doc> settings() { return table().docs(); }

}  // namespace weft::hatchet_detail
