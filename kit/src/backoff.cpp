#include <weft/kit/backoff.hpp>

#include <algorithm>
#include <random>

namespace weft::kit {

backoff::backoff(retry_policy p) : policy_(p), state_(std::random_device{}() | 1) {}

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
