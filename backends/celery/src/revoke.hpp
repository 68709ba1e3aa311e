// Revocation as a Celery worker's remote control does it: the task ids revoked by pidbox
// broadcasts (Python's AsyncResult.revoke(), weft's cancel()), and the running tasks that a
// revoke(terminate=True) asks to stop.
#pragma once

#include "transport.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace weft::celery_wire {

class revocations {
public:
    bool revoked(const std::string& id) const;

    // Registers a running task until the returned guard goes: a terminating revoke of its id sets `flag`.
    [[nodiscard]] std::shared_ptr<void> running(const std::string& id, std::atomic<bool>& flag);

    // Reads the pidbox channel until `stopping`; reconnects after `pause` when Redis fails.
    void listen(const redis_url& broker, std::chrono::milliseconds timeout, const std::string& channel,
                const std::atomic<bool>& stopping, const log_fn& log,
                const std::function<void(std::chrono::milliseconds)>& pause);

private:
    mutable std::mutex m_;
    std::unordered_set<std::string> revoked_;
    std::unordered_map<std::string, std::atomic<bool>*> running_;
};

}  // namespace weft::celery_wire
