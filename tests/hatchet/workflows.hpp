// Workflows of the Hatchet tests, shared by the in-process tests, the peer process (tests/hatchet/
// peer.cpp) and the benchmark. Names are lowercase (the engine lowercases action ids) and unique per
// test, so tests running at the same time never serve each other's runs.
#pragma once

#include <weft/hatchet.hpp>
#include <weft/json.hpp>
#include <weft/this_step.hpp>

#include "../metadata_text.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>

namespace hx {

using weft::step;

struct order {
    std::string sku;
    int qty = 0;
};
BOOST_DESCRIBE_STRUCT(order, (), (sku, qty))

struct receipt {
    std::string text;
    int total = 0;
};
BOOST_DESCRIBE_STRUCT(receipt, (), (text, total))

struct attempt_report {
    int attempt = 0;
    int pid = 0;
    std::string key;
};
BOOST_DESCRIBE_STRUCT(attempt_report, (), (attempt, pid, key))

// These wrap instead of overflowing (unsigned arithmetic): fuzz/hatchet.cpp calls them with any int.
struct price {
    static constexpr std::string_view name = "price";
    int operator()(const order& o) const { return static_cast<int>(static_cast<unsigned>(o.qty) * 7u); }
};
struct twice {
    static constexpr std::string_view name = "twice";
    int operator()(int x) const { return static_cast<int>(static_cast<unsigned>(x) * 2u); }
};
struct label {
    static constexpr std::string_view name = "label";
    std::string operator()(int x) const { return "n=" + std::to_string(x); }
};
struct join {
    static constexpr std::string_view name = "join";
    receipt operator()(int total, const std::string& text) const { return {text, total}; }
};
// price >> (twice, label) >> join: a diamond, typed input, a struct output.
inline constexpr auto dag = weft::workflow<"hx-dag">(step<price> >> (step<twice>, step<label>) >> step<join>);

struct out_of_stock {
    static constexpr std::string_view name = "reserve";
    int operator()(const order& o) const { throw std::runtime_error("out of stock: " + o.sku); }
};
struct check {
    static constexpr std::string_view name = "check";
    order operator()(const order& o) const { return o; }
};
inline constexpr auto fail = weft::workflow<"hx-fail">(step<check> >> step<out_of_stock>);

// The same wire definition twice: the worker serves `halve` on int, a client sends a string.
struct halve {
    static constexpr std::string_view name = "halve";
    int operator()(int x) const { return x / 2; }
};
struct halve_text {
    static constexpr std::string_view name = "halve";
    int operator()(const std::string&) const { throw std::logic_error("never served"); }
};
inline constexpr auto halving = weft::workflow<"hx-halve">(step<halve>);
inline constexpr auto halving_text = weft::workflow<"hx-halve">(step<halve_text>);

// Sleeps, and records how many run at once (slots).
inline std::atomic<int> in_flight{0}, peak{0};
struct nap {
    static constexpr std::string_view name = "nap";
    int operator()(int ms) const {
        int now = ++in_flight;
        for (int p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
        }
        for (int t = 0; t < ms && !weft::this_step::stop_requested(); t += 10)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        --in_flight;
        return ms;
    }
};
inline constexpr auto naps = weft::workflow<"hx-nap">(step<nap>);
inline constexpr auto cancellable = weft::workflow<"hx-cancel">(step<nap> >> step<twice>);

struct inc {
    static constexpr std::string_view name = "inc";
    int operator()(int x) const { return x + 1; }
};
struct bounded_nap {
    static constexpr std::string_view name = "bounded_nap";
    static constexpr weft::step_policy policy{.timeout = weft::milliseconds(2000)};
    int operator()(int ms) const { return nap{}(ms); }
};
inline constexpr auto timeouts = weft::workflow<"hx-timeout">(step<bounded_nap>);

// The graceful drain test (drain.py): naps `ms` on its first attempt unless asked to stop (then it
// throws), and returns the attempt it finished on.
struct drain_nap {
    static constexpr std::string_view name = "drain_nap";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 2, .initial = weft::milliseconds(100)},
                                              .timeout = weft::milliseconds(60000)};
    int operator()(int ms) const {
        if (weft::this_step::attempt() == 1)
            for (int t = 0; t < ms; t += 10) {
                if (weft::this_step::stop_requested()) throw std::runtime_error("drain_nap interrupted");
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        return weft::this_step::attempt();
    }
};
// One workflow per phase: the engine may still hand a task to a worker that just stopped.
inline constexpr auto drain_a = weft::workflow<"hx-drain-a">(step<drain_nap>);
inline constexpr auto drain_b = weft::workflow<"hx-drain-b">(step<drain_nap>);

inline constexpr auto restart = weft::workflow<"hx-restart">(step<inc>);
inline constexpr auto anyc = weft::workflow<"hx-any">(step<inc> >> step<twice>);

// The first attempt hangs (its worker is killed meanwhile); a later one reports itself.
struct crashy {
    static constexpr std::string_view name = "crashy";
    static constexpr weft::step_policy policy{
        .retry = {.max_attempts = 3, .initial = weft::milliseconds(1000), .multiplier = 1.0,
                  .maximum = weft::milliseconds(1000)},
        .timeout = weft::milliseconds(8000)};
    attempt_report operator()(const std::string& key) const {
        if (weft::this_step::attempt() == 1) std::this_thread::sleep_for(std::chrono::seconds(60));
        return {weft::this_step::attempt(), static_cast<int>(::getpid()), key};
    }
};
inline constexpr auto fault = weft::workflow<"hx-fault">(step<crashy>);

// Interop: served by C++, triggered by Python.
struct greet {
    static constexpr std::string_view name = "greet";
    receipt operator()(const order& o) const { return {"hello " + o.sku, o.qty + 1}; }
};
struct shout {
    static constexpr std::string_view name = "shout";
    receipt operator()(const receipt& r) const {
        std::string t = r.text;
        for (char& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return {t, r.total * 10};
    }
};
inline constexpr auto for_python = weft::workflow<"hx-from-python">(step<greet> >> step<shout>);

// Interop: served by the Python worker (tests/hatchet/interop.py), triggered by C++. The bodies
// never run in C++.
struct py_first {
    static constexpr std::string_view name = "py_first";
    receipt operator()(const order&) const { throw std::logic_error("py_first runs in Python"); }
};
struct py_second {
    static constexpr std::string_view name = "py_second";
    receipt operator()(const receipt&) const { throw std::logic_error("py_second runs in Python"); }
};
inline constexpr auto python_served = weft::workflow<"hx-python-served">(step<py_first> >> step<py_second>);

// Mixed: greet (C++) >> py_mid (Python) >> shout (C++), one run.
struct py_mid {
    static constexpr std::string_view name = "py_mid";
    receipt operator()(const receipt&) const { throw std::logic_error("py_mid runs in Python"); }
};
inline constexpr auto mixed = weft::workflow<"hx-mixed">(step<greet> >> step<py_mid> >> step<shout>);

// Interop: a C++ step that fails, seen from Python (its exc_type is the C++ exception's type).
inline constexpr auto fail_for_python = weft::workflow<"hx-py-fail">(step<out_of_stock>);

// Limits (tests/hatchet/limits.py): a step that naps and says when it ran, so a test can tell whether
// two runs overlapped; hatchet-sdk registers the workflow with a concurrency limit of 1.
struct interval {
    std::int64_t start_ms = 0, end_ms = 0;  // wall clock, ms since the epoch
};
BOOST_DESCRIBE_STRUCT(interval, (), (start_ms, end_ms))
inline std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}
struct timed_nap {
    static constexpr std::string_view name = "timed_nap";
    interval operator()(int ms) const {
        interval i{wall_ms(), 0};
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        i.end_ms = wall_ms();
        return i;
    }
};
inline constexpr auto limited = weft::workflow<"hx-limited">(step<timed_nap>);
// What weft declares for hx-limited, as the Python side does: one run at a time.
inline weft::hatchet::workflow_limits limited_limits() {
    return {.concurrency = {{.expression = "'all'", .max_runs = 1}}, .rate_limits = {}};
}

// Rate limits (tests/hatchet/limits.py): the same step under another name; hatchet-sdk creates the
// limit's key (the engine owns it), weft's declaration makes timed_nap take one unit of it per run.
inline constexpr auto rated = weft::workflow<"hx-rated">(step<timed_nap>);
inline weft::hatchet::workflow_limits rated_limits(std::string key) {
    weft::hatchet::workflow_limits l;
    l.rate_limits["timed_nap"] = {{.key = std::move(key), .units = 1}};
    return l;
}

// Interop: the run's metadata (a Python caller's additional_metadata, or run_options::metadata),
// as the first step and its child read it.
struct metadata_first {
    static constexpr std::string_view name = "metadata_first";
    receipt operator()(const order& o) const { return {metadata_text::tenant(), o.qty}; }
};
struct metadata_all {
    static constexpr std::string_view name = "metadata_all";
    receipt operator()(const receipt& r) const { return {r.text + "|" + metadata_text::entries(), r.total}; }
};
inline constexpr auto metadata = weft::workflow<"hx-metadata">(step<metadata_first> >> step<metadata_all>);

// Benchmark: one no-op task per run.
struct noop {
    static constexpr std::string_view name = "noop";
    int operator()(int x) const { return x; }
};
inline constexpr auto bench = weft::workflow<"hx-bench">(step<noop>);

// Settings from the harness's environment (scripts/with-services): address and token file.
// The hatchet.* settings as any weft program reads them (WEFT_HATCHET_*, else hatchet-sdk's
// HATCHET_CLIENT_* variables: tests/tls/hatchet_tls.py drives TLS through those alone).
inline weft::hatchet::options options_from_env() {
    auto set = [](const char* k) {
        const char* v = std::getenv(k);
        return v && *v;
    };
    if (!set("WEFT_HATCHET_HOST_PORT") && !set("HATCHET_CLIENT_HOST_PORT"))
        throw std::runtime_error("WEFT_HATCHET_HOST_PORT is not set: run through scripts/with-services --need hatchet python "
                                 "(start the engine with `scripts/services up hatchet python`)");
    weft::hatchet::options o = weft::hatchet_detail::options_from(weft::config::from_env());
    if (o.token.empty() && o.token_file.empty())
        throw std::runtime_error("WEFT_HATCHET_TOKEN_FILE is not set: run through scripts/with-services --need hatchet python");
    return o;
}

}  // namespace hx
