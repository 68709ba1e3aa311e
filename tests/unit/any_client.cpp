// Choosing the backend by configuration: environment, file, and the errors a bad setting gives.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <unistd.h>
#include <fstream>
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
                      "weft: unknown backend 'rabbit' (from WEFT_BACKEND); known backends: local");
}

TEST_CASE("a backend that exists but is not linked in says so") {
    scoped_env b("WEFT_BACKEND", "temporal");
    CHECK_THROWS_WITH(weft::any_client::from_env(), Catch::Contains("the temporal backend is not linked into this program"));
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
                      "weft: unknown backend section [locl] (from " + path + ":3); known backends: local");
    std::ofstream(path) << "backend local\n";
    CHECK_THROWS_WITH(weft::any_client::from_env(),
                      "weft: " + path + ":1: expected `key = value`, got 'backend local'");
    std::filesystem::remove(path);
}

TEST_CASE("a missing config file is named") {
    scoped_env f("WEFT_CONFIG", "/nonexistent/weft.conf");
    CHECK_THROWS_WITH(weft::any_client::from_env(), Catch::Contains("cannot read the config file '/nonexistent/weft.conf'"));
}

TEST_CASE("the erased workflow carries the graph and JSON codec hooks for remote backends") {
    const auto& e = weft::detail::erasure<decltype(wf)>::value;
    CHECK(e.name == "square_negate");
    REQUIRE(e.steps.size() == 2);
    CHECK(e.steps[e.topological_order[0]] == "square");
    CHECK(e.parent_count(1) == 1);
    CHECK(e.steps[e.parent(1, 0)] == "square");
    const std::tuple<long> in{7};
    CHECK(e.encode_input(&in) == "[7]");
    auto out = e.decode_output("-49");
    CHECK(*static_cast<const long*>(out.get()) == -49);
    CHECK_THROWS_WITH(e.decode_output("\"x\""), Catch::Contains("expected"));
}

}  // namespace
