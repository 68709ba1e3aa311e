// Lowering a workflow to a Hatchet definition, and the payload envelopes, without a server.
#include "workflows.hpp"

#include <catch2/catch.hpp>

using namespace weft::hatchet_wire;

TEST_CASE("a diamond lowers to tasks with parents in declaration order and lowercase actions") {
    auto plan = lower(weft::graph_of<std::decay_t<decltype(hx::dag)>>);
    CHECK(plan.name == "hx-dag");
    REQUIRE(plan.tasks.size() == 4);
    CHECK(plan.tasks[0].readable_id == "price");
    CHECK(plan.tasks[0].parents.empty());
    CHECK(plan.tasks[3].readable_id == "join");
    CHECK(plan.tasks[3].parents == std::vector<std::string>{"twice", "label"});
    CHECK(plan.tasks[3].action == "hx-dag:join");
    CHECK(plan.tasks[0].retries == 0);
    CHECK(plan.tasks[0].backoff_factor == 0);
    CHECK(plan.tasks[0].timeout == "24h");
}

TEST_CASE("retries, backoff and timeout come from the step policy") {
    auto plan = lower(weft::graph_of<std::decay_t<decltype(hx::fault)>>);
    REQUIRE(plan.tasks.size() == 1);
    CHECK(plan.tasks[0].retries == 2);
    CHECK(plan.tasks[0].backoff_factor == 1.0);
    CHECK(plan.tasks[0].backoff_max_seconds == 1);
    CHECK(plan.tasks[0].timeout == "8s");
    CHECK(duration(weft::milliseconds(1500)) == "1500ms");
    CHECK(action_id("My-Flow", "Step") == "my-flow:step");
}

TEST_CASE("run inputs and task outputs are JSON objects, unambiguously") {
    using weft::json::array;
    using weft::json::object;
    using weft::json::value;
    CHECK(run_input(array{value(object{{"sku", "tea"}})}) == value(object{{"sku", "tea"}}));
    CHECK(run_input(array{1, 2}) == value(object{{"$args", array{1, 2}}}));
    CHECK(source_args(object{{"sku", "tea"}}) == array{value(object{{"sku", "tea"}})});
    CHECK(source_args(object{{"$args", array{1, 2}}}) == array{1, 2});
    CHECK_THROWS_WITH(source_args(object{{"$args", 3}}), Catch::Contains("$.input[\"$args\"]"));
    CHECK_THROWS_WITH(source_args(value(nullptr)), Catch::Contains("$.input") && Catch::Contains("{\"$args\": [...]}"));
    CHECK(task_output(5) == value(object{{"$value", 5}}));
    CHECK(task_output(object{{"a", 1}}) == value(object{{"a", 1}}));
    CHECK(step_value(object{{"$value", 5}}) == value(5));
    CHECK(step_value(object{{"a", 1}}) == value(object{{"a", 1}}));
}

TEST_CASE("names Hatchet refuses are reported with the workflow") {
    // Whitespace and ':' are refused by the DSL already; '/' is a weft name but not a Hatchet one.
    static constexpr auto bad = weft::workflow<"has/slash">(weft::step<hx::inc>);
    CHECK_THROWS_WITH(lower(weft::graph_of<std::decay_t<decltype(bad)>>),
                      Catch::Contains("'has/slash'") && Catch::Contains("not a Hatchet name"));
}

namespace {
struct fetch_upper {
    static constexpr std::string_view name = "Fetch";
    int operator()(int x) const { return x; }
};
struct fetch_lower {
    static constexpr std::string_view name = "fetch";
    int operator()(int x) const { return x; }
};
}  // namespace

TEST_CASE("step names that collide once lowercased are refused when the backend is chosen at run time") {
    static constexpr auto clash = weft::workflow<"clash">(weft::step<fetch_upper> >> weft::step<fetch_lower>);
    CHECK_THROWS_WITH(lower(weft::graph_of<std::decay_t<decltype(clash)>>),
                      Catch::Contains("steps 'Fetch' and 'fetch' of workflow 'clash' differ only in upper/lower case"));
    static_assert(!std::is_same_v<decltype(clash), const weft::invalid_workflow>);
}

TEST_CASE("declared limits go into the plan: the workflow's concurrency, a step's rate limits") {
    weft::hatchet::workflow_limits l = hx::limited_limits();
    l.rate_limits["timed_nap"] = {{.key = "per-minute", .units = 2}};
    auto plan = lower(weft::graph_of<std::decay_t<decltype(hx::limited)>>, &l);
    REQUIRE(plan.concurrency.size() == 1);
    CHECK(plan.concurrency[0].expression == "'all'");
    CHECK(plan.concurrency[0].max_runs == 1);
    CHECK(plan.concurrency[0].strategy == weft::hatchet::limit_strategy::group_round_robin);
    REQUIRE(plan.tasks[0].rate_limits.size() == 1);
    CHECK(plan.tasks[0].rate_limits[0].key == "per-minute");
    CHECK(plan.tasks[0].rate_limits[0].units == 2);
    CHECK(lower(weft::graph_of<std::decay_t<decltype(hx::limited)>>).concurrency.empty());
}

TEST_CASE("a declared limit Hatchet cannot take is refused, naming the workflow and the limit") {
    using g = std::decay_t<decltype(hx::limited)>;
    weft::hatchet::workflow_limits l;
    l.rate_limits["nap"] = {{.key = "k"}};
    CHECK_THROWS_WITH(lower(weft::graph_of<g>, &l),
                      Catch::Contains("limits of workflow 'hx-limited'") && Catch::Contains("step 'nap'") &&
                          Catch::Contains("its steps: timed_nap"));
    l.rate_limits = {{"timed_nap", {{.key = "k", .units = 0}}}};
    CHECK_THROWS_WITH(lower(weft::graph_of<g>, &l), Catch::Contains("rate limit 'k' of step 'timed_nap' takes 0 units"));
    l.rate_limits.clear();
    l.concurrency = {{.expression = "input.customer", .max_runs = 0}};
    CHECK_THROWS_WITH(lower(weft::graph_of<g>, &l), Catch::Contains("'input.customer' has max_runs 0"));
    l.concurrency = {{.expression = ""}};
    CHECK_THROWS_WITH(lower(weft::graph_of<g>, &l), Catch::Contains("a concurrency limit has no expression"));
}

TEST_CASE("a failed task's error is hatchet-sdk's TaskRunError text, and reads back as type: message") {
    // The engine stores what the worker sent; hatchet-sdk's deserialize splits the first line at ": ".
    const std::string e = task_error("std::runtime_error", "weft: step 'a': two\nlines", "    at step 'a'");
    CHECK(e == "std::runtime_error: weft: step 'a': two\\\nlines\n    at step 'a'");
    CHECK(task_error_text(e) == "std::runtime_error: weft: step 'a': two\nlines");
    CHECK(task_error("odd: type", "m", "") == "odd:::type: m\n");
    CHECK(task_error_text("odd:::type: m\n") == "odd: type: m");
    // As a Python worker writes it (TaskRunError.serialize(include_metadata=True)).
    CHECK(task_error_text("ValueError: boom\nTraceback (most recent call last):\n  File \"w.py\"\n\n"
                          "{\"__hatchet_error_metadata__\": {\"task_run_external_id\": \"x\"}}") == "ValueError: boom");
    CHECK(task_error_text("no newline: as is") == "no newline: as is");
}

TEST_CASE("replace_definitions is always or never; another value is refused, naming where it came from") {
    weft::config c;
    CHECK(weft::hatchet_detail::options_from(c).replace_definitions == "always");
    c.set("hatchet.replace_definitions", "never", "WEFT_HATCHET_REPLACE_DEFINITIONS");
    CHECK(weft::hatchet_detail::options_from(c).replace_definitions == "never");
    c.set("hatchet.replace_definitions", "merge", "WEFT_HATCHET_REPLACE_DEFINITIONS");
    CHECK_THROWS_WITH(weft::hatchet_detail::options_from(c),
                      Catch::Contains("replace_definitions 'merge' (from WEFT_HATCHET_REPLACE_DEFINITIONS)") &&
                          Catch::Contains("\"always\" and \"never\""));
}
