#include <weft/kit/worker.hpp>

#include <weft/kit/backoff.hpp>

namespace weft::kit {

void fetch_loop(worker_threads& threads, std::string what, log_fn log, retry_policy policy,
                std::function<bool()> fetch_once) {
    threads.spawn([&threads, what = std::move(what), log = std::move(log), policy, fetch = std::move(fetch_once)] {
        backoff b(policy);
        while (!threads.stopping()) {
            try {
                if (fetch()) {
                    if (b.failures() > 0 && log)
                        log("info", what + " works again after " + std::to_string(b.failures()) + " failures");
                    b.succeeded();
                }
            } catch (const std::exception& e) {
                if (threads.stopping()) return;
                const auto delay = b.failed();
                if (b.worth_logging() && log)
                    log("warning", what + " failed (attempt " + std::to_string(b.failures()) + "): " + e.what() +
                                       "; retrying in " + std::to_string(delay.count()) + " ms");
                threads.sleep_for(delay);
            }
        }
    });
}

}  // namespace weft::kit
