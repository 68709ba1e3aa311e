#include "revoke.hpp"

#include "codec.hpp"

namespace weft::celery_wire {

bool revocations::revoked(const std::string& id) const {
    std::lock_guard lock(m_);
    return revoked_.count(id) != 0;
}

std::shared_ptr<void> revocations::running(const std::string& id, std::atomic<bool>& flag) {
    std::lock_guard lock(m_);
    running_[id] = &flag;
    return {nullptr, [this, id](void*) {
                std::lock_guard lock(m_);
                running_.erase(id);
            }};
}

void revocations::listen_once(const redis_url& broker, std::chrono::milliseconds timeout, const std::string& channel,
                              const kit::worker_threads& threads) {
    redis_connection sub(broker, timeout);
    sub.send({"SUBSCRIBE", channel});
    while (!threads.stopping()) {
        auto r = sub.read(std::chrono::milliseconds(500));
        if (!r || r->type != redis_reply::kind::array || r->elements.size() != 3 || r->elements[0].str != "message")
            continue;
        auto revoke = read_revoke(r->elements[2].str);
        if (!revoke || revoke->ids.empty()) continue;
        std::lock_guard lock(m_);
        if (revoke->terminate)
            for (auto& id : revoke->ids)
                if (auto t = running_.find(id); t != running_.end()) t->second->store(true);
        if (revoked_.size() > 100000) revoked_.clear();  // Celery keeps a bounded set too
        for (auto& id : revoke->ids) revoked_.insert(id);
    }
}

}  // namespace weft::celery_wire
