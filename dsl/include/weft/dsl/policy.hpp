// Per-step execution policy: retries with backoff, a timeout, and where the step runs.
// Every backend maps these fields onto its own vocabulary (Celery retry/countdown/time_limit/queue,
// Temporal RetryPolicy/StartToClose/task queue, Hatchet retries/backoff/timeout).
#pragma once

#include <algorithm>
#include <weft/dsl/detail/chrono.hpp>
#include <string_view>

namespace weft {

using std::chrono::milliseconds;

struct retry_policy {
    int max_attempts = 1;                    // total attempts, the first one included; 1 = no retry
    milliseconds initial{1000};              // delay before the second attempt
    double multiplier = 2.0;                 // growth of the delay per further attempt
    milliseconds maximum{std::chrono::minutes{5}};  // cap on any single delay

    // Delay to wait before attempt `attempt` (2 for the first retry).
    constexpr milliseconds delay_before(int attempt) const noexcept {
        double d = static_cast<double>(initial.count());
        for (int i = 2; i < attempt && d < static_cast<double>(maximum.count()); ++i) d *= multiplier;
        return milliseconds{static_cast<long long>(std::min(d, static_cast<double>(maximum.count())))};
    }
    constexpr bool operator==(const retry_policy&) const = default;
};

struct step_policy {
    retry_policy retry{};
    milliseconds timeout{0};   // per attempt; 0 = no limit
    std::string_view queue{};  // Celery queue / Temporal or Hatchet task queue; empty = the backend's default
    int priority = 0;          // min_priority..max_priority; 0 = the backend's default (docs/design.md)
    // Running the step twice does something outside the run (writes, sends, charges): a router's
    // shadow run, which repeats every step on another backend, is never started for its workflow.
    bool side_effects = false;
    // The step writes to the database that holds the run's results, through the transaction the
    // engine opens for it, and those writes commit with the step's result or not at all: its effects
    // happen exactly once. Only a backend whose results live in such a database runs it; on every
    // other backend the workflow does not compile (or, chosen by configuration, is refused at start).
    bool transactional = false;
    static constexpr int min_priority = 0;
    static constexpr int max_priority = 9;
    constexpr bool operator==(const step_policy&) const = default;
};

}  // namespace weft
