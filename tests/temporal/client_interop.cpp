// The weft Temporal client against the real dev server and a Python (temporalio) worker: typed input
// and result, status, a Python ApplicationError as a C++ error, cancel, terminate, and the server's
// errors. Run through scripts/with-services --need temporal (ctest -L temporal).
#include <catch2/catch.hpp>

#include <boost/describe.hpp>
#include <weft/config.hpp>
#include <weft/temporal.hpp>

#include "process.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using tp = weft::temporal;
using namespace std::chrono_literals;

// The Python workflow's types, mirrored (tests/temporal/python_peer.py).
struct line {
    std::string sku;
    int qty = 0;
};
BOOST_DESCRIBE_STRUCT(line, (), (sku, qty))
struct order {
    std::string customer;
    std::vector<line> lines;
    bool rush = false;
};
BOOST_DESCRIBE_STRUCT(order, (), (customer, lines, rush))
struct receipt {
    std::string customer;
    int total_qty = 0;
    std::vector<std::string> skus;
    bool rush = false;
    std::string priced_by;
};
BOOST_DESCRIBE_STRUCT(receipt, (), (customer, total_qty, skus, rush, priced_by))

namespace {

std::string required_env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v)
        FAIL(name << " is not set: run this test through scripts/with-services --need temporal "
                     "(ctest -L temporal does), after scripts/services up temporal");
    return v ? v : "";
}

using test_process::unique;

// The Python worker, started once for the whole test program and stopped by its PID at exit.
class python_peer {
public:
    python_peer() : task_queue_(unique("weft-interop")) {
        const std::string python = required_env("WEFT_PYTHON");
        ready_ = std::filesystem::temp_directory_path() / (task_queue_ + ".ready");
        std::filesystem::remove(ready_);
        std::vector<std::string> args{python, WEFT_TEMPORAL_PEER_SCRIPT, "--task-queue", task_queue_,
                                      "--ready-file", ready_.string(), "--max-seconds", "240"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (::posix_spawn(&pid_, python.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
            FAIL("cannot start the Python worker " << python);
        // Bounded: the worker connects and polls within seconds on an idle machine.
        const auto until = std::chrono::steady_clock::now() + 90s;
        while (!std::filesystem::exists(ready_)) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = 0;
                FAIL("the Python worker exited before it was ready (status " << status << ")");
            }
            if (std::chrono::steady_clock::now() > until) FAIL("the Python worker was not ready within 90 s");
            std::this_thread::sleep_for(100ms);
        }
    }
    ~python_peer() {
        std::filesystem::remove(ready_);
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        for (int i = 0; i < 100; ++i) {  // 10 s for a graceful stop, then SIGKILL
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
            std::this_thread::sleep_for(100ms);
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    const std::string& task_queue() const { return task_queue_; }
    pid_t pid() const { return pid_; }

private:
    std::string task_queue_;
    std::filesystem::path ready_;
    pid_t pid_ = 0;
};

python_peer& peer() {
    static python_peer p;
    return p;
}

// Settings from the environment the harness writes (WEFT_TEMPORAL_ADDRESS, WEFT_TEMPORAL_NAMESPACE),
// through weft's own configuration, with the peer's task queue.
tp::client make_client() {
    required_env("WEFT_TEMPORAL_ADDRESS");
    auto s = weft::temporal_detail::options_from(weft::config::from_env());
    s.task_queue = peer().task_queue();
    return tp::client(s);
}

// Waits until the server reports `want` (a status changes a moment after the request is accepted).
tp::workflow_status await_status(const tp::client& c, const tp::workflow_execution& run, tp::workflow_status want) {
    auto s = c.status(run);
    for (int i = 0; i < 100 && s != want; ++i) {
        std::this_thread::sleep_for(100ms);
        s = c.status(run);
    }
    return s;
}

}  // namespace

TEST_CASE("a weft client starts a Python workflow with typed input and decodes its typed result") {
    auto client = make_client();
    order o{"ada", {{"sku-b", 3}, {"sku-a", 7}}, true};
    auto run = client.start<receipt>("WeftInteropOrder", {.workflow_id = unique("order")}, o, 10);
    CHECK_FALSE(run.run_id().empty());

    receipt r = run.get(60s);
    CHECK(r.customer == "ADA");
    CHECK(r.total_qty == 9);  // 10 items, 10 % off, computed in Python
    CHECK(r.skus == std::vector<std::string>{"sku-a", "sku-b"});
    CHECK(r.rush);
    CHECK(r.priced_by == "python-activity-" + std::to_string(peer().pid()));  // ran in our peer, not elsewhere
    CHECK(run.status() == tp::workflow_status::completed);
}

TEST_CASE("a result that takes longer than the server's long poll still arrives") {
    auto client = make_client();
    const auto t0 = std::chrono::steady_clock::now();
    auto run = client.start<std::string>("WeftInteropSlow", {.workflow_id = unique("slow")}, 25.0);
    CHECK(run.get(90s) == "slept 25 s");
    CHECK(std::chrono::steady_clock::now() - t0 >= 25s);
}

TEST_CASE("a Python None result arrives as binary/null and reads as an empty optional") {
    auto client = make_client();
    auto run = client.start<std::optional<int>>("WeftInteropNone", {.workflow_id = unique("none")});
    CHECK(run.get(60s) == std::nullopt);
    CHECK(client.result_json(run.execution(), 10s) == "null");
}

TEST_CASE("a Python ApplicationError reaches the C++ error with its type, message and details") {
    auto client = make_client();
    auto run = client.start<std::string>("WeftInteropFail", {.workflow_id = unique("fail")}, std::string("sku-9"));
    try {
        (void)run.get(60s);
        FAIL("the failing workflow returned a result");
    } catch (const tp::workflow_failed& e) {
        CHECK(e.failure().kind == "application");
        CHECK(e.failure().type == "OutOfStock");
        CHECK(e.failure().message == "no stock left for sku-9");
        CHECK(e.failure().non_retryable);
        REQUIRE(e.failure().details.size() == 1);
        INFO("details as Python sent them: " << e.failure().details[0]);
        auto details = weft::json::parse(e.failure().details[0]).as_object();
        CHECK(details.at("sku").as_string() == "sku-9");
        CHECK(details.at("left").as_int64() == 0);
        CHECK(e.execution().run_id == run.run_id());
        CHECK(std::string(e.what()).find("OutOfStock: no stock left for sku-9") != std::string::npos);
    }
    CHECK(run.status() == tp::workflow_status::failed);
}

TEST_CASE("cancelling a running Python workflow ends it as cancelled") {
    auto client = make_client();
    auto run = client.start<std::string>("WeftInteropWait", {.workflow_id = unique("cancel")}, std::string("x"));
    CHECK(run.status() == tp::workflow_status::running);
    // Until it is cancelled it has no result: the caller's own wait runs out.
    CHECK_THROWS_AS(run.get(1500ms), tp::wait_timeout);
    run.cancel("weft interop test");
    CHECK_THROWS_AS(run.get(60s), tp::workflow_cancelled);
    CHECK_THROWS_AS(run.get(60s), weft::run_cancelled);  // the same error any weft backend gives
    CHECK(await_status(client, run.execution(), tp::workflow_status::canceled) == tp::workflow_status::canceled);
}

TEST_CASE("terminating a running Python workflow ends it as terminated with the reason") {
    auto client = make_client();
    auto run = client.start<std::string>("WeftInteropWait", {.workflow_id = unique("terminate")}, std::string("x"));
    run.terminate("stopped by the weft interop test");
    CHECK(run.status() == tp::workflow_status::terminated);
    try {
        (void)run.get(60s);
        FAIL("the terminated workflow returned a result");
    } catch (const tp::workflow_terminated& e) {
        CHECK(e.reason() == "stopped by the weft interop test");
    }
}

TEST_CASE("starting a workflow id that is already running is refused with the running run's id") {
    auto client = make_client();
    const std::string id = unique("twice");
    auto first = client.start<std::string>("WeftInteropWait", {.workflow_id = id}, std::string("x"));
    try {
        (void)client.start<std::string>("WeftInteropWait", {.workflow_id = id}, std::string("y"));
        FAIL("the second start was accepted");
    } catch (const tp::workflow_already_started& e) {
        INFO("server said: " << e.server_message());
        CHECK(e.code_name() == "ALREADY_EXISTS");
        CHECK(e.run_id() == first.run_id());
        CHECK(e.detail_type() == "temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure");
        CHECK_FALSE(e.server_message().empty());
        CHECK(std::string(e.what()).find(e.server_message()) != std::string::npos);
    }
    first.terminate("cleanup");
}

TEST_CASE("an unknown workflow id is not found, with the server's message") {
    auto client = make_client();
    tp::workflow_execution ghost{unique("ghost"), ""};
    try {
        (void)client.status(ghost);
        FAIL("status of an unknown workflow succeeded");
    } catch (const tp::not_found& e) {
        INFO("server said: " << e.server_message());
        CHECK(e.code_name() == "NOT_FOUND");
        CHECK(e.rpc() == "DescribeWorkflowExecution");
        CHECK(e.detail_type() == "temporal.api.errordetails.v1.NotFoundFailure");
        CHECK_FALSE(e.server_message().empty());
    }
    CHECK_THROWS_AS(client.cancel(ghost), tp::not_found);
    CHECK_THROWS_AS(client.terminate(ghost), tp::not_found);
    CHECK_THROWS_AS(client.result_json(ghost, 10s), tp::not_found);
}

TEST_CASE("an unknown namespace is reported as such") {
    auto s = weft::temporal_detail::options_from(weft::config::from_env());
    s.namespace_name = "weft-no-such-namespace";
    tp::client client(s);
    try {
        (void)client.status({unique("any"), ""});
        FAIL("a call in an unknown namespace succeeded");
    } catch (const tp::namespace_not_found& e) {
        INFO("server said: " << e.server_message());
        CHECK(e.server_message().find("weft-no-such-namespace") != std::string::npos);
        CHECK(e.detail_type() == "temporal.api.errordetails.v1.NamespaceNotFoundFailure");
    }
}

TEST_CASE("a server that is not there is unavailable, not a hang") {
    tp::client client({.address = "127.0.0.1:1", .task_queue = "q", .timeout = 3s});
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(client.status({"any", ""}), tp::unavailable);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}
