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
        if (!stopping_.exchange(true)) interrupts.swap(interrupts_);
    }
    wake_.notify_all();
    for (auto& f : interrupts) f();
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
