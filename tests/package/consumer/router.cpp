// A consumer of weft::router's flag engine through its public header only: a flagd flag file routes
// a run key to a backend.
#include <weft/router/flags.hpp>

#include "common.hpp"

int main() {
    const char* me = "consumer_router";
    auto set = weft::flags::flag_set::parse(R"({"flags": {"weft.ingest": {
        "state": "ENABLED", "variants": {"celery": "celery", "temporal": "temporal"}, "defaultVariant": "celery",
        "targeting": {"fractional": [["celery", 90], ["temporal", 10]]}}}})", "consumer.json");
    auto e = set.evaluate("weft.ingest", {.targeting_key = "run-5", .attributes = {}});
    bool ok = consumer::check(e.variant == "temporal" && e.reason == "TARGETING_MATCH", me, "run-5 is not routed to temporal");
    return ok ? 0 : 1;
}
