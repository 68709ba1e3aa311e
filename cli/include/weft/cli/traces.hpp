// Sending weft's spans to an OpenTelemetry collector: OTLP over HTTP with the JSON encoding (POST
// <endpoint>/v1/traces), batched on a background thread. weft::cli::main installs it from
// --otlp-endpoint or the standard variables; a program without the command line calls
// export_traces itself:
//
//     weft::cli::export_traces("http://127.0.0.1:4318", "billing");   // until stop_traces() or exit
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include <weft/trace.hpp>

namespace weft::cli {

struct trace_export_options {
    // The collector: a base URL ("http://host:4318", /v1/traces is appended) or a full one ending in
    // /v1/traces. Empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is), else
    // OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces); neither set: nothing is exported.
    std::string endpoint;
    std::string service;                 // resource service.name; empty: OTEL_SERVICE_NAME, else "unknown_service"
    std::size_t max_queue = 2048;        // spans waiting; more are dropped (counted: weft_spans_dropped_total)
    std::size_t max_batch = 512;         // spans per request
    std::chrono::milliseconds interval{1000};  // a batch leaves at least this often
};

// Installs the exporter as telemetry's span exporter (replacing one installed before). False when
// no endpoint is configured. Throws config_error for an endpoint that is not an http(s) URL.
bool export_traces(trace_export_options o);
inline bool export_traces(std::string endpoint, std::string service = {}) {
    return export_traces(trace_export_options{.endpoint = std::move(endpoint), .service = std::move(service)});
}
// Sends what is queued now and waits for it (bounded by the request timeout).
void flush_traces();
// Flushes, uninstalls and joins the thread. Also done at exit. Idempotent.
void stop_traces();

// The OTLP JSON request body (ExportTraceServiceRequest) of `spans` from service `service`: ids as
// lowercase hex, times as strings of unix nanoseconds, int attributes as strings (proto3 JSON).
std::string otlp_json(std::span<const telemetry::span_record> spans, std::string_view service);

// The URL spans are posted to, from `endpoint` or the environment as above; empty when none.
std::string traces_url(std::string_view endpoint);

}  // namespace weft::cli
