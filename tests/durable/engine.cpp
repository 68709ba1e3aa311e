// weft::durable on a real SQLite journal, and on PostgreSQL (journal_file.hpp): what weft::local does (values, retries, timeouts, failure,
// cancellation), what the journal records, and recovery, attach and refusal across clients.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <mutex>
#include <optional>
#include <thread>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft/any_client.hpp>
#include <weft/durable.hpp>

#include "../engine_steps.hpp"
#include "journal_file.hpp"

using namespace std::chrono_literals;
using weft::step;
using weft::step_state;
using durable_test::journal_file;
using durable_test::query;

namespace {

using namespace engine_steps;

TEST_CASE("a diamond runs on the durable engine and every step's result is in the journal once") {
    journal_file j("diamond");
    weft::client<weft::durable> client({.journal = j.path, .threads = 2});
    auto run = client.start(diamond, 4);
    CHECK(run.get() == "n=4 sum=10");
    CHECK(run.state() == weft::run_state::succeeded);
    CHECK(run.step("report").state == step_state::succeeded);
    CHECK(query(j.path, "SELECT state || ' ' || output FROM runs WHERE id = '" + run.id() + "'") == "succeeded \"n=4 sum=10\"");
    CHECK(query(j.path, "SELECT count(*) FROM step_results WHERE run_id = '" + run.id() + "' AND state = 'succeeded'") == "4");
    CHECK(query(j.path, "SELECT output FROM step_results WHERE run_id = '" + run.id() + "' AND step = 'sum'") == "10");
    CHECK(query(j.path, "SELECT count(*) FROM step_attempts WHERE run_id = '" + run.id() + "' AND outcome = 'succeeded'") == "4");
    if (!durable_test::postgres()) CHECK(query(j.path, "PRAGMA journal_mode") == "wal");
}

TEST_CASE("a finished run is attached by id from another client on the same journal") {
    journal_file j("attach");
    std::string id;
    {
        weft::client<weft::durable> first({.journal = j.path});
        auto run = first.start(diamond, 3);
        run.wait();
        id = run.id();
    }
    weft::client<weft::durable> second({.journal = j.path});
    auto again = second.attach(diamond, id);
    CHECK(again.id() == id);
    CHECK(again.get() == "n=3 sum=6");
    CHECK(again.step("load").state == step_state::succeeded);
    CHECK_THROWS_WITH(second.attach(diamond, "no-such-run"), Catch::Contains("has no run 'no-such-run'"));
}

// ---- retries with backoff, as on weft::local (the same steps as tests/unit/local_engine.cpp) ----
TEST_CASE("a failing step is retried with exponential backoff, each attempt recorded, and then succeeds") {
    flaky_calls = 0;
    journal_file j("retry");
    weft::client<weft::durable> client({.journal = j.path});
    std::vector<std::pair<step_state, std::chrono::steady_clock::duration>> events;
    auto run = client.start(weft::workflow<"retry">(step<flaky>), 4,
                            {.on_step = [&](const weft::step_event& e) { events.emplace_back(e.state, e.elapsed); }});
    CHECK(run.get() == 43);
    CHECK(run.step("flaky").attempts == 3);
    REQUIRE(events.size() == 6);
    CHECK(events[1].first == step_state::retrying);
    CHECK(events[3].first == step_state::retrying);
    CHECK(events[5].first == step_state::succeeded);
    CHECK(events[2].second - events[1].second >= 30ms);
    CHECK(events[4].second - events[3].second >= 60ms);
    CHECK(query(j.path, "SELECT group_concat(outcome, ',') FROM (SELECT outcome FROM step_attempts WHERE run_id = '" +
                            run.id() + "' ORDER BY attempt) AS a") == "failed,failed,succeeded");
    CHECK(query(j.path, "SELECT error FROM step_attempts WHERE attempt = 2") == "transient failure 2");
}

constexpr auto fails = weft::workflow<"fails">(step<root> >> (step<broken> >> step<after_broken>, step<sibling>));

TEST_CASE("a failed step fails the run with its name and error, its descendants skipped, in every process") {
    after_broken_calls = 0;
    journal_file j("fails");
    std::string id;
    {
        weft::client<weft::durable> client({.journal = j.path});
        auto run = client.start(fails, 1);
        id = run.id();
        CHECK_THROWS_WITH(run.get(), "weft: step 'broken' failed after 2 attempts: disk full on /var/data");
        CHECK(run.state() == weft::run_state::failed);
        CHECK(run.step("after_broken").state == step_state::skipped);
        CHECK(run.step("sibling").state == step_state::succeeded);
        CHECK(after_broken_calls == 0);
    }
    weft::client<weft::durable> other({.journal = j.path});
    auto seen = other.attach(fails, id);
    try {
        seen.get();
        FAIL("get() should have thrown");
    } catch (const weft::step_failed& e) {
        CHECK(e.step() == "broken");
        CHECK(e.error() == "disk full on /var/data");
        CHECK(e.attempts() == 2);
    }
    CHECK(seen.step("broken").state == step_state::failed);
    CHECK(seen.step("after_broken").state == step_state::skipped);
}

// ---- timeouts ----
TEST_CASE("a timed-out attempt is recorded as such, retried, and its late result is not committed") {
    slow_then_fast_calls = 0;
    journal_file j("timeout");
    weft::client<weft::durable> client({.journal = j.path});
    auto run = client.start(weft::workflow<"tf">(step<slow_then_fast>), 100);
    CHECK(run.get() == 102);
    CHECK(query(j.path, "SELECT outcome || ': ' || error FROM step_attempts WHERE attempt = 1") == "timed_out: timed out after 40 ms");
    CHECK(query(j.path, "SELECT attempt FROM step_results") == "2");
}

// ---- cancellation ----
TEST_CASE("cancel stops a run, records it cancelled, and is seen by another client") {
    gate_open = false;
    downstream_calls = 0;
    journal_file j("cancel");
    weft::client<weft::durable> client({.journal = j.path});
    auto run = client.start(gated, 5);
    while (run.step("gate").state != step_state::running) std::this_thread::sleep_for(1ms);
    run.cancel();
    CHECK_THROWS_AS(run.get(), weft::run_cancelled);
    CHECK(run.state() == weft::run_state::cancelled);
    CHECK(downstream_calls == 0);
    CHECK(query(j.path, "SELECT state FROM runs") == "cancelled");
    weft::client<weft::durable> other({.journal = j.path});
    CHECK_THROWS_AS(other.attach(gated, run.id()).get(), weft::run_cancelled);
    CHECK_FALSE(other.cancel(run.id()));  // closed already
}

TEST_CASE("a run cancelled from another client stops in the process that drives it") {
    gate_open = false;
    downstream_calls = 0;
    journal_file j("cancel_elsewhere");
    weft::client<weft::durable> driver({.journal = j.path, .lease = 300ms});
    auto run = driver.start(gated, 5);
    while (run.step("gate").state != step_state::running) std::this_thread::sleep_for(1ms);
    weft::client<weft::durable> other({.journal = j.path});
    CHECK(other.cancel(run.id()));
    CHECK_THROWS_AS(run.get(), weft::run_cancelled);  // the driver's lease beat saw it, and gate was asked to stop
    CHECK(run.step("gate").state == step_state::cancelled);
    CHECK(downstream_calls == 0);
}

// ---- recovery ----
// A client destroyed while `gate` runs hands the run back unfinished (as a crash would leave it, minus
// the lease); the next client resumes it: root's committed result is used, root does not run again.
std::atomic<int> root_calls{0};
struct counted_root { static constexpr std::string_view name = "root"; int operator()(int x) const { ++root_calls; return x; } };
constexpr auto resumable = weft::workflow<"resumable">(step<counted_root> >> step<gate> >> step<downstream>);

std::string leave_unfinished(const std::string& path) {
    gate_open = false;
    weft::client<weft::durable> client({.journal = path, .resume = false});
    auto run = client.start(resumable, 7);
    while (run.step("gate").state != step_state::running) std::this_thread::sleep_for(1ms);
    return run.id();  // ~client: gate is asked to stop, throws, and its attempt stays open
}

TEST_CASE("a new client resumes an unfinished run from its committed steps") {
    root_calls = 0;
    downstream_calls = 0;
    journal_file j("resume");
    const std::string id = leave_unfinished(j.path);
    CHECK(query(j.path, "SELECT state || ' ' || ifnull(owner, 'nobody') FROM runs") == "running nobody");
    CHECK(query(j.path, "SELECT group_concat(step) FROM step_results") == "root");
    CHECK(root_calls == 1);

    gate_open = true;
    weft::client<weft::durable> client({.journal = j.path});
    auto resumed = client.resume(resumable);
    REQUIRE(resumed.size() == 1);
    CHECK(resumed[0].id() == id);
    CHECK(resumed[0].get() == 7);
    CHECK(root_calls == 1);  // its result was committed: it did not run again
    CHECK(downstream_calls == 1);
    CHECK(resumed[0].step("gate").attempts == 2);  // the interrupted attempt, then the one that finished
    CHECK(client.resume(resumable).empty());
}

TEST_CASE("the first start of a workflow resumes its unfinished runs, and attach finds them") {
    journal_file j("resume_on_start");
    const std::string id = leave_unfinished(j.path);
    gate_open = true;
    weft::client<weft::durable> client({.journal = j.path});
    CHECK(client.start(resumable, 8).get() == 8);
    CHECK(client.attach(resumable, id).get() == 7);
}

struct other_root { static constexpr std::string_view name = "other_root"; int operator()(int x) const { return x; } };
constexpr auto changed = weft::workflow<"resumable">(step<counted_root> >> step<other_root> >> step<gate> >> step<downstream>);

TEST_CASE("a run recorded with another DAG is refused, naming the run, the workflow and both hashes") {
    journal_file j("changed");
    const std::string id = leave_unfinished(j.path);
    const std::string recorded = query(j.path, "SELECT dag_hash FROM runs");
    gate_open = true;
    {
        weft::client<weft::durable> client({.journal = j.path, .resume = false});
        try {
            client.resume(changed);
            FAIL("resume() should have refused the run");
        } catch (const weft::config_error& e) {
            const std::string what = e.what();
            CHECK_THAT(what, Catch::Contains("run " + id + " of workflow 'resumable' was recorded with DAG " + recorded));
            CHECK_THAT(what, Catch::Contains("but this program's workflow 'resumable' has DAG "));
            CHECK_THAT(what, Catch::Contains("durable.resume_changed = true"));
        }
        CHECK_THROWS_WITH(client.attach(changed, id), Catch::Contains("was recorded with DAG " + recorded));
        CHECK(query(j.path, "SELECT state FROM runs") == "running");  // refused, not lost
    }
    weft::client<weft::durable> opted({.journal = j.path, .resume = false, .resume_changed = true});
    auto runs = opted.resume(changed);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].get() == 7);
}

TEST_CASE("a run driven by a live client is observed, not taken over, by another") {
    gate_open = false;
    journal_file j("observe");
    weft::client<weft::durable> driver({.journal = j.path});
    auto run = driver.start(gated, 9);
    while (run.step("gate").state != step_state::running) std::this_thread::sleep_for(1ms);
    weft::client<weft::durable> observer({.journal = j.path, .poll_interval = 5ms});
    std::mutex m;
    std::vector<std::string> events;  // polled from the journal
    auto seen = observer.attach(gated, run.id(), {.on_step = [&](const weft::step_event& e) {
                                    std::lock_guard l(m);
                                    events.push_back(std::string(e.step) + " " + std::string(to_string(e.state)));
                                }});
    CHECK(seen.state() == weft::run_state::running);
    CHECK(seen.step("gate").state == step_state::running);
    CHECK_FALSE(seen.wait_for(50ms));
    gate_open = true;
    CHECK(seen.get() == 9);
    CHECK(run.get() == 9);
    const auto until = std::chrono::steady_clock::now() + 5s;
    for (;;) {
        {
            std::lock_guard l(m);
            if (!events.empty() && events.back() == "downstream succeeded") break;
        }
        REQUIRE(std::chrono::steady_clock::now() < until);
        std::this_thread::sleep_for(5ms);
    }
    std::lock_guard l(m);
    CHECK(events.front() == "root succeeded");
    CHECK(std::find(events.begin(), events.end(), "gate running") != events.end());
    CHECK(std::find(events.begin(), events.end(), "gate succeeded") != events.end());
}

TEST_CASE("a handle on a run whose process stopped takes the run over and finishes it") {
    gate_open = false;
    journal_file j("take_over");
    weft::client<weft::durable> observer({.journal = j.path, .poll_interval = 5ms});
    std::optional<weft::run<int>> seen;
    {
        weft::client<weft::durable> driver({.journal = j.path});
        auto run = driver.start(gated, 11);
        while (run.step("gate").state != step_state::running) std::this_thread::sleep_for(1ms);
        seen.emplace(observer.attach(gated, run.id()));
        CHECK_FALSE(seen->wait_for(20ms));  // driven elsewhere: observed
    }  // the driver stops and hands the run back, its gate attempt cut short
    CHECK(query(j.path, "SELECT count(*) FROM step_results WHERE step = 'gate'") == "0");
    gate_open = true;  // for the attempt that runs after the take-over
    CHECK(seen->get() == 11);
    CHECK(seen->step("gate").attempts == 2);
}

// A step that ends its process (a crash in it, the OOM killer) would be resumed for ever.
struct dies { static constexpr std::string_view name = "dies"; int operator()(int) const { ::_exit(3); } };
constexpr auto deadly = weft::workflow<"deadly">(step<counted_root> >> step<dies>);

TEST_CASE("a step whose process dies every time it runs fails after max_interrupts, instead of a crash loop") {
    journal_file j("interrupts");
    for (int i = 0; i < 3; ++i) {
        const pid_t pid = ::fork();
        if (pid == 0) {  // a real process, killed by its step
            weft::client<weft::durable> c({.journal = j.path, .max_interrupts = 3});
            if (i == 0) c.start(deadly, 1).wait();
            else c.resume(deadly).at(0).wait();
            ::_exit(0);
        }
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 3));
    }
    CHECK(query(j.path, "SELECT count(*) FROM step_attempts WHERE step = 'dies' AND outcome IS NULL") == "3");
    root_calls = 0;
    weft::client<weft::durable> c({.journal = j.path, .max_interrupts = 3});
    auto runs = c.resume(deadly);
    REQUIRE(runs.size() == 1);
    CHECK_THROWS_WITH(runs[0].get(), Catch::Contains("the process died 3 times while this step ran") &&
                                         Catch::Contains("durable.max_interrupts = 3"));
    CHECK(root_calls == 0);  // committed in the first process: not run again
}

// ---- retention ----
TEST_CASE("finished runs are removed after the retention, unfinished ones are kept") {
    gate_open = false;
    journal_file j("retention");
    weft::client<weft::durable> client({.journal = j.path, .lease = 300ms, .retention = 1s});
    auto done = client.start(diamond, 2);
    done.wait();
    auto open = client.start(gated, 1);  // unfinished while the gate is closed
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (query(j.path, "SELECT count(*) FROM runs") != "1" && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(50ms);
    CHECK(query(j.path, "SELECT id FROM runs") == open.id());
    CHECK(query(j.path, "SELECT count(*) FROM step_results WHERE run_id = '" + done.id() + "'") == "0");
    CHECK(query(j.path, "SELECT count(*) FROM step_attempts WHERE run_id = '" + done.id() + "'") == "0");
    CHECK_THROWS_WITH(client.attach(diamond, done.id()), Catch::Contains("durable.retention_s"));
    gate_open = true;
    CHECK(open.get() == 1);
}

// ---- configuration ----
struct scoped_env {
    std::string name;
    scoped_env(std::string n, const char* v) : name(std::move(n)) { ::setenv(name.c_str(), v, 1); }
    ~scoped_env() { ::unsetenv(name.c_str()); }
};

TEST_CASE("WEFT_BACKEND=durable selects the durable engine and WEFT_DURABLE_JOURNAL its file") {
    journal_file j("any_client");
    scoped_env b("WEFT_BACKEND", "durable");
    scoped_env f("WEFT_DURABLE_JOURNAL", j.path.c_str());
    auto client = weft::any_client::from_env();
    CHECK(client.backend() == "durable");
    CHECK(client.start(diamond, 2).get() == "n=2 sum=3");
    CHECK(query(j.path, "SELECT count(*) FROM runs WHERE state = 'succeeded'") == "1");
}

TEST_CASE("a bad durable setting names the setting, its origin and what was expected") {
    scoped_env b("WEFT_BACKEND", "durable");
    {
        scoped_env s("WEFT_DURABLE_SYNCHRONOUS", "sometimes");
        CHECK_THROWS_WITH(weft::any_client::from_env(),
                          "weft: durable.synchronous = 'sometimes' (from WEFT_DURABLE_SYNCHRONOUS): expected full or normal");
    }
    scoped_env t("WEFT_DURABLE_JOURNL", "x.db");
    CHECK_THROWS_WITH(weft::any_client::from_env(), Catch::Contains("unknown setting WEFT_DURABLE_JOURNL in the environment"));
}

TEST_CASE("a workflow handed over without its JSON steps is refused with what to use instead") {
    journal_file j("no_steps");
    weft::durable_detail::backend_impl b({.journal = j.path});
    const std::tuple<int> in{1};
    CHECK_THROWS_WITH(b.start(weft::remote_erasure<decltype(diamond)>, &in, {}),
                      Catch::Contains("start it through weft::any_client or weft::client<weft::durable>"));
}

}  // namespace

namespace {

TEST_CASE("a durable run's metadata reaches every step and is recorded with the run in the journal") {
    journal_file j("metadata");
    weft::client<weft::durable> client({.journal = j.path, .threads = 2});
    auto run = client.start(metadata_echo, 1, {.metadata = {{"tenant", "acme"}, {"trace", "t-1"}}});
    CHECK(run.get() == "acme|tenant=acme;trace=t-1;");
    CHECK(query(j.path, "SELECT metadata FROM runs WHERE id = '" + run.id() + "'") == R"({"tenant":"acme","trace":"t-1"})");
    CHECK(client.start(metadata_echo, 1).get() == "<none>|");
    CHECK_THROWS_WITH(client.start(metadata_echo, 1, {.metadata = {{"weft_x", "1"}}}), Catch::Contains("'weft_x'"));
}

// A resumed run reads the metadata it was started with, not the resuming client's.
struct metadata_after_gate { static constexpr std::string_view name = "metadata_after_gate";
    std::string operator()(int) const { return metadata_text::entries(); } };
constexpr auto resumable_metadata = weft::workflow<"resumable_metadata">(step<root> >> step<gate> >> step<metadata_after_gate>);

TEST_CASE("a run resumed by another client reads the metadata it was started with") {
    journal_file j("resume_metadata");
    gate_open = false;
    std::string id;
    {
        weft::client<weft::durable> first({.journal = j.path, .resume = false});
        auto run = first.start(resumable_metadata, 7, {.metadata = {{"tenant", "acme"}}});
        while (run.step("gate").state != step_state::running) std::this_thread::sleep_for(1ms);
        id = run.id();
    }
    gate_open = true;
    weft::client<weft::durable> second({.journal = j.path});
    auto resumed = second.resume(resumable_metadata, {.metadata = {{"tenant", "someone else"}}});
    REQUIRE(resumed.size() == 1);
    CHECK(resumed[0].id() == id);
    CHECK(resumed[0].get() == "tenant=acme;");
}

TEST_CASE("a schema version 1 journal is upgraded in place; its runs have no metadata", "[sqlite]") {
    journal_file j("version1");
    {
        weft::client<weft::durable> client({.journal = j.path});
        CHECK(client.start(diamond, 2).get() == "n=2 sum=3");
    }
    // What a version 1 journal looked like: no metadata column.
    query(j.path, "ALTER TABLE runs DROP COLUMN metadata");
    query(j.path, "PRAGMA user_version = 1");
    weft::client<weft::durable> client({.journal = j.path});
    CHECK(client.start(metadata_echo, 1, {.metadata = {{"tenant", "acme"}}}).get() == "acme|tenant=acme;");
    CHECK(query(j.path, "PRAGMA user_version") == "2");
    CHECK(query(j.path, "SELECT count(*) FROM runs WHERE metadata IS NULL") == "1");
}

}  // namespace
