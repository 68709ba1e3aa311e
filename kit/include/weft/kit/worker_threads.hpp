// The threads of a worker and the way they stop: every server backend's worker spawns its fetch
// loops and step runners here, sleeps through stop-aware waits, and is stopped and joined in one place.
//
//     kit::worker_threads threads;
//     threads.spawn([&] { while (!threads.stopping()) { fetch(); ... threads.sleep_for(b.failed()); } });
//     threads.stop();   // wakes sleepers, runs the interrupt hooks (cancel long polls), joins
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::kit {

class worker_threads {
public:
    worker_threads() = default;
    ~worker_threads() { stop(); }
    worker_threads(const worker_threads&) = delete;
    worker_threads& operator=(const worker_threads&) = delete;

    void spawn(std::function<void()> body);
    // Called once by stop(), before joining: what unblocks a thread that no sleep_for reaches (a
    // long poll's cancel, a socket's shutdown).
    void on_stop(std::function<void()> interrupt);

    bool stopping() const noexcept { return stopping_.load(std::memory_order_relaxed); }
    // Sleeps `d` unless stop() comes first; false when stopping.
    bool sleep_for(std::chrono::milliseconds d) const;
    // Blocks until stop() (from another thread or a signal handler's thread).
    void wait_until_stopped() const;

    // Asks every thread to finish: stopping() turns true, sleepers wake, the interrupt hooks run
    // (once). Returns at once; idempotent.
    void request_stop();
    // request_stop(), then joins every thread; idempotent. Returns once all ended.
    void stop();
    bool running() const noexcept { return !threads_.empty() && !stopping(); }

    // A graceful stop's grace for running steps: stop() asks the threads to finish at once, and steps
    // (task_context::stop_requested) only `d` later, so they may finish and report first. 0, the
    // default (and the Python Temporal SDK's graceful_shutdown_timeout): at once.
    void drain_for(std::chrono::milliseconds d) noexcept { drain_.store(d.count(), std::memory_order_relaxed); }
    // A stop was requested and its drain time has passed: running steps are asked to stop.
    bool drain_over() const noexcept;

private:
    std::atomic<bool> stopping_{false};
    std::atomic<std::chrono::milliseconds::rep> drain_{0};
    std::atomic<std::chrono::steady_clock::rep> stop_at_{0};  // steady_clock ticks of request_stop()
    mutable std::mutex m_;
    std::mutex join_m_;  // one stop() joins at a time
    mutable std::condition_variable wake_;
    std::vector<std::function<void()>> interrupts_;
    std::vector<std::thread> threads_;
};

}  // namespace weft::kit
