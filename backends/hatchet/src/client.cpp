// The Hatchet client: lowering an erased workflow to a registration (once per client and workflow),
// one TriggerWorkflowRun per run, and a run handle that polls GetRunDetails (as the Python SDK's
// result() does) for the run's status, each task's status and the sinks' outputs.
#include "connection.hpp"
#include <weft/kit/backoff.hpp>
#include <weft/kit/metadata.hpp>
#include <weft/kit/remote_run.hpp>
#include <weft/kit/settings.hpp>
#include <weft/kit/step_watcher.hpp>
#include <weft/telemetry.hpp>
#include <weft/trace.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <ctime>
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
    bool put;  // replace_definitions: "never" leaves the engine's definitions as they are

    kit::step_watchers watchers;  // last: joined before the connection they read goes away

    explicit state(hatchet::options o) : opts(std::move(o)), conn(opts), put(replaces_definitions(opts)) {}

    void ensure_registered(const erased_workflow& wf) {
        {
            std::lock_guard lock(m);
            if (!put || registered.count(wf.graph.name)) return;
        }
        put_workflow(conn, plan_for(opts, wf.graph));
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
                if (it->second.has_error()) s.error = task_error_text(it->second.error());
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

// Queued while the run is QUEUED and none of its tasks has left QUEUED (a DAG whose next task waits
// for a slot after its first completed has begun).
run_state run_state_of(const v1::GetRunDetailsResponse& d) {
    switch (d.status()) {
    case v1::QUEUED:
        for (const auto& [_, t] : d.task_runs())
            if (t.status() != v1::QUEUED) return run_state::running;
        return run_state::queued;
    case v1::COMPLETED: return d.done() ? run_state::succeeded : run_state::running;
    case v1::FAILED: return run_state::failed;
    case v1::CANCELLED: return run_state::cancelled;
    default: return run_state::running;
    }
}

class hatchet_run final : public kit::remote_run {
public:
    hatchet_run(std::shared_ptr<backend_impl::state> st, const erased_workflow& wf, std::string id, bool attached)
        : remote_run(wf, weft_id(wf.graph.name, id), hatchet::name, attached), st_(std::move(st)), id_(std::move(id)) {}

    std::vector<step_status> steps() const override { return steps_of(wf_.graph, details()); }

    void cancel() override {
        v1::CancelTasksRequest req;
        req.add_external_ids(id_);
        st_->conn.administer("v1.AdminService/CancelTasks", &connection::admin::Stub::CancelTasks, req);
    }

private:
    run_state live_state() const override {
        auto d = details();
        return d ? run_state_of(*d) : run_state::queued;  // triggered, not yet readable: not begun either
    }

    // Polls GetRunDetails every poll_interval until the run is done or `timeout` passes.
    // While the engine is unreachable (restarting) the wait goes on, with backoff, until `timeout`.
    std::optional<outcome> await(std::chrono::milliseconds timeout) const override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        kit::backoff away;
        for (;;) {
            try {
                if (auto d = details(); d && d->done()) return outcome_of(*d);
                away.succeeded();
            } catch (const rpc_error& e) {
                // The engine away (UNAVAILABLE), slow (DEADLINE_EXCEEDED), or a stream reset by it or a
                // proxy (CANCELLED: nothing here cancels the call): a read, so simply asked again.
                if (e.code() != grpc::StatusCode::UNAVAILABLE && e.code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
                    e.code() != grpc::StatusCode::CANCELLED)
                    throw;
                const auto delay = away.failed();
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
                if (left.count() <= 0) return std::nullopt;
                if (away.worth_logging())
                    telemetry::emit({.level = telemetry::severity::warning, .event = "fetch.failed", .backend = "hatchet",
                                     .run_id = id_, .error = e.what(),
                                     .message = e.code() == grpc::StatusCode::UNAVAILABLE
                                                    ? "waiting for the run's result: the engine is unreachable; trying again"
                                                    : "waiting for the run's result: the engine did not answer; trying again"});
                std::this_thread::sleep_for(std::min(delay, left));
                continue;
            }
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
                        return step_error{task_error_text(t->error()), wf_.graph.policies[i].retry.max_attempts};
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

namespace {
// What describe() needs and GetRunDetails does not say, in the run's additional metadata (string
// values, as the SDKs write it): the workflow, when it was triggered, its steps and its last steps.
constexpr const char* workflow_key = "weft_workflow";
constexpr const char* created_key = "weft_created_ms";
constexpr const char* steps_key = "weft_steps";
constexpr const char* sinks_key = "weft_sinks";

// `trace`: the run span's context, under the key hatchet_sdk's OpenTelemetry instrumentor reads
// (only traceparent: it carries no tracestate). The engine hands the run's metadata to every step.
// The caller's run_options::metadata goes beside weft's keys (check_metadata keeps them apart).
std::string additional_metadata(const graph_view& g, const telemetry::span_context* trace, const weft::run_metadata& caller) {
    json::array steps, sinks;
    for (auto n : g.names) steps.push_back(json::value(n));
    for (auto i : g.sinks) sinks.push_back(json::value(g.names[i]));
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
    json::object m = kit::metadata_object(caller);
    m[workflow_key] = g.name;
    m[created_key] = std::to_string(now.count());
    m[steps_key] = boost::json::serialize(steps);
    m[sinks_key] = boost::json::serialize(sinks);
    if (trace) m["traceparent"] = telemetry::format_traceparent(*trace);
    return boost::json::serialize(m);
}
}  // namespace

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    refuse_transactional_steps(wf.graph, name());
    check_metadata(opts.metadata);
    state_->ensure_registered(wf);
    v1::TriggerWorkflowRunRequest req;
    req.set_workflow_name(std::string(wf.graph.name));
    req.set_input(boost::json::serialize(run_input(wf.codec->encode_input(input).as_array())));
    telemetry::span span = telemetry::run_span(hatchet::name, wf.graph.name, {});
    req.set_additional_metadata(additional_metadata(wf.graph, span.context(), opts.metadata));
    auto resp = state_->conn.administer("v1.AdminService/TriggerWorkflowRun",
                                        &connection::admin::Stub::TriggerWorkflowRun, req);
    span.set("weft.run_id", run_id{hatchet::name, wf.graph.name, resp.external_id()}.str());
    return handle(wf, resp.external_id(), std::move(opts));
}

// The run's external id names it. GetRunDetails says whether it exists (a run just triggered may
// not be readable for a moment) and which tasks it has: those must be steps of `wf`.
namespace {
// The run's details, waiting up to 3 s for a run just triggered to become readable.
v1::GetRunDetailsResponse find_details(const backend_impl::state& st, std::string_view workflow, std::string_view id,
                                       const std::string& external_id) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    std::optional<v1::GetRunDetailsResponse> d;
    try {
        while (!(d = read_details(st, external_id, std::chrono::steady_clock::now())) &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(st.opts.poll_interval);
    } catch (const rpc_error& e) {
        if (e.code() != grpc::StatusCode::INVALID_ARGUMENT) throw;
        throw run_not_found("hatchet", workflow, id, "not a Hatchet run id (the engine's external ids are UUIDs)");
    }
    if (!d) throw run_not_found("hatchet", workflow, id, "the engine has no run with that external id");
    return std::move(*d);
}
}  // namespace

std::shared_ptr<run_control> backend_impl::attach(const erased_workflow& wf, std::string_view id) {
    if (auto parts = run_id::parse(id); parts && parts->backend == hatchet::name && parts->workflow != wf.graph.name)
        throw config_error("weft: hatchet run '" + std::string(id) + "' is a run of workflow '" + std::string(parts->workflow) +
                           "', not '" + std::string(wf.graph.name) + "'");
    const std::string external(external_id_of(id));
    const auto d = find_details(*state_, wf.graph.name, id, external);
    for (const auto& [task, _] : d.task_runs())
        if (std::find(wf.graph.names.begin(), wf.graph.names.end(), task) == wf.graph.names.end())
            throw config_error("weft: hatchet run '" + std::string(id) + "' has a task '" + task + "' that workflow '" +
                               std::string(wf.graph.name) + "' does not declare: it is a run of another workflow");
    return handle(wf, external, {}, true);
}

// GetRunDetails and the metadata start() wrote: the engine's gRPC API gives no times and no attempt
// counts, so steps have states, errors and outputs, and the run its trigger time (weft's runs).
run_description backend_impl::describe(std::string_view id) {
    const std::string external(external_id_of(id));
    const auto parts = run_id::parse(id);
    const auto d = find_details(*state_, {}, id, external);
    run_description out;
    out.backend = hatchet::name;
    out.state = run_state_of(d);
    json::object meta;
    try {
        if (!d.additional_metadata().empty())
            if (auto v = json::parse(d.additional_metadata()); v.is_object()) meta = v.as_object();
    } catch (const std::exception&) {  // not JSON: a peer's own; no metadata then
    }
    auto text = [&](const char* key) -> std::string {
        auto* v = meta.if_contains(key);
        return v && v->is_string() ? std::string(v->as_string()) : std::string();
    };
    auto names = [&](const char* key) {
        std::vector<std::string> out;
        try {
            if (auto t = text(key); !t.empty()) {
                const json::value names = json::parse(t);
                for (auto& n : names.as_array()) out.emplace_back(n.as_string());
            }
        } catch (const std::exception&) {
        }
        return out;
    };
    out.workflow = !text(workflow_key).empty() ? text(workflow_key)
                   : parts && parts->backend == hatchet::name ? std::string(parts->workflow)
                                                             : std::string();
    out.id = out.workflow.empty() ? external : weft_id(out.workflow, external);
    if (auto ms = text(created_key); !ms.empty()) {
        try {
            out.created = std::chrono::system_clock::time_point(std::chrono::milliseconds(std::stoll(ms)));
        } catch (const std::exception&) {
        }
    }
    std::vector<std::string> steps = names(steps_key);
    for (const auto& [task, _] : d.task_runs())
        if (std::find(steps.begin(), steps.end(), task) == steps.end()) steps.push_back(task);
    for (auto& name : steps) {
        step_description s{name};
        if (auto it = d.task_runs().find(name); it != d.task_runs().end()) {
            s.state = step_state_of(it->second.status());
            s.attempts = s.state == step_state::pending ? 0 : 1;  // at least; the engine does not say
            if (it->second.has_error()) s.error = task_error_text(it->second.error());
            if (s.state == step_state::failed && out.failed_step.empty()) {
                out.failed_step = name;
                out.error = s.error;
            }
        } else if (is_final(out.state)) {
            s.state = step_state::skipped;
        }
        out.steps.push_back(std::move(s));
    }
    if (out.state == run_state::succeeded) {
        auto output_of = [&](const std::string& task) -> json::value {
            auto it = d.task_runs().find(task);
            if (it == d.task_runs().end() || !it->second.has_output()) return nullptr;
            return step_value(json::parse(it->second.output()));
        };
        if (auto sinks = names(sinks_key); !sinks.empty()) {
            if (sinks.size() == 1) out.output = output_of(sinks[0]);
            else {
                json::array a;
                for (auto& t : sinks) a.push_back(output_of(t));
                out.output = std::move(a);
            }
        } else {  // a run weft did not start: every task's output, by task (as the Python SDK's result())
            json::object o;
            for (const auto& [task, t] : d.task_runs())
                if (t.has_output()) o[task] = json::parse(t.output());
            out.output = std::move(o);
        }
    }
    return out;
}

std::string backend_impl::register_workflow(const erased_workflow& wf, bool dry_run) {
    // An explicit registration: it puts weft's definition whatever replace_definitions says.
    const workflow_plan plan = plan_for(state_->opts, wf.graph);
    json::array tasks;
    for (const auto& t : plan.tasks) {
        json::array parents;
        for (auto& p : t.parents) parents.push_back(json::value(boost::json::string(p)));
        json::object task{{"readable_id", t.readable_id}, {"action", t.action}, {"parents", parents},
                          {"retries", t.retries}, {"timeout", t.timeout}, {"schedule_timeout", t.schedule_timeout}};
        json::array limits;
        for (const auto& r : t.rate_limits) limits.push_back(json::object{{"key", r.key}, {"units", r.units}});
        if (!limits.empty()) task.emplace("rate_limits", std::move(limits));
        tasks.push_back(std::move(task));
    }
    json::object what_obj{{"workflow", plan.name}, {"tasks", tasks}};
    json::array concurrency;
    static constexpr std::string_view strategies[] = {"group_round_robin", "cancel_in_progress", "cancel_newest"};
    for (const auto& c : plan.concurrency)
        concurrency.push_back(json::object{{"expression", c.expression}, {"max_runs", c.max_runs},
                                           {"limit_strategy", strategies[static_cast<int>(c.strategy)]}});
    if (!concurrency.empty()) what_obj.emplace("concurrency", std::move(concurrency));
    const std::string what = boost::json::serialize(what_obj);
    if (dry_run) return "hatchet: would put workflow " + what;
    const auto [version, id] = put_workflow(state_->conn, plan);
    return "hatchet: put workflow '" + plan.name + "' (workflow " + id + ", version " + version + "): " + what;
}

namespace {

std::string utc(std::chrono::system_clock::time_point t) {
    const std::time_t s = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

std::vector<health_check> backend_impl::doctor() {
    std::vector<health_check> out;
    const std::string where = "token (WEFT_HATCHET_TOKEN) or token_file (WEFT_HATCHET_TOKEN_FILE)";
    const std::string mint = "mint a new one: hatchet-admin token create --tenant-id <tenant> (scripts/services up does it "
                             "for the test engine), and put it in " + where;
    try {
        const token_claims c = state_->conn.claims();
        const auto now = std::chrono::system_clock::now();
        if (c.expires && *c.expires <= now) {
            out.push_back({"hatchet.token", false,
                           "the token of tenant " + (c.tenant.empty() ? std::string("(none named)") : c.tenant) +
                               " expired at " + utc(*c.expires),
                           mint});
            return out;
        }
        out.push_back({"hatchet.token", true,
                       "tenant " + (c.tenant.empty() ? std::string("(none named)") : c.tenant) +
                           (c.expires ? ", expires " + utc(*c.expires) : std::string(", no expiry")),
                       {}});
    } catch (const config_error& e) {
        out.push_back({"hatchet.token", false, e.what(), "use the tenant's API token (a JWT) in " + where});
        return out;
    }
    try {
        ::GetVersionRequest req;
        const auto v = state_->conn.dispatch("Dispatcher/GetVersion", &connection::dispatcher::Stub::GetVersion, req);
        out.push_back({"hatchet.engine", true,
                       "the engine at " + state_->opts.host_port + " accepts the token; dispatcher protocol version " +
                           (v.version().empty() ? std::string("(not reported)") : v.version()),
                       {}});
    } catch (const rpc_error& e) {
        switch (e.code()) {
        case grpc::StatusCode::UNIMPLEMENTED:
            out.push_back({"hatchet.engine", true, "the engine at " + state_->opts.host_port +
                                                        " answers (too old to report its version: GetVersion is unimplemented)", {}});
            break;
        case grpc::StatusCode::UNAUTHENTICATED:
        case grpc::StatusCode::PERMISSION_DENIED:
            out.push_back({"hatchet.engine", false, "the engine at " + state_->opts.host_port + " rejected the token: " + e.what(),
                           "the token must be one this engine minted (same keys and server_url); " + mint});
            break;
        default:
            out.push_back({"hatchet.engine", false, "cannot reach the engine at " + state_->opts.host_port + ": " + e.what(),
                           "start the engine (scripts/services up), or fix host_port (WEFT_HATCHET_HOST_PORT)"});
        }
    }
    return out;
}

std::vector<run_summary> backend_impl::list(std::string_view workflow, std::size_t) {
    throw config_error("weft: hatchet cannot list the runs of '" + std::string(workflow) +
                       "': the engine's gRPC API (v1.AdminService) has no call that lists runs, only its REST API "
                       "does, and this backend speaks gRPC only (it links no HTTP client)");
}

std::shared_ptr<run_control> backend_impl::handle(const erased_workflow& wf, std::string id, run_options opts, bool attached) {
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
    return std::make_shared<hatchet_run>(state_, wf, std::move(id), attached);
}

namespace {
const kit::settings_table<hatchet::options>& table() {
    using o = hatchet::options;
    static const kit::settings_table<o> t{
        "hatchet",
        {
            {"host_port", &o::host_port, "the engine's gRPC address", 0, {}, "HATCHET_CLIENT_HOST_PORT"},
            {"token", &o::token, "the tenant's API token (a JWT); never logged", 0, {}, "HATCHET_CLIENT_TOKEN"},
            {"token_file", &o::token_file, "a file holding the token, read when token is empty"},
            {"timeout_ms", &o::timeout, "deadline of each unary call"},
            {"poll_ms", &o::poll_interval, "how often a run handle reads the run's details"},
            {"tls_strategy", &o::tls_strategy, "\"none\" (plaintext), \"tls\", or \"mtls\" (tls with a client certificate)",
             0,
             [](const o& v, const config::setting& s) {
                 if (v.tls_strategy != "none" && v.tls_strategy != "tls" && v.tls_strategy != "mtls")
                     throw config_error("weft: hatchet.tls_strategy = '" + s.value + "' (from " + s.origin +
                                        "): expected \"none\", \"tls\" or \"mtls\"");
             },
             "HATCHET_CLIENT_TLS_STRATEGY"},
            {"tls_ca_file", &o::tls_ca_file, "PEM roots for the engine's certificate; empty: the system's", 0, {},
             "HATCHET_CLIENT_TLS_ROOT_CA_FILE"},
            {"tls_cert_file", &o::tls_cert_file, "PEM client certificate (mtls), with tls_key_file", 0, {},
             "HATCHET_CLIENT_TLS_CERT_FILE"},
            {"tls_key_file", &o::tls_key_file, "PEM private key of tls_cert_file", 0, {}, "HATCHET_CLIENT_TLS_KEY_FILE"},
            {"tls_server_name", &o::tls_server_name, "name checked against the engine's certificate; empty: the host", 0,
             {}, "HATCHET_CLIENT_TLS_SERVER_NAME"},
            {"replace_definitions", &o::replace_definitions,
             "\"always\": workers and clients register weft's definitions when they start; \"never\": keep the "
             "engine's (e.g. one hatchet-sdk registered with limits)",
             0,
             [](const o& v, const config::setting& s) {
                 if (v.replace_definitions != "always" && v.replace_definitions != "never")
                     throw config_error("weft: hatchet: replace_definitions '" + s.value + "' (from " + s.origin +
                                        ") is not one of \"always\" and \"never\"");
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
