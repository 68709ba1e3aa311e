// Revocation as a Celery worker's remote control does it: the task ids revoked by pidbox
// broadcasts (Python's AsyncResult.revoke(), weft's cancel()), and the running tasks that a
// revoke(terminate=True) asks to stop.
#pragma once

#include "transport.hpp"

#include <weft/kit/worker_threads.hpp>

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

    // Reads the pidbox channel until `threads` stop; throws when Redis fails (a kit::fetch_loop
    // reconnects after its backoff).
    void listen_once(const redis_url& broker, std::chrono::milliseconds timeout, const std::string& channel,
                     const kit::worker_threads& threads);

private:
    mutable std::mutex m_;
    std::unordered_set<std::string> revoked_;
    std::unordered_map<std::string, std::atomic<bool>*> running_;
};

}  // namespace weft::celery_wire
