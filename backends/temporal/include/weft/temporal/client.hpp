// weft::temporal::client: starts workflow runs on a Temporal server, waits for their results, reads
// their status, cancels and terminates them. It talks to any worker: a Python, Go or TypeScript
// workflow is started with typed C++ input, and its result is decoded into a C++ type.
//
//     weft::temporal::client client({.address = "127.0.0.1:7233", .task_queue = "orders"});
//     auto run = client.start<receipt>("PlaceOrder", {.workflow_id = "order-42"}, order{...});
//     receipt r = run.get();            // throws workflow_failed with the peer's error type and message
//
// Payloads are `json/plain`, one per argument, like the official SDKs; a `binary/null` result (Python's
// None) reads as JSON null. gRPC and protobuf stay inside the library: this header includes neither.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <weft/backend.hpp>
#include <weft/config.hpp>
#include <weft/json.hpp>
#include <weft/run.hpp>
#include <weft/temporal/errors.hpp>
#include <weft/temporal/payload_codec.hpp>

namespace weft::temporal_detail {

// temporal.api.enums.v1.WorkflowExecutionStatus.
enum class workflow_status { unspecified, running, completed, failed, canceled, terminated, continued_as_new, timed_out, paused };

std::string_view to_string(workflow_status s) noexcept;

struct options {
    std::string address = "127.0.0.1:7233";
    std::string namespace_name = "default";
    std::string task_queue;  // runs start here unless start_options names one; a worker polls it
    std::string identity;    // shown in the server's history; empty: "<pid>@<host>" like the SDKs
    std::chrono::milliseconds timeout{10'000};  // deadline of each unary call
    // TLS as the SDKs decide it: "" is on when an api_key or a tls_* file is set; "true"; "false".
    std::string tls;
    std::string tls_ca_file;      // roots for the server's certificate; empty: the system's
    std::string tls_cert_file;    // client certificate (mTLS), with tls_key_file
    std::string tls_key_file;
    std::string tls_server_name;  // checked against the server's certificate instead of the host
    // Sent as `authorization: Bearer <key>` on every call, as Temporal Cloud expects; never logged.
    std::string api_key;
    // Applied to every payload sent and read (weft/temporal/payload_codec.hpp); null: json/plain as is.
    // Set in code only: a codec is code (keys, algorithms), not a setting.
    std::shared_ptr<const payload_codec> codec;
};

// The temporal.* settings (WEFT_TEMPORAL_ADDRESS, ...): the table behind any_client.
options options_from(const weft::config& c);
std::vector<setting_doc> settings();

struct start_options {
    std::string workflow_id;  // required: Temporal deduplicates runs by it
    std::string task_queue;   // empty: options::task_queue
    std::chrono::milliseconds execution_timeout{0};  // 0: unlimited
    // The run's memo: key -> JSON text, each a json/plain payload (weft keeps a DAG's step names there).
    std::vector<std::pair<std::string, std::string>> memo;
};

class client;

// A typed handle on one run. Cheap to copy; it refers to the client, which must outlive it.
template <class Output>
class workflow_handle {
public:
    workflow_handle(const client& c, workflow_execution run) : client_(&c), run_(std::move(run)) {}

    const workflow_execution& execution() const noexcept { return run_; }
    const std::string& id() const noexcept { return run_.workflow_id; }
    const std::string& run_id() const noexcept { return run_.run_id; }

    // Waits for the run to close and decodes its result; throws workflow_failed, workflow_cancelled,
    // workflow_terminated, workflow_timed_out, or wait_timeout when `timeout` passes first.
    Output get(std::chrono::milliseconds timeout = std::chrono::minutes(10)) const;
    workflow_status status() const;
    void cancel(std::string_view reason = {}) const;
    void terminate(std::string_view reason = {}) const;

private:
    const client* client_;
    workflow_execution run_;
};

class client {
public:
    explicit client(options s);
    ~client();
    client(client&&) noexcept;
    client& operator=(client&&) noexcept;

    const options& configuration() const noexcept;

    // Starts `workflow_type` with one json/plain payload per argument.
    template <class Output, class... Args>
    workflow_handle<Output> start(std::string_view workflow_type, const start_options& opts, const Args&... args) const {
        return {*this, start_json(workflow_type, {weft::json::encode(args)...}, opts)};
    }
    // A handle on a run started elsewhere.
    template <class Output>
    workflow_handle<Output> attach(workflow_execution run) const {
        return {*this, std::move(run)};
    }

    // The untyped layer under the handles: arguments and result as JSON text.
    workflow_execution start_json(std::string_view workflow_type, const std::vector<std::string>& args,
                                  const start_options& opts) const;
    // Follows continue-as-new and retries to the last run; "null" for a binary/null result.
    std::string result_json(const workflow_execution& run, std::chrono::milliseconds timeout) const;
    workflow_status status(const workflow_execution& run) const;
    void cancel(const workflow_execution& run, std::string_view reason = {}) const;
    void terminate(const workflow_execution& run, std::string_view reason = {}) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

template <class Output>
Output workflow_handle<Output>::get(std::chrono::milliseconds timeout) const {
    return weft::json::decode<Output>(client_->result_json(run_, timeout));
}
template <class Output>
workflow_status workflow_handle<Output>::status() const {
    return client_->status(run_);
}
template <class Output>
void workflow_handle<Output>::cancel(std::string_view reason) const {
    client_->cancel(run_, reason);
}
template <class Output>
void workflow_handle<Output>::terminate(std::string_view reason) const {
    client_->terminate(run_, reason);
}

}  // namespace weft::temporal_detail
