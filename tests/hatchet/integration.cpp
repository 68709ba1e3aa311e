// The Hatchet backend against the harness's real engine: C++ workers in this process (and, for the
// fault test, in a peer process this test kills), C++ clients. Each TEST_CASE is its own ctest entry
// (tests/hatchet/CMakeLists.txt), all under RESOURCE_LOCK hatchet_engine.
#include "workflows.hpp"

#include <weft/any_client.hpp>

#include "connection.hpp"  // backends/hatchet/src: PutWorkflow's ids for the re-registration test

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;

std::string token_text() {
    std::ifstream in(hx::options_from_env().token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string t = ss.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t;
}

// Collects a worker's log lines.
struct log_sink {
    std::mutex m;
    std::vector<std::string> lines;
    std::function<void(std::string_view, std::string_view)> fn() {
        return [this](std::string_view level, std::string_view text) {
            std::lock_guard lock(m);
            lines.push_back(std::string(level) + ": " + std::string(text));
        };
    }
    std::string all() {
        std::lock_guard lock(m);
        std::string s;
        for (auto& l : lines) s += l + "\n";
        return s;
    }
};

weft::hatchet::worker_options worker_opts(int slots, log_sink* sink = nullptr) {
    weft::hatchet::worker_options o{hx::options_from_env()};
    o.concurrency = slots;
    o.worker_name = "weft-test";
    if (sink) o.log = sink->fn();
    return o;
}

// A started worker serving `wfs`.
template <class... W>
std::unique_ptr<weft::hatchet::worker> serving(int slots, log_sink* sink, W... wfs) {
    auto w = std::make_unique<weft::hatchet::worker>(worker_opts(slots, sink));
    (w->serve(wfs), ...);
    w->start();
    return w;
}

template <class R>
void finish_within(const R& r, std::chrono::seconds s) {
    INFO("run " << r.id() << " of " << r.workflow());
    auto t0 = std::chrono::steady_clock::now();
    bool done = r.wait_for(s);
    std::fprintf(stderr, "run %s of %.*s: %s after %.1f s\n", r.id().c_str(), int(r.workflow().size()), r.workflow().data(),
                 done ? "done" : "NOT done", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!done)
        for (auto& st : r.steps()) UNSCOPED_INFO(st.name << ": " << weft::to_string(st.state) << " " << st.error);
    REQUIRE(done);
}

}  // namespace

TEST_CASE("a DAG runs on a C++ worker: typed input, parents' outputs in order, typed result, step states", "[dag]") {
    auto w = serving(2, nullptr, hx::dag);
    REQUIRE(w->wait_ready(10s));

    weft::client<weft::hatchet> client(hx::options_from_env());
    std::mutex m;
    std::vector<std::string> succeeded;
    weft::run_options opts;
    opts.on_step = [&](const weft::step_event& e) {
        std::lock_guard lock(m);
        if (e.state == weft::step_state::succeeded) succeeded.emplace_back(e.step);
    };
    auto run = client.start(hx::dag, hx::order{"tea", 3}, opts);
    finish_within(run, 60s);
    hx::receipt r = run.get();
    CHECK(r.total == 42);      // 3 * 7 * 2, from `twice`
    CHECK(r.text == "n=21");   // from `label`: join's parameters follow its parents' order
    CHECK(run.state() == weft::run_state::succeeded);
    for (auto& s : run.steps()) {
        INFO(s.name);
        CHECK(s.state == weft::step_state::succeeded);
        CHECK(s.attempts == 1);
    }
    CHECK(w->stats().succeeded == 4);
    auto seen = [&] {
        std::lock_guard lock(m);
        return succeeded.size();
    };
    for (int i = 0; i < 50 && seen() < 4; ++i) std::this_thread::sleep_for(100ms);  // the watcher's last poll
    std::lock_guard lock(m);
    REQUIRE(succeeded.size() == 4);  // each step once
    CHECK(succeeded.back() == "join");
}

TEST_CASE("registering the same definition again keeps its version, and runs still work", "[dag]") {
    weft::hatchet_detail::connection c(hx::options_from_env());
    auto plan = weft::hatchet_wire::lower(weft::graph_of<std::decay_t<decltype(hx::restart)>>);
    auto first = weft::hatchet_detail::put_workflow(c, plan);
    auto again = weft::hatchet_detail::put_workflow(c, plan);
    CHECK(first == again);
    CHECK(!first.first.empty());

    // A worker restart registers it once more (serve + start), then serves a run.
    auto w = serving(1, nullptr, hx::restart);
    REQUIRE(weft::hatchet_detail::put_workflow(c, plan) == first);
    weft::client<weft::hatchet> client(hx::options_from_env());
    auto run = client.start(hx::restart, 41);
    finish_within(run, 60s);
    CHECK(run.get() == 42);
}

TEST_CASE("WEFT_BACKEND=hatchet selects the backend through any_client, token from the token file", "[dag]") {
    auto w = serving(1, nullptr, hx::anyc);
    ::setenv("WEFT_BACKEND", "hatchet", 1);
    auto client = weft::any_client::from_env();
    ::unsetenv("WEFT_BACKEND");
    CHECK(client.backend() == "hatchet");
    auto run = client.start(hx::anyc, 20);
    finish_within(run, 60s);
    CHECK(run.get() == 42);
}

TEST_CASE("an idle worker heartbeats every 4 s and still gets work after 9 s", "[failures]") {
    auto w = serving(1, nullptr, hx::restart);
    const auto beats = w->stats().heartbeats;
    std::this_thread::sleep_for(9s);  // the scheduler only assigns to workers heard from in the last 5 s
    CHECK(w->stats().heartbeats - beats >= 2);
    CHECK(w->stats().heartbeats - beats <= 3);
    weft::client<weft::hatchet> client(hx::options_from_env());
    auto run = client.start(hx::restart, 7);
    finish_within(run, 30s);
    CHECK(run.get() == 8);
}

TEST_CASE("a failing step fails the run with its exception's type and error text", "[failures]") {
    auto w = serving(1, nullptr, hx::fail);
    weft::client<weft::hatchet> client(hx::options_from_env());
    auto run = client.start(hx::fail, hx::order{"ink", 1});
    finish_within(run, 60s);
    CHECK(run.state() == weft::run_state::failed);
    try {
        run.get();
        FAIL("no exception");
    } catch (const weft::step_failed& e) {
        CHECK(e.step() == "reserve");
        // "<type>: <message>", as on Celery and Temporal; the trace hatchet-sdk's form carries is left out.
        CHECK_THAT(e.error(), Catch::StartsWith("std::runtime_error: weft: hatchet: step 'reserve'"));
        CHECK(e.error().find('\n') == std::string::npos);
        CHECK_THAT(e.error(), Catch::Contains("out of stock: ink"));
        CHECK_THAT(e.error(), Catch::Contains("step 'reserve' of workflow 'hx-fail'"));
    }
    auto reserve = run.step("reserve");
    CHECK(reserve.state == weft::step_state::failed);
    CHECK_THAT(reserve.error, Catch::Contains("out of stock: ink"));
    CHECK(run.step("check").state == weft::step_state::succeeded);
}

TEST_CASE("a bad payload fails the step with the step and JSON path, and the worker serves the next run", "[failures]") {
    log_sink sink;
    auto w = serving(1, &sink, hx::halving);
    weft::client<weft::hatchet> client(hx::options_from_env());
    auto bad = client.start(hx::halving_text, std::string("twelve"));
    finish_within(bad, 60s);
    try {
        bad.get();
        FAIL("no exception");
    } catch (const weft::step_failed& e) {
        CHECK(e.step() == "halve");
        CHECK_THAT(e.error(), Catch::Contains("step 'halve' of workflow 'hx-halve'"));
        CHECK_THAT(e.error(), Catch::Contains("$[0]"));
        CHECK_THAT(e.error(), Catch::Contains("run's input"));
        CHECK_THAT(e.error(), Catch::Contains("\"twelve\""));
    }
    auto good = client.start(hx::halving, 12);
    finish_within(good, 60s);
    CHECK(good.get() == 6);
    CHECK(w->stats().failed == 1);
    CHECK(w->stats().succeeded == 1);
}

TEST_CASE("the token never appears in errors or logs", "[failures]") {
    const std::string fake = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3ZWZ0In0.c2VjcmV0LXNpZ25hdHVyZS1kby1ub3QtbG9n";
    weft::hatchet::options o = hx::options_from_env();
    o.token = fake;
    weft::client<weft::hatchet> client(o);
    try {
        client.start(hx::restart, 1);
        FAIL("an unknown token was accepted");
    } catch (const std::exception& e) {
        CHECK_THAT(e.what(), Catch::Contains("UNAUTHENTICATED"));
        CHECK(std::string(e.what()).find(fake) == std::string::npos);
        CHECK(std::string(e.what()).find("c2VjcmV0") == std::string::npos);
    }
    // The real token: a worker's whole log, registration to shutdown.
    log_sink sink;
    {
        auto w = serving(1, &sink, hx::restart);
        weft::client<weft::hatchet> c(hx::options_from_env());
        auto r = c.start(hx::restart, 1);
        finish_within(r, 60s);
    }
    CHECK_THAT(sink.all(), Catch::Contains("registered"));
    CHECK(sink.all().find(token_text()) == std::string::npos);
}

TEST_CASE("slots bound how many steps a worker runs at once; a run can be cancelled", "[slots]") {
    auto w = serving(3, nullptr, hx::naps, hx::cancellable);
    weft::client<weft::hatchet> client(hx::options_from_env());
    hx::peak = 0;
    std::vector<weft::run<int>> runs;
    for (int i = 0; i < 6; ++i) runs.push_back(client.start(hx::naps, 1500));
    for (auto& r : runs) {
        finish_within(r, 60s);
        CHECK(r.get() == 1500);
    }
    CHECK(hx::peak.load() == 3);  // six 1.5 s steps on three slots: three at a time, never more

    auto run = client.start(hx::cancellable, 30000);
    for (int i = 0; i < 200 && run.step("nap").state != weft::step_state::running; ++i) std::this_thread::sleep_for(100ms);
    REQUIRE(run.step("nap").state == weft::step_state::running);
    run.cancel();
    finish_within(run, 60s);
    CHECK(run.state() == weft::run_state::cancelled);
    CHECK_THROWS_AS(run.get(), weft::run_cancelled);
    CHECK(run.step("twice").state != weft::step_state::succeeded);
}

TEST_CASE("a step that outlives its policy's timeout fails the run and is asked to stop", "[slots]") {
    auto w = serving(1, nullptr, hx::timeouts);
    weft::client<weft::hatchet> client(hx::options_from_env());
    auto t0 = std::chrono::steady_clock::now();
    auto run = client.start(hx::timeouts, 60000);
    finish_within(run, 90s);
    CHECK(run.state() == weft::run_state::failed);
    CHECK(std::chrono::steady_clock::now() - t0 < 55s);  // not the step's own 60 s
    auto s = run.step("bounded_nap");
    CHECK(s.state == weft::step_state::failed);
    CHECK_THAT(s.error, Catch::Contains("exceeded timeout of 2s"));  // the engine's words
    CHECK_THROWS_AS(run.get(), weft::step_failed);
}

TEST_CASE("the worker reconnects when the engine restarts", "[restart]") {
    log_sink sink;
    auto w = serving(1, &sink, hx::restart);
    weft::client<weft::hatchet> client(hx::options_from_env());
    auto before = client.start(hx::restart, 1);
    finish_within(before, 60s);
    CHECK(before.get() == 2);

    const char* root = std::getenv("WEFT_ROOT");
    REQUIRE(root);
    const std::string cmd = std::string("cd ") + root + " && scripts/services down hatchet >/dev/null && " +
                            "scripts/services up hatchet >/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    // The worker notices, reconnects with backoff and heartbeats again.
    for (int i = 0; i < 300 && w->stats().reconnects == 0; ++i) std::this_thread::sleep_for(100ms);
    CHECK(w->stats().reconnects >= 1);
    REQUIRE(w->wait_ready(60s));

    weft::client<weft::hatchet> after_client(hx::options_from_env());
    auto after = after_client.start(hx::restart, 99);
    finish_within(after, 90s);
    CHECK(after.get() == 100);
    CHECK(sink.all().find(token_text()) == std::string::npos);
}

// The engine is away for longer than the old ten seconds of retries while a step finishes: its
// outcome waits in the worker and reaches the engine once it is back (a storm lost a run so).
TEST_CASE("an outcome reached while the engine is down is sent once it is back", "[restart]") {
    log_sink sink;
    auto w = serving(1, &sink, hx::naps);
    weft::client<weft::hatchet> client(hx::options_from_env());
    auto run = client.start(hx::naps, 8000);
    for (int i = 0; i < 600 && hx::in_flight.load() == 0; ++i) std::this_thread::sleep_for(50ms);
    REQUIRE(hx::in_flight.load() == 1);

    const char* root = std::getenv("WEFT_ROOT");
    REQUIRE(root);
    const std::string base = std::string("cd ") + root + " && scripts/services ";
    REQUIRE(std::system((base + "down hatchet >/dev/null").c_str()) == 0);  // about 5 s: the engine drains
    REQUIRE(hx::in_flight.load() == 1);  // the step outlives the engine
    std::this_thread::sleep_for(17s);    // it ends about 3 s in; its event then meets no engine for 14 s
    CHECK(hx::in_flight.load() == 0);
    REQUIRE(std::system((base + "up hatchet >/dev/null").c_str()) == 0);

    finish_within(run, 120s);  // the client's wait goes on across the restart
    CHECK(run.state() == weft::run_state::succeeded);
    CHECK(run.get() == 8000);
    CHECK_THAT(sink.all(), Catch::Contains("the engine took its event at attempt"));
}

namespace {

struct child {
    pid_t pid = -1;
    FILE* out = nullptr;
};

child spawn_peer(const std::vector<std::string>& args) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(fds[1], 1);
        ::close(fds[0]);
        ::close(fds[1]);
        std::vector<char*> argv;
        std::string exe = WEFT_HATCHET_PEER;
        argv.push_back(exe.data());
        std::vector<std::string> copy = args;
        for (auto& a : copy) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(exe.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    return {pid, ::fdopen(fds[0], "r")};
}

std::string read_line(FILE* f) {
    char buf[512];
    if (!std::fgets(buf, sizeof buf, f)) return "";
    return buf;
}

}  // namespace

TEST_CASE("SIGKILL of a worker mid-step: the step is retried on another worker per its retry policy", "[fault]") {
    child a = spawn_peer({"worker", "fault", "1", "weft-doomed"});
    std::string ready = read_line(a.out);
    REQUIRE(ready.rfind("ready ", 0) == 0);

    weft::client<weft::hatchet> client(hx::options_from_env());
    auto run = client.start(hx::fault, std::string("k-") + std::to_string(::getpid()));
    for (int i = 0; i < 300 && run.step("crashy").state != weft::step_state::running; ++i) std::this_thread::sleep_for(100ms);
    REQUIRE(run.step("crashy").state == weft::step_state::running);
    std::this_thread::sleep_for(500ms);  // the first attempt is inside the step
    REQUIRE(::kill(a.pid, SIGKILL) == 0);
    int status = 0;
    ::waitpid(a.pid, &status, 0);
    std::fclose(a.out);
    CHECK(WIFSIGNALED(status));

    // The survivor: this process.
    auto b = serving(1, nullptr, hx::fault);
    finish_within(run, 90s);
    hx::attempt_report rep = run.get();
    CHECK(rep.pid == ::getpid());     // not the killed worker
    CHECK(rep.attempt == 2);          // the killed attempt counted as one of max_attempts = 3
    CHECK(rep.key == std::string("k-") + std::to_string(::getpid()));
    CHECK(b->stats().succeeded == 1);
}
