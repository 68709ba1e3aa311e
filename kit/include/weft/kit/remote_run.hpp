// The run handle of a server backend, minus the server: waiting, caching the outcome, decoding the
// output through the workflow's codec, and turning failures into weft's exceptions. A backend says
// how to wait for a run to close (await) and what state a running run is in (live_state).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <weft/erased.hpp>
#include <weft/json.hpp>
#include <weft/run.hpp>

namespace weft::kit {

class remote_run : public run_control {
public:
    std::string_view workflow() const noexcept final { return wf_.graph.name; }
    std::string id() const final { return id_; }
    run_state state() const final;
    void wait() const final;
    bool wait_for(std::chrono::milliseconds timeout) const final;
    const void* result() const final;

protected:
    // How a run ended, as the backend read it from its server.
    struct outcome {
        run_state state = run_state::failed;
        json::value output;        // succeeded: the run's output (one value; an array for several last steps)
        std::exception_ptr error;  // failed or cancelled: what result() throws
    };

    // `backend`: the run is reported in weft's log and metrics as that backend's (run.started, or
    // run.attached for a run started elsewhere, then how it ended, once a wait sees it).
    remote_run(const erased_workflow& wf, std::string id, std::string_view backend = {}, bool attached = false);

    // Waits up to `timeout` for the run to close: its outcome once it has, nothing while it runs.
    // May throw (the server is unreachable): wait_for passes that on and tries again next time.
    virtual std::optional<outcome> await(std::chrono::milliseconds timeout) const = 0;
    // The state of a run that has not been seen closed yet: queued while the backend knows that no
    // step has been picked up, running when it cannot tell.
    virtual run_state live_state() const = 0;

    // The run's output from its last steps' outputs: node -> its JSON output.
    json::value sinks_output(const std::function<json::value(std::size_t node)>& output_of) const;
    // The outcome of a run that failed because a step did: the first failed node in topological
    // order (failed_at(node) gives its error and attempts), or `otherwise` when no step says so.
    struct step_error {
        std::string error;
        int attempts = 1;
    };
    outcome failed_at_first(const std::function<std::optional<step_error>(std::size_t node)>& failed_at,
                            std::exception_ptr otherwise) const;
    outcome cancelled() const;

    const erased_workflow& wf_;

private:
    void report_end(run_state st, const std::exception_ptr& error) const;

    std::string id_;
    std::string_view backend_;
    std::chrono::steady_clock::time_point since_ = std::chrono::steady_clock::now();
    mutable std::mutex m_;
    mutable bool closed_ = false;
    mutable run_state state_ = run_state::running;
    mutable std::shared_ptr<const void> output_;
    mutable std::exception_ptr error_;
};

}  // namespace weft::kit
