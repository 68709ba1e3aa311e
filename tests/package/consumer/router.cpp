// A consumer of weft::router through the public API only: the flag engine decides for a key, and
// any_client with backend = router sends a run where its flag file says (the embedded engine here)
// and reads it back by id.
#include <weft/any_client.hpp>
#include <weft/router.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "common.hpp"

int main() {
    const char* me = "consumer_router";
    auto set = weft::flags::flag_set::parse(R"({"flags": {"weft.ingest": {
        "state": "ENABLED", "variants": {"celery": "celery", "temporal": "temporal"}, "defaultVariant": "celery",
        "targeting": {"fractional": [["celery", 90], ["temporal", 10]]}}}})", "consumer.json");
    auto e = set.evaluate("weft.ingest", {.targeting_key = "run-5", .attributes = {}});
    bool ok = consumer::check(e.variant == "temporal" && e.reason == "TARGETING_MATCH", me, "run-5 is not routed to temporal");

    const std::string flags =
        (std::filesystem::temp_directory_path() / ("weft-consumer-flags-" + std::to_string(::getpid()) + ".json")).string();
    std::ofstream(flags) << R"({"flags": {"weft.route.greeting": {"state": "ENABLED", "variants": {"local": "local"},
                                "defaultVariant": "local"}}})";
    {
        auto client = weft::any_client(
            weft::config::parse("backend = router\n[router]\nbackends = local\nflags = " + flags + "\n", "consumer.conf"));
        ok &= consumer::check(client.backend() == "router", me, "any_client with backend = router is not the router");
        auto run = client.start(consumer::greeting, std::string("weft"), {.key = "tenant-1"});
        ok &= consumer::check(run.get() == "hello weft!", me, "the routed run is wrong");
        ok &= consumer::check(run.id().starts_with("local:"), me, "the routed run's id does not name its backend");
        ok &= consumer::check(client.describe(run.id()).backend == "local", me, "describe by id did not reach local");
    }
    std::filesystem::remove(flags);
    ok &= consumer::check(consumer::local_runs(), me, "the local run is wrong");
    return ok ? 0 : 1;
}
