#include "revoke.hpp"

namespace weft::celery_wire {

bool revocations::revoked(const std::string& id) const {
    std::lock_guard lock(m_);
    return revoked_.count(id) != 0;
}

std::vector<std::string> revocations::revoke(const std::vector<std::string>& ids, bool terminate) {
    std::vector<std::string> stopped;
    std::lock_guard lock(m_);
    for (auto& id : ids) {
        if (terminate) {
            auto [from, to] = running_.equal_range(id);
            if (from != to) stopped.push_back(id);
            for (auto t = from; t != to; ++t) t->second.flag->store(true);
        }
        if (revoked_.insert(id).second) revoked_order_.push_back(id);
    }
    while (revoked_order_.size() > max_revoked) {
        revoked_.erase(revoked_order_.front());
        revoked_order_.pop_front();
    }
    return stopped;
}

std::vector<std::string> revocations::revoked_ids() const {
    std::lock_guard lock(m_);
    return {revoked_order_.begin(), revoked_order_.end()};
}

std::shared_ptr<void> revocations::running(const message& m, std::atomic<bool>& flag, double time_start) {
    std::lock_guard lock(m_);
    auto it = running_.emplace(m.id, running_task{&flag, &m, time_start});
    return {nullptr, [this, it](void*) {
                std::lock_guard lock(m_);
                running_.erase(it);
            }};
}

void revocations::each_running(const std::function<void(const message&, double)>& f) const {
    std::lock_guard lock(m_);
    for (auto& [id, t] : running_) f(*t.m, t.time_start);
}

std::size_t revocations::running_count() const {
    std::lock_guard lock(m_);
    return running_.size();
}

}  // namespace weft::celery_wire
