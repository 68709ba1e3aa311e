// The vocabulary of a running workflow, shared by every backend: step and run states, status
// snapshots, progress events, errors, and the typed handle `weft::run<Output>`.
#pragma once

#include <weft/dsl/detail/chrono.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <weft/metadata.hpp>

namespace weft {

enum class step_state : std::uint8_t { pending, running, retrying, succeeded, failed, cancelled, skipped };
// queued: the backend knows that no step of the run has been picked up yet (a worker has not taken
// it, or no worker serves its queue); backends that cannot tell report running.
enum class run_state : std::uint8_t { running, succeeded, failed, cancelled, queued };

constexpr std::string_view to_string(step_state s) noexcept {
    constexpr std::string_view names[] = {"pending", "running", "retrying", "succeeded", "failed", "cancelled", "skipped"};
    return names[static_cast<int>(s)];
}
constexpr std::string_view to_string(run_state s) noexcept {
    constexpr std::string_view names[] = {"running", "succeeded", "failed", "cancelled", "queued"};
    return names[static_cast<int>(s)];
}
constexpr bool is_final(run_state s) noexcept {
    return s == run_state::succeeded || s == run_state::failed || s == run_state::cancelled;
}
constexpr bool is_final(step_state s) noexcept {
    return s == step_state::succeeded || s == step_state::failed || s == step_state::cancelled || s == step_state::skipped;
}

struct step_status {
    std::string name;
    step_state state = step_state::pending;
    int attempts = 0;   // attempts started so far
    std::string error;  // the last attempt's error, if any
};

// A run's id names its backend and its workflow, so that a router or a command line can find the
// run from the id alone:
//
//     <backend>:<workflow>:<key>        celery:orders:3f0c...   hatchet:etl:<the engine's run UUID>
//
// ':' cannot occur in a workflow's name (the DSL refuses it) nor in a backend's, so the first two
// colons split the id; the key is the rest, and may hold colons. Where the backend lets the client
// choose the run's name (Celery task ids, Temporal workflow ids, the journals of local and durable),
// the whole id is that name; where the server draws it (a Hatchet run's UUID), the key is the
// server's id. A backend's attach() and describe() take both forms: the native id of a run started
// by someone else (a Python peer) has no weft prefix.
struct run_id {
    std::string_view backend, workflow, key;

    std::string str() const {
        std::string s;
        s.reserve(backend.size() + workflow.size() + key.size() + 2);
        return s.append(backend).append(1, ':').append(workflow).append(1, ':').append(key);
    }
    // The parts of `id` when it has weft's form (views into `id`); nothing for any other text.
    static constexpr std::optional<run_id> parse(std::string_view id) noexcept {
        const auto first = id.find(':');
        if (first == std::string_view::npos || first == 0) return std::nullopt;
        const auto second = id.find(':', first + 1);
        if (second == std::string_view::npos || second == first + 1 || second + 1 == id.size()) return std::nullopt;
        const std::string_view backend = id.substr(0, first), workflow = id.substr(first + 1, second - first - 1);
        for (char c : backend)
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')) return std::nullopt;
        for (char c : workflow)
            if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return std::nullopt;
        return run_id{backend, workflow, id.substr(second + 1)};
    }
};

// Delivered to run_options::on_step at every change of a step's state.
struct step_event {
    std::string_view workflow;
    std::string_view step;
    step_state state;
    int attempt;
    std::string_view error;  // set for failed and retrying
    std::chrono::steady_clock::duration elapsed;  // since the run started
};

struct run_options {
    // Called at each change of a step's state; calls for one run never overlap.
    std::function<void(const step_event&)> on_step;
    // What the run is about (a tenant, a document id), for a backend that routes runs: runs with the
    // same key go to the same place. Empty: each run is routed on its own.
    std::string key;
    // More facts a routing rule may test (region, plan, ...), by name. They choose the backend and
    // go no further; what the steps should read goes in metadata.
    std::vector<std::pair<std::string, std::string>> attributes;
    // Travels with the run to every step, which reads it with weft::this_step::metadata(): a tenant,
    // a trace or request id. Keys must be non-empty and not begin with "weft_" (check_metadata).
    run_metadata metadata;
};

// A step failed for good (its retries exhausted): the run fails with the step's name and error.
class step_failed : public std::runtime_error {
public:
    step_failed(std::string step, std::string error, int attempts)
        : std::runtime_error("weft: step '" + step + "' failed after " + std::to_string(attempts) +
                             (attempts == 1 ? " attempt: " : " attempts: ") + error),
          step_(std::move(step)), error_(std::move(error)), attempts_(attempts) {}
    const std::string& step() const noexcept { return step_; }
    const std::string& error() const noexcept { return error_; }
    int attempts() const noexcept { return attempts_; }

private:
    std::string step_, error_;
    int attempts_;
};

class run_cancelled : public std::runtime_error {
public:
    explicit run_cancelled(std::string_view workflow)
        : std::runtime_error("weft: the run of workflow '" + std::string(workflow) + "' was cancelled") {}
};

// A step as describe() reads it from the backend's records.
struct step_description {
    std::string name;
    step_state state = step_state::pending;
    int attempts = 0;   // attempts started so far, as far as the backend records them
    std::string error;  // the last attempt's error, if any
    std::optional<std::chrono::system_clock::time_point> started, finished;  // where the backend records them
};

// One run in a backend's list of recent runs (client.list).
struct run_summary {
    std::string id;
    std::string workflow;
    run_state state = run_state::running;
    std::optional<std::chrono::system_clock::time_point> created, started;
};

// What describe(id) returns, defined in <weft/run_description.hpp> (it holds the output as a JSON
// value, and this header includes no JSON library).
struct run_description;

// attach() found no run with that id where the backend keeps runs.
// describe() likewise, with no workflow named (an empty `workflow`).
class run_not_found : public std::runtime_error {
public:
    run_not_found(std::string_view backend, std::string_view workflow, std::string_view id, std::string_view why)
        : std::runtime_error("weft: " + std::string(backend) + " has no run '" + std::string(id) + "'" +
                             (workflow.empty() ? std::string() : " of workflow '" + std::string(workflow) + "'") +
                             (why.empty() ? "" : ": " + std::string(why))) {}
};

// A bad setting, an unknown backend, a misuse of the API.
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// What every backend's run implements. weft::run<Output> is the typed face users hold.
class run_control {
public:
    virtual ~run_control() = default;
    virtual std::string_view workflow() const noexcept = 0;
    virtual std::string id() const = 0;
    virtual run_state state() const = 0;
    virtual std::vector<step_status> steps() const = 0;
    virtual void cancel() = 0;
    virtual void wait() const = 0;
    virtual bool wait_for(std::chrono::milliseconds timeout) const = 0;
    // After wait(): a pointer to the typed output, or throws step_failed / run_cancelled.
    virtual const void* result() const = 0;
};

template <class Output>
class run {
public:
    using output_type = Output;

    explicit run(std::shared_ptr<run_control> control) : control_(std::move(control)) {}

    std::string id() const { return control_->id(); }
    std::string_view workflow() const noexcept { return control_->workflow(); }
    run_state state() const { return control_->state(); }
    std::vector<step_status> steps() const { return control_->steps(); }
    step_status step(std::string_view name) const {
        for (auto& s : control_->steps())
            if (s.name == name) return s;
        throw config_error("weft: workflow '" + std::string(workflow()) + "' has no step named '" + std::string(name) + "'");
    }
    void cancel() { control_->cancel(); }
    void wait() const { control_->wait(); }
    bool wait_for(std::chrono::milliseconds timeout) const { return control_->wait_for(timeout); }

    // Waits for the run, then returns its output or throws step_failed / run_cancelled.
    Output get() const {
        control_->wait();
        return *static_cast<const Output*>(control_->result());
    }

private:
    std::shared_ptr<run_control> control_;
};

}  // namespace weft
