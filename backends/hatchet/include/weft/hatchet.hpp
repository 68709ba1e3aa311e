// weft::hatchet: workflows on a Hatchet engine (v0.104.x gRPC API), served by C++ workers and
// interoperable with the Python hatchet-sdk (its clients trigger weft workflows, its workers serve
// steps of workflows weft triggers).
//
//     weft::hatchet::options opts{.host_port = "127.0.0.1:7077", .token_file = "/run/hatchet/token"};
//     weft::hatchet::worker_options wo{opts};
//     wo.concurrency = 8;
//     weft::hatchet::worker worker(wo);
//     worker.serve(etl);                         // registers the DAG (PutWorkflow) and its actions
//     worker.start();                            // Register, ListenV2, heartbeats, until stop()
//
//     weft::client<weft::hatchet> client(opts);
//     auto run = client.start(etl, 2);           // PutWorkflow (idempotent) + TriggerWorkflowRun
//     int n = run.get();                         // polls GetRunDetails until the run is done
//
// Including this header registers the backend, so WEFT_BACKEND=hatchet selects it in any_client
// (settings host_port, token, token_file, timeout_ms, poll_ms, replace_definitions, tls_strategy and
// the tls_* files, each also from hatchet-sdk's HATCHET_CLIENT_* variable; tenant_id, api_url and
// version, which scripts/services writes, are accepted and unused:
// the token names the tenant). The token is never logged.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <weft/backend.hpp>
#include <weft/remote_client.hpp>
#include <weft/hatchet/lowering.hpp>
#include <weft/step_table.hpp>

namespace weft {

struct hatchet {
    static constexpr std::string_view name = "hatchet";

    using limit_strategy = hatchet_wire::limit_strategy;
    using concurrency_limit = hatchet_wire::concurrency_limit;
    using rate_limit = hatchet_wire::rate_limit;
    using workflow_limits = hatchet_wire::workflow_limits;

    struct options {
        std::string host_port = "127.0.0.1:7077";      // the engine's gRPC address
        std::string token;                              // the tenant's API token (a JWT); never logged
        std::string token_file;                         // read when `token` is empty
        // "none" (plaintext), "tls" or "mtls" (tls with a client certificate), as hatchet-sdk names them.
        std::string tls_strategy = "none";
        std::string tls_ca_file;                        // roots for the engine's certificate; empty: the system's
        std::string tls_cert_file;                      // client certificate (mtls), with tls_key_file
        std::string tls_key_file;
        std::string tls_server_name;                    // checked against the certificate instead of the host
        std::chrono::milliseconds timeout{10000};       // per unary call
        std::chrono::milliseconds poll_interval{100};   // how often a run handle reads GetRunDetails
        // Concurrency and rate limits registered with each workflow's definition, by workflow name:
        // Hatchet's own knobs, which no other backend has (docs/hatchet.md, "Limits and definitions").
        std::map<std::string, workflow_limits, std::less<>> limits;
        // Whether workers and clients register weft's definition when they start (PutWorkflow, which
        // becomes the latest version): "always", or "never" to keep the one registered elsewhere (by
        // hatchet-sdk) as it is. The engine's gRPC API cannot read a definition back, so weft cannot
        // tell what a replacement would drop.
        std::string replace_definitions = "always";
    };

    struct worker_options : options {
        std::string worker_name = "weft-worker";
        int concurrency = 8;                            // steps run at once: the worker's slots (threads)
        std::map<std::string, std::string> labels;      // worker labels (affinity), e.g. {"runtime","weft"}
        std::chrono::milliseconds heartbeat{4000};      // the SDKs' interval; the engine wants < 5 s
        // How long stop() lets running steps go on before it asks them to stop; heartbeats go on
        // until every step has reported, and a step that fails once asked fails as
        // weft.worker_shutdown, retryable (docs/hatchet.md, "Graceful stop"). 0: asked at once.
        std::chrono::milliseconds drain_timeout{0};
        // Reconnect and re-send delays: capped exponential with jitter (max_attempts unused).
        retry_policy backoff{.initial = milliseconds(100), .multiplier = 2.0, .maximum = milliseconds(5000)};
        // level is "info", "warning" or "error"; never contains the token. Default: stderr.
        std::function<void(std::string_view level, std::string_view text)> log;
    };

    class worker;
};

namespace hatchet_detail {

// The backend behind client<hatchet> and any_client.
class backend_impl final : public backend {
public:
    explicit backend_impl(hatchet::options opts);
    ~backend_impl() override;
    std::string_view name() const noexcept override { return hatchet::name; }
    std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) override;
    // id: the run's id(), hatchet:<workflow>:<the engine's external id>, or that external id alone.
    std::shared_ptr<run_control> attach(const erased_workflow& wf, std::string_view id) override;
    // GetRunDetails of the run (its weft id, or the engine's external id) and the metadata start() wrote.
    run_description describe(std::string_view id) override;
    // Refused (config_error): the engine's gRPC API lists no runs.
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit) override;
    // The token's claims (tenant, expiry), then Dispatcher/GetVersion: the engine answers and
    // accepts the token. The gRPC API lists no workers, so none are checked.
    std::vector<health_check> doctor() override;
    // PutWorkflow of the workflow's lowering (start() does it too, once per client).
    std::string register_workflow(const erased_workflow& wf, bool dry_run) override;
    // Step names that collide once Hatchet lowercases them are diagnosed at compile time.
    template <workflow_type W>
    static consteval bool accepts() {
        return hatchet_wire::step_names_distinct_once_lowercased<std::remove_cvref_t<W>>();
    }

    struct state;

private:
    std::shared_ptr<run_control> handle(const erased_workflow& wf, std::string id, run_options opts, bool attached = false);
    std::shared_ptr<state> state_;
};

hatchet::options options_from(const config& c);
std::vector<setting_doc> settings();  // the table behind options_from

inline const bool registered = register_backend<backend_impl>(hatchet::name, settings(), &options_from);

}  // namespace hatchet_detail

// The Hatchet client: start() registers the workflow (once per client; identical definitions reuse
// the engine's version), triggers a run and returns a handle that reads GetRunDetails.
template <>
class client<hatchet> : public remote_client<hatchet_detail::backend_impl> {
public:
    explicit client(hatchet::options opts) : remote_client(std::move(opts)) {}
};

// A C++ Hatchet worker: registers the workflows it serves and their actions, listens for
// assignments (ListenV2), heartbeats, runs steps on `concurrency` threads (its slots) and reports STARTED, then
// COMPLETED or FAILED. It reconnects (capped backoff) when the engine goes away.
class hatchet::worker {
public:
    explicit worker(worker_options opts);
    ~worker();  // stops and joins
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    template <workflow_type W>
    void serve(W wf) {
        if constexpr (no_transactional_steps<W>()) serve(graph_of<W>, step_table(wf));
    }
    void serve(const graph_view& wf, std::span<const erased_step> steps);

    void start();  // registers, spawns the threads, returns once the engine accepts heartbeats (bounded)
    // True once the engine accepts this worker's heartbeats on an open assignment stream (false while
    // reconnecting); waits up to `timeout` for it.
    bool wait_ready(std::chrono::milliseconds timeout) const;
    void run();    // start(), then blocks until stop()
    void stop();   // stops listening, lets running steps finish and report, joins

    struct counters {
        std::uint64_t started = 0, succeeded = 0, failed = 0, reconnects = 0, heartbeats = 0;
    };
    counters stats() const;
    std::string id() const;  // the engine's worker id, once registered

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

namespace hatchet_detail {
// The worker `weft::cli`'s worker command runs: the configuration's options and the command line's
// concurrency (Hatchet has no queues a worker picks: the engine assigns the served workflows' steps).
hatchet::worker_options worker_options_from(const config& c, const worker_settings& s);
inline const bool registered_worker = register_worker<hatchet::worker>(hatchet::name, &worker_options_from);
}  // namespace hatchet_detail

}  // namespace weft
