#include <weft/temporal/client.hpp>
#include <weft/kit/backoff.hpp>
#include <weft/kit/settings.hpp>
#include <weft/telemetry.hpp>

#include <temporal/api/workflowservice/v1/service.grpc.pb.h>

#include <algorithm>
#include <thread>

#include "codec.hpp"
#include "connection.hpp"

namespace weft::temporal_detail {

namespace wf = ::temporal::api::workflowservice::v1;
namespace enums = ::temporal::api::enums::v1;
namespace history = ::temporal::api::history::v1;

// ---------------------------------------------------------------------------------------------
// Errors

std::string failure::describe() const {
    std::string s = (type.empty() ? std::string() : type + ": ") + message;
    if (cause) s += "; caused by " + cause->describe();
    return s;
}

rpc_error::rpc_error(std::string rpc, int code, std::string code_name, std::string server_message, std::string detail_type)
    : std::runtime_error("weft: Temporal " + rpc + " failed (" + code_name + "): " + server_message),
      rpc_(std::move(rpc)), code_(code), code_name_(std::move(code_name)), server_message_(std::move(server_message)),
      detail_type_(std::move(detail_type)) {}

workflow_failed::workflow_failed(workflow_execution run, temporal_detail::failure f)
    : std::runtime_error("weft: Temporal workflow '" + run.workflow_id + "' failed: " + f.describe()),
      run_(std::move(run)), failure_(std::move(f)) {}

workflow_terminated::workflow_terminated(workflow_execution run, std::string reason)
    : std::runtime_error("weft: Temporal workflow '" + run.workflow_id + "' was terminated" +
                         (reason.empty() ? std::string() : ": " + reason)),
      run_(std::move(run)), reason_(std::move(reason)) {}

workflow_timed_out::workflow_timed_out(workflow_execution run)
    : std::runtime_error("weft: Temporal workflow '" + run.workflow_id + "' timed out"), run_(std::move(run)) {}

std::string_view to_string(workflow_status s) noexcept {
    constexpr std::string_view names[] = {"unspecified", "running",          "completed", "failed", "canceled",
                                          "terminated",  "continued_as_new", "timed_out", "paused"};
    auto i = static_cast<std::size_t>(s);
    return i < std::size(names) ? names[i] : "unspecified";
}

namespace {
const kit::settings_table<options>& table() {
    static const kit::settings_table<options> t{
        "temporal",
        {
            {"address", &options::address, "the frontend's gRPC address, host:port", 0, {}, "TEMPORAL_ADDRESS"},
            {"namespace", &options::namespace_name, "the Temporal namespace", 0, {}, "TEMPORAL_NAMESPACE"},
            {"task_queue", &options::task_queue, "task queue of runs started through weft, and of workers"},
            {"identity", &options::identity, "shown in the server's history; empty: <pid>@<host>"},
            {"timeout_ms", &options::timeout, "deadline of each unary call"},
            {"tls", &options::tls, "\"true\", \"false\", or empty: on when api_key or a tls_* file is set", 0,
             [](const options& o, const config::setting& s) {
                 if (!o.tls.empty() && !temporal_detail::tls_switch(o.tls))
                     throw config_error("weft: temporal.tls = '" + s.value + "' (from " + s.origin +
                                        "): expected true, false, or empty (on when api_key or a tls_* file is set)");
             },
             "TEMPORAL_TLS"},
            {"tls_ca_file", &options::tls_ca_file, "PEM roots for the server's certificate; empty: the system's", 0, {},
             "TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
            {"tls_cert_file", &options::tls_cert_file, "PEM client certificate (mTLS), with tls_key_file", 0, {},
             "TEMPORAL_TLS_CLIENT_CERT_PATH"},
            {"tls_key_file", &options::tls_key_file, "PEM private key of tls_cert_file", 0, {},
             "TEMPORAL_TLS_CLIENT_KEY_PATH"},
            {"tls_server_name", &options::tls_server_name, "name checked against the server's certificate; empty: the host", 0,
             {}, "TEMPORAL_TLS_SERVER_NAME"},
            {"api_key", &options::api_key, "sent as authorization: Bearer <key> on every call; never logged", 0, {},
             "TEMPORAL_API_KEY"},
        }};
    return t;
}
}  // namespace

options options_from(const weft::config& c) { return table().read(c); }
std::vector<setting_doc> settings() { return table().docs(); }

// ---------------------------------------------------------------------------------------------
// The client

namespace {

void set_duration(google::protobuf::Duration& d, std::chrono::milliseconds ms) {
    d.set_seconds(ms.count() / 1000);
    d.set_nanos(static_cast<int>((ms.count() % 1000) * 1'000'000));
}

void set_execution(::temporal::api::common::v1::WorkflowExecution& e, const workflow_execution& run) {
    e.set_workflow_id(run.workflow_id);
    e.set_run_id(run.run_id);
}

}  // namespace

struct client::impl {
    connection conn;
    explicit impl(options s) : conn(std::move(s)) {}
};

client::client(options s) : impl_(std::make_unique<impl>(std::move(s))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

const options& client::configuration() const noexcept { return impl_->conn.configuration(); }

workflow_execution client::start_json(std::string_view workflow_type, const std::vector<std::string>& args,
                                      const start_options& opts) const {
    const auto& s = impl_->conn.configuration();
    const std::string& queue = opts.task_queue.empty() ? s.task_queue : opts.task_queue;
    if (opts.workflow_id.empty()) throw weft::config_error("weft: Temporal start needs a workflow id (start_options::workflow_id)");
    if (queue.empty())
        throw weft::config_error("weft: Temporal start needs a task queue (start_options::task_queue or the "
                                 "temporal.task_queue setting, WEFT_TEMPORAL_TASK_QUEUE)");
    wf::StartWorkflowExecutionRequest req;
    req.set_namespace_(s.namespace_name);
    req.set_workflow_id(opts.workflow_id);
    req.mutable_workflow_type()->set_name(std::string(workflow_type));
    req.mutable_task_queue()->set_name(queue);
    req.mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
    auto* input = req.mutable_input();
    for (const auto& a : args) codec::to_payload(a, *input->add_payloads());
    codec::encode(s.codec.get(), *input);
    if (opts.execution_timeout.count() > 0) set_duration(*req.mutable_workflow_execution_timeout(), opts.execution_timeout);
    // Each memo field through the codec too, as the Python SDK encodes memos.
    for (const auto& [key, json] : opts.memo) {
        auto& field = (*req.mutable_memo()->mutable_fields())[key];
        codec::to_payload(json, field);
        codec::encode(s.codec.get(), field);
    }
    // The run's span: its context goes in the start header, where Python's TracingInterceptor reads
    // it, and which weft's workflow interpreter passes on to each step it schedules.
    telemetry::span span = telemetry::run_span("temporal", workflow_type, opts.workflow_id);
    if (span.active()) {
        span.set("rpc.system", std::string("grpc"));
        span.set("rpc.service", std::string("temporal.api.workflowservice.v1.WorkflowService"));
        span.set("rpc.method", std::string("StartWorkflowExecution"));
        codec::inject_trace(*span.context(), *req.mutable_header());
    }
    req.set_identity(s.identity);
    req.set_request_id(connection::request_id());
    auto resp = impl_->conn.call("StartWorkflowExecution", &connection::service::Stub::StartWorkflowExecution, req);
    return {opts.workflow_id, resp.run_id()};
}

std::string client::result_json(const workflow_execution& start, std::chrono::milliseconds timeout) const {
    const auto& s = impl_->conn.configuration();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    workflow_execution run = start;
    std::string page;
    kit::backoff away;  // the server restarting: the wait goes on, as the Python SDK's retries do
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            throw wait_timeout("weft: no result from Temporal workflow '" + run.workflow_id + "' within " +
                               std::to_string(timeout.count()) + " ms; it is still running");
        wf::GetWorkflowExecutionHistoryRequest req;
        req.set_namespace_(s.namespace_name);
        set_execution(*req.mutable_execution(), run);
        req.set_wait_new_event(true);
        req.set_history_event_filter_type(enums::HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT);
        req.set_skip_archival(true);
        req.set_next_page_token(page);
        grpc::ClientContext ctx;
        // The server answers an expired long poll (about 20 s) with no event and a token; our own
        // deadline is longer, and never past the caller's.
        connection::set_deadline(ctx, std::min(left, std::chrono::milliseconds(70'000)));
        wf::GetWorkflowExecutionHistoryResponse resp;
        grpc::Status st = impl_->conn.stub().GetWorkflowExecutionHistory(&ctx, req, &resp);
        if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) continue;  // the loop checks the caller's deadline
        // CANCELLED: nothing here cancels this call, so the server or a proxy reset the stream
        // (RST_STREAM(CANCEL)). A read, so tried again; temporalio 1.35's client raises it instead
        // (tests/faults/stream_reset.py).
        if (st.error_code() == grpc::StatusCode::UNAVAILABLE || st.error_code() == grpc::StatusCode::CANCELLED) {
            const auto delay = away.failed();
            if (away.worth_logging())
                telemetry::emit({.level = telemetry::severity::warning, .event = "fetch.failed", .backend = "temporal",
                                 .run_id = run.workflow_id, .error = st.error_message(),
                                 .message = st.error_code() == grpc::StatusCode::CANCELLED
                                                ? "waiting for the run's result: the server reset the wait; trying again"
                                                : "waiting for the run's result: the server is unreachable; trying again"});
            std::this_thread::sleep_for(std::min(delay, left));
            continue;
        }
        if (!st.ok()) codec::throw_rpc_error("GetWorkflowExecutionHistory", st);
        if (away.failures()) {
            telemetry::emit({.level = telemetry::severity::info, .event = "fetch.recovered", .backend = "temporal",
                             .run_id = run.workflow_id, .message = "the server answers again; waiting for the run's result"});
            away.succeeded();
        }
        if (resp.history().events_size() == 0) {
            page = resp.next_page_token();
            continue;
        }
        const history::HistoryEvent& e = resp.history().events(resp.history().events_size() - 1);
        page.clear();
        switch (e.event_type()) {
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: {
            const auto& a = e.workflow_execution_completed_event_attributes();
            if (!a.new_execution_run_id().empty()) {  // a cron run: the next one holds the result
                run.run_id = a.new_execution_run_id();
                continue;
            }
            ::temporal::api::common::v1::Payloads result = a.result();
            codec::decode(s.codec.get(), result);
            if (result.payloads_size() == 0) return "null";
            return codec::from_payload(result.payloads(0));
        }
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: {
            const auto& a = e.workflow_execution_failed_event_attributes();
            if (!a.new_execution_run_id().empty()) {  // the workflow's retry policy started another run
                run.run_id = a.new_execution_run_id();
                continue;
            }
            ::temporal::api::failure::v1::Failure f = a.failure();
            codec::decode(s.codec.get(), f);
            throw workflow_failed(run, codec::from_failure(f));
        }
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: throw workflow_cancelled(run);
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            throw workflow_terminated(run, e.workflow_execution_terminated_event_attributes().reason());
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: {
            const auto& a = e.workflow_execution_timed_out_event_attributes();
            if (!a.new_execution_run_id().empty()) {
                run.run_id = a.new_execution_run_id();
                continue;
            }
            throw workflow_timed_out(run);
        }
        case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run.run_id = e.workflow_execution_continued_as_new_event_attributes().new_execution_run_id();
            continue;
        default:
            throw rpc_error("GetWorkflowExecutionHistory", 0, "OK",
                            "expected a close event, got event type " + std::to_string(e.event_type()), "");
        }
    }
}

workflow_status client::status(const workflow_execution& run) const {
    wf::DescribeWorkflowExecutionRequest req;
    req.set_namespace_(impl_->conn.configuration().namespace_name);
    set_execution(*req.mutable_execution(), run);
    auto resp = impl_->conn.call("DescribeWorkflowExecution", &connection::service::Stub::DescribeWorkflowExecution, req);
    auto st = static_cast<int>(resp.workflow_execution_info().status());
    return st >= 0 && st <= static_cast<int>(workflow_status::paused) ? static_cast<workflow_status>(st)
                                                                      : workflow_status::unspecified;
}

void client::cancel(const workflow_execution& run, std::string_view reason) const {
    wf::RequestCancelWorkflowExecutionRequest req;
    req.set_namespace_(impl_->conn.configuration().namespace_name);
    set_execution(*req.mutable_workflow_execution(), run);
    req.set_identity(impl_->conn.configuration().identity);
    req.set_request_id(connection::request_id());
    req.set_reason(std::string(reason));
    impl_->conn.call("RequestCancelWorkflowExecution", &connection::service::Stub::RequestCancelWorkflowExecution, req);
}

void client::terminate(const workflow_execution& run, std::string_view reason) const {
    wf::TerminateWorkflowExecutionRequest req;
    req.set_namespace_(impl_->conn.configuration().namespace_name);
    set_execution(*req.mutable_workflow_execution(), run);
    req.set_identity(impl_->conn.configuration().identity);
    req.set_reason(std::string(reason));
    impl_->conn.call("TerminateWorkflowExecution", &connection::service::Stub::TerminateWorkflowExecution, req);
}

}  // namespace weft::temporal_detail
