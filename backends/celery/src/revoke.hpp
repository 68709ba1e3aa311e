// Revocation as a Celery worker's remote control does it: the task ids revoked by pidbox
// broadcasts (Python's AsyncResult.revoke(), weft's cancel(), a neighbour's revoked set at mingle),
// and the running tasks, which a revoke(terminate=True) asks to stop and `inspect active` lists.
#pragma once

#include "codec.hpp"

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace weft::celery_wire {

class revocations {
public:
    bool revoked(const std::string& id) const;
    // Adds ids to the revoked set (oldest evicted beyond Celery's 50,000); with `terminate`, raises
    // the flags of those running. Returns the ids of the running tasks it asked to stop.
    std::vector<std::string> revoke(const std::vector<std::string>& ids, bool terminate = false);
    std::vector<std::string> revoked_ids() const;  // oldest first, as Celery's hello sends them

    // Registers a running task until the returned guard goes: a terminating revoke of its id sets
    // `flag`. `m` must outlive the guard; `time_start` is the Unix time it started.
    [[nodiscard]] std::shared_ptr<void> running(const message& m, std::atomic<bool>& flag, double time_start);
    // Calls f for every running task, under the lock (f must not call back into this object).
    void each_running(const std::function<void(const message&, double time_start)>& f) const;
    std::size_t running_count() const;

private:
    struct running_task {
        std::atomic<bool>* flag;
        const message* m;
        double time_start;
    };
    static constexpr std::size_t max_revoked = 50000;  // Celery's REVOKES_MAX
    mutable std::mutex m_;
    std::unordered_set<std::string> revoked_;
    std::deque<std::string> revoked_order_;
    std::multimap<std::string, running_task> running_;  // its iterators outlive insertions
};

}  // namespace weft::celery_wire
