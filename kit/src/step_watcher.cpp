#include <weft/kit/step_watcher.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>

namespace weft::kit {

struct step_watchers::watcher {
    std::atomic<bool> done{false};
    std::jthread thread;  // last: joined before the flag it sets goes away
};

bool sleep_unless_stopped(std::chrono::milliseconds d, const std::stop_token& stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock l(m);
    return !cv.wait_for(l, stop, d, [] { return false; });
}

step_watchers::step_watchers() = default;

step_watchers::~step_watchers() {
    std::lock_guard l(m_);
    for (auto& w : watchers_) w->thread.request_stop();
    watchers_.clear();  // each jthread joins as it goes
}

void step_watchers::watch(const graph_view& graph, std::function<void(const step_event&)> on_step, poll_fn poll,
                          std::chrono::milliseconds interval) {
    std::lock_guard l(m_);
    watchers_.remove_if([](const std::unique_ptr<watcher>& w) { return w->done.load(); });  // joins finished ones
    auto& w = *watchers_.emplace_back(std::make_unique<watcher>());
    w.thread = std::jthread([&graph, &done = w.done, on_step = std::move(on_step), poll = std::move(poll),
                             interval](std::stop_token stop) {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<step_state> seen(graph.size(), step_state::pending);
        std::vector<step_status> steps;
        try {
            for (bool closed = false; !closed && !stop.stop_requested();) {
                steps.clear();
                closed = poll(steps, stop);
                for (std::size_t i = 0; i < steps.size() && i < seen.size(); ++i) {
                    if (steps[i].state == seen[i]) continue;
                    seen[i] = steps[i].state;
                    on_step(step_event{graph.name, graph.names[i], steps[i].state, std::max(1, steps[i].attempts),
                                       steps[i].error, std::chrono::steady_clock::now() - t0});
                }
                if (!closed && interval.count() > 0 && !sleep_unless_stopped(interval, stop)) break;
            }
        } catch (const std::exception&) {
        }
        done = true;
    });
}

}  // namespace weft::kit
