// Runs by id on the embedded engine: self-describing ids, describe() without the workflow's type,
// the list of recent runs, and run_not_found for ids the engine does not hold.
#include <catch2/catch.hpp>

#include <weft/any_client.hpp>
#include <weft/run_description.hpp>
#include <weft/weft.hpp>

#include <chrono>
#include <thread>

#include "../engine_steps.hpp"

using namespace std::chrono_literals;
using weft::run_id;
using weft::run_state;
using weft::step;
using weft::step_state;

namespace {

using namespace engine_steps;

struct join_two {
    static constexpr std::string_view name = "join_two";
    int operator()(int a, int b) const { return a + b; }
};
constexpr auto failing = weft::workflow<"failing">(step<root> >> (step<broken>, step<sibling>) >> step<join_two>);
constexpr auto single = weft::workflow<"single">(step<root>);

TEST_CASE("a run id splits into backend, workflow and key at its first two colons") {
    constexpr auto id = run_id::parse("celery:orders:3f0c:extra");
    STATIC_REQUIRE(id.has_value());
    STATIC_REQUIRE(id->backend == "celery");
    STATIC_REQUIRE(id->workflow == "orders");
    STATIC_REQUIRE(id->key == "3f0c:extra");  // the key keeps its colons (a Temporal workflow id may hold some)
    CHECK(run_id{"hatchet", "etl.v2/daily", "0b6e"}.str() == "hatchet:etl.v2/daily:0b6e");
    CHECK(run_id::parse(run_id{"hatchet", "etl.v2/daily", "0b6e"}.str())->workflow == "etl.v2/daily");
    // Native ids of runs weft did not start: not weft's form.
    for (std::string_view native : {"79671bc4-ca31-4c7f-9fa4-2f72e957780b", "order-42", ":orders:k", "celery::k", "celery:orders:",
                                    "Celery:orders:k", "celery:two words:k", "celery:orders"}) {
        INFO(native);
        CHECK_FALSE(run_id::parse(native).has_value());
    }
}

TEST_CASE("queued is a run state that is not final") {
    CHECK(weft::to_string(run_state::queued) == "queued");
    CHECK(weft::to_string(run_state::cancelled) == "cancelled");
    CHECK_FALSE(weft::is_final(run_state::queued));
    CHECK_FALSE(weft::is_final(run_state::running));
    CHECK(weft::is_final(run_state::succeeded));
    CHECK(weft::is_final(run_state::failed));
    CHECK(weft::is_final(run_state::cancelled));
}

TEST_CASE("a local run is described by its id: steps, states, attempts and times") {
    weft::client<weft::local> client;
    const auto before = std::chrono::system_clock::now();
    auto run = client.start(diamond, 4);
    CHECK(run.get() == "n=4 sum=10");
    const auto after = std::chrono::system_clock::now();

    const std::string text = run.id();
    auto id = run_id::parse(text);  // views into text
    REQUIRE(id.has_value());
    CHECK(id->backend == "local");
    CHECK(id->workflow == "diamond");
    CHECK(id->key.size() == 32);

    const weft::run_description d = client.describe(run.id());
    CHECK(d.backend == "local");
    CHECK(d.workflow == "diamond");
    CHECK(d.id == run.id());
    CHECK(d.state == run_state::succeeded);
    REQUIRE(d.steps.size() == 4);
    const char* names[] = {"load", "sum", "label", "report"};
    for (std::size_t i = 0; i < 4; ++i) {
        INFO(names[i]);
        CHECK(d.steps[i].name == names[i]);
        CHECK(d.steps[i].state == step_state::succeeded);
        CHECK(d.steps[i].attempts == 1);
        CHECK(d.steps[i].error.empty());
    }
    REQUIRE(d.created);
    REQUIRE(d.finished);
    CHECK(before <= *d.created);
    CHECK(*d.created <= *d.finished);
    CHECK(*d.finished <= after);
    CHECK(d.output.is_null());  // the engine keeps the output as a C++ object: run.get() has it
    CHECK(d.error.empty());
}

TEST_CASE("a failed local run is described with the step that failed and its error") {
    weft::client<weft::local> client;
    auto run = client.start(failing, 1);
    run.wait();
    const auto d = client.describe(run.id());
    CHECK(d.state == run_state::failed);
    CHECK(d.failed_step == "broken");
    CHECK_THAT(d.error, Catch::Contains("disk full on /var/data"));
    REQUIRE(d.steps.size() == 4);
    CHECK(d.steps[1].name == "broken");
    CHECK(d.steps[1].state == step_state::failed);
    CHECK(d.steps[1].attempts == 2);
    CHECK(d.steps[3].state == step_state::skipped);
    CHECK(d.finished.has_value());
}

TEST_CASE("a running local run is described as running, then as it ended") {
    gate_open = false;
    weft::client<weft::local> client;
    auto run = client.start(gated, 5);
    REQUIRE(eventually([&] { return run.step("gate").state == step_state::running; }));
    auto d = client.describe(run.id());
    CHECK(d.state == run_state::running);
    CHECK(d.steps[0].state == step_state::succeeded);
    CHECK(d.steps[1].state == step_state::running);
    CHECK(d.steps[2].state == step_state::pending);
    CHECK_FALSE(d.finished.has_value());
    gate_open = true;
    CHECK(run.get() == 5);
    d = client.describe(run.id());
    CHECK(d.state == run_state::succeeded);
    CHECK(d.finished.has_value());
}

TEST_CASE("the local list holds the runs the engine still holds, newest first, per workflow") {
    weft::client<weft::local> client;
    std::vector<weft::run<std::string>> runs;
    for (int i = 1; i <= 3; ++i) {
        runs.push_back(client.start(diamond, i));
        runs.back().wait();
        std::this_thread::sleep_for(2ms);  // distinct creation times
    }
    auto other = client.start(single, 1);
    other.wait();
    auto listed = client.list("diamond", 2);
    REQUIRE(listed.size() == 2);
    CHECK(listed[0].id == runs[2].id());
    CHECK(listed[1].id == runs[1].id());
    for (auto& r : listed) {
        CHECK(r.workflow == "diamond");
        CHECK(r.state == run_state::succeeded);
        CHECK(r.created.has_value());
    }
    CHECK(client.list("diamond", 10).size() == 3);
    CHECK(client.list("nobody", 10).empty());
}

TEST_CASE("describing an id the engine does not hold is run_not_found") {
    weft::client<weft::local> client;
    CHECK_THROWS_AS(client.describe("local:diamond:0123"), weft::run_not_found);
    CHECK_THROWS_WITH(client.describe("no-such-run"), Catch::Contains("local has no run 'no-such-run'") &&
                                                         Catch::Contains("process that started it"));
}

TEST_CASE("any_client describes and lists the embedded engine's runs") {
    auto any = weft::any_client(weft::config::parse("", "describe.conf"));
    auto run = any.start(diamond, 3);
    CHECK(run.get() == "n=3 sum=6");
    const auto d = any.describe(run.id());
    CHECK(d.backend == "local");
    CHECK(d.state == run_state::succeeded);
    CHECK(d.steps.size() == 4);
    auto listed = any.list("diamond", 5);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].id == run.id());
    CHECK_THROWS_AS(any.describe("local:diamond:nobody"), weft::run_not_found);
}

}  // namespace
