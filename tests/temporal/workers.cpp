// weft's Temporal workers against the real dev server: weft DAGs served by C++ workflow and activity
// workers, started by weft's clients and by Python's; a Python activity inside a weft DAG; retries,
// failures, cancellation, timeouts; and the faults (SIGKILL mid-run, bad payload, server away and
// back). Run through scripts/with-services --need temporal,python (ctest -L temporal).
#include <catch2/catch.hpp>

#include <weft/any_client.hpp>
#include <weft/temporal.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <tuple>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "dags.hpp"
#include "process.hpp"

using tp = weft::temporal;
using namespace std::chrono_literals;
using test_process::child;

namespace {

std::string required_env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v)
        FAIL(name << " is not set: run this test through scripts/with-services --need temporal,python "
                     "(ctest -L temporal does), after scripts/services up temporal python");
    return v ? v : "";
}

using test_process::unique;

tp::options server(std::string queue) {
    tp::options s;
    s.address = required_env("WEFT_TEMPORAL_ADDRESS");
    s.namespace_name = required_env("WEFT_TEMPORAL_NAMESPACE");
    s.task_queue = std::move(queue);
    return s;
}

// An in-process worker serving every test workflow on its own queue.
struct served_queue {
    std::string queue = unique("weft-workers");
    tp::worker worker{options()};
    tp::worker_options options() const {
        tp::worker_options o{server(queue)};
        o.heartbeat_timeout = 1500ms;
        return o;
    }
    served_queue() {
        dags::for_each_workflow([&](auto wf) { worker.serve(wf); });
        worker.start();
    }
    weft::client<tp> client() const { return weft::client<tp>(server(queue)); }
};

// A fresh path in the temporary directory, removed (with any SQLite companions) when the test ends.
struct temp {
    std::filesystem::path path;
    explicit temp(std::string_view name) : path(std::filesystem::temp_directory_path() / unique(name)) {}
    ~temp() {
        std::error_code ec;
        for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(path.string() + suffix, ec);
    }
    temp(const temp&) = delete;
    temp& operator=(const temp&) = delete;
    operator const std::filesystem::path&() const noexcept { return path; }
    std::string string() const { return path.string(); }
};

// The command line of a worker process serving the test DAGs on `queue`.
std::vector<std::string> dag_worker(const std::string& queue, const std::filesystem::path& ready) {
    return {WEFT_TEMPORAL_DAG_WORKER, "--task-queue", queue, "--ready-file", ready.string(),
            "--max-seconds", "120", "--heartbeat-ms", "2000", "--backoff-max-ms", "1000"};
}

}  // namespace

TEST_CASE("a fan-out/fan-in DAG runs on the C++ workers and joins its branches in declaration order", "[workers]") {
    served_queue q;
    std::mutex m;
    std::vector<std::string> succeeded;  // on_step, in the order reported
    weft::run_options opts{.on_step = [&](const weft::step_event& e) {
        std::lock_guard l(m);
        if (e.state == weft::step_state::succeeded) succeeded.emplace_back(e.step);
    }};
    auto run = q.client().start(dags::fan, 3, opts);  // seed 4 -> 16, 64, -4
    CHECK(run.get() == "16,64,-4");
    for (int i = 0; i < 50; ++i) {
        {
            std::lock_guard l(m);
            if (succeeded.size() == 5) break;
        }
        std::this_thread::sleep_for(100ms);
    }
    {
        std::lock_guard l(m);
        REQUIRE(succeeded.size() == 5);
        CHECK(succeeded.front() == "weft_test.seed");
        CHECK(succeeded.back() == "weft_test.describe3");
    }
    CHECK(run.state() == weft::run_state::succeeded);
    CHECK(run.id().starts_with("temporal:weft_fan:"));  // weft's run id grammar
    auto steps = run.steps();
    REQUIRE(steps.size() == 5);
    for (auto& s : steps) {
        INFO(s.name);
        CHECK(s.state == weft::step_state::succeeded);
        CHECK(s.attempts == 1);
    }
}

TEST_CASE("run metadata set by a weft client reaches every step, through the memo and each step's header", "[workers]") {
    served_queue q;
    auto run = q.client().start(dags::metadata, 1, {.metadata = {{"tenant", "globex"}, {"trace_id", "t-42"}}});
    CHECK(run.get() == "globex|tenant=globex;trace_id=t-42;");
    CHECK(q.client().start(dags::metadata, 1).get() == "<none>|");
    CHECK_THROWS_WITH(q.client().start(dags::metadata, 1, {.metadata = {{"weft_steps", "x"}}}), Catch::Contains("weft's own"));
}

TEST_CASE("a DAG with two sinks returns the tuple of their results", "[workers]") {
    served_queue q;
    auto run = q.client().start(dags::two_sinks, 3);  // seed 4 -> 16 and 64
    CHECK(run.get() == std::tuple<int, int>{16, 64});
}

TEST_CASE("a worker whose graph does not match the history fails the workflow task as nondeterministic", "[workers]") {
    const std::string queue = unique("weft-versioned");
    // Version 1 runs the first step and schedules `parked`, which nobody runs.
    std::optional<tp::worker> v1;
    v1.emplace(tp::worker_options{server(queue)});
    v1->serve(dags::versioned_v1);
    v1->start();
    tp::client raw(server(queue));
    const auto run = raw.start_json("weft_versioned", {"3"}, {.workflow_id = unique("versioned")});
    for (int i = 0; i < 100 && v1->stats().workflow_tasks < 2; ++i) std::this_thread::sleep_for(100ms);
    REQUIRE(v1->stats().workflow_tasks >= 2);  // the second task scheduled `parked`
    v1.reset();

    // Version 2 would run `cube` instead; a cancel request wakes it up on that history.
    std::atomic<int> logged{0};
    tp::worker_options o2{server(queue)};
    o2.log = [&](std::string_view level, std::string_view text) {
        if (level == "error" && text.find("does not match its graph") != std::string_view::npos) ++logged;
    };
    tp::worker v2(o2);
    v2.serve(dags::versioned_v2);
    v2.start();
    raw.cancel(run, "wake the new version");
    for (int i = 0; i < 100 && v2.stats().nondeterministic == 0; ++i) std::this_thread::sleep_for(100ms);
    CHECK(v2.stats().nondeterministic >= 1);
    CHECK(logged >= 1);
    CHECK(raw.status(run) == tp::workflow_status::running);  // the server retries the task; the run waits
    raw.terminate(run, "test over");
}

TEST_CASE("WEFT_BACKEND=temporal runs a weft workflow through any_client without code changes", "[workers]") {
    served_queue q;
    ::setenv("WEFT_BACKEND", "temporal", 1);
    ::setenv("WEFT_TEMPORAL_TASK_QUEUE", q.queue.c_str(), 1);
    auto client = weft::any_client::from_env();
    ::unsetenv("WEFT_BACKEND");
    ::unsetenv("WEFT_TEMPORAL_TASK_QUEUE");
    CHECK(client.backend() == "temporal");
    dags::invoice inv = client.start(dags::chain, dags::order{"ada", {2, 3, 5}}).get();
    CHECK(inv.customer == "ada");
    CHECK(inv.items == 10);
    CHECK(inv.cents == 3000);
}

TEST_CASE("a step that fails twice succeeds on its third attempt, and the attempt is visible", "[workers]") {
    served_queue q;
    auto run = q.client().start(dags::retry, 7);
    CHECK(run.get() == 73);  // 7 * 10 + attempt 3
    REQUIRE(run.steps().size() == 1);
    CHECK(run.steps()[0].attempts == 3);
}

TEST_CASE("a step that fails for good fails the run with the step's name and message", "[workers]") {
    served_queue q;
    auto run = q.client().start(dags::fail, 5);
    try {
        run.get();
        FAIL("the run should have failed");
    } catch (const weft::step_failed& e) {
        CHECK(e.step() == "weft_test.doomed");
        CHECK(e.attempts() == 2);
        CHECK_THAT(e.error(), Catch::Contains("no stock left for sku-6"));
        CHECK_THAT(e.error(), Catch::Contains("dags::out_of_stock"));
    }
    // The raw Temporal failure: weft.step_failed, caused by the activity failure, caused by the step's error.
    tp::client raw(server(q.queue));
    try {
        raw.result_json({run.id(), ""}, 30s);
        FAIL("the run should have failed");
    } catch (const tp::workflow_failed& e) {
        CHECK(e.failure().type == "weft.step_failed");
        REQUIRE(e.failure().cause);
        CHECK(e.failure().cause->kind == "activity");
        REQUIRE(e.failure().cause->cause);
        CHECK(e.failure().cause->cause->type == "dags::out_of_stock");
        CHECK(e.failure().cause->cause->message == "no stock left for sku-6");
    }
    auto steps = run.steps();
    CHECK(steps[0].state == weft::step_state::succeeded);
    CHECK(steps[1].state == weft::step_state::failed);
}

TEST_CASE("cancelling a running DAG cancels its running step and the run", "[workers]") {
    served_queue q;
    auto run = q.client().start(dags::slow, 20'000);
    std::this_thread::sleep_for(1500ms);  // the nap step is running
    const auto t0 = std::chrono::steady_clock::now();
    run.cancel();
    CHECK_THROWS_AS(run.get(), weft::run_cancelled);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    CHECK(run.state() == weft::run_state::cancelled);
    // The step learns it from its heartbeat (every 0.5 s here) and stops.
    for (int i = 0; i < 50 && q.worker.stats().steps_cancelled == 0; ++i) std::this_thread::sleep_for(100ms);
    CHECK(q.worker.stats().steps_cancelled == 1);
}

TEST_CASE("a step over its timeout fails the run with the activity timeout", "[workers]") {
    served_queue q;
    auto run = q.client().start(dags::timeout, 5000);
    try {
        run.get();
        FAIL("the run should have failed");
    } catch (const weft::step_failed& e) {
        CHECK(e.step() == "weft_test.sleepy");
        CHECK_THAT(e.error(), Catch::Contains("StartToClose"));
    }
}

TEST_CASE("a Python client starts a weft workflow and reads its typed result; a bad payload fails clearly and the worker goes on",
          "[python]") {
    served_queue q;
    const temp out("weft-peer-client.out");
    child py({required_env("WEFT_PYTHON"), WEFT_TEMPORAL_WEFT_PEER, "client", "--task-queue", q.queue}, out.string());
    REQUIRE(py.wait(120s) == 0);
    const auto verdict = weft::json::parse(test_process::read_file(out)).as_object();
    INFO(test_process::read_file(out));
    const auto& typed = verdict.at("typed").as_object();
    CHECK(typed.at("type").as_string() == "Invoice");
    CHECK(typed.at("customer").as_string() == "ada");
    CHECK(typed.at("items").as_int64() == 10);
    CHECK(typed.at("cents").as_int64() == 3000);
    const auto& bad = verdict.at("bad").as_array();
    REQUIRE(bad.size() == 4);  // WorkflowFailureError <- ApplicationError <- ActivityError <- ApplicationError
    CHECK(bad[1].at("type").as_string() == "weft.step_failed");
    CHECK(bad[3].at("type").as_string() == "weft.bad_payload");
    CHECK(bad[3].at("non_retryable").as_bool());
    const std::string message(bad[3].at("message").as_string());
    CHECK_THAT(message, Catch::Contains("weft_test.count_items"));
    CHECK_THAT(message, Catch::Contains("$[0].quantities"));
    CHECK(verdict.at("again").at("cents").as_int64() == 300);
    CHECK(verdict.at("metadata").as_string() == "acme|shard=7;tenant=acme;");  // memo -> both C++ steps
    CHECK(q.worker.stats().steps_failed == 1);
}

TEST_CASE("a weft DAG runs one step as a Python activity on its own task queue", "[python]") {
    served_queue q;
    const temp ready("weft-peer-steps.ready");
    child py({required_env("WEFT_PYTHON"), WEFT_TEMPORAL_WEFT_PEER, "steps", "--ready-file", ready.string(), "--max-seconds", "120"});
    REQUIRE(test_process::wait_for_file(ready, 60s));
    auto run = q.client().start(dags::mixed, 5);  // 105 in C++, * 3 in Python, then C++
    CHECK(run.get() == "total 315");
}

TEST_CASE("a worker killed with SIGKILL mid-step is replaced and the new worker finishes the run by replay", "[faults]") {
    const std::string queue = unique("weft-sigkill");
    const temp ready1("weft-worker1.ready"), ready2("weft-worker2.ready");
    auto run = weft::client<tp>(server(queue)).start(dags::slow, 4000);
    std::optional<child> first;
    first.emplace(dag_worker(queue, ready1));
    REQUIRE(test_process::wait_for_file(ready1, 30s));
    std::this_thread::sleep_for(2000ms);  // the nap step runs in the first worker
    CHECK(run.state() == weft::run_state::running);
    first->signal(SIGKILL);
    CHECK(first->wait(10s) == 128 + SIGKILL);
    first.reset();
    child second(dag_worker(queue, ready2));
    REQUIRE(test_process::wait_for_file(ready2, 30s));
    CHECK(run.get() == "slept 4000 ms");
    auto steps = run.steps();
    CHECK(steps[0].attempts == 2);  // the heartbeat timeout ended the killed attempt; the new worker retried
}

namespace {

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

// A private dev server on free loopback ports with its own SQLite file, stopped by its PID. Its history
// pages hold 4 events, so every workflow task's history is paged in with GetWorkflowExecutionHistory.
std::unique_ptr<child> private_server(int port, const std::filesystem::path& db) {
    const std::string bin = required_env("WEFT_CACHE_DIR") + "/bin/temporal";
    return std::make_unique<child>(std::vector<std::string>{
        bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", std::to_string(port), "--http-port",
        std::to_string(free_port()), "--metrics-port", std::to_string(free_port()), "--db-filename", db.string(),
        "--log-level", "error", "--dynamic-config-value", "limit.historyMaxPageSize=4", "--dynamic-config-value",
        "matching.historyMaxPageSize=4"}, "/dev/null");
}

bool server_answers(const tp::options& s) {
    try {
        tp::client(s).status({"no-such-workflow", ""});
    } catch (const tp::not_found&) {
        return true;
    } catch (const std::exception&) {
    }
    return false;
}

bool wait_until_answers(const tp::options& s) {
    for (int i = 0; i < 120; ++i) {
        if (server_answers(s)) return true;
        std::this_thread::sleep_for(250ms);
    }
    return false;
}

// A private server the test kills by PID and starts again on the same port and SQLite file, and the
// settings that reach it.
struct private_temporal {
    int port = free_port();
    temp db{"weft-private-temporal.db"};
    tp::options settings;
    std::unique_ptr<child> srv;
    explicit private_temporal(std::string queue) : settings(server(std::move(queue))) {
        settings.address = "127.0.0.1:" + std::to_string(port);
        settings.timeout = 3s;
        start();
    }
    void start() {
        srv = private_server(port, db);
        REQUIRE(wait_until_answers(settings));
    }
    void kill() {
        srv->signal(SIGKILL);
        CHECK(srv->wait(30s) == 128 + SIGKILL);
        srv.reset();
    }
};

}  // namespace

TEST_CASE("when the server goes away and comes back, the worker reconnects with backoff and serves new runs; histories are paged in",
          "[faults]") {
    private_temporal srv(unique("weft-reconnect"));
    const tp::options& s = srv.settings;

    std::atomic<int> warnings{0}, recovered{0};
    tp::worker_options wo{s};
    wo.poll_timeout = 10s;
    wo.backoff = {.initial = 100ms, .maximum = 1000ms};
    wo.log = [&](std::string_view level, std::string_view text) {
        if (level == "warning") ++warnings;
        if (text.find("works again") != std::string_view::npos) ++recovered;
    };
    tp::worker w(wo);
    w.serve(dags::fan);
    w.start();
    weft::client<tp> c(s);
    CHECK(c.start(dags::fan, 1).get() == "4,8,-2");
    CHECK(w.stats().history_pages > 0);  // the full history, paged in

    srv.kill();
    std::this_thread::sleep_for(3s);  // the pollers fail and back off meanwhile
    const auto errors_while_away = w.stats().poll_errors;
    CHECK(errors_while_away >= 2);
    CHECK(errors_while_away < 40);  // backoff, not a busy loop

    srv.start();
    CHECK(c.start(dags::fan, 2).get() == "9,27,-3");
    CHECK(warnings > 0);
    CHECK(recovered > 0);
    w.stop();
}

TEST_CASE("a step that ends in a drain while the server is away reports its outcome once the server is back", "[faults]") {
    private_temporal srv(unique("weft-drain-away"));
    const tp::options& s = srv.settings;

    std::atomic<int> taken_late{0};
    tp::worker_options wo{s};
    wo.poll_timeout = 10s;
    wo.heartbeat_timeout = 40s;  // the outage must not time the attempt out on the server
    wo.drain_timeout = 30s;
    wo.backoff = {.initial = 100ms, .maximum = 1000ms};
    wo.log = [&](std::string_view, std::string_view text) {
        if (text.find("RespondActivityTaskCompleted: the server took it at attempt") != std::string_view::npos) ++taken_late;
    };
    auto w = std::make_unique<tp::worker>(wo);
    w->serve(dags::slow);
    w->start();
    weft::client<tp> c(s);
    auto run = c.start(dags::slow, 4000);
    std::this_thread::sleep_for(1500ms);  // the nap step runs
    CHECK(run.state() == weft::run_state::running);

    srv.kill();
    std::thread stopper([&] { w->stop(); });  // a drain: the step finishes at 4 s and meets no server
    std::this_thread::sleep_for(5s);
    srv.start();
    stopper.join();  // the drain ends once the outcome got through
    CHECK(taken_late == 1);

    // A new worker decides the rest; the nap is not run again.
    tp::worker second(wo);
    second.serve(dags::slow);
    second.start();
    REQUIRE(run.wait_for(30s));
    CHECK(run.get() == "slept 4000 ms");
    CHECK(run.steps()[0].attempts == 1);
    second.stop();
}
