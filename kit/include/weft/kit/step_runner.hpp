// Running one step for a worker: decode, invoke with the step's context in scope, classify what came
// out. Every server backend's worker calls this and then reports the outcome in its own words.
#pragma once

#include <exception>
#include <string>

#include <weft/json.hpp>
#include <weft/step_table.hpp>
#include <weft/this_step.hpp>

namespace weft::kit {

struct step_outcome {
    enum class kind {
        succeeded,    // output holds the step's result
        bad_payload,  // the arguments do not fit the step's parameters: no attempt will do better
        failed,       // the step threw
        unknown_step, // the task names a step this worker does not serve
    };
    kind what = kind::failed;
    json::value output;
    std::string error;       // the exception's message (for bad_payload: which argument, path, expected, got)
    std::string error_type;  // the C++ exception's type ("std::runtime_error"); "weft.bad_payload"
    std::string path, expected, got;  // bad_payload: json::decode_error's parts, for a backend to rephrase
    std::exception_ptr exception;     // failed: what the step threw, for a backend that maps its type

    bool ok() const noexcept { return what == kind::succeeded; }
    // A bad payload fails the same way on every attempt.
    bool retryable() const noexcept { return what == kind::failed; }
};

inline constexpr std::string_view bad_payload_type = "weft.bad_payload";

// Invokes `step` on `args` (one JSON value per parameter) with `ctx` as weft::this_step's context.
// Never throws: whatever the step throws becomes a failed outcome, named by its demangled type.
step_outcome run_step(const erased_step& step, const json::array& args, const step_context& ctx);

// The outcome of arguments that do not fit: no attempt will do better.
step_outcome bad_payload(const json::decode_error& e);

// The demangled type of the exception being handled (call inside a catch block); "unknown" if none.
std::string current_exception_type();

}  // namespace weft::kit
