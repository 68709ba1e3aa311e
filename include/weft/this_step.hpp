// What a running step may ask about itself, whichever backend runs it:
//
//     while (more_pages()) {
//         if (weft::this_step::stop_requested()) throw std::runtime_error("stopped");
//         ...
//     }
#pragma once

#include <stdexcept>
#include <string_view>

namespace weft {

// Set by the worker around each invocation of a step.
class step_context {
public:
    virtual bool stop_requested() const = 0;
    std::string_view workflow;
    std::string_view step;
    int attempt = 1;

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
}  // namespace this_step

}  // namespace weft
