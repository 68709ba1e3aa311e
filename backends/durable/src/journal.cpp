// What both journal stores share: the clock, the crash hook, and the choice of store by the journal's
// name.
#include "journal.hpp"

#include <atomic>
#include <chrono>
#include <stdexcept>

namespace weft {

namespace durable_detail {
thread_local durable::transaction* current_transaction = nullptr;
}

durable::transaction& durable::transaction::current() {
    if (!durable_detail::current_transaction)
        throw std::logic_error(
            "weft: durable::transaction::current() called outside a transactional step: only the body of a step whose "
            "policy sets step_policy::transactional, running on weft::durable, has one (and only on the thread that "
            "runs it)");
    return *durable_detail::current_transaction;
}

}  // namespace weft

namespace weft::durable_detail {

namespace {
std::atomic<crash_hook> hook{nullptr};
}  // namespace

millis now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void crash_point(std::string_view point) {
    if (auto h = hook.load(std::memory_order_relaxed)) h(point);
}
void set_crash_hook(crash_hook h) noexcept { hook.store(h); }

int journal::version() noexcept { return journal_schema_version; }

run_state state_from(std::string_view s) {
    if (s == "succeeded") return run_state::succeeded;
    if (s == "failed") return run_state::failed;
    if (s == "cancelled") return run_state::cancelled;
    return run_state::running;
}

bool is_postgres_url(std::string_view journal) {
    return journal.starts_with("postgresql://") || journal.starts_with("postgres://");
}

std::shared_ptr<journal> open_journal(const durable::options& opts) {
    return is_postgres_url(opts.journal) ? open_postgres_journal(opts) : open_sqlite_journal(opts);
}

}  // namespace weft::durable_detail
