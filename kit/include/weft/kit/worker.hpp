// The skeleton of every server backend's worker: fetch -> decode -> invoke the step with its context
// -> classify the outcome -> report. A backend writes what only it knows (how to fetch from its
// server, how a task names its step and carries its arguments, how an outcome is reported); the
// skeleton owns the threads, the hand-off from fetchers to slots, reconnect backoff and stopping.
//
//     kit::worker_skeleton<task> w({.what = "weft hatchet worker", .log = log, .backoff = opts.backoff});
//     w.fetcher("the assignment stream", [&] { return listen_once(w); });  // pushes with w.push(t)
//     w.slots(opts.concurrency, [&](task& t) { kit::run_task(hooks, t, ctx_of(t)); });
//     ...
//     w.stop();   // no more fetching, slots finish what is in hand, threads joined
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <weft/dsl/policy.hpp>
#include <weft/kit/step_runner.hpp>
#include <weft/kit/worker_threads.hpp>
#include <weft/telemetry.hpp>
#include <weft/trace.hpp>

namespace weft::kit {

using log_fn = std::function<void(std::string_view level, std::string_view text)>;

// Who reports: the backend and the worker's identity on its server, in every event a worker emits.
struct origin {
    std::string_view backend;
    std::string worker;
};

// A worker's free-text line ("connected to ...") as the event worker.message, when the user gave no
// log function of their own.
void log_message(const origin& who, std::string_view level, std::string_view text);

// The context of one attempt on a server worker: what weft::this_step reports, and the reasons the
// step should stop, raised by the backend (its server cancelled the attempt, a revoke) or by time.
class task_context final : public step_context {
public:
    using clock = std::chrono::steady_clock;

    std::atomic<bool> cancelled{false};   // the server cancelled this attempt; its outcome is moot
    std::atomic<bool> timed_out{false};   // a deadline the backend watches (heartbeats) passed
    clock::time_point deadline = clock::time_point::max();  // stop_requested() from then on
    const worker_threads* worker = nullptr;                  // set: stop_requested() once its drain is over
    const origin* who = nullptr;  // set: run_task reports the attempt in weft's log and metrics
    std::string run_id;           // the run this attempt belongs to, when the task says (begin sets it)
    // The trace context the task carried (begin extracts it from the backend's carrier): the
    // attempt's span is its child, and is current while the step runs and its outcome is reported.
    std::optional<telemetry::span_context> parent;
    // The attempt's own span context (run_task sets it when tracing): for what a backend sends on
    // after run_task returns (Celery's continuation), to make current while it does.
    std::optional<telemetry::span_context> span;
    // The run's metadata, as the task carried it (begin fills it); this_step::metadata() reads it.
    run_metadata run_meta;

    task_context() noexcept { metadata = &run_meta; }
    task_context(const task_context&) = delete;
    task_context& operator=(const task_context&) = delete;

    bool stop_requested() const override {
        return cancelled.load(std::memory_order_relaxed) || timed_out.load(std::memory_order_relaxed) ||
               (worker && worker->drain_over()) || (deadline != clock::time_point::max() && clock::now() >= deadline);
    }
};

// The events of one attempt (step.started, then step.succeeded, step.retrying, step.failed or
// step.cancelled), from the step's policy and the outcome: the same on every server backend.
void attempt_started(const erased_step& step, const task_context& ctx);
void attempt_ended(const erased_step& step, const task_context& ctx, const step_outcome& out, double ms);

// The attempt's span (`step/<name>`, a child of ctx.parent or of the thread's current context; inert
// when neither exists and no exporter is installed), and its status from the outcome.
telemetry::span attempt_span(const erased_step& step, const task_context& ctx);
void attempt_span_ended(telemetry::span& s, const step_outcome& out);

// The failure type of an attempt that failed after a graceful stop's drain asked it to stop: not the
// step's fault, so retryable whatever the step threw, and the server gives it to another worker.
inline constexpr std::string_view worker_shutdown_type = "weft.worker_shutdown";
void stopped_by_shutdown(const erased_step& step, step_outcome& out);

// One task through the pipeline. `hooks` is the backend's, with:
//     const erased_step* find(const Task&)                   // nullptr: this worker does not serve it
//     void begin(Task&, const erased_step&, task_context&)   // before decoding: attempt, deadline,
//                                                            // cancellation, a "started" event
//     json::array decode(const Task&, const erased_step&)    // one value per parameter; may throw
//     void report(Task&, const erased_step*, step_outcome&, task_context&)   // always called
// A task whose step is not served reports kind::unknown_step (begin is not called). Arguments that
// cannot be decoded, or that do not fit the step's parameters, report kind::bad_payload: no attempt
// would do better. Otherwise the step runs with `ctx` in scope and its outcome is reported.
template <class Hooks, class Task>
void run_task(Hooks& hooks, Task& task, task_context& ctx) {
    const erased_step* step = hooks.find(task);
    step_outcome out;
    if (!step) {
        out.what = step_outcome::kind::unknown_step;
        hooks.report(task, step, out, ctx);
        return;
    }
    ctx.workflow = step->workflow();
    ctx.step = step->name();
    hooks.begin(task, *step, ctx);
    telemetry::span span = attempt_span(*step, ctx);
    std::optional<telemetry::scoped_context> in_span;
    if (span.active()) {
        in_span.emplace(*span.context());
        ctx.span = *span.context();
    }
    attempt_started(*step, ctx);
    const telemetry::stopwatch clock;
    try {
        const json::array args = hooks.decode(task, *step);
        out = run_step(*step, args, ctx);
    } catch (const json::decode_error& e) {
        out = bad_payload(e);
    } catch (const std::exception& e) {  // the task's payload is not even the backend's format
        out.what = step_outcome::kind::bad_payload;
        out.error = e.what();
        out.error_type = bad_payload_type;
    }
    if (!out.ok() && out.what != step_outcome::kind::bad_payload && ctx.worker && ctx.worker->drain_over() &&
        !ctx.cancelled)
        stopped_by_shutdown(*step, out);
    attempt_ended(*step, ctx, out, clock.ms());
    attempt_span_ended(span, out);
    hooks.report(task, step, out, ctx);  // in the span: what report sends on carries it
}

// One fetch or poll that returned, in `ms`: the event fetch.done (debug) and the fetch latency
// histogram. fetch_loop reports each call; a backend whose call is one connection's life reports
// its fetches itself.
void fetched(const origin& who, std::string_view what, double ms);

// Spawns a thread on `threads` that calls `fetch_once` until they stop: the loop behind
// worker_skeleton::fetcher, for a worker that schedules its tasks itself (Celery's prefetch and ETAs).
// Each fetch is reported (fetch.done, fetch.failed, fetch.recovered) as `who`'s; `log`, if set, also
// gets the failures and recoveries as text.
void fetch_loop(worker_threads& threads, std::string what, const origin& who, log_fn log, retry_policy backoff,
                std::function<bool()> fetch_once);

// What one try of a call the server must receive came to: taken, the server away (tried again), or
// refused for good.
enum class delivery { taken, away, refused };
struct resent {
    delivery last;
    int attempts;
};

// Sends a call the server must receive (a step's outcome or event): `send(attempt)` until the server
// takes or refuses it, at most `max_attempts` tries with `policy`'s delays between them (20 at the
// default: a minute and more at its 5 s cap). The delays are slept on `threads`, the skeleton's
// background(): they outlive a drain, so an outcome reached as the worker stops still gets through
// once the server is back; their stop ends the tries. `on_retry(attempt, delay)` hears the failed
// tries worth a log line (the backoff's rule).
resent resend(const worker_threads& threads, retry_policy policy, const std::function<delivery(int attempt)>& send,
              const std::function<void(int attempt, milliseconds delay)>& on_retry, int max_attempts = 20);

// The threads of a worker: fetchers that bring tasks from the server and `slots` threads that run
// them, with the hand-off between them.
template <class Task>
class worker_skeleton {
public:
    struct options {
        std::string what;       // "weft hatchet worker": how log lines name it
        log_fn log;             // the user's: also gets fetch failures as text (may be empty)
        retry_policy backoff;   // between failed fetches
        origin who;             // the backend and this worker's identity, for weft's log and metrics
    };

    explicit worker_skeleton(options o) : opts_(std::move(o)) {}
    // Threads that go on until the slots have finished what they hold, so a drain does not starve
    // them: heartbeats that keep the server from timing out a draining step. Stopped last.
    worker_threads& background() noexcept { return background_; }
    ~worker_skeleton() { stop(); }

    // A thread that calls `fetch_once` until stop(). One call blocks for at most a poll (or the life
    // of a stream); it pushes what it brings. A call that throws is logged and retried after the
    // backoff; one that returns true (it brought tasks, the stream was healthy) resets the backoff;
    // one that returns false does neither (a poll that expired empty).
    void fetcher(std::string what, std::function<bool()> fetch_once) {
        fetch_loop(threads_, std::move(what), opts_.who, opts_.log, opts_.backoff, std::move(fetch_once));
    }

    // `n` threads that take pushed tasks, oldest first, and run them one at a time. At stop() they
    // finish what is in hand before they return.
    void slots(unsigned n, std::function<void(Task&)> run) {
        for (unsigned i = 0; i < n; ++i)
            threads_.spawn([this, run] {
                while (std::optional<Task> t = pop()) {
                    run(*t);
                    std::lock_guard l(m_);
                    --running_;
                    room_.notify_one();
                }
            });
    }

    // A task for the slots; `reserved`: it fills a place reserve() took.
    void push(Task t, bool reserved = false) {
        {
            std::lock_guard l(m_);
            queue_.push_back(std::move(t));
            if (reserved) --reserved_;
        }
        ready_.notify_one();  // one slot is enough; waking all of them costs CPU per task
    }

    // For a fetcher that must not bring more than the slots can run (a long poll hands its task
    // over as it arrives): blocks until fewer than `limit` tasks are queued, running or reserved,
    // then reserves a place. False when stopping. A fetch that brought nothing calls unreserve().
    bool reserve(std::size_t limit) {
        std::unique_lock l(m_);
        room_.wait(l, [&] { return threads_.stopping() || queue_.size() + running_ + reserved_ < limit; });
        if (threads_.stopping()) return false;
        ++reserved_;
        return true;
    }
    void unreserve() {
        {
            std::lock_guard l(m_);
            --reserved_;
        }
        room_.notify_one();
    }

    worker_threads& threads() noexcept { return threads_; }
    const options& settings() const noexcept { return opts_; }
    bool stopping() const noexcept { return threads_.stopping(); }

    // Stops fetching (the fetchers' on_stop interrupts run), lets the slots finish what was
    // fetched, and joins every thread. Idempotent.
    void stop() {
        threads_.request_stop();
        {
            std::lock_guard l(m_);  // no slot misses the wake-up between its check and its wait
        }
        ready_.notify_all();
        room_.notify_all();
        threads_.stop();
        background_.stop();
    }

private:
    std::optional<Task> pop() {
        std::unique_lock l(m_);
        ready_.wait(l, [&] { return threads_.stopping() || !queue_.empty(); });
        if (queue_.empty()) return std::nullopt;  // stopping, and nothing left in hand
        Task t = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
        return t;
    }

    options opts_;
    std::mutex m_;
    std::condition_variable ready_, room_;
    std::deque<Task> queue_;
    std::size_t running_ = 0, reserved_ = 0;
    worker_threads background_;
    worker_threads threads_;  // last: joined before the queue goes (and before background_)
};

}  // namespace weft::kit
