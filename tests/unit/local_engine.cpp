// The embedded engine: concurrency, typed values, retries, timeouts, failure, cancellation, status.
#include <catch2/catch.hpp>

#include <weft/any_client.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <weft/weft.hpp>

#include "../engine_steps.hpp"

using namespace std::chrono_literals;
using weft::step;
using weft::step_state;

namespace {

using namespace engine_steps;

TEST_CASE("a diamond passes typed values from parents to the join in declaration order") {
    weft::client<weft::local> client;
    CHECK(client.start(diamond, 4).get() == "n=4 sum=10");
    CHECK(client.start(diamond, 100).get() == "n=100 sum=5050");
}

TEST_CASE("a run is attached by its id while it runs and while a handle remains; other ids are refused") {
    weft::client<weft::local> client;
    auto started = client.start(diamond, 4);
    auto attached = client.attach(diamond, started.id());
    CHECK(attached.id() == started.id());
    CHECK(attached.get() == "n=4 sum=10");  // the same typed handle start() gives
    CHECK(attached.state() == weft::run_state::succeeded);

    CHECK_THROWS_WITH(client.attach(diamond, "no-such-run"),
                      Catch::Contains("local has no run 'no-such-run' of workflow 'diamond'") &&
                          Catch::Contains("process that started it"));
    constexpr auto other = weft::workflow<"other">(step<sum>);
    CHECK_THROWS_AS(client.attach(other, started.id()), weft::config_error);

    // Once it finished and no handle is left, the embedded engine has forgotten it.
    const std::string id = started.id();
    started = client.start(diamond, 1);
    attached = started;
    CHECK(started.get() == "n=1 sum=1");
    CHECK_THROWS_AS(client.attach(diamond, id), weft::run_not_found);

    // any_client reaches the same engine's runs.
    auto any = weft::any_client(weft::config::parse("", "attach.conf"));
    auto r = any.start(diamond, 3);
    CHECK(any.attach(diamond, r.id()).get() == "n=3 sum=6");
}

TEST_CASE("every step of a finished run reports succeeded with one attempt") {
    weft::client<weft::local> client;
    auto run = client.start(diamond, 3);
    run.wait();
    CHECK(run.state() == weft::run_state::succeeded);
    for (auto& s : run.steps()) {
        INFO(s.name);
        CHECK(s.state == step_state::succeeded);
        CHECK(s.attempts == 1);
    }
    CHECK(run.step("report").state == step_state::succeeded);
    CHECK_THROWS_WITH(run.step("nope"), Catch::Contains("no step named 'nope'"));
}

// ---- values are passed, not serialized ----
std::atomic<const void*> seen_by_sum{nullptr}, seen_by_label{nullptr};
struct sum_addr { static constexpr std::string_view name = "sum_addr";
    long operator()(const numbers& x) const { seen_by_sum = &x; return static_cast<long>(x.values.size()); } };
struct label_addr { static constexpr std::string_view name = "label_addr";
    std::string operator()(const numbers& x) const { seen_by_label = &x; return x.label; } };

TEST_CASE("children receive their parent's output object itself, not a decoded copy") {
    weft::client<weft::local> client;
    auto run = client.start(weft::workflow<"same_object">(step<load> >> (step<sum_addr>, step<label_addr>)), 3);
    CHECK(run.get() == std::tuple<long, std::string>{3, "n=3"});
    CHECK(seen_by_sum.load() != nullptr);
    CHECK(seen_by_sum.load() == seen_by_label.load());
}

// ---- independent steps run at the same time ----
std::atomic<int> inside{0};
struct left { static constexpr std::string_view name = "left";
    int operator()(int x) const { ++inside; bool both = eventually([] { return inside.load() == 2; }, 5s); return both ? x : -1000; } };
struct right { static constexpr std::string_view name = "right";
    int operator()(int x) const { ++inside; bool both = eventually([] { return inside.load() == 2; }, 5s); return both ? x : -1000; } };
struct add { static constexpr std::string_view name = "add"; int operator()(int a, int b) const { return a + b; } };

TEST_CASE("independent steps run concurrently") {
    inside = 0;
    weft::client<weft::local> client({.threads = 2});
    // Each branch waits until the other has started: serial execution would return -1000s.
    CHECK(client.run_sync(weft::workflow<"par">((step<left>, step<right>) >> step<add>), 21) == 42);
}

// ---- retries with backoff ----
TEST_CASE("a failing step is retried with exponential backoff and then succeeds") {
    flaky_calls = 0;
    weft::client<weft::local> client;
    std::vector<std::pair<step_state, std::chrono::steady_clock::duration>> events;
    auto t0 = std::chrono::steady_clock::now();
    auto run = client.start(weft::workflow<"retry">(step<flaky>), 4, {.on_step = [&](const weft::step_event& e) { events.emplace_back(e.state, e.elapsed); }});
    CHECK(run.get() == 43);  // succeeded on attempt 3
    auto elapsed = std::chrono::steady_clock::now() - t0;
    CHECK(elapsed >= 90ms);  // 30 ms then 60 ms of backoff
    CHECK(run.step("flaky").attempts == 3);
    REQUIRE(events.size() == 6);
    CHECK(events[1].first == step_state::retrying);
    CHECK(events[3].first == step_state::retrying);
    CHECK(events[5].first == step_state::succeeded);
    CHECK(events[2].second - events[1].second >= 30ms);
    CHECK(events[4].second - events[3].second >= 60ms);
}

// ---- failure stops downstream steps ----
TEST_CASE("a failed step fails the run with its name and error, and its descendants are skipped") {
    after_broken_calls = 0;
    weft::client<weft::local> client;
    auto run = client.start(weft::workflow<"fails">(step<root> >> (step<broken> >> step<after_broken>, step<sibling>)), 1);
    try {
        run.get();
        FAIL("get() should have thrown");
    } catch (const weft::step_failed& e) {
        CHECK(e.step() == "broken");
        CHECK(e.error() == "disk full on /var/data");
        CHECK(e.attempts() == 2);
        CHECK(std::string(e.what()) == "weft: step 'broken' failed after 2 attempts: disk full on /var/data");
    }
    CHECK(run.state() == weft::run_state::failed);
    CHECK(run.step("broken").state == step_state::failed);
    CHECK(run.step("after_broken").state == step_state::skipped);
    CHECK(run.step("sibling").state == step_state::succeeded);  // not downstream: it still runs
    CHECK(after_broken_calls == 0);
}

struct throws_int { static constexpr std::string_view name = "throws_int"; int operator()(int) const { throw 42; } };

TEST_CASE("a step that throws something other than std::exception fails cleanly") {
    weft::client<weft::local> client;
    CHECK_THROWS_WITH(client.run_sync(weft::workflow<"odd">(step<throws_int>), 1), Catch::Contains("not a std::exception"));
}

// ---- timeouts ----
std::atomic<bool> saw_stop{false};
struct slow { static constexpr std::string_view name = "slow";
    static constexpr weft::step_policy policy{.timeout = 50ms};
    int operator()(int x) const {
        auto end = std::chrono::steady_clock::now() + 3s;
        while (std::chrono::steady_clock::now() < end) {
            if (weft::this_step::stop_requested()) { saw_stop = true; break; }
            std::this_thread::sleep_for(1ms);
        }
        return x; } };

TEST_CASE("a step that overruns its timeout fails with a timeout error and is asked to stop") {
    saw_stop = false;
    weft::client<weft::local> client;
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(client.run_sync(weft::workflow<"slow">(step<slow>), 1),
                      "weft: step 'slow' failed after 1 attempt: timed out after 50 ms");
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(eventually([] { return saw_stop.load(); }));
}

TEST_CASE("a timed-out attempt is retried and the late result of the first attempt is discarded") {
    slow_then_fast_calls = 0;
    weft::client<weft::local> client;
    CHECK(client.run_sync(weft::workflow<"tf">(step<slow_then_fast>), 100) == 102);
}

// ---- cancellation and live status ----
TEST_CASE("per-step status is readable while the run goes on") {
    gate_open = false;
    weft::client<weft::local> client;
    auto run = client.start(gated, 5);
    REQUIRE(eventually([&] { return run.step("gate").state == step_state::running; }));
    CHECK(run.step("root").state == step_state::succeeded);
    CHECK(run.step("downstream").state == step_state::pending);
    CHECK(run.state() == weft::run_state::running);
    CHECK_FALSE(run.wait_for(20ms));
    gate_open = true;
    CHECK(run.get() == 5);
    CHECK(run.step("downstream").state == step_state::succeeded);
}

TEST_CASE("a cancelled run stops: pending steps never run and get() throws run_cancelled") {
    gate_open = false;
    downstream_calls = 0;
    weft::client<weft::local> client;
    auto run = client.start(gated, 5);
    REQUIRE(eventually([&] { return run.step("gate").state == step_state::running; }));
    run.cancel();
    CHECK_THROWS_AS(run.get(), weft::run_cancelled);
    CHECK(run.state() == weft::run_state::cancelled);
    CHECK(run.step("downstream").state == step_state::cancelled);
    CHECK(downstream_calls == 0);
}

TEST_CASE("destroying the client cancels its unfinished runs") {
    gate_open = false;
    std::optional<weft::run<int>> run;
    {
        weft::client<weft::local> client;
        run.emplace(client.start(gated, 5));
        REQUIRE(eventually([&] { return run->step("gate").state == step_state::running; }));
    }
    CHECK_THROWS_AS(run->get(), weft::run_cancelled);
}

// ---- shapes ----
struct tick { static constexpr std::string_view name = "tick"; int operator()() const { return 7; } };
struct twice { static constexpr std::string_view name = "twice"; int operator()(int x) const { return 2 * x; } };
struct text { static constexpr std::string_view name = "text"; std::string operator()(int x) const { return std::to_string(x); } };

TEST_CASE("a workflow without input and with several last steps returns a tuple of their outputs") {
    weft::client<weft::local> client;
    auto run = client.start(weft::workflow<"fork">(step<tick> >> (step<twice>, step<text>)));
    CHECK(run.get() == std::tuple<int, std::string>{14, "7"});
}

TEST_CASE("the same step type runs twice under an alias") {
    weft::client<weft::local> client;
    CHECK(client.run_sync(weft::workflow<"x4">(step<twice> >> step<twice, "twice_again">), 3) == 12);
}

// run_sync's caller runs steps itself: where each step of a chain ran, and a nested run_sync from a
// step of a one-thread engine, which would wait for ever for the engine's only thread otherwise.
inline std::thread::id ran_on[2];
struct where_first { static constexpr std::string_view name = "where_first";
    int operator()(int x) const { ran_on[0] = std::this_thread::get_id(); return x + 1; } };
struct where_second { static constexpr std::string_view name = "where_second";
    int operator()(int x) const { ran_on[1] = std::this_thread::get_id(); return x * 2; } };
inline constexpr auto where_chain = weft::workflow<"where">(step<where_first> >> step<where_second>);
inline weft::client<weft::local>* nesting_client = nullptr;
struct nests { static constexpr std::string_view name = "nests";
    int operator()(int x) const { return nesting_client->run_sync(where_chain, x) + 1; } };

TEST_CASE("run_sync runs a chain on the calling thread; start() hands it to the engine's threads") {
    weft::client<weft::local> client({.threads = 2});
    CHECK(client.run_sync(where_chain, 4) == 10);
    CHECK(ran_on[0] == std::this_thread::get_id());
    CHECK(ran_on[1] == std::this_thread::get_id());
    CHECK(client.start(where_chain, 4).get() == 10);
    CHECK(ran_on[0] != std::this_thread::get_id());
    CHECK(ran_on[1] != std::this_thread::get_id());
}

TEST_CASE("a step that calls run_sync on its own one-thread engine finishes") {
    weft::client<weft::local> client({.threads = 1});
    nesting_client = &client;
    auto run = client.start(weft::workflow<"nest">(step<nests>), 4);
    REQUIRE(run.wait_for(10s));
    CHECK(run.get() == 11);
}

TEST_CASE("many concurrent runs each get their own result") {
    weft::client<weft::local> client;
    std::vector<weft::run<std::string>> runs;
    for (int i = 0; i < 2000; ++i) runs.push_back(client.start(diamond, i % 50));
    for (int i = 0; i < 2000; ++i) {
        int n = i % 50;
        REQUIRE(runs[i].get() == "n=" + std::to_string(n) + " sum=" + std::to_string(n * (n + 1) / 2));
    }
}

}  // namespace

namespace {

TEST_CASE("every step of a run reads the metadata it was started with; a run without any reads none") {
    weft::client<weft::local> client;
    auto with = client.start(metadata_echo, 1, {.metadata = {{"tenant", "acme"}, {"trace", "t-1"}}});
    auto without = client.start(metadata_echo, 1);
    CHECK(with.get() == "acme|tenant=acme;trace=t-1;");
    CHECK(without.get() == "<none>|");
    CHECK(weft::this_step::metadata().empty());  // outside a step
    CHECK_FALSE(weft::this_step::metadata("tenant"));
}

TEST_CASE("any_client on local passes metadata through; an empty or reserved key is refused at start") {
    weft::any_client client(weft::config::parse("", "metadata.conf"));  // WEFT_BACKEND unset: local
    CHECK(client.start(metadata_echo, 1, {.metadata = {{"tenant", "globex"}}}).get() == "globex|tenant=globex;");
    CHECK_THROWS_WITH(client.start(metadata_echo, 1, {.metadata = {{"weft_steps", "x"}}}),
                      Catch::Contains("run metadata key 'weft_steps' is weft's own"));
    CHECK_THROWS_WITH(client.start(metadata_echo, 1, {.metadata = {{"", "x"}}}),
                      Catch::Contains("run metadata has an empty key"));
}

}  // namespace
