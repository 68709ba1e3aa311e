// Steps and workflows that every in-process engine's tests run (tests/unit/local_engine.cpp,
// tests/durable/engine.cpp), so that "behaves as weft::local does" is checked on the same code.
// Counters are inline variables: each test resets the ones it reads.
#pragma once

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <weft/weft.hpp>

#include "metadata_text.hpp"

namespace engine_steps {

using namespace std::chrono_literals;
using weft::step;

template <class Pred>
inline bool eventually(Pred p, std::chrono::milliseconds limit = 5s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (p()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return p();
}

// A diamond with typed values.
struct numbers { std::vector<int> values; std::string label; };
BOOST_DESCRIBE_STRUCT(numbers, (), (values, label))

struct load { static constexpr std::string_view name = "load";
    numbers operator()(int n) const { numbers r{{}, "n=" + std::to_string(n)}; for (int i = 1; i <= n; ++i) r.values.push_back(i); return r; } };
struct sum { static constexpr std::string_view name = "sum";
    long operator()(const numbers& x) const { long s = 0; for (int v : x.values) s += v; return s; } };
struct label_of { static constexpr std::string_view name = "label";
    std::string operator()(const numbers& x) const { return x.label; } };
struct report { static constexpr std::string_view name = "report";
    std::string operator()(long s, const std::string& l) const { return l + " sum=" + std::to_string(s); } };

inline constexpr auto diamond = weft::workflow<"diamond">(step<load> >> (step<sum>, step<label_of>) >> step<report>);

// Retries with backoff: fails twice, then returns x * 10 + its attempt.
inline std::atomic<int> flaky_calls{0};
struct flaky { static constexpr std::string_view name = "flaky";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 3, .initial = 30ms, .multiplier = 2.0, .maximum = 1s}};
    int operator()(int x) const {
        if (++flaky_calls < 3) throw std::runtime_error("transient failure " + std::to_string(flaky_calls.load()));
        return x * 10 + weft::this_step::attempt(); } };

// A step that always fails, below a root, with a descendant and a sibling.
inline std::atomic<int> after_broken_calls{0};
struct broken { static constexpr std::string_view name = "broken";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 2, .initial = 1ms}};
    int operator()(int) const { throw std::invalid_argument("disk full on /var/data"); } };
struct after_broken { static constexpr std::string_view name = "after_broken";
    int operator()(int x) const { ++after_broken_calls; return x; } };
struct sibling { static constexpr std::string_view name = "sibling"; int operator()(int x) const { return x; } };
struct root { static constexpr std::string_view name = "root"; int operator()(int x) const { return x; } };

// Times out on its first attempt, answers on the second.
inline std::atomic<int> slow_then_fast_calls{0};
struct slow_then_fast { static constexpr std::string_view name = "slow_then_fast";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 2, .initial = 1ms}, .timeout = 40ms};
    int operator()(int x) const {
        if (++slow_then_fast_calls == 1) while (!weft::this_step::stop_requested()) std::this_thread::sleep_for(1ms);
        return x + weft::this_step::attempt(); } };

// Waits for gate_open, or throws once asked to stop.
inline std::atomic<bool> gate_open{false};
inline std::atomic<int> downstream_calls{0};
struct gate { static constexpr std::string_view name = "gate";
    int operator()(int x) const {
        while (!gate_open && !weft::this_step::stop_requested()) std::this_thread::sleep_for(1ms);
        if (!gate_open) throw std::runtime_error("stopped");  // asked to stop (cancel, timeout, shutdown)
        return x; } };
struct downstream { static constexpr std::string_view name = "downstream";
    int operator()(int x) const { ++downstream_calls; return x; } };
inline constexpr auto gated = weft::workflow<"gated">(step<root> >> step<gate> >> step<downstream>);

// The first step reads one key, its child every entry: both see the run's metadata.
struct tenant_of { static constexpr std::string_view name = "tenant_of";
    std::string operator()(int) const { return metadata_text::tenant(); } };
struct metadata_seen { static constexpr std::string_view name = "metadata_seen";
    std::string operator()(const std::string& tenant) const { return tenant + "|" + metadata_text::entries(); } };
inline constexpr auto metadata_echo = weft::workflow<"metadata_echo">(step<tenant_of> >> step<metadata_seen>);

}  // namespace engine_steps
