// One log, one set of metrics, for every backend's workers and clients. Everything weft reports about
// a run goes through emit(): the log line (one JSON object per line, or readable text on a terminal)
// and the Prometheus metrics are both derived from the same event, so a backend cannot log a step it
// does not count, and the names cannot differ between backends. docs/operate.md lists the events,
// fields and metrics.
//
//     weft::telemetry::configure({.format = log_format::json, .min_level = severity::debug});
//     weft::telemetry::emit({.level = severity::info, .event = "worker.started", .backend = "celery", ...});
//
// Off the hot path by default: an event below the log level costs one atomic load unless metrics are
// being collected (collect_metrics(true), done by whoever serves them: the CLI's --metrics-address).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <weft/run.hpp>

namespace weft::telemetry {

enum class severity : std::uint8_t { debug, info, warning, error, off };
enum class log_format : std::uint8_t { automatic, json, text };  // automatic: text on a terminal, else json

std::string_view to_string(severity l) noexcept;
// "debug", "info", "warning" (or "warn"), "error", "off"; throws weft::config_error otherwise.
severity level_from(std::string_view text, std::string_view origin);
log_format format_from(std::string_view text, std::string_view origin);

// One line of the schema. Empty strings and attempt 0 are left out of the line. An event emitted while
// a span is current (telemetry::current_context, weft/trace.hpp) also carries its trace_id and span_id.
struct event {
    severity level = severity::info;
    std::string_view event;      // "step.succeeded", "run.started", "fetch.failed", ... (docs/operate.md)
    std::string_view backend;    // "celery", "temporal", "hatchet", "local", "durable"
    std::string_view workflow;
    std::string_view run_id;
    std::string_view step;
    int attempt = 0;
    std::optional<double> duration_ms;
    std::int64_t count = 0;      // for an event about many things (spans.dropped: how many); 0: left out
    std::string_view error;
    std::string_view worker;     // the worker's identity on its server (Celery's nodename, ...)
    std::string_view message;    // for a human; the fields above are for machines
};

struct options {
    log_format format = log_format::automatic;
    severity min_level = severity::info;
    // Where lines go (one call per line, without the newline); unset: stderr, one write per line.
    std::function<void(std::string_view line)> sink;
};

// From WEFT_LOG_FORMAT and WEFT_LOG_LEVEL, over `base`.
options options_from_env(options base = {});
void configure(options o);

// Writes the event's log line if its level is enabled, and counts it in the metrics if they are
// collected. Secrets (add_secret) are replaced by *** in every field. Never throws.
void emit(const event& e) noexcept;

namespace detail {
extern std::atomic<std::uint8_t> min_level;
extern std::atomic<bool> metrics_on;
}  // namespace detail

// Whether an event at `l` would do anything: build the event only when it would.
inline bool wanted(severity l) noexcept {
    return static_cast<std::uint8_t>(l) >= detail::min_level.load(std::memory_order_relaxed) ||
           detail::metrics_on.load(std::memory_order_relaxed);
}

// A value that must never be written: a password, a token. Registered by whoever reads it (a
// backend's settings), before it can appear in an error. Values shorter than 4 characters are ignored
// (replacing them would mangle every line).
void add_secret(std::string value);
// `text` with every registered secret, and the password of any scheme://user:password@ URL, as ***.
std::string redact(std::string_view text);

// Metrics: turned on by whoever serves them; the text is Prometheus' exposition format 0.0.4.
void collect_metrics(bool on);
std::string metrics_text();

// Health, for a worker's health endpoint: a named part of the program and whether it works.
// healthy(): every part set so far works; report(): one line per part.
void set_health(std::string_view part, bool ok, std::string_view why = {});
bool healthy();
std::string health_report();

// The event and level of a step's change of state on an engine that sees every change (local,
// durable): step.started for running, and so on (docs/operate.md). pending has none (level off).
struct step_change {
    std::string_view event;
    severity level;
};
step_change step_change_of(step_state s) noexcept;

// Measures from construction: the duration_ms of an event.
class stopwatch {
public:
    stopwatch() noexcept : t0_(std::chrono::steady_clock::now()) {}
    double ms() const noexcept {
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
    }

private:
    std::chrono::steady_clock::time_point t0_;
};

}  // namespace weft::telemetry
