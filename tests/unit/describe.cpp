// Runs by id on the embedded engine: self-describing ids.
#include <catch2/catch.hpp>

#include <weft/weft.hpp>

#include "../engine_steps.hpp"

using weft::run_id;

namespace {

using namespace engine_steps;

TEST_CASE("a run id splits into backend, workflow and key at its first two colons") {
    constexpr auto id = run_id::parse("celery:orders:3f0c:extra");
    STATIC_REQUIRE(id.has_value());
    STATIC_REQUIRE(id->backend == "celery");
    STATIC_REQUIRE(id->workflow == "orders");
    STATIC_REQUIRE(id->key == "3f0c:extra");  // the key keeps its colons (a Temporal workflow id may hold some)
    CHECK(run_id{"hatchet", "etl.v2/daily", "0b6e"}.str() == "hatchet:etl.v2/daily:0b6e");
    CHECK(run_id::parse(run_id{"hatchet", "etl.v2/daily", "0b6e"}.str())->workflow == "etl.v2/daily");
    // Native ids of runs weft did not start: not weft's form.
    for (std::string_view native : {"79671bc4-ca31-4c7f-9fa4-2f72e957780b", "order-42", ":orders:k", "celery::k", "celery:orders:",
                                    "Celery:orders:k", "celery:two words:k", "celery:orders"}) {
        INFO(native);
        CHECK_FALSE(run_id::parse(native).has_value());
    }
}

TEST_CASE("a local run's id names the embedded engine and its workflow") {
    weft::client<weft::local> client;
    auto run = client.start(diamond, 4);
    CHECK(run.get() == "n=4 sum=10");
    const std::string text = run.id();
    auto id = run_id::parse(text);  // views into text
    REQUIRE(id.has_value());
    CHECK(id->backend == "local");
    CHECK(id->workflow == "diamond");
    CHECK(id->key.size() == 32);
    CHECK(client.attach(diamond, text).get() == "n=4 sum=10");
}

}  // namespace
