// weft's one log and metrics schema without a server: the JSON line's fields, the text form,
// levels, secrets kept out, the Prometheus exposition, and the events the embedded engine and the
// kit's task pipeline emit for real runs. The server backends' workers emit through the same kit
// calls; their integration tests check the lines they write.
#include <catch2/catch.hpp>

#include <weft/kit/worker.hpp>
#include <weft/step_table.hpp>
#include <weft/telemetry.hpp>
#include <weft/weft.hpp>

#include <boost/json/parse.hpp>

#include <mutex>
#include <regex>
#include <set>

#include "../engine_steps.hpp"

using namespace std::chrono_literals;
namespace telemetry = weft::telemetry;
using telemetry::severity;

namespace {

struct captured {
    std::mutex m;
    std::vector<std::string> lines;

    explicit captured(severity min = severity::debug, telemetry::log_format f = telemetry::log_format::json) {
        telemetry::configure({.format = f, .min_level = min, .sink = [this](std::string_view l) {
                                  std::lock_guard g(m);
                                  lines.emplace_back(l);
                              }});
    }
    ~captured() { telemetry::configure({.format = telemetry::log_format::json, .min_level = severity::off}); }

    std::vector<boost::json::object> objects() {
        std::lock_guard g(m);
        std::vector<boost::json::object> out;
        for (auto& l : lines) out.push_back(boost::json::parse(l).as_object());  // throws if a line is not JSON
        return out;
    }
    std::vector<boost::json::object> with_event(std::string_view ev) {
        std::vector<boost::json::object> out;
        for (auto& o : objects())
            if (o.at("event").as_string() == ev) out.push_back(o);
        return out;
    }
};

std::string str(const boost::json::object& o, std::string_view key) {
    auto it = o.find(key);
    return it == o.end() ? std::string("<absent>") : std::string(it->value().as_string());
}

// The value of the series whose line starts with `prefix` ("name{labels}"); -1 when absent.
double series(const std::string& text, const std::string& prefix) {
    std::size_t at = 0;
    while ((at = text.find(prefix + " ", at)) != std::string::npos) {
        if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + prefix.size() + 1));
        at += prefix.size();
    }
    return -1;
}

}  // namespace

TEST_CASE("a JSON line carries the schema's fields, leaves out the empty ones, and escapes what it must") {
    captured c;
    telemetry::emit({.level = severity::warning, .event = "step.retrying", .backend = "celery", .workflow = "wf",
                     .run_id = "r-1", .step = "s\"1\n", .attempt = 2, .duration_ms = 12.5, .error = "boom",
                     .worker = "w@h", .message = "tab\there"});
    telemetry::emit({.level = severity::info, .event = "worker.message", .message = "plain"});
    telemetry::emit({.level = severity::error, .event = "fetch.failed", .error = "bad \xff byte, \xc3\xa9 kept"});
    auto o = c.objects();  // every line parses, the one with a byte that is not UTF-8 too
    REQUIRE(o.size() == 3);
    CHECK(str(o[2], "error") == "bad \xef\xbf\xbd byte, \xc3\xa9 kept");
    CHECK(str(o[0], "level") == "warning");
    CHECK(str(o[0], "event") == "step.retrying");
    CHECK(str(o[0], "backend") == "celery");
    CHECK(str(o[0], "workflow") == "wf");
    CHECK(str(o[0], "run_id") == "r-1");
    CHECK(str(o[0], "step") == "s\"1\n");
    CHECK(o[0].at("attempt").as_int64() == 2);
    CHECK(o[0].at("duration_ms").to_number<double>() == Approx(12.5));
    CHECK(str(o[0], "error") == "boom");
    CHECK(str(o[0], "worker") == "w@h");
    CHECK(std::regex_match(str(o[0], "time"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
    for (auto key : {"backend", "workflow", "run_id", "step", "attempt", "duration_ms", "error", "worker"})
        CHECK(!o[1].contains(key));
    CHECK(str(o[1], "message") == "plain");
}

TEST_CASE("lines below the level are not written; the text form is one readable line") {
    {
        captured c(severity::warning);
        telemetry::emit({.level = severity::info, .event = "worker.message", .message = "hidden"});
        telemetry::emit({.level = severity::error, .event = "step.failed", .message = "shown"});
        CHECK(c.objects().size() == 1);
        CHECK(!telemetry::wanted(severity::info));
        CHECK(telemetry::wanted(severity::error));
    }
    captured t(severity::debug, telemetry::log_format::text);
    telemetry::emit({.level = severity::error, .event = "step.failed", .backend = "hatchet", .workflow = "wf",
                     .run_id = "r9", .step = "parse", .attempt = 3, .duration_ms = 4.0, .error = "bad input"});
    REQUIRE(t.lines.size() == 1);
    CHECK(std::regex_search(t.lines[0], std::regex(R"(^\d\d:\d\d:\d\d\.\d{3} ERROR step\.failed \[hatchet\] wf/parse run=r9 attempt=3 4\.0 ms: bad input$)")));
}

TEST_CASE("levels and formats are read from text, and a bad one names its origin") {
    CHECK(telemetry::level_from("warn", "x") == severity::warning);
    CHECK(telemetry::format_from("json", "x") == telemetry::log_format::json);
    CHECK_THROWS_WITH(telemetry::level_from("loud", "--log-level"),
                      "weft: bad log level 'loud' (from --log-level): expected debug, info, warning, error or off");
    CHECK_THROWS_WITH(telemetry::format_from("xml", "WEFT_LOG_FORMAT"),
                      "weft: bad log format 'xml' (from WEFT_LOG_FORMAT): expected json, text or auto");
}

TEST_CASE("secrets never reach a line or a metric, nor does a URL's password") {
    captured c;
    telemetry::collect_metrics(true);
    telemetry::add_secret("s3cr3t-token-value");
    telemetry::emit({.level = severity::error, .event = "step.failed", .backend = "hatchet", .workflow = "wf",
                     .step = "s3cr3t-token-value", .error = "auth s3cr3t-token-value refused by redis://:pw0rd@127.0.0.1:1/0",
                     .message = "token=s3cr3t-token-value"});
    REQUIRE(c.lines.size() == 1);
    CHECK(c.lines[0].find("s3cr3t") == std::string::npos);
    CHECK(c.lines[0].find("pw0rd") == std::string::npos);
    CHECK(c.lines[0].find("redis://:***@127.0.0.1:1/0") != std::string::npos);
    CHECK(telemetry::metrics_text().find("s3cr3t") == std::string::npos);
    CHECK(telemetry::redact("a s3cr3t-token-value b") == "a *** b");
    telemetry::collect_metrics(false);
}

TEST_CASE("metrics count the events in Prometheus' text format") {
    telemetry::collect_metrics(true);
    telemetry::configure({.min_level = severity::off, .sink = [](std::string_view) {}});
    for (int i = 0; i < 3; ++i)
        telemetry::emit({.level = severity::debug, .event = "step.started", .backend = "celery", .workflow = "m", .step = "a"});
    telemetry::emit({.level = severity::debug, .event = "step.succeeded", .backend = "celery", .workflow = "m", .step = "a",
                     .duration_ms = 3.0});
    telemetry::emit({.level = severity::debug, .event = "step.succeeded", .backend = "celery", .workflow = "m", .step = "a",
                     .duration_ms = 700.0});
    telemetry::emit({.level = severity::warning, .event = "step.retrying", .backend = "celery", .workflow = "m", .step = "a",
                     .duration_ms = 1.0});
    telemetry::emit({.level = severity::debug, .event = "run.started", .backend = "celery", .workflow = "m"});
    telemetry::emit({.level = severity::debug, .event = "run.started", .backend = "celery", .workflow = "m"});
    telemetry::emit({.level = severity::debug, .event = "run.succeeded", .backend = "celery", .workflow = "m"});
    telemetry::emit({.level = severity::debug, .event = "fetch.done", .backend = "celery", .duration_ms = 2.0});
    telemetry::emit({.level = severity::info, .event = "fetch.recovered", .backend = "celery"});
    const std::string m = telemetry::metrics_text();
    const std::string step = R"({backend="celery",workflow="m",step="a"})";
    CHECK(series(m, "weft_steps_started_total" + step) == 3);
    CHECK(series(m, "weft_steps_succeeded_total" + step) == 2);
    CHECK(series(m, "weft_steps_retried_total" + step) == 1);
    CHECK(series(m, "weft_step_duration_seconds_count" + step) == 3);
    CHECK(series(m, "weft_step_duration_seconds_sum" + step) == Approx(0.704));
    CHECK(series(m, R"(weft_step_duration_seconds_bucket{backend="celery",workflow="m",step="a",le="0.005"})") == 2);
    CHECK(series(m, R"(weft_step_duration_seconds_bucket{backend="celery",workflow="m",step="a",le="0.5"})") == 2);
    CHECK(series(m, R"(weft_step_duration_seconds_bucket{backend="celery",workflow="m",step="a",le="1"})") == 3);
    CHECK(series(m, R"(weft_step_duration_seconds_bucket{backend="celery",workflow="m",step="a",le="+Inf"})") == 3);
    CHECK(series(m, R"(weft_runs_in_flight{backend="celery",workflow="m"})") == 1);
    CHECK(series(m, R"(weft_runs_finished_total{backend="celery",workflow="m",state="succeeded"})") == 1);
    CHECK(series(m, R"(weft_fetch_duration_seconds_count{backend="celery"})") == 1);
    CHECK(series(m, R"(weft_reconnects_total{backend="celery"})") == 1);
    CHECK(m.find("# TYPE weft_step_duration_seconds histogram\n") != std::string::npos);
    CHECK(m.find("# TYPE weft_runs_in_flight gauge\n") != std::string::npos);
    telemetry::collect_metrics(false);
}

TEST_CASE("the embedded engine reports each attempt and the run's end with the run's id") {
    engine_steps::flaky_calls = 0;
    captured c;
    weft::client<weft::local> client;
    auto r = client.start(engine_steps::diamond, 4);
    CHECK(r.get() == "n=4 sum=10");
    auto flaky = client.start(weft::workflow<"flaky_wf">(weft::step<engine_steps::flaky>), 2);
    CHECK(flaky.get() == 23);

    auto started = c.with_event("step.started"), succeeded = c.with_event("step.succeeded");
    std::set<std::string> diamond_steps;
    for (auto& o : succeeded)
        if (str(o, "run_id") == r.id()) {
            diamond_steps.insert(str(o, "step"));
            CHECK(str(o, "backend") == "local");
            CHECK(str(o, "workflow") == "diamond");
            CHECK(o.at("attempt").as_int64() == 1);
            CHECK(o.at("duration_ms").to_number<double>() >= 0);
        }
    CHECK(diamond_steps == std::set<std::string>{"load", "sum", "label", "report"});
    auto retries = c.with_event("step.retrying");
    REQUIRE(retries.size() == 2);
    CHECK(str(retries[0], "error") == "transient failure 1");
    CHECK(str(retries[1], "level") == "warning");
    CHECK(retries[1].at("attempt").as_int64() == 2);
    int run_ends = 0;
    for (auto& o : c.with_event("run.succeeded")) run_ends += str(o, "run_id") == r.id() || str(o, "run_id") == flaky.id();
    CHECK(run_ends == 2);
}

namespace {
struct halve {
    static constexpr std::string_view name = "halve";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 2}};
    int operator()(int x) const {
        if (x % 2) throw std::domain_error("odd");
        return x / 2;
    }
};
constexpr auto halving = weft::workflow<"halving">(weft::step<halve>);

struct plain_task {
    std::string args;
    int attempt;
};
struct plain_hooks {
    const weft::erased_step& s;
    const weft::erased_step* find(const plain_task&) const { return &s; }
    void begin(plain_task& t, const weft::erased_step&, weft::kit::task_context& ctx) {
        ctx.attempt = t.attempt;
        ctx.run_id = "run-" + std::to_string(t.attempt);
    }
    weft::json::array decode(const plain_task& t, const weft::erased_step&) { return weft::json::parse(t.args).as_array(); }
    void report(plain_task&, const weft::erased_step*, weft::kit::step_outcome&, weft::kit::task_context&) {}
};
}  // namespace

TEST_CASE("a server worker's attempts, through kit::run_task, follow the step's retry policy") {
    captured c;
    const weft::kit::origin who{.backend = "celery", .worker = "weft@test"};
    auto table = weft::step_table(halving);
    plain_hooks hooks{table[0]};
    for (auto [args, attempt] : {std::pair{"[4]", 1}, {"[3]", 1}, {"[3]", 2}, {"[\"x\"]", 1}}) {
        plain_task t{args, attempt};
        weft::kit::task_context ctx;
        ctx.who = &who;
        weft::kit::run_task(hooks, t, ctx);
    }
    auto ok = c.with_event("step.succeeded"), retry = c.with_event("step.retrying"), failed = c.with_event("step.failed");
    REQUIRE(ok.size() == 1);
    CHECK(str(ok[0], "worker") == "weft@test");
    CHECK(str(ok[0], "run_id") == "run-1");
    CHECK(str(ok[0], "workflow") == "halving");
    REQUIRE(retry.size() == 1);  // attempt 1 of 2
    CHECK(str(retry[0], "error") == "std::domain_error: odd");
    REQUIRE(failed.size() == 2);  // attempt 2 of 2, and a bad payload (no retry would do better)
    CHECK(failed[0].at("attempt").as_int64() == 2);
    CHECK(str(failed[1], "error").find("weft.bad_payload") == 0);
    CHECK(c.with_event("step.started").size() == 4);
}
