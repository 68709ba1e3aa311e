// What a running step may ask about itself, whichever backend runs it:
//
//     while (more_pages()) {
//         if (weft::this_step::stop_requested()) throw std::runtime_error("stopped");
//         ...
//     }
//     const auto tenant = weft::this_step::metadata("tenant");   // the run's metadata, if set
#pragma once

#include <optional>
#include <stdexcept>
#include <string_view>

#include <weft/metadata.hpp>

namespace weft {

// Set by the worker around each invocation of a step.
class step_context {
public:
    virtual bool stop_requested() const = 0;
    std::string_view workflow;
    std::string_view step;
    int attempt = 1;
    const run_metadata* metadata = nullptr;  // the run's; nullptr: none

protected:
    ~step_context() = default;
};

namespace detail {
inline thread_local const step_context* current_step = nullptr;

class step_scope {
public:
    explicit step_scope(const step_context* c) noexcept : saved_(current_step) { current_step = c; }
    ~step_scope() { current_step = saved_; }
    step_scope(const step_scope&) = delete;
    step_scope& operator=(const step_scope&) = delete;

private:
    const step_context* saved_;
};
}  // namespace detail

namespace this_step {
// True once the run was cancelled or this attempt timed out: a long step should stop soon, since its
// result will be discarded.
inline bool stop_requested() { return detail::current_step && detail::current_step->stop_requested(); }
// 1 for the first attempt, 2 for the first retry, ...
inline int attempt() { return detail::current_step ? detail::current_step->attempt : 0; }
inline std::string_view name() { return detail::current_step ? detail::current_step->step : std::string_view{}; }
inline std::string_view workflow() { return detail::current_step ? detail::current_step->workflow : std::string_view{}; }
// The run's metadata (run_options::metadata, or the backend's carrier when another client started
// the run); empty outside a step or when the run has none. Valid while the step runs.
inline const run_metadata& metadata() {
    static const run_metadata none;
    return detail::current_step && detail::current_step->metadata ? *detail::current_step->metadata : none;
}
inline std::optional<std::string_view> metadata(std::string_view key) {
    const run_metadata& m = metadata();
    if (auto it = m.find(key); it != m.end()) return std::string_view(it->second);
    return std::nullopt;
}
}  // namespace this_step

}  // namespace weft
