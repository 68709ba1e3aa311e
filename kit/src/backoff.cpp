#include <weft/kit/backoff.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace weft::kit {

namespace {
// A seed per backoff without a system call: backoffs are made per message on hot paths (a worker
// that handles a message again after a reconnect keeps one ready), and jitter needs spread only.
std::uint64_t seed(const void* self) {
    thread_local std::uint64_t counter = std::random_device{}();  // once per thread
    std::uint64_t z = ++counter + reinterpret_cast<std::uintptr_t>(self) +
                      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;  // splitmix64's finalizer
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) | 1;
}
}  // namespace

backoff::backoff(retry_policy p) : policy_(p), state_(seed(this)) {}

milliseconds backoff::failed() {
    ++failures_;
    const milliseconds ceiling = policy_.delay_before(failures_ + 1);
    // xorshift64: jitter needs spread, not quality, and this keeps a mutex-free generator per backoff.
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    const double u = static_cast<double>(state_ >> 11) / static_cast<double>(1ull << 53);
    const double c = static_cast<double>(ceiling.count());
    return milliseconds(static_cast<long long>(c / 2 + u * c / 2));
}

void backoff::succeeded() noexcept {
    failures_ = 0;
    capped_logged_ = false;
}

bool backoff::worth_logging() noexcept {
    const bool at_cap = policy_.delay_before(failures_ + 1) >= policy_.maximum;
    if (!at_cap) return true;
    if (!capped_logged_) {
        capped_logged_ = true;
        return true;
    }
    return failures_ % 10 == 0;
}

}  // namespace weft::kit
