// weft::temporal::worker: serves weft workflows on a Temporal task queue, with no Temporal SDK.
//
//     weft::temporal::worker_options o{{.address = "127.0.0.1:7233", .task_queue = "orders"}};
//     weft::temporal::worker w(o);
//     w.serve(orders::workflow);   // the workflow type "orders" and every step of it
//     w.run();                     // until stop()
//
// Two halves, each with its own pollers:
//   - the workflow worker runs each served DAG as the Temporal workflow type named after it: on every
//     workflow task it reads the run's whole history and decides (docs/temporal.md, "Interpreter");
//   - the activity worker runs the steps: activity type = the step's wire name, arguments = one
//     json/plain payload per parameter, result = one json/plain payload. Long steps heartbeat by
//     themselves; a cancelled run makes weft::this_step::stop_requested() true.
// A step whose policy names a queue is scheduled on that queue; whoever polls it runs it (another
// weft worker started with that task_queue, or a Python activity of the same name).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <weft/backend.hpp>
#include <weft/graph.hpp>
#include <weft/step_table.hpp>
#include <weft/temporal/client.hpp>

namespace weft::temporal_detail {

// The server's options (address, namespace, identity, timeout, and task_queue: the queue it polls),
// then the worker's own.
struct worker_options : options {
    bool workflows = true;      // poll workflow tasks for the served workflows
    bool activities = true;     // poll activity tasks for the served steps
    unsigned concurrency = 8;   // steps running at once in this worker
    unsigned activity_pollers = 2;
    unsigned workflow_pollers = 2;
    std::chrono::milliseconds poll_timeout{70'000};  // gRPC deadline of a long poll; the server answers empty after 60 s
    // Reconnection after a failed poll or call: capped exponential delays with jitter (initial,
    // multiplier, maximum; max_attempts is not used: a worker retries until stopped).
    retry_policy backoff{.initial = milliseconds(100), .multiplier = 2.0, .maximum = milliseconds(5'000)};
    // Scheduling defaults of the workflow worker (a step's policy comes first).
    std::chrono::milliseconds default_step_timeout{std::chrono::minutes(10)};
    std::chrono::milliseconds heartbeat_timeout{std::chrono::seconds(10)};
    // How long stop() lets running steps go on before it asks them to stop (this_step::stop_requested).
    // Heartbeats go on throughout and every outcome is reported; a step that fails after it was asked
    // fails as weft.worker_shutdown, retryable, so the server runs it again at once elsewhere.
    // 0, as the Python SDK's graceful_shutdown_timeout: asked at once.
    std::chrono::milliseconds drain_timeout{0};
    // level is "info", "warning" or "error". Default: stderr. Messages carry no credentials.
    std::function<void(std::string_view level, std::string_view text)> log;
};

class worker {
public:
    explicit worker(worker_options opts);
    ~worker();  // stop()
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // The workflow type and all of its steps.
    template <workflow_type W>
    void serve(W wf) {
        if constexpr (no_transactional_steps<W>()) {
            serve_workflow(graph_of<W>);
            for (const erased_step& s : step_table(wf)) serve(s);
        }
    }
    // The workflow type only (its steps run elsewhere).
    template <workflow_type W>
    void serve_workflow(W) {
        serve_workflow(graph_of<W>);
    }
    void serve_workflow(const graph_view& wf);
    // One step, as the activity type named after it.
    void serve(const erased_step& step);
    // The workflow type and the given steps of it.
    void serve(const graph_view& wf, std::span<const erased_step> steps) {
        serve_workflow(wf);
        for (const erased_step& s : steps) serve(s);
    }

    void start();  // spawns the pollers and returns
    void run();    // start(), then blocks until stop()
    void stop();   // stops polling, drains the running steps (drain_timeout), joins; idempotent

    struct counters {
        std::uint64_t workflow_tasks = 0, history_pages = 0, nondeterministic = 0, steps_succeeded = 0,
                      steps_failed = 0, steps_cancelled = 0, heartbeats = 0, poll_errors = 0,
                      queries = 0, updates_rejected = 0;
    };
    counters stats() const;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

// The worker `weft::cli`'s worker command runs: the configuration's options, the command line's
// queue (one: a Temporal worker polls one task queue) and concurrency.
worker_options worker_options_from(const config& c, const worker_settings& s);

}  // namespace weft::temporal_detail
