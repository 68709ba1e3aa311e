// weft::router over the in-process engines (local, durable on a real SQLite journal): the route a
// flag gives, ids that lead back to their backend, sticky keys, the reload guard, refused files,
// fallback when a submission fails (Celery on a closed port), and shadow runs compared as JSON.
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include <weft/any_client.hpp>
#include <weft/durable.hpp>
#include <weft/router.hpp>
#include <weft/run_description.hpp>
#include <weft/telemetry.hpp>
#if WEFT_TEST_CELERY
#include <weft/celery.hpp>
#endif

#include "../engine_steps.hpp"

using namespace std::chrono_literals;
using namespace engine_steps;

namespace {

struct tmpdir {
    std::filesystem::path path;
    explicit tmpdir(const std::string& name)
        : path(std::filesystem::temp_directory_path() / ("weft-router-" + name + "-" + std::to_string(::getpid()))) {
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~tmpdir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& n) const { return (path / n).string(); }
};

void write(const std::string& path, const std::string& text) {
    std::ofstream(path + ".tmp") << text;
    std::filesystem::rename(path + ".tmp", path);
}

std::string route(const std::string& workflow, int pct_durable, const std::string& more = {}, const std::string& meta = {}) {
    return R"({"flags": {"weft.route.)" + workflow + R"(": {"state": "ENABLED",
      "variants": {"local": "local", "durable": "durable"}, "defaultVariant": "local",)" + meta + R"(
      "targeting": {"fractional": [["local", )" + std::to_string(100 - pct_durable) + R"(], ["durable", )" +
           std::to_string(pct_durable) + R"(]]}})" + more + "}}";
}

weft::config router_config(const tmpdir& d, const std::string& flags, const std::string& backends = "local, durable") {
    weft::config c;
    c.set("backend", "router");
    c.set("router.backends", backends);
    if (!flags.empty()) c.set("router.flags", flags);
    c.set("router.flags_poll_ms", "20");
    c.set("durable.journal", d.file("journal.db"));
    return c;
}

std::string backend_of(const std::string& id) { return std::string(weft::run_id::parse(id)->backend); }

// A step whose answer differs on every call: its shadow never matches.
inline std::atomic<int> stamp_calls{0};
struct stamp {
    static constexpr std::string_view name = "stamp";
    int operator()(int x) const { return x * 100 + stamp_calls++; }
};
constexpr auto stamped = weft::workflow<"stamped">(weft::step<stamp>);

struct timed_result {
    int value = 0;
    long took_ns = 0;
};
BOOST_DESCRIBE_STRUCT(timed_result, (), (value, took_ns))
struct timed {
    static constexpr std::string_view name = "timed";
    timed_result operator()(int x) const { return {x, long(stamp_calls++)}; }
};
constexpr auto timed_flow = weft::workflow<"timed">(weft::step<timed>);

struct charge {
    static constexpr std::string_view name = "charge";
    static constexpr weft::step_policy policy{.side_effects = true};
    int operator()(int x) const { return x; }
};
constexpr auto charged = weft::workflow<"charged">(weft::step<charge>);

}  // namespace

TEST_CASE("without a flag file every run goes to the first backend, and its id names it") {
    tmpdir d("noflags");
    weft::client<weft::router> client(router_config(d, ""));
    auto run = client.start(diamond, 4);
    CHECK(run.get() == "n=4 sum=10");
    CHECK(backend_of(run.id()) == "local");
    CHECK(client.decide("diamond", "k").why.find("no flag file") != std::string::npos);
}

TEST_CASE("a flag routes runs; describe and attach by id go to the backend that ran them") {
    tmpdir d("route");
    write(d.file("flags.json"), route("diamond", 100));
    weft::client<weft::router> client(router_config(d, d.file("flags.json")));
    auto run = client.start(diamond, 3, {.key = "tenant-1"});
    CHECK(run.get() == "n=3 sum=6");
    CHECK(backend_of(run.id()) == "durable");
    const weft::run_description desc = client.describe(run.id());
    CHECK(desc.backend == "durable");
    CHECK(desc.state == weft::run_state::succeeded);
    CHECK(client.attach(diamond, run.id()).get() == "n=3 sum=6");
    CHECK_THROWS_AS(client.describe("durable:diamond:00000000000000000000000000000000"), weft::run_not_found);
    // A workflow without a flag goes to the first backend.
    CHECK(client.decide("other", "k").backend == "local");
}

TEST_CASE("sticky keys stay on one backend, and raising the percentage only moves keys forward") {
    tmpdir d("sticky");
    write(d.file("flags.json"), route("diamond", 30));
    weft::client<weft::router> client(router_config(d, d.file("flags.json")));
    std::map<std::string, std::string> first;
    int on_durable = 0;
    for (int k = 0; k < 2000; ++k) {
        const std::string key = "doc-" + std::to_string(k);
        first[key] = client.decide("diamond", key).backend;
        on_durable += first[key] == "durable";
        for (int again = 0; again < 2; ++again) REQUIRE(client.decide("diamond", key).backend == first[key]);
    }
    CHECK(on_durable > 2000 * 0.25);  // 30 % +- 5 points (3 sigma is 3.1 points over 2000 keys)
    CHECK(on_durable < 2000 * 0.35);
    write(d.file("flags.json"), route("diamond", 60));
    std::this_thread::sleep_for(300ms);  // the file is checked every 20 ms
    int moved = 0, back = 0;
    for (auto& [key, b] : first) {
        const std::string now = client.decide("diamond", key).backend;
        moved += b == "local" && now == "durable";
        back += b == "durable" && now == "local";
    }
    CHECK(back == 0);
    CHECK(moved > 2000 * 0.25);
    CHECK(client.backend().flags_error().empty());
}

TEST_CASE("allow- and deny-lists: attributes pick the backend before the percentage does") {
    tmpdir d("lists");
    // Tenants on the allow-list go to durable, those on the deny-list stay on local, the rest: 50 %.
    write(d.file("flags.json"), R"({"flags": {"weft.route.diamond": {"state": "ENABLED",
      "variants": {"local": "local", "durable": "durable"}, "defaultVariant": "local",
      "targeting": {"if": [{"in": [{"var": "tenant"}, ["acme", "globex"]]}, "durable",
                           {"in": [{"var": "tenant"}, ["initech"]]}, "local",
                           {"fractional": [["local", 50], ["durable", 50]]}]}}}})");
    weft::client<weft::router> client(router_config(d, d.file("flags.json")));
    int durable_allowed = 0, local_denied = 0, split = 0;
    for (int k = 0; k < 400; ++k) {
        const std::string key = "doc-" + std::to_string(k);
        durable_allowed += client.decide("diamond", key, {{"tenant", "acme"}}).backend == "durable";
        local_denied += client.decide("diamond", key, {{"tenant", "initech"}}).backend == "local";
        split += client.decide("diamond", key, {{"tenant", "hooli"}}).backend == "durable";
    }
    CHECK(durable_allowed == 400);
    CHECK(local_denied == 400);
    CHECK(split > 140);  // 50 % of 400 keys, +- 3 sigma (30)
    CHECK(split < 260);
    auto run = client.start(diamond, 2, {.key = "doc-1", .attributes = {{"tenant", "globex"}}});
    CHECK(backend_of(run.id()) == "durable");
    CHECK(run.get() == "n=2 sum=3");
    CHECK_THAT(client.decide("diamond", "doc-1", {{"tenant", "acme"}}).why, Catch::Contains("TARGETING_MATCH"));
}

TEST_CASE("a rollback is refused unless the flag allows it, and the rules in force stay") {
    tmpdir d("rollback");
    write(d.file("flags.json"), route("diamond", 50));
    weft::client<weft::router> client(router_config(d, d.file("flags.json")));
    std::string key;
    for (int k = 0; key.empty(); ++k)
        if (client.decide("diamond", "k" + std::to_string(k)).backend == "durable") key = "k" + std::to_string(k);
    write(d.file("flags.json"), route("diamond", 0));
    REQUIRE(engine_steps::eventually([&] { return !client.backend().flags_error().empty(); }, 2s));
    CHECK_THAT(client.backend().flags_error(), Catch::Contains("would move back from durable to local") &&
                                                   Catch::Contains("allowRollback"));
    CHECK(client.decide("diamond", key).backend == "durable");
    write(d.file("flags.json"), route("diamond", 0, "", R"( "metadata": {"allowRollback": true},)"));
    CHECK(engine_steps::eventually([&] { return client.decide("diamond", key).backend == "local"; }, 2s));
}

TEST_CASE("a flag file with an error is refused with its line, and so is a variant naming no routed backend") {
    tmpdir d("bad");
    write(d.file("flags.json"), route("diamond", 100));
    weft::client<weft::router> client(router_config(d, d.file("flags.json")));
    write(d.file("flags.json"), "{\"flags\": {\n  \"weft.route.diamond\": {\n    \"state\": \"ENABLED\",,\n}}}");
    REQUIRE(engine_steps::eventually([&] { return !client.backend().flags_error().empty(); }, 2s));
    CHECK_THAT(client.backend().flags_error(), Catch::Contains("flags.json:3:"));
    CHECK(client.decide("diamond", "x").backend == "durable");
    write(d.file("flags.json"), R"({"flags": {"weft.route.diamond": {"state": "ENABLED",
        "variants": {"new": "temporall"}, "defaultVariant": "new"}}})");
    REQUIRE(engine_steps::eventually([&] { return client.backend().flags_error().find("temporall") != std::string::npos; }, 2s));
    CHECK_THAT(client.backend().flags_error(), Catch::Contains("not one of router.backends (local, durable)"));
    CHECK(client.decide("diamond", "x").backend == "durable");
    // At construction the same file is an error.
    CHECK_THROWS_WITH(weft::client<weft::router>(router_config(d, d.file("flags.json"))), Catch::Contains("temporall"));
}

TEST_CASE("the router's own settings are checked") {
    tmpdir d("settings");
    CHECK_THROWS_WITH(weft::client<weft::router>(router_config(d, "", "local, local")), Catch::Contains("names 'local' twice"));
    CHECK_THROWS_WITH(weft::client<weft::router>(router_config(d, "", "local, nope")),
                      Catch::Contains("names 'nope', which this program does not link"));
    CHECK_THROWS_WITH(weft::client<weft::router>(router_config(d, "", " ")), Catch::Contains("names no backend"));
    CHECK_THROWS_WITH(weft::client<weft::router>(router_config(d, d.file("missing.json"))), Catch::Contains("missing.json"));
}

#if WEFT_TEST_CELERY
TEST_CASE("a run whose submission fails goes to the next backend only with fallback on") {
    tmpdir d("fallback");
    weft::config c = router_config(d, "", "celery, local");
    c.set("celery.broker_url", "redis://127.0.0.1:1/0");  // nothing listens on port 1
    c.set("celery.timeout_ms", "300");
    {
        weft::client<weft::router> client(c);
        CHECK_THROWS(client.start(diamond, 2));
    }
    c.set("router.fallback", "true");
    weft::client<weft::router> client(c);
    auto run = client.start(diamond, 2);
    CHECK(backend_of(run.id()) == "local");
    CHECK(run.get() == "n=2 sum=3");
}

TEST_CASE("a shadow whose backend refuses the submission is counted failed, and a full queue drops and counts") {
    tmpdir d("shadow_faults");
    write(d.file("flags.json"), R"({"flags": {"weft.shadow.diamond": {"state": "ENABLED",
        "variants": {"on": "celery"}, "defaultVariant": "on"}}})");
    weft::config c = router_config(d, d.file("flags.json"), "local, celery");
    c.set("celery.broker_url", "redis://127.0.0.1:1/0");  // nothing listens on port 1
    c.set("celery.timeout_ms", "300");
    {
        weft::client<weft::router> client(c);
        // The caller's runs succeed on local whatever happens to their shadows.
        for (int i = 1; i <= 4; ++i) CHECK(client.start(diamond, i).get() == "n=" + std::to_string(i) + " sum=" + std::to_string(i * (i + 1) / 2));
        client.drain_shadows();
        const auto s = client.shadows("diamond");
        CHECK(s.errors == 4);
        CHECK(s.started == 0);
        CHECK(s.matched + s.mismatched + s.dropped == 0);
    }
    c.set("router.shadow_queue", "0");  // no room: every shadow is dropped
    weft::client<weft::router> client(c);
    for (int i = 1; i <= 3; ++i) CHECK(client.start(diamond, i).get() == "n=" + std::to_string(i) + " sum=" + std::to_string(i * (i + 1) / 2));
    client.drain_shadows();
    const auto s = client.shadows("diamond");
    CHECK(s.dropped == 3);
    CHECK(s.errors + s.started == 0);
}
#endif

TEST_CASE("shadow runs: the same output matches, a diverging one is caught, the caller's result never changes") {
    tmpdir d("shadow");
    const std::string shadow_flags =
        R"(, "weft.shadow.diamond": {"state": "ENABLED", "variants": {"on": "durable"}, "defaultVariant": "on"},
            "weft.shadow.stamped": {"state": "ENABLED", "variants": {"on": "durable"}, "defaultVariant": "on"},
            "weft.shadow.timed": {"state": "ENABLED", "variants": {"on": "durable"}, "defaultVariant": "on",
                                  "metadata": {"compareIgnore": "/took_ns"}},
            "weft.shadow.charged": {"state": "ENABLED", "variants": {"on": "durable"}, "defaultVariant": "on"})";
    write(d.file("flags.json"), route("diamond", 0, shadow_flags));
    weft::telemetry::collect_metrics(true);
    weft::client<weft::router> client(router_config(d, d.file("flags.json")));
    CHECK(client.decide("diamond", "a").shadow == "durable");
    for (int i = 1; i <= 5; ++i) CHECK(client.start(diamond, i).get() == "n=" + std::to_string(i) + " sum=" + std::to_string(i * (i + 1) / 2));
    stamp_calls = 0;
    std::vector<int> outs;
    for (int i = 0; i < 3; ++i) outs.push_back(client.start(stamped, i).get());
    for (int i = 0; i < 2; ++i) CHECK(client.start(timed_flow, i).get().value == i);
    CHECK(client.start(charged, 9).get() == 9);
    client.drain_shadows();
    const auto dia = client.shadows("diamond"), st = client.shadows("stamped"), ti = client.shadows("timed"),
               ch = client.shadows("charged");
    CHECK(dia.started == 5);
    CHECK(dia.matched == 5);
    CHECK(dia.mismatched == 0);
    CHECK(st.mismatched == 3);
    CHECK(ti.matched == 2);  // took_ns differs on every call, and is ignored
    CHECK(ch.skipped == 1);
    CHECK(ch.started == 0);
    // The caller saw the primaries' outputs, whatever the shadows answered.
    for (int i = 0; i < 3; ++i) CHECK(outs[i] / 100 == i);
    const std::string metrics = weft::telemetry::metrics_text();
    CHECK_THAT(metrics, Catch::Contains(R"(weft_shadow_runs_total{backend="durable",workflow="stamped",outcome="mismatched"} 3)"));
    CHECK_THAT(metrics, Catch::Contains(R"(weft_shadow_runs_total{backend="durable",workflow="charged",outcome="skipped"} 1)"));
}

TEST_CASE("run metadata passes through the router to the routed backend and to a shadow, which then matches") {
    tmpdir d("metadata");
    const std::string shadow =
        R"(, "weft.shadow.metadata_echo": {"state": "ENABLED", "variants": {"on": "durable"}, "defaultVariant": "on"})";
    write(d.file("flags.json"), route("metadata_echo", 0, shadow));
    weft::client<weft::router> client(router_config(d, d.file("flags.json")));
    auto run = client.start(metadata_echo, 1, {.key = "k", .metadata = {{"tenant", "acme"}}});
    CHECK(run.get() == "acme|tenant=acme;");
    CHECK(backend_of(run.id()) == "local");
    client.drain_shadows();
    CHECK(client.shadows("metadata_echo").matched == 1);  // the shadow's steps read the same metadata
    CHECK_THROWS_WITH(client.start(metadata_echo, 1, {.metadata = {{"traceparent", "x"}}}), Catch::Contains("weft's own"));
}
