// The weft workflows the Temporal tests, the fixture capture and the benchmarks run: each one is the
// Temporal workflow type named after it, served by weft::temporal::worker (dag_worker.cpp).
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/describe.hpp>
#include <weft/weft.hpp>

#include "../metadata_text.hpp"

namespace dags {

using namespace std::chrono_literals;

// weft_chain: typed structs through three steps (Python's dataclasses Order and Invoice mirror them).
struct order {
    std::string customer;
    std::vector<int> quantities;
};
BOOST_DESCRIBE_STRUCT(order, (), (customer, quantities))
struct subtotal {
    std::string customer;
    int items = 0;
};
BOOST_DESCRIBE_STRUCT(subtotal, (), (customer, items))
struct invoice {
    std::string customer;
    int items = 0;
    int cents = 0;
};
BOOST_DESCRIBE_STRUCT(invoice, (), (customer, items, cents))

struct count_items {
    static constexpr std::string_view name = "weft_test.count_items";
    subtotal operator()(const order& o) const {
        int n = 0;
        for (int q : o.quantities) n += q;
        return {o.customer, n};
    }
};
struct price_items {
    static constexpr std::string_view name = "weft_test.price_items";
    invoice operator()(const subtotal& s) const { return {s.customer, s.items, s.items * 250}; }
};
struct add_tax {
    static constexpr std::string_view name = "weft_test.add_tax";
    invoice operator()(const invoice& i) const { return {i.customer, i.items, i.cents + i.cents / 5}; }
};
inline constexpr auto chain = weft::workflow<"weft_chain">(weft::step<count_items> >> weft::step<price_items> >> weft::step<add_tax>);

// weft_fan: fan-out to three branches, fan-in in declaration order.
struct seed {
    static constexpr std::string_view name = "weft_test.seed";
    int operator()(int n) const { return n + 1; }
};
struct square {
    static constexpr std::string_view name = "weft_test.square";
    int operator()(int n) const { return n * n; }
};
struct cube {
    static constexpr std::string_view name = "weft_test.cube";
    int operator()(int n) const { return n * n * n; }
};
struct negate {
    static constexpr std::string_view name = "weft_test.negate";
    int operator()(int n) const { return -n; }
};
struct describe3 {
    static constexpr std::string_view name = "weft_test.describe3";
    std::string operator()(int a, int b, int c) const {
        return std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(c);
    }
};
inline constexpr auto fan = weft::workflow<"weft_fan">(
    weft::step<seed> >> (weft::step<square>, weft::step<cube>, weft::step<negate>) >> weft::step<describe3>);

// weft_retry: fails twice, then succeeds; the result shows the attempt that succeeded.
struct flaky {
    static constexpr std::string_view name = "weft_test.flaky";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 3, .initial = 100ms, .maximum = 200ms}};
    int operator()(int n) const {
        if (weft::this_step::attempt() < 3)
            throw std::runtime_error("flaky attempt " + std::to_string(weft::this_step::attempt()));
        return n * 10 + weft::this_step::attempt();
    }
};
inline constexpr auto retry = weft::workflow<"weft_retry">(weft::step<flaky>);

// weft_fail: fails on both attempts; the run fails naming the step and its message.
struct out_of_stock : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct doomed {
    static constexpr std::string_view name = "weft_test.doomed";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 2, .initial = 100ms}};
    int operator()(int n) const { throw out_of_stock("no stock left for sku-" + std::to_string(n)); }
};
inline constexpr auto fail = weft::workflow<"weft_fail">(weft::step<seed> >> weft::step<doomed>);

// weft_slow: a long step that heartbeats and stops when asked (cancel, SIGKILL tests).
struct nap {
    static constexpr std::string_view name = "weft_test.nap";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 3, .initial = 200ms}, .timeout = 60s};
    int operator()(int ms) const {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (std::chrono::steady_clock::now() < until) {
            if (weft::this_step::stop_requested()) throw std::runtime_error("nap interrupted");
            std::this_thread::sleep_for(20ms);
        }
        return ms;
    }
};
struct after_nap {
    static constexpr std::string_view name = "weft_test.after_nap";
    std::string operator()(int ms) const { return "slept " + std::to_string(ms) + " ms"; }
};
inline constexpr auto slow = weft::workflow<"weft_slow">(weft::step<nap> >> weft::step<after_nap>);

// weft_timeout: a step over its 1 s timeout, with no retry.
struct sleepy {
    static constexpr std::string_view name = "weft_test.sleepy";
    static constexpr weft::step_policy policy{.timeout = 1s};
    int operator()(int ms) const {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (std::chrono::steady_clock::now() < until && !weft::this_step::stop_requested())
            std::this_thread::sleep_for(20ms);
        return ms;
    }
};
inline constexpr auto timeout = weft::workflow<"weft_timeout">(weft::step<sleepy>);

// weft_mixed: the middle step is a Python activity on its own task queue (python_steps.py).
inline constexpr std::string_view python_queue = "weft-test-python-steps";
struct prepare {
    static constexpr std::string_view name = "weft_test.prepare";
    int operator()(int n) const { return n + 100; }
};
struct py_triple {
    static constexpr std::string_view name = "weft_test.py_triple";
    static constexpr weft::step_policy policy{.queue = python_queue};
    int operator()(int) const { throw std::logic_error("weft_test.py_triple runs in Python"); }
};
struct finish {
    static constexpr std::string_view name = "weft_test.finish";
    std::string operator()(int n) const { return "total " + std::to_string(n); }
};
inline constexpr auto mixed = weft::workflow<"weft_mixed">(weft::step<prepare> >> weft::step<py_triple> >> weft::step<finish>);

// weft_chain10: ten no-op steps in a row (the latency benchmark).
struct bump {
    static constexpr std::string_view name = "weft_test.bump";
    int operator()(int n) const { return n + 1; }
};
using weft::step;
inline constexpr auto chain10 = weft::workflow<"weft_chain10">(
    step<bump, "bump_1"> >> step<bump, "bump_2"> >> step<bump, "bump_3"> >> step<bump, "bump_4"> >> step<bump, "bump_5"> >>
    step<bump, "bump_6"> >> step<bump, "bump_7"> >> step<bump, "bump_8"> >> step<bump, "bump_9"> >> step<bump, "bump_10">);

// weft_noop: one no-op step (the throughput benchmark).
struct noop {
    static constexpr std::string_view name = "weft_test.noop";
    int operator()(int n) const { return n; }
};
inline constexpr auto noop_wf = weft::workflow<"weft_noop">(weft::step<noop>);

// weft_two_sinks: two last steps; the run's output is the tuple of their results, in node order.
inline constexpr auto two_sinks = weft::workflow<"weft_two_sinks">(weft::step<seed> >> (weft::step<square>, weft::step<cube>));

// weft_metadata: the run's metadata (a Python caller's memo, or run_options::metadata) as the first
// step and its child read it.
struct tenant_of {
    static constexpr std::string_view name = "weft_test.tenant_of";
    std::string operator()(int) const { return metadata_text::tenant(); }
};
struct metadata_seen {
    static constexpr std::string_view name = "weft_test.metadata_seen";
    std::string operator()(const std::string& tenant) const { return tenant + "|" + metadata_text::entries(); }
};
inline constexpr auto metadata = weft::workflow<"weft_metadata">(weft::step<tenant_of> >> weft::step<metadata_seen>);

template <class F>
void for_each_workflow(F&& f) {
    f(chain), f(fan), f(retry), f(fail), f(slow), f(timeout), f(mixed), f(chain10), f(noop_wf), f(two_sinks), f(metadata);
}

// Two versions of one workflow type whose second step differs (the live nondeterminism test). The first
// version's second step waits on a queue nobody polls, so the run stays where version 1 left it.
struct parked {
    static constexpr std::string_view name = "weft_test.parked";
    static constexpr weft::step_policy policy{.queue = "weft-test-nobody-polls"};
    int operator()(int n) const { return n; }
};
inline constexpr auto versioned_v1 = weft::workflow<"weft_versioned">(weft::step<seed> >> weft::step<parked>);
inline constexpr auto versioned_v2 = weft::workflow<"weft_versioned">(weft::step<seed> >> weft::step<cube>);

}  // namespace dags
