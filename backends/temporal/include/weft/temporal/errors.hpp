// What can go wrong talking to Temporal: a refused RPC (with the server's own message), or a run that
// ended without a result (failed, cancelled, terminated, timed out).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <weft/run.hpp>

namespace weft::temporal_detail {

// A run of a workflow on the server: the workflow id the user chose, and the run the server made.
struct workflow_execution {
    std::string workflow_id;
    std::string run_id;  // empty: the latest run of workflow_id
};

// temporal.api.failure.v1.Failure, decoded. This is how every SDK reports an error across languages:
// Python's `raise ApplicationError("msg", type="OutOfStock")` arrives as kind "application",
// type "OutOfStock", message "msg"; a plain Python exception E("msg") as type "E".
struct failure {
    std::string message;
    std::string kind;   // application, timeout, canceled, terminated, server, activity, child_workflow, ...
    std::string type;   // the application error type (Python: the exception's class or `type=`)
    bool non_retryable = false;
    std::string source;       // the SDK that made it ("PythonSDK"), when set
    std::string stack_trace;  // the peer's stack trace, when sent
    std::vector<std::string> details;  // application details, one JSON text per payload
    std::shared_ptr<const failure> cause;

    // "OutOfStock: the inventory is empty", followed by the causes ("; caused by ...").
    std::string describe() const;
};

// The server (or the transport) refused a request. `server_message()` is the server's own words.
class rpc_error : public std::runtime_error {
public:
    rpc_error(std::string rpc, int code, std::string code_name, std::string server_message, std::string detail_type);

    const std::string& rpc() const noexcept { return rpc_; }              // "StartWorkflowExecution"
    int code() const noexcept { return code_; }                           // the gRPC status code
    const std::string& code_name() const noexcept { return code_name_; }  // "NOT_FOUND"
    const std::string& server_message() const noexcept { return server_message_; }
    // The Temporal error detail the server attached, e.g. "temporal.api.errordetails.v1.NotFoundFailure".
    const std::string& detail_type() const noexcept { return detail_type_; }

private:
    std::string rpc_;
    int code_;
    std::string code_name_, server_message_, detail_type_;
};

// A workflow with this id is already running (and the id conflict policy is to fail).
class workflow_already_started : public rpc_error {
public:
    workflow_already_started(rpc_error e, std::string run_id) : rpc_error(std::move(e)), run_id_(std::move(run_id)) {}
    const std::string& run_id() const noexcept { return run_id_; }  // the running one, when the server says

private:
    std::string run_id_;
};

// No such workflow execution (or run).
class not_found : public rpc_error {
public:
    explicit not_found(rpc_error e) : rpc_error(std::move(e)) {}
};

// No such namespace on this server.
class namespace_not_found : public rpc_error {
public:
    explicit namespace_not_found(rpc_error e) : rpc_error(std::move(e)) {}
};

// The server cannot be reached (gRPC UNAVAILABLE or DEADLINE_EXCEEDED on a unary call).
class unavailable : public rpc_error {
public:
    explicit unavailable(rpc_error e) : rpc_error(std::move(e)) {}
};

// The run failed: the workflow raised (Python: ApplicationError or any exception) or a step failed.
class workflow_failed : public std::runtime_error {
public:
    workflow_failed(workflow_execution run, failure f);
    const workflow_execution& execution() const noexcept { return run_; }
    const temporal_detail::failure& failure() const noexcept { return failure_; }

private:
    workflow_execution run_;
    temporal_detail::failure failure_;
};

// The run was cancelled; a weft::run_cancelled, like a cancelled run on any backend.
class workflow_cancelled : public weft::run_cancelled {
public:
    explicit workflow_cancelled(workflow_execution run) : weft::run_cancelled(run.workflow_id), run_(std::move(run)) {}
    const workflow_execution& execution() const noexcept { return run_; }

private:
    workflow_execution run_;
};

// The run was terminated (by an operator or terminate()), with its reason.
class workflow_terminated : public std::runtime_error {
public:
    workflow_terminated(workflow_execution run, std::string reason);
    const workflow_execution& execution() const noexcept { return run_; }
    const std::string& reason() const noexcept { return reason_; }

private:
    workflow_execution run_;
    std::string reason_;
};

// The run hit its execution or run timeout on the server.
class workflow_timed_out : public std::runtime_error {
public:
    explicit workflow_timed_out(workflow_execution run);
    const workflow_execution& execution() const noexcept { return run_; }

private:
    workflow_execution run_;
};

// The caller's own wait for a result ran out; the run goes on.
class wait_timeout : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A payload weft cannot read: an encoding other than json/plain and binary/null.
class unsupported_payload : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace weft::temporal_detail
