// Temporal as a weft backend: a run of a weft DAG is a Temporal workflow run, served by
// weft::temporal::worker processes (the workflow type is the DAG's name).
//
//     weft::client<weft::temporal> client({.address = "127.0.0.1:7233", .task_queue = "orders"});
//     auto run = client.start(orders::workflow, order{...});   // workflow id "temporal:<name>:<uuid>"
//     receipt r = run.get();                                    // a failed step throws weft::step_failed
//
// Including this header registers the backend, so WEFT_BACKEND=temporal selects it in any_client
// (settings address, namespace, task_queue: WEFT_TEMPORAL_ADDRESS, ...).
#pragma once

#include <memory>
#include <string_view>

#include <weft/backend.hpp>
#include <weft/remote_client.hpp>
#include <weft/temporal/client.hpp>
#include <weft/temporal/errors.hpp>
#include <weft/temporal/worker.hpp>

namespace weft {

// weft::temporal: the tag of weft::client<weft::temporal>, and the names of the Temporal backend's
// typed client, worker, options and errors.
struct temporal {
    static constexpr std::string_view name = "temporal";

    using options = temporal_detail::options;
    using start_options = temporal_detail::start_options;
    using worker_options = temporal_detail::worker_options;
    using worker = temporal_detail::worker;
    using client = temporal_detail::client;
    template <class Output>
    using workflow_handle = temporal_detail::workflow_handle<Output>;
    using workflow_execution = temporal_detail::workflow_execution;
    using workflow_status = temporal_detail::workflow_status;
    using failure = temporal_detail::failure;

    using rpc_error = temporal_detail::rpc_error;
    using workflow_already_started = temporal_detail::workflow_already_started;
    using not_found = temporal_detail::not_found;
    using namespace_not_found = temporal_detail::namespace_not_found;
    using unavailable = temporal_detail::unavailable;
    using workflow_failed = temporal_detail::workflow_failed;
    using workflow_cancelled = temporal_detail::workflow_cancelled;
    using workflow_terminated = temporal_detail::workflow_terminated;
    using workflow_timed_out = temporal_detail::workflow_timed_out;
    using wait_timeout = temporal_detail::wait_timeout;
    using unsupported_payload = temporal_detail::unsupported_payload;

    using payload = temporal_detail::payload;
    using payload_codec = temporal_detail::payload_codec;
    using codec_error = temporal_detail::codec_error;
    static std::shared_ptr<const payload_codec> zlib_codec(int level = 6) { return temporal_detail::zlib_codec(level); }
    static std::string serialize(const payload& p) { return temporal_detail::serialize(p); }
    static payload parse_payload(std::string_view bytes) { return temporal_detail::parse_payload(bytes); }
};

namespace temporal_detail {

// The weft::backend behind client<temporal> and any_client.
class backend_impl final : public weft::backend {
public:
    explicit backend_impl(options s);
    ~backend_impl() override;
    std::string_view name() const noexcept override { return temporal::name; }
    // Starts the workflow type wf.name on the options' task queue with one json/plain payload per input
    // value; the handle's id() is the workflow id.
    std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) override;
    // id: the workflow id (the latest run of it).
    std::shared_ptr<run_control> attach(const erased_workflow& wf, std::string_view id) override;
    // DescribeWorkflowExecution and the history; every node of a weft run (from its memo), the
    // activities of a run weft did not start.
    run_description describe(std::string_view id) override;
    // Visibility: ListWorkflowExecutions of the workflow type, sorted here newest first.
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit) override;
    // GetSystemInfo (version, capabilities), DescribeNamespace of the configured namespace, and the
    // pollers DescribeTaskQueue sees on the task queue (a warning when there are none).
    std::vector<health_check> doctor() override;

    struct state;

private:
    std::shared_ptr<run_control> handle(const erased_workflow& wf, workflow_execution run, run_options opts,
                                        bool attached = false);
    std::shared_ptr<state> state_;
};

inline const bool registered = register_backend<backend_impl>(temporal::name, settings(), &options_from);
inline const bool registered_worker = register_worker<worker>(temporal::name, &worker_options_from);

}  // namespace temporal_detail

template <>
class client<temporal> : public remote_client<temporal_detail::backend_impl> {
public:
    explicit client(temporal::options s) : remote_client(std::move(s)) {}
};

}  // namespace weft
