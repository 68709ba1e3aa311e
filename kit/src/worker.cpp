#include <weft/kit/worker.hpp>

#include <weft/kit/backoff.hpp>
#include <weft/step_table.hpp>

namespace weft::kit {

namespace {
telemetry::severity severity_of(std::string_view level) {
    if (level == "error") return telemetry::severity::error;
    if (level == "warning") return telemetry::severity::warning;
    if (level == "debug") return telemetry::severity::debug;
    return telemetry::severity::info;
}
}  // namespace

void log_message(const origin& who, std::string_view level, std::string_view text) {
    const auto l = severity_of(level);
    if (!telemetry::wanted(l)) return;
    telemetry::emit({.level = l, .event = "worker.message", .backend = who.backend, .worker = who.worker, .message = text});
}

void attempt_started(const erased_step& step, const task_context& ctx) {
    if (!ctx.who || !telemetry::wanted(telemetry::severity::debug)) return;
    telemetry::emit({.level = telemetry::severity::debug,
                     .event = "step.started",
                     .backend = ctx.who->backend,
                     .workflow = ctx.workflow,
                     .run_id = ctx.run_id,
                     .step = step.name(),
                     .attempt = ctx.attempt,
                     .worker = ctx.who->worker});
}

void stopped_by_shutdown(const erased_step& step, step_outcome& out) {
    out.what = step_outcome::kind::failed;
    out.error = "weft: step '" + std::string(step.name()) + "' was stopped by a worker shutdown: " + out.error;
    out.error_type = std::string(worker_shutdown_type);
}

void attempt_ended(const erased_step& step, const task_context& ctx, const step_outcome& out, double ms) {
    if (!ctx.who) return;
    using telemetry::severity;
    // Whether the server will run it again is the step's policy, which every backend lowers as is.
    const bool cancelled = ctx.cancelled.load(std::memory_order_relaxed);
    const bool retry = !out.ok() && out.retryable() && ctx.attempt < step.policy().retry.max_attempts;
    const severity l = out.ok() ? severity::debug : cancelled ? severity::info : retry ? severity::warning : severity::error;
    if (!telemetry::wanted(l)) return;
    const std::string error = out.ok() ? std::string() : out.error_type.empty() ? out.error : out.error_type + ": " + out.error;
    telemetry::emit({.level = l,
                     .event = out.ok() ? "step.succeeded" : cancelled ? "step.cancelled" : retry ? "step.retrying" : "step.failed",
                     .backend = ctx.who->backend,
                     .workflow = ctx.workflow,
                     .run_id = ctx.run_id,
                     .step = step.name(),
                     .attempt = ctx.attempt,
                     .duration_ms = ms,
                     .error = error,
                     .worker = ctx.who->worker});
}

telemetry::span attempt_span(const erased_step& step, const task_context& ctx) {
    const telemetry::span_context* parent = ctx.parent ? &*ctx.parent : telemetry::current_context();
    if (!telemetry::tracing(parent)) return telemetry::span({}, telemetry::span_kind::consumer, nullptr);
    telemetry::span s("step/" + std::string(step.name()), telemetry::span_kind::consumer, parent);
    if (ctx.who) s.set("weft.backend", std::string(ctx.who->backend));
    s.set("weft.workflow", std::string(ctx.workflow));
    if (!ctx.run_id.empty()) s.set("weft.run_id", ctx.run_id);
    s.set("weft.step", std::string(step.name()));
    s.set("weft.attempt", std::int64_t(ctx.attempt));
    if (ctx.who && !ctx.who->worker.empty()) s.set("weft.worker", ctx.who->worker);
    return s;
}

void attempt_span_ended(telemetry::span& s, const step_outcome& out) {
    if (!s.active()) return;
    if (out.ok())
        s.set_ok();
    else
        s.set_error(out.error_type.empty() ? out.error : out.error_type + ": " + out.error);
}

void fetched(const origin& who, std::string_view what, double ms) {
    if (telemetry::wanted(telemetry::severity::debug))
        telemetry::emit({.level = telemetry::severity::debug, .event = "fetch.done", .backend = who.backend,
                         .duration_ms = ms, .worker = who.worker, .message = what});
}

resent resend(const worker_threads& threads, retry_policy policy, const std::function<delivery(int)>& send,
              const std::function<void(int, milliseconds)>& on_retry, int max_attempts) {
    backoff b(policy);
    for (int attempt = 1;; ++attempt) {
        const delivery d = send(attempt);
        if (d != delivery::away || attempt >= max_attempts) return {d, attempt};
        const milliseconds delay = b.failed();
        if (b.worth_logging()) on_retry(attempt, delay);
        if (!threads.sleep_for(delay)) return {delivery::away, attempt};
    }
}

void fetch_loop(worker_threads& threads, std::string what, const origin& who, log_fn log, retry_policy policy,
                std::function<bool()> fetch_once) {
    threads.spawn([&threads, &who, what = std::move(what), log = std::move(log), policy, fetch = std::move(fetch_once)] {
        using telemetry::severity;
        backoff b(policy);
        bool failing = false;  // the last call threw: the health endpoint says so until one returns
        while (!threads.stopping()) {
            const telemetry::stopwatch clock;
            try {
                const bool brought = fetch();
                fetched(who, what, clock.ms());
                if (failing) {
                    telemetry::set_health(what, true);
                    failing = false;
                }
                if (brought) {
                    if (b.failures() > 0) {
                        const std::string text = what + " works again after " + std::to_string(b.failures()) + " failures";
                        telemetry::emit({.level = severity::info, .event = "fetch.recovered", .backend = who.backend,
                                         .worker = who.worker, .message = text});
                        if (log) log("info", text);
                    }
                    b.succeeded();
                }
            } catch (const std::exception& e) {
                if (threads.stopping()) return;
                const auto delay = b.failed();
                telemetry::set_health(what, false, e.what());
                failing = true;
                if (b.worth_logging()) {
                    const std::string text = what + " failed (attempt " + std::to_string(b.failures()) + "): " + e.what() +
                                             "; retrying in " + std::to_string(delay.count()) + " ms";
                    telemetry::emit({.level = severity::warning, .event = "fetch.failed", .backend = who.backend,
                                     .duration_ms = clock.ms(), .error = e.what(), .worker = who.worker, .message = text});
                    if (log) log("warning", text);
                } else if (telemetry::wanted(severity::debug)) {
                    telemetry::emit({.level = severity::debug, .event = "fetch.failed", .backend = who.backend,
                                     .duration_ms = clock.ms(), .error = e.what(), .worker = who.worker, .message = what});
                }
                threads.sleep_for(delay);
            }
        }
    });
}

}  // namespace weft::kit
