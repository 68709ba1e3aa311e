// Runs by id on weft::durable: another client on the same journal (its own engine and connection,
// as another process would have) describes a run without its workflow's type, sees it queued until
// a step begins, lists the journal's recent runs, and gets run_not_found for ids the journal lacks.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include <weft/any_client.hpp>
#include <weft/durable.hpp>
#include <weft/run_description.hpp>
#include <weft/weft.hpp>

#include "../engine_steps.hpp"
#include "journal_file.hpp"

using namespace std::chrono_literals;
using durable_test::journal_file;
using weft::run_state;
using weft::step_state;

namespace {

using namespace engine_steps;

TEST_CASE("a durable run is described from the journal by another client: steps, output, times") {
    journal_file j("describe");
    weft::client<weft::durable> driver({.journal = j.path, .threads = 2});
    const auto before = std::chrono::system_clock::now();
    auto run = driver.start(diamond, 4);
    CHECK(run.get() == "n=4 sum=10");
    const auto after = std::chrono::system_clock::now();

    const std::string text = run.id();
    auto id = weft::run_id::parse(text);  // views into text
    REQUIRE(id.has_value());
    CHECK(id->backend == "durable");
    CHECK(id->workflow == "diamond");

    weft::client<weft::durable> reader({.journal = j.path});
    const weft::run_description d = reader.describe(run.id());
    CHECK(d.backend == "durable");
    CHECK(d.workflow == "diamond");
    CHECK(d.id == run.id());
    CHECK(d.state == run_state::succeeded);
    CHECK(d.output == weft::json::value("n=4 sum=10"));  // the run's output, as JSON
    REQUIRE(d.steps.size() == 4);
    // In the order they began, as the journal times them (in ms): steps that began in the same ms
    // (sum and label, once load ends within it) may come in either order among themselves.
    for (std::size_t i = 1; i < d.steps.size(); ++i) {
        REQUIRE(d.steps[i - 1].started);
        REQUIRE(d.steps[i].started);
        CHECK(*d.steps[i - 1].started <= *d.steps[i].started);
    }
    auto started_of = [&](std::string_view name) {
        for (auto& s : d.steps)
            if (s.name == name) return *s.started;
        FAIL("no step " << name);
        return std::chrono::system_clock::time_point{};
    };
    CHECK(started_of("load") <= started_of("sum"));
    CHECK(started_of("load") <= started_of("label"));
    CHECK(started_of("sum") <= started_of("report"));
    CHECK(started_of("label") <= started_of("report"));
    CHECK(d.steps.front().name != "report");
    for (auto& s : d.steps) {
        INFO(s.name);
        CHECK(s.state == step_state::succeeded);
        CHECK(s.attempts == 1);
        REQUIRE(s.started);
        REQUIRE(s.finished);
        CHECK(*s.started <= *s.finished);
        CHECK(before - 1ms <= *s.started);
        CHECK(*s.finished <= after + 1ms);
    }
    REQUIRE(d.created);
    REQUIRE(d.started);
    REQUIRE(d.finished);
    CHECK(before - 1ms <= *d.created);  // the journal keeps milliseconds
    CHECK(*d.created <= *d.started);
    CHECK(*d.started <= *d.finished);
    CHECK(*d.finished <= after + 1ms);
}

TEST_CASE("a failed durable run is described with its failed step and error") {
    journal_file j("describe_failed");
    constexpr auto failing = weft::workflow<"failing">(weft::step<root> >> weft::step<broken>);
    weft::client<weft::durable> driver({.journal = j.path});
    auto run = driver.start(failing, 1);
    CHECK_THROWS_AS(run.get(), weft::step_failed);
    weft::client<weft::durable> reader({.journal = j.path});
    const auto d = reader.describe(run.id());
    CHECK(d.state == run_state::failed);
    CHECK(d.failed_step == "broken");
    CHECK_THAT(d.error, Catch::Contains("disk full on /var/data"));
    CHECK(d.output.is_null());
    REQUIRE(d.steps.size() == 2);
    // In the order the steps began: root and broken may begin within one millisecond of the journal.
    const auto& b = d.steps[0].name == "broken" ? d.steps[0] : d.steps[1];
    CHECK(b.name == "broken");
    CHECK(b.state == step_state::failed);
    CHECK(b.attempts == 2);
}

TEST_CASE("a durable run is queued until one of its steps begins, and listed newest first") {
    gate_open = false;
    journal_file j("describe_queued");
    // One thread, held by the gate: the second run is journaled but none of its steps can begin.
    weft::client<weft::durable> driver({.journal = j.path, .threads = 1});
    auto busy = driver.start(gated, 1);
    REQUIRE(eventually([&] { return busy.step("gate").state == step_state::running; }));
    std::this_thread::sleep_for(2ms);
    auto waiting = driver.start(diamond, 2);
    CHECK(waiting.state() == run_state::queued);

    weft::client<weft::durable> reader({.journal = j.path});
    auto d = reader.describe(waiting.id());
    CHECK(d.state == run_state::queued);
    CHECK(d.steps.empty());  // the journal records steps once they begin
    CHECK(d.created.has_value());
    CHECK_FALSE(d.started.has_value());
    CHECK_FALSE(d.finished.has_value());
    CHECK(reader.describe(busy.id()).state == run_state::running);

    auto diamonds = reader.list("diamond", 10);
    REQUIRE(diamonds.size() == 1);
    CHECK(diamonds[0].id == waiting.id());
    CHECK(diamonds[0].state == run_state::queued);
    CHECK_FALSE(diamonds[0].started.has_value());

    gate_open = true;
    CHECK(waiting.get() == "n=2 sum=3");
    CHECK(busy.get() == 1);
    d = reader.describe(waiting.id());
    CHECK(d.state == run_state::succeeded);
    CHECK(d.steps.size() == 4);

    auto third = driver.start(diamond, 3);
    CHECK(third.get() == "n=3 sum=6");
    diamonds = reader.list("diamond", 10);
    REQUIRE(diamonds.size() == 2);
    CHECK(diamonds[0].id == third.id());  // newest first
    CHECK(diamonds[1].id == waiting.id());
    CHECK(diamonds[1].state == run_state::succeeded);
    CHECK(diamonds[1].started.has_value());
    CHECK(*diamonds[0].created >= *diamonds[1].created);
    CHECK(reader.list("diamond", 1).size() == 1);
    CHECK(reader.list("gated", 10).size() == 1);
    CHECK(reader.list("nobody", 10).empty());
}

TEST_CASE("describing an id the journal lacks is run_not_found, through any_client too") {
    journal_file j("describe_missing");
    weft::client<weft::durable> client({.journal = j.path});
    CHECK_THROWS_AS(client.describe("durable:diamond:0123"), weft::run_not_found);
    CHECK_THROWS_WITH(client.describe("nobody"), Catch::Contains("durable has no run 'nobody'") &&
                                                     Catch::Contains(client.journal()));
    auto any = weft::any_client(weft::config::parse("backend = durable\n[durable]\njournal = " + j.path + "\n", "describe.conf"));
    auto run = any.start(diamond, 2);
    CHECK(run.get() == "n=2 sum=3");
    CHECK(any.describe(run.id()).state == run_state::succeeded);
    CHECK(any.list("diamond", 5).size() == 1);
    CHECK_THROWS_AS(any.describe("durable:diamond:nobody"), weft::run_not_found);
}

}  // namespace
