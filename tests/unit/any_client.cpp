// Choosing the backend by configuration: environment, file, and the errors a bad setting gives.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <unistd.h>
#include <fstream>
#include <boost/json/serialize.hpp>
#include <weft/any_client.hpp>

using weft::step;

namespace {

struct scoped_env {
    std::string name;
    scoped_env(std::string n, const char* v) : name(std::move(n)) { ::setenv(name.c_str(), v, 1); }
    ~scoped_env() { ::unsetenv(name.c_str()); }
};

struct square { static constexpr std::string_view name = "square"; long operator()(long x) const { return x * x; } };
struct negate { static constexpr std::string_view name = "negate"; long operator()(long x) const { return -x; } };
constexpr auto wf = weft::workflow<"square_negate">(step<square> >> step<negate>);

TEST_CASE("with nothing configured, the configurable client runs on the embedded engine") {
    ::unsetenv("WEFT_BACKEND");
    ::unsetenv("WEFT_CONFIG");
    auto client = weft::any_client::from_env();
    CHECK(client.backend() == "local");
    CHECK(client.start(wf, 12).get() == -144);
}

TEST_CASE("WEFT_BACKEND=local and WEFT_LOCAL_THREADS select and size the embedded engine") {
    scoped_env b("WEFT_BACKEND", "local");
    scoped_env t("WEFT_LOCAL_THREADS", "3");
    auto client = weft::any_client::from_env();
    CHECK(client.backend() == "local");
    auto run = client.start(wf, 5);
    CHECK(run.get() == -25);
    CHECK(run.step("negate").state == weft::step_state::succeeded);
}

TEST_CASE("an unknown backend is an error that names the setting and the known backends") {
    scoped_env b("WEFT_BACKEND", "rabbit");
    CHECK_THROWS_WITH(weft::any_client::from_env(),
                      "weft: unknown backend 'rabbit' (from WEFT_BACKEND); known backends: local. A backend is known "
                      "once this program links its library (weft::rabbit) and includes its header (<weft/rabbit.hpp>)");
}

TEST_CASE("a backend that exists but is not linked in says how to link it") {
    scoped_env b("WEFT_BACKEND", "temporal");
    CHECK_THROWS_WITH(weft::any_client::from_env(),
                      Catch::Contains("known backends: local. A backend is known once this program links its library "
                                      "(weft::temporal) and includes its header (<weft/temporal.hpp>)"));
}

TEST_CASE("a bad value names the setting, its origin and what was expected") {
    scoped_env t("WEFT_LOCAL_THREADS", "many");
    CHECK_THROWS_WITH(weft::any_client::from_env(),
                      "weft: local.threads = 'many' (from WEFT_LOCAL_THREADS): expected a whole number from 0 to 4096");
}

TEST_CASE("a misspelt setting is rejected rather than ignored") {
    scoped_env t("WEFT_LOCAL_THREAD", "2");
    CHECK_THROWS_WITH(weft::any_client::from_env(), Catch::Contains("unknown setting WEFT_LOCAL_THREAD in the environment"));
}

TEST_CASE("a config file selects the backend and the environment overrides it") {
    const std::string file = "weft-any-client-" + std::to_string(::getpid()) + ".conf";
    const std::string path = (std::filesystem::temp_directory_path() / file).string();
    std::ofstream(path) << "# weft settings\nbackend = local\n\n[local]\nthreads = 2\n";
    scoped_env f("WEFT_CONFIG", path.c_str());
    CHECK(weft::any_client::from_env().start(wf, 3).get() == -9);
    {
        scoped_env t("WEFT_LOCAL_THREADS", "x");  // overrides the file's value, and is wrong
        CHECK_THROWS_WITH(weft::any_client::from_env(), Catch::Contains("(from WEFT_LOCAL_THREADS)"));
    }
    std::ofstream(path) << "backend = local\n[local]\nthreads = lots\n";
    CHECK_THROWS_WITH(weft::any_client::from_env(), Catch::Contains("(from " + path + ":3)"));
    std::ofstream(path) << "backend = local\n[locl]\nthreads = 2\n";
    CHECK_THROWS_WITH(weft::any_client::from_env(),
                      "weft: unknown backend section [locl] (from " + path + ":3); known backends: local (did you "
                      "mean [local]?)");
    // A section of a backend this program does not link belongs to another program sharing the file.
    std::ofstream(path) << "backend = local\n[rabbit]\nurl = amqp://\n";
    CHECK(weft::any_client::from_env().start(wf, 3).get() == -9);
    std::ofstream(path) << "backend local\n";
    CHECK_THROWS_WITH(weft::any_client::from_env(),
                      "weft: " + path + ":1: expected `key = value`, got 'backend local'");
    std::filesystem::remove(path);
}

TEST_CASE("a missing config file is named") {
    scoped_env f("WEFT_CONFIG", "/nonexistent/weft.conf");
    CHECK_THROWS_WITH(weft::any_client::from_env(), Catch::Contains("cannot read the config file '/nonexistent/weft.conf'"));
}

TEST_CASE("the erased workflow carries the graph and JSON codec hooks for remote backends, and no step code") {
    const weft::erased_workflow& e = weft::erase(wf);
    const weft::graph_view& g = e.graph;
    CHECK(g.name == "square_negate");
    REQUIRE(g.size() == 2);
    CHECK(g.names[g.topological_order[0]] == "square");
    CHECK(g.parent_count(1) == 1);
    CHECK(g.names[g.parent(1, 0)] == "square");
    CHECK(g.children(0).size() == 1);
    CHECK(g.index_of("negate") == 1);
    CHECK(g.index_of("absent") == weft::graph_view::npos);
    const std::tuple<long> in{7};
    REQUIRE(e.codec);
    CHECK(boost::json::serialize(e.codec->encode_input(&in)) == "[7]");
    auto out = e.codec->decode_output(boost::json::value(-49));
    CHECK(*static_cast<const long*>(out.get()) == -49);
    CHECK_THROWS_WITH(e.codec->decode_output(boost::json::value("x")), Catch::Contains("expected"));
    CHECK(e.steps == nullptr);
}

TEST_CASE("the local backend refuses a workflow handed over without its step code") {
    weft::config c;
    auto b = weft::backend_registry::instance().make(c);
    CHECK(b->name() == "local");
    const std::tuple<long> in{7};
    CHECK_THROWS_WITH(b->start(weft::erase(wf), &in, {}), Catch::Contains("without its step code"));
    auto r = b->start(weft::full_erasure<decltype(wf)>, &in, {});
    r->wait();
    CHECK(*static_cast<const long*>(r->result()) == -49);
}

TEST_CASE("the local backend's settings come from its table, with help text") {
    const auto* e = weft::backend_registry::instance().find("local");
    REQUIRE(e);
    REQUIRE(e->settings.size() == 1);
    CHECK(e->settings[0].key == "threads");
    CHECK(e->settings[0].type == "whole number");
    CHECK(e->settings[0].default_value == "0");
    scoped_env t("WEFT_LOCAL_THREADS", "5000");
    CHECK_THROWS_WITH(weft::any_client::from_env(),
                      "weft: local.threads = '5000' (from WEFT_LOCAL_THREADS): expected a whole number from 0 to 4096");
}

}  // namespace
