#include <weft/telemetry.hpp>
#include <weft/trace.hpp>

#include <weft/json.hpp>
#include <weft/run.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <regex>
#include <shared_mutex>
#include <vector>

namespace weft::telemetry {

namespace detail {
std::atomic<std::uint8_t> min_level{static_cast<std::uint8_t>(severity::info)};
std::atomic<bool> metrics_on{false};
}  // namespace detail

namespace {

struct log_state {
    std::mutex m;
    bool json = true;
    std::function<void(std::string_view)> sink;
};
log_state& logs() {
    static log_state s;
    return s;
}

struct secret_state {
    std::shared_mutex m;
    std::vector<std::string> values;
};
secret_state& secrets() {
    static secret_state s;
    return s;
}

// Never fails: a byte that is not part of valid UTF-8 (a server's error text may have one) becomes
// U+FFFD, so that every line stays JSON. (The payload codec refuses such strings instead.)
void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p != end) {
        const unsigned char c = *p;
        if (c >= 0x80) {
            const std::size_t n = json::detail::utf8_sequence(p, end);
            if (n == 0) {
                out += "\ufffd";
                ++p;
            } else {
                out.append(reinterpret_cast<const char*>(p), n);
                p += n;
            }
            continue;
        }
        ++p;
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += char(c);
            }
        }
    }
    out += '"';
}

// RFC 3339 in UTC with microseconds: what log pipelines parse without a format string.
std::string timestamp(std::chrono::system_clock::time_point t, bool date) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    if (date)
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(us % 1000000));
    else
        std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, int(us % 1000000 / 1000));
    return buf;
}

std::string json_line(const event& e) {
    std::string out;
    out.reserve(256);
    out += "{\"time\":\"" + timestamp(std::chrono::system_clock::now(), true) + "\",\"level\":\"";
    out += to_string(e.level);
    out += "\",\"event\":";
    append_json_string(out, e.event);
    auto field = [&](std::string_view name, std::string_view v) {
        if (v.empty()) return;
        out += ",\"";
        out += name;
        out += "\":";
        append_json_string(out, redact(v));
    };
    field("backend", e.backend);
    field("workflow", e.workflow);
    field("run_id", e.run_id);
    field("step", e.step);
    if (e.attempt > 0) out += ",\"attempt\":" + std::to_string(e.attempt);
    if (e.duration_ms) {
        char buf[32];
        std::snprintf(buf, sizeof buf, ",\"duration_ms\":%.3f", std::isfinite(*e.duration_ms) ? *e.duration_ms : 0.0);
        out += buf;
    }
    if (e.count > 0) out += ",\"count\":" + std::to_string(e.count);
    field("error", e.error);
    field("worker", e.worker);
    field("message", e.message);
    if (const span_context* c = current_context()) {  // the span this event happened in
        out += ",\"trace_id\":\"" + to_hex(c->trace) + "\",\"span_id\":\"" + to_hex(c->span) + "\"";
    }
    out += '}';
    return out;
}

std::string text_line(const event& e) {
    static constexpr std::array<std::string_view, 5> tags{"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};
    std::string out = timestamp(std::chrono::system_clock::now(), false);
    out += ' ';
    out += tags[static_cast<int>(e.level)];
    out += ' ';
    out += e.event;
    if (!e.backend.empty()) out += " [" + std::string(e.backend) + "]";
    if (!e.workflow.empty() || !e.step.empty()) {
        out += ' ';
        out += e.workflow;
        if (!e.step.empty()) out += (e.workflow.empty() ? "" : "/") + std::string(e.step);
    }
    if (!e.run_id.empty()) out += " run=" + std::string(e.run_id);
    if (e.attempt > 0) out += " attempt=" + std::to_string(e.attempt);
    if (e.duration_ms) {
        char buf[32];
        std::snprintf(buf, sizeof buf, " %.1f ms", *e.duration_ms);
        out += buf;
    }
    if (e.count > 0) out += " count=" + std::to_string(e.count);
    if (!e.message.empty()) out += ": " + std::string(e.message);
    if (!e.error.empty()) out += (e.message.empty() ? ": " : " — ") + std::string(e.error);
    if (!e.worker.empty()) out += " (" + std::string(e.worker) + ")";
    return redact(out);
}

// ---- metrics ------------------------------------------------------------------------------------

constexpr std::array<double, 15> step_buckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                              1,     2.5,   5,    10,    30,    60,  300};
constexpr std::array<double, 12> fetch_buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,   0.25,   1,     5,    30};

struct histogram {
    std::vector<std::uint64_t> counts;  // per bucket, not cumulative
    std::uint64_t count = 0;
    double sum = 0;
};

struct family {
    std::string_view name, help, type;  // type: counter, gauge, histogram
    const double* buckets = nullptr;
    std::size_t n_buckets = 0;
    std::map<std::string, double> values;    // rendered labels -> counter or gauge
    std::map<std::string, histogram> hists;  // rendered labels -> histogram
};

struct metric_state {
    std::mutex m;
    family steps_started{"weft_steps_started_total", "Step attempts started.", "counter"};
    family steps_succeeded{"weft_steps_succeeded_total", "Step attempts that succeeded.", "counter"};
    family steps_failed{"weft_steps_failed_total", "Step attempts that failed for good (no retry follows).", "counter"};
    family steps_retried{"weft_steps_retried_total", "Step attempts that failed and will be retried.", "counter"};
    family steps_cancelled{"weft_steps_cancelled_total", "Step attempts stopped by a cancellation.", "counter"};
    family step_duration{"weft_step_duration_seconds", "Duration of finished step attempts.", "histogram",
                         step_buckets.data(), step_buckets.size()};
    family runs_in_flight{"weft_runs_in_flight", "Runs this process started or attached and has not seen end.",
                          "gauge"};
    family runs_finished{"weft_runs_finished_total", "Runs this process saw end, by final state.", "counter"};
    family fetch_duration{"weft_fetch_duration_seconds", "Duration of one fetch or poll from the server.",
                          "histogram", fetch_buckets.data(), fetch_buckets.size()};
    family fetch_failures{"weft_fetch_failures_total", "Fetches or polls that failed.", "counter"};
    family reconnects{"weft_reconnects_total", "Times a worker's connection to its server worked again after failing.",
                      "counter"};
    family spans_dropped{"weft_spans_dropped_total", "Finished spans the trace exporter could not send (queue full, collector refused).",
                         "counter"};

    family routed{"weft_routed_runs_total",
                  "Runs a router sent to a backend: by its flag, or on fallback after another refused the submission.",
                  "counter"};
    family shadows{"weft_shadow_runs_total",
                   "Shadow runs on a candidate backend, by outcome (matched, mismatched, failed, dropped, skipped).",
                   "counter"};

    std::array<family*, 14> all() {
        return {&steps_started, &steps_succeeded, &steps_failed, &steps_retried, &steps_cancelled, &step_duration,
                &runs_in_flight, &runs_finished, &fetch_duration, &fetch_failures, &reconnects, &spans_dropped,
                &routed, &shadows};
    }
};
metric_state& metrics() {
    static metric_state s;
    return s;
}

void append_label(std::string& out, std::string_view name, std::string_view value) {
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    out += '"';
}

void observe(family& f, const std::string& labels, double value) {
    histogram& h = f.hists[labels];
    if (h.counts.empty()) h.counts.assign(f.n_buckets, 0);
    for (std::size_t i = 0; i < f.n_buckets; ++i)
        if (value <= f.buckets[i]) {
            ++h.counts[i];
            break;
        }
    ++h.count;
    h.sum += value;
}

void count(const event& e) {
    const std::string_view ev = e.event;
    if (ev == "spans.dropped") {
        metric_state& s = metrics();
        std::lock_guard l(s.m);
        s.spans_dropped.values[""] += double(e.count);
        return;
    }
    if (ev == "route.chosen" || ev == "route.fallback" || ev.starts_with("shadow.")) {
        std::string labels;
        append_label(labels, "backend", e.backend);
        append_label(labels, "workflow", e.workflow);
        if (ev.starts_with("shadow.")) append_label(labels, "outcome", ev.substr(7));
        else append_label(labels, "via", ev == "route.chosen" ? "flag" : "fallback");
        metric_state& s = metrics();
        std::lock_guard l(s.m);
        (ev.starts_with("shadow.") ? s.shadows : s.routed).values[labels] += 1;
        return;
    }
    const bool step_event = ev.starts_with("step."), run_event = ev.starts_with("run."),
               fetch_event = ev.starts_with("fetch.");
    if (!step_event && !run_event && !fetch_event) return;
    std::string labels;
    append_label(labels, "backend", e.backend);
    if (step_event || run_event) append_label(labels, "workflow", e.workflow);
    if (step_event) append_label(labels, "step", e.step);
    const double seconds = e.duration_ms ? *e.duration_ms / 1000.0 : 0.0;

    metric_state& s = metrics();
    std::lock_guard l(s.m);
    if (step_event) {
        family* f = ev == "step.started"     ? &s.steps_started
                    : ev == "step.succeeded" ? &s.steps_succeeded
                    : ev == "step.failed"    ? &s.steps_failed
                    : ev == "step.retrying"  ? &s.steps_retried
                    : ev == "step.cancelled" ? &s.steps_cancelled
                                             : nullptr;
        if (!f) return;
        f->values[labels] += 1;
        if (f != &s.steps_started && e.duration_ms) observe(s.step_duration, labels, seconds);
    } else if (run_event) {
        if (ev == "run.started" || ev == "run.attached") {
            s.runs_in_flight.values[labels] += 1;
        } else if (ev == "run.succeeded" || ev == "run.failed" || ev == "run.cancelled") {
            s.runs_in_flight.values[labels] -= 1;
            std::string with_state = labels;
            append_label(with_state, "state", ev.substr(4));
            s.runs_finished.values[with_state] += 1;
        }
    } else if (ev == "fetch.done") {
        observe(s.fetch_duration, labels, seconds);
    } else if (ev == "fetch.failed") {
        s.fetch_failures.values[labels] += 1;
    } else if (ev == "fetch.recovered") {
        s.reconnects.values[labels] += 1;
    }
}

// The shortest text that reads back as `v`: bucket bounds print as 0.005, not 0.0050000000000000001.
std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[40];
    for (int digits = 1; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

struct health_state {
    std::mutex m;
    std::map<std::string, std::pair<bool, std::string>, std::less<>> parts;
};
health_state& health() {
    static health_state s;
    return s;
}

}  // namespace

step_change step_change_of(step_state s) noexcept {
    static constexpr step_change as[] = {{"step.pending", severity::off},     {"step.started", severity::debug},
                                         {"step.retrying", severity::warning}, {"step.succeeded", severity::debug},
                                         {"step.failed", severity::error},     {"step.cancelled", severity::info},
                                         {"step.skipped", severity::debug}};
    return as[static_cast<int>(s)];
}

std::string_view to_string(severity l) noexcept {
    constexpr std::array<std::string_view, 5> names{"debug", "info", "warning", "error", "off"};
    return names[static_cast<int>(l)];
}

severity level_from(std::string_view text, std::string_view origin) {
    if (text == "debug") return severity::debug;
    if (text == "info") return severity::info;
    if (text == "warning" || text == "warn") return severity::warning;
    if (text == "error") return severity::error;
    if (text == "off") return severity::off;
    throw config_error("weft: bad log level '" + std::string(text) + "' (from " + std::string(origin) +
                       "): expected debug, info, warning, error or off");
}

log_format format_from(std::string_view text, std::string_view origin) {
    if (text == "json") return log_format::json;
    if (text == "text") return log_format::text;
    if (text == "auto") return log_format::automatic;
    throw config_error("weft: bad log format '" + std::string(text) + "' (from " + std::string(origin) +
                       "): expected json, text or auto");
}

options options_from_env(options base) {
    if (const char* f = std::getenv("WEFT_LOG_FORMAT"); f && *f) base.format = format_from(f, "WEFT_LOG_FORMAT");
    if (const char* l = std::getenv("WEFT_LOG_LEVEL"); l && *l) base.min_level = level_from(l, "WEFT_LOG_LEVEL");
    return base;
}

void configure(options o) {
    log_state& s = logs();
    std::lock_guard l(s.m);
    s.json = o.format == log_format::json || (o.format == log_format::automatic && !(o.sink == nullptr && isatty(2)));
    s.sink = std::move(o.sink);
    detail::min_level.store(static_cast<std::uint8_t>(o.min_level), std::memory_order_relaxed);
}

namespace {
// The environment's settings, read once before the first line: a program that never calls
// configure() still honours WEFT_LOG_FORMAT and WEFT_LOG_LEVEL.
void configure_from_env_once() {
    static const bool done = [] {
        try {
            configure(options_from_env());
        } catch (const std::exception& e) {
            configure({});
            std::fprintf(stderr, "%s\n", e.what());
        }
        return true;
    }();
    (void)done;
}
const bool env_read = (configure_from_env_once(), true);
}  // namespace

void emit(const event& e) noexcept {
    try {
        if (detail::metrics_on.load(std::memory_order_relaxed)) count(e);
        if (static_cast<std::uint8_t>(e.level) < detail::min_level.load(std::memory_order_relaxed) ||
            e.level == severity::off)
            return;
        log_state& s = logs();
        std::unique_lock l(s.m);
        std::string line = s.json ? json_line(e) : text_line(e);
        if (s.sink) {
            s.sink(line);
        } else {
            line += '\n';
            l.unlock();  // one write(2) per line: lines from threads and processes never interleave
            for (std::size_t at = 0; at < line.size();) {
                const ssize_t n = ::write(2, line.data() + at, line.size() - at);
                if (n <= 0) break;
                at += std::size_t(n);
            }
        }
    } catch (...) {
        // A log line that cannot be written (no memory, a throwing sink) must not take a step with it.
    }
}

void add_secret(std::string value) {
    if (value.size() < 4) return;
    secret_state& s = secrets();
    std::unique_lock l(s.m);
    if (std::find(s.values.begin(), s.values.end(), value) == s.values.end()) s.values.push_back(std::move(value));
}

std::string redact(std::string_view text) {
    std::string out(text);
    {
        secret_state& s = secrets();
        std::shared_lock l(s.m);
        for (const std::string& v : s.values)
            for (std::size_t at = out.find(v); at != std::string::npos; at = out.find(v, at + 3))
                out.replace(at, v.size(), "***");
    }
    if (out.find("://") != std::string::npos && out.find('@') != std::string::npos) {
        static const std::regex url(R"(([A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)[^@\s]*@)");
        out = std::regex_replace(out, url, "$1***@");
    }
    return out;
}

void collect_metrics(bool on) { detail::metrics_on.store(on, std::memory_order_relaxed); }

std::string metrics_text() {
    metric_state& s = metrics();
    std::lock_guard l(s.m);
    std::string out;
    for (family* f : s.all()) {
        out += "# HELP " + std::string(f->name) + " " + std::string(f->help) + "\n";
        out += "# TYPE " + std::string(f->name) + " " + std::string(f->type) + "\n";
        for (auto& [labels, v] : f->values)
            out += std::string(f->name) + "{" + redact(labels) + "} " + number(v) + "\n";
        for (auto& [labels, h] : f->hists) {
            const std::string safe = redact(labels);
            std::uint64_t cumulative = 0;
            for (std::size_t i = 0; i < f->n_buckets; ++i) {
                cumulative += h.counts[i];
                out += std::string(f->name) + "_bucket{" + safe + ",le=\"" + number(f->buckets[i]) + "\"} " +
                       std::to_string(cumulative) + "\n";
            }
            out += std::string(f->name) + "_bucket{" + safe + ",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
            out += std::string(f->name) + "_sum{" + safe + "} " + number(h.sum) + "\n";
            out += std::string(f->name) + "_count{" + safe + "} " + std::to_string(h.count) + "\n";
        }
    }
    return out;
}

void set_health(std::string_view part, bool ok, std::string_view why) {
    health_state& h = health();
    std::lock_guard l(h.m);
    h.parts[std::string(part)] = {ok, std::string(why)};
}

bool healthy() {
    health_state& h = health();
    std::lock_guard l(h.m);
    for (auto& [part, state] : h.parts)
        if (!state.first) return false;
    return true;
}

std::string health_report() {
    health_state& h = health();
    std::lock_guard l(h.m);
    std::string out;
    for (auto& [part, state] : h.parts)
        out += part + ": " + (state.first ? "ok" : "failing") + (state.second.empty() ? "" : " (" + redact(state.second) + ")") + "\n";
    return out.empty() ? "ok\n" : out;
}

}  // namespace weft::telemetry
