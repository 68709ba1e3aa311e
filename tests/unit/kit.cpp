// The kit every server backend's worker stands on, without a server: the backoff schedule, the task
// pipeline's classification, and the skeleton's fetchers, slots, reservations and stop.
#include <catch2/catch.hpp>

#include <weft/kit/backoff.hpp>
#include <weft/kit/worker.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using weft::step;

namespace {

struct twice {
    static constexpr std::string_view name = "kit.twice";
    int operator()(int x) const {
        if (x < 0) throw std::invalid_argument("negative");
        return weft::this_step::stop_requested() ? -1 : 2 * x;
    }
};
constexpr auto wf = weft::workflow<"kit">(step<twice>);

// What a backend's hooks see: a task names a step and carries its arguments as JSON text.
struct task {
    std::string step;
    std::string args;
};

struct hooks {
    std::vector<std::pair<std::string, weft::kit::step_outcome>> reports;
    int begun = 0;
    const weft::erased_step* find(const task& t) const {
        for (auto& s : weft::step_table(wf))
            if (s.name() == t.step) return &s;
        return nullptr;
    }
    void begin(const task&, const weft::erased_step&, weft::kit::task_context& ctx) {
        ++begun;
        ctx.attempt = 3;
    }
    static weft::json::array decode(const task& t, const weft::erased_step&) { return weft::json::parse(t.args).as_array(); }
    void report(const task& t, const weft::erased_step*, weft::kit::step_outcome& out, weft::kit::task_context&) {
        reports.emplace_back(t.args, std::move(out));
    }
};

using kind = weft::kit::step_outcome::kind;

}  // namespace

TEST_CASE("run_task classifies: succeeded, failed with the exception, bad payload, unknown step") {
    hooks h;
    for (task t : {task{"kit.twice", "[21]"}, task{"kit.twice", "[-1]"}, task{"kit.twice", "[\"x\"]"},
                   task{"kit.twice", "not json"}, task{"kit.nope", "[1]"}}) {
        weft::kit::task_context ctx;
        weft::kit::run_task(h, t, ctx);
    }
    REQUIRE(h.reports.size() == 5);
    CHECK(h.begun == 4);  // not for the step nobody serves
    auto& [_, ok] = h.reports[0];
    CHECK(ok.what == kind::succeeded);
    CHECK(ok.output == weft::json::value(42));
    auto& failed = h.reports[1].second;
    CHECK(failed.what == kind::failed);
    CHECK(failed.retryable());
    CHECK(failed.error == "negative");
    CHECK(failed.error_type == "std::invalid_argument");
    REQUIRE(failed.exception);
    CHECK_THROWS_AS(std::rethrow_exception(failed.exception), std::invalid_argument);
    auto& bad = h.reports[2].second;
    CHECK(bad.what == kind::bad_payload);
    CHECK(!bad.retryable());
    CHECK(bad.path == "$[0]");
    CHECK(h.reports[3].second.what == kind::bad_payload);  // the decode hook threw
    CHECK(!h.reports[3].second.error.empty());
    CHECK(h.reports[4].second.what == kind::unknown_step);
    CHECK(!h.reports[4].second.retryable());
}

TEST_CASE("a task's context is in scope while its step runs: attempt, name, and stop reasons") {
    weft::kit::task_context ctx;
    ctx.cancelled = true;
    hooks h;
    task t{"kit.twice", "[5]"};
    weft::kit::run_task(h, t, ctx);
    CHECK(h.reports.at(0).second.output == weft::json::value(-1));  // stop_requested() was true inside
    CHECK(ctx.attempt == 3);
    CHECK(ctx.step == "kit.twice");
    CHECK(ctx.workflow == "kit");

    weft::kit::task_context late;
    CHECK(!late.stop_requested());
    late.deadline = weft::kit::task_context::clock::now() - 1ms;
    CHECK(late.stop_requested());
    weft::kit::worker_threads threads;
    weft::kit::task_context on_worker;
    on_worker.worker = &threads;
    CHECK(!on_worker.stop_requested());
    threads.stop();
    CHECK(on_worker.stop_requested());
}

TEST_CASE("backoff delays are jittered into [d/2, d], grow to the cap, and start over after a success") {
    weft::kit::backoff b({.initial = 100ms, .multiplier = 2.0, .maximum = 800ms});
    const std::chrono::milliseconds ceilings[] = {100ms, 200ms, 400ms, 800ms, 800ms, 800ms};
    for (auto c : ceilings) {
        auto d = b.failed();
        CHECK(d >= c / 2);
        CHECK(d <= c);
    }
    CHECK(b.failures() == 6);
    b.succeeded();
    CHECK(b.failures() == 0);
    CHECK(b.failed() <= 100ms);
}

TEST_CASE("the skeleton: a failing fetch backs off and recovers, slots run every task once, stop drains") {
    std::mutex m;
    std::vector<std::string> log;
    std::set<int> ran;
    std::atomic<int> calls{0}, running{0}, most{0};
    {
        weft::kit::worker_skeleton<int> w({.what = "test worker",
                                           .log = [&](std::string_view level, std::string_view text) {
                                               std::lock_guard l(m);
                                               log.push_back(std::string(level) + ": " + std::string(text));
                                           },
                                           .backoff = {.initial = 10ms, .multiplier = 2.0, .maximum = 40ms}});
        w.slots(3, [&](int& t) {
            int now = ++running;
            for (int seen = most; now > seen && !most.compare_exchange_weak(seen, now);) {
            }
            std::this_thread::sleep_for(2ms);
            --running;
            std::lock_guard l(m);
            ran.insert(t);
        });
        w.fetcher("the test queue", [&] {
            int n = ++calls;
            if (n <= 2) throw std::runtime_error("connection refused");
            if (n == 3)
                for (int i = 0; i < 100; ++i) w.push(i);
            if (n > 3) std::this_thread::sleep_for(5ms);
            return n == 3;
        });
        for (int i = 0; i < 500; ++i) {
            {
                std::lock_guard l(m);
                if (ran.size() == 100) break;
            }
            std::this_thread::sleep_for(10ms);
        }
        w.stop();
        w.stop();  // idempotent
    }
    CHECK(ran.size() == 100);
    CHECK(most <= 3);
    REQUIRE(log.size() >= 3);
    CHECK(log[0].find("warning: the test queue failed (attempt 1): connection refused; retrying in") == 0);
    CHECK(log[1].find("attempt 2") != std::string::npos);
    CHECK(log[2] == "info: the test queue works again after 2 failures");
}

TEST_CASE("a fetcher that reserves takes no more tasks than the slots can run, and stop wakes it") {
    std::atomic<int> in_hand{0}, most{0}, fetched{0};
    std::atomic<bool> release{false};
    weft::kit::worker_skeleton<int> w({.what = "reserving", .log = {}, .backoff = {}});
    w.slots(2, [&](int&) {
        while (!release && !w.stopping()) std::this_thread::sleep_for(1ms);
        --in_hand;
    });
    w.fetcher("long polls", [&] {
        if (!w.reserve(2)) return false;
        int now = ++in_hand;
        for (int seen = most; now > seen && !most.compare_exchange_weak(seen, now);) {
        }
        ++fetched;
        w.push(fetched.load(), true);
        return true;
    });
    std::this_thread::sleep_for(100ms);
    CHECK(fetched == 2);  // both slots busy: the fetcher waits in reserve()
    CHECK(most == 2);
    release = true;
    for (int i = 0; i < 200 && fetched < 50; ++i) std::this_thread::sleep_for(5ms);
    CHECK(fetched >= 50);
    CHECK(most <= 2);
    w.stop();  // returns: the reserve() wait and the slots wake
}

// ---- settings: the SDK's own variable as the last source; TLS files read with errors that say where

TEST_CASE("resend: tries again while the server is away, stops at a refusal, a limit or a stop") {
    const weft::retry_policy quick{.initial = 1ms, .multiplier = 2.0, .maximum = 2ms};
    weft::kit::worker_threads threads;
    std::vector<int> retried;
    auto note = [&](int attempt, weft::milliseconds) { retried.push_back(attempt); };

    auto away_until = [](int taken_at) {
        return [taken_at](int attempt) {
            return attempt < taken_at ? weft::kit::delivery::away : weft::kit::delivery::taken;
        };
    };
    auto r = weft::kit::resend(threads, quick, away_until(3), note);
    CHECK(r.last == weft::kit::delivery::taken);
    CHECK(r.attempts == 3);
    CHECK(retried == std::vector<int>{1, 2});

    int calls = 0;
    r = weft::kit::resend(threads, quick, [&](int) { ++calls; return weft::kit::delivery::refused; }, note);
    CHECK(r.last == weft::kit::delivery::refused);
    CHECK(calls == 1);

    r = weft::kit::resend(threads, quick, away_until(100), note, 5);
    CHECK(r.last == weft::kit::delivery::away);
    CHECK(r.attempts == 5);

    // Stopped threads: one try, no sleep.
    threads.stop();
    calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    r = weft::kit::resend(threads, {.initial = 10s, .maximum = 10s}, [&](int) { ++calls; return weft::kit::delivery::away; }, note);
    CHECK(r.last == weft::kit::delivery::away);
    CHECK(calls == 1);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
}

#include <weft/kit/settings.hpp>
#include <weft/kit/tls.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {
struct conn_options {
    std::string address = "127.0.0.1:1";
};
const weft::kit::settings_table<conn_options> conn_table{
    "kit_test", {{"address", &conn_options::address, "where", 0, {}, "KIT_TEST_SDK_ADDRESS"}}};

std::filesystem::path write_file(const std::string& name, const std::string& text) {
    auto p = std::filesystem::temp_directory_path() / ("weft-kit-" + std::to_string(::getpid()) + "-" + name);
    std::ofstream(p) << text;
    return p;
}
}  // namespace

TEST_CASE("a setting falls back to the SDK's variable, after the file and WEFT_ variable") {
    ::unsetenv("KIT_TEST_SDK_ADDRESS");
    CHECK(conn_table.read(weft::config{}).address == "127.0.0.1:1");
    ::setenv("KIT_TEST_SDK_ADDRESS", "sdk:2", 1);
    CHECK(conn_table.read(weft::config{}).address == "sdk:2");
    weft::config c;
    c.set("kit_test.address", "file:3", "weft.conf:1");
    CHECK(conn_table.read(c).address == "file:3");
    ::unsetenv("KIT_TEST_SDK_ADDRESS");
    auto docs = conn_table.docs();
    REQUIRE(docs.size() == 1);
    CHECK(docs[0].help.find("KIT_TEST_SDK_ADDRESS") != std::string::npos);
}

TEST_CASE("read_tls reads PEM files and names the setting and file of each mistake") {
    const std::string cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const std::string key = "-----BEGIN PRIVATE KEY-----\nsecret-key-bytes\n-----END PRIVATE KEY-----\n";
    auto ca = write_file("ca.pem", cert), crt = write_file("client.pem", cert), k = write_file("client.key", key),
         junk = write_file("junk.pem", "not pem at all");
    using weft::kit::read_tls;
    auto m = read_tls("temporal", {ca.string(), crt.string(), k.string(), "weft-tls.test"});
    CHECK(m.root_ca == cert);
    CHECK(m.cert_chain == cert);
    CHECK(m.private_key == key);
    CHECK(m.server_name == "weft-tls.test");
    CHECK(read_tls("hatchet", {}).root_ca.empty());  // system roots

    auto message = [](auto&& f) {
        try {
            f();
        } catch (const weft::config_error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    auto missing = message([&] { read_tls("temporal", {"/nonexistent/ca.pem", "", "", ""}); });
    CHECK(missing.find("temporal.tls_ca_file") != std::string::npos);
    CHECK(missing.find("/nonexistent/ca.pem") != std::string::npos);
    auto notpem = message([&] { read_tls("hatchet", {junk.string(), "", "", ""}); });
    CHECK(notpem.find("hatchet.tls_ca_file") != std::string::npos);
    CHECK(notpem.find("no PEM") != std::string::npos);
    CHECK(message([&] { read_tls("temporal", {"", crt.string(), "", ""}); }).find("tls_cert_file is set without tls_key_file") !=
          std::string::npos);
    CHECK(message([&] { read_tls("hatchet", {ca.string(), "", "", ""}, true); }).find("mutual TLS needs a client certificate") !=
          std::string::npos);
    auto keyless = message([&] { read_tls("temporal", {"", crt.string(), crt.string(), ""}); });
    CHECK(keyless.find("temporal.tls_key_file") != std::string::npos);
    CHECK(keyless.find("secret-key-bytes") == std::string::npos);
    for (auto& p : {ca, crt, k, junk}) std::filesystem::remove(p);
}
