// Capped exponential delays with jitter: the one schedule every backend uses to reconnect, re-poll
// and re-send its own calls. It is built from a retry_policy, the same vocabulary a step's retries use.
#pragma once

#include <chrono>
#include <cstdint>

#include <weft/dsl/policy.hpp>

namespace weft::kit {

class backoff {
public:
    // initial: the first delay; multiplier: growth per failure; maximum: the cap. max_attempts is unused.
    explicit backoff(retry_policy p = {.initial = milliseconds(100), .multiplier = 2.0, .maximum = milliseconds(5000)});

    // Records a failure and returns how long to wait before the next try: the policy's delay for
    // this failure, jittered uniformly into [delay / 2, delay] so that many clients do not retry in step.
    milliseconds failed();
    // Records a success: the next failure starts from the initial delay again.
    void succeeded() noexcept;

    int failures() const noexcept { return failures_; }
    // While delays grow, every failure is worth a log line; at the cap, one in ten, so a server that
    // is away for minutes does not flood the log.
    bool worth_logging() noexcept;  // call once per failure

private:
    retry_policy policy_;
    int failures_ = 0;
    bool capped_logged_ = false;
    std::uint64_t state_;
};

}  // namespace weft::kit
