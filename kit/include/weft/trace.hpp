// Traces: W3C trace context (traceparent, tracestate) carried across processes on each backend's
// native carrier, and the spans weft records about runs and attempts. kit never does HTTP: finished
// spans go to the exporter a program installs (set_span_exporter; weft::cli::export_traces is one
// that speaks OTLP/HTTP JSON).
//
//     telemetry::scoped_context in(*telemetry::parse_traceparent(header));  // continue a caller's trace
//     auto h = client.start(input);   // the run span is a child of `in`; the carrier says so
//
// Free when unused: with no exporter installed and no context current, a span is one atomic load.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace weft::telemetry {

using trace_id = std::array<std::uint8_t, 16>;
using span_id = std::array<std::uint8_t, 8>;

// Lowercase hex, as traceparent and OTLP JSON write ids.
std::string to_hex(const trace_id& id);
std::string to_hex(const span_id& id);

// Random, never all zero (W3C: an all-zero id is invalid).
trace_id new_trace_id();
span_id new_span_id();

// What crosses a process boundary: the trace, the sender's span, the flags (bit 0: sampled) and the
// vendors' tracestate, passed on untouched.
struct span_context {
    trace_id trace{};
    span_id span{};
    std::uint8_t flags = 1;
    std::string tracestate;

    bool valid() const noexcept;  // neither id all zero
    bool sampled() const noexcept { return (flags & 1) != 0; }
};

// W3C Trace Context level 1 (https://www.w3.org/TR/trace-context/#traceparent-header): version 00 is
// exactly 55 characters `00-<32 hex>-<16 hex>-<2 hex>`, lowercase only; version ff is invalid; a later
// version is read as 00 when its first 55 characters have that shape and what follows starts with
// '-'. All-zero ids are refused. Leading and trailing blanks (OWS) are ignored. nullopt: not valid.
std::optional<span_context> parse_traceparent(std::string_view text);
std::string format_traceparent(const span_context& c);  // always version 00

// The context current on this thread: the step running here, or what a user set with scoped_context.
// Clients make their run spans children of it; workers make it their attempt's span while it runs.
const span_context* current_context() noexcept;

// Makes `c` current on this thread until destroyed, then restores the previous one.
class scoped_context {
public:
    explicit scoped_context(span_context c) noexcept;
    ~scoped_context();
    scoped_context(const scoped_context&) = delete;
    scoped_context& operator=(const scoped_context&) = delete;

private:
    span_context ctx_;
    const span_context* saved_;
};

enum class span_kind : std::uint8_t { internal, server, client, producer, consumer };  // OTLP's order
enum class span_status : std::uint8_t { unset, ok, error };

using attribute_value = std::variant<std::string, std::int64_t, double, bool>;
using attribute = std::pair<std::string, attribute_value>;

// A finished span, as an exporter receives it.
struct span_record {
    std::string name;
    span_kind kind = span_kind::internal;
    trace_id trace{};
    span_id span{};
    std::optional<span_id> parent;  // unset: a root span
    std::string tracestate;
    std::uint64_t start_ns = 0, end_ns = 0;  // unix nanoseconds
    span_status status = span_status::unset;
    std::string status_message;
    std::vector<attribute> attributes;  // weft.backend, weft.workflow, weft.run_id, weft.step, weft.attempt, ...
};

// Receives every finished span, on the thread that ended it: it must be quick (queue, not send) and
// must not throw. Unset (the default, or an empty function): spans are not recorded, only propagated.
using span_exporter = std::function<void(span_record&&)>;
void set_span_exporter(span_exporter fn);

namespace detail {
extern std::atomic<bool> exporting;
}

// Whether a span with `parent` would do anything: an exporter is installed or there is a trace to
// continue.
inline bool tracing(const span_context* parent) noexcept {
    return parent != nullptr || detail::exporting.load(std::memory_order_relaxed);
}

// A span from construction to end() (or destruction). Inert, costing nothing, when tracing(parent)
// is false; otherwise it has a context (a child of `parent`, or a new trace) that carriers inject.
class span {
public:
    span(std::string name, span_kind kind, const span_context* parent);
    ~span() { end(); }
    span(span&& o) noexcept
        : ctx_(std::move(o.ctx_)), rec_(std::move(o.rec_)), recording_(std::exchange(o.recording_, false)) {}
    span& operator=(span&&) = delete;

    bool active() const noexcept { return ctx_.has_value(); }
    const span_context* context() const noexcept { return ctx_ ? &*ctx_ : nullptr; }

    void set(std::string key, attribute_value v);
    void set_error(std::string_view message);
    void set_ok();
    void end() noexcept;  // exports once; idempotent

private:
    std::optional<span_context> ctx_;
    span_record rec_;
    bool recording_ = false;
};

// What a carrier brought: its traceparent (nullopt when missing or invalid, as W3C says: start a new
// trace) with its tracestate.
std::optional<span_context> extract(std::string_view traceparent, std::string_view tracestate = {});

// The span of a client's start(): `run/<workflow>`, a producer, a child of the thread's current
// context (or a new trace when an exporter is installed); inert otherwise. Its context is what the
// client injects into the backend's carrier.
span run_span(std::string_view backend, std::string_view workflow, std::string_view run_id);

}  // namespace weft::telemetry
