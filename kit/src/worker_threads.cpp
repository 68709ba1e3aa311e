#include <weft/kit/worker_threads.hpp>

namespace weft::kit {

void worker_threads::spawn(std::function<void()> body) { threads_.emplace_back(std::move(body)); }

void worker_threads::on_stop(std::function<void()> interrupt) {
    std::lock_guard l(m_);
    interrupts_.push_back(std::move(interrupt));
}

bool worker_threads::sleep_for(std::chrono::milliseconds d) const {
    std::unique_lock l(m_);
    return !wake_.wait_for(l, d, [&] { return stopping(); });
}

void worker_threads::wait_until_stopped() const {
    std::unique_lock l(m_);
    wake_.wait(l, [&] { return stopping(); });
}

void worker_threads::request_stop() {
    std::vector<std::function<void()>> interrupts;
    {
        std::lock_guard l(m_);
        if (!stopping_.load()) stop_at_ = std::chrono::steady_clock::now().time_since_epoch().count();
        if (!stopping_.exchange(true)) interrupts.swap(interrupts_);
    }
    wake_.notify_all();
    for (auto& f : interrupts) f();
}

bool worker_threads::drain_over() const noexcept {
    if (!stopping()) return false;
    const auto drain = std::chrono::milliseconds(drain_.load(std::memory_order_relaxed));
    if (drain.count() <= 0) return true;
    const std::chrono::steady_clock::time_point at{std::chrono::steady_clock::duration(stop_at_.load())};
    return std::chrono::steady_clock::now() >= at + drain;
}

void worker_threads::stop() {
    request_stop();
    std::lock_guard j(join_m_);
    for (auto& t : threads_) {
        if (!t.joinable()) continue;
        if (t.get_id() == std::this_thread::get_id()) t.detach();  // a step thread stopping its own worker
        else t.join();
    }
    threads_.clear();
}

}  // namespace weft::kit
