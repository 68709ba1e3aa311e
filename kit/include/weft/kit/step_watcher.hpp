// run_options::on_step for a backend that learns step states by asking its server: one thread per
// watched run polls and reports each change, until the run closes. The threads belong to the
// backend, not the run handle, so reports go on after a caller drops its handle (as on the embedded
// engine); destroying the backend stops and joins them. Nothing is detached.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include <weft/graph.hpp>
#include <weft/run.hpp>

namespace weft::kit {

// Sleeps `d` unless `stop` is requested first; false when it was.
bool sleep_unless_stopped(std::chrono::milliseconds d, const std::stop_token& stop);

class step_watchers {
public:
    // Fills `steps` with the run's step states now (by node index); returns true once the run has
    // closed. It may block for a while (a long poll) if it gives up soon after `stop` is requested.
    // It must capture only what outlives the backend's step_watchers (shared state, copies).
    using poll_fn = std::function<bool(std::vector<step_status>& steps, std::stop_token stop)>;

    step_watchers();
    ~step_watchers();  // requests every watcher to stop and joins it
    step_watchers(const step_watchers&) = delete;
    step_watchers& operator=(const step_watchers&) = delete;

    // Starts watching a run: poll, report changes to on_step, sleep `interval`, until the run closes.
    // A poll that throws ends the watch (the handle reports the same error to whoever waits on it).
    void watch(const graph_view& graph, std::function<void(const step_event&)> on_step, poll_fn poll,
               std::chrono::milliseconds interval);

private:
    struct watcher;
    std::mutex m_;
    std::list<std::unique_ptr<watcher>> watchers_;
};

}  // namespace weft::kit
