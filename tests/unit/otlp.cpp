// weft::cli's trace exporter without a collector of ours: the OTLP JSON body (ExportTraceServiceRequest
// as the OTLP JSON encoding spells it), the endpoint from flags and OTEL_* variables, and the batching
// thread posting to a local HTTP server, dropping (and counting) what does not fit its queue.
#include <catch2/catch.hpp>

#include <weft/cli/traces.hpp>
#include <weft/telemetry.hpp>
#include <weft/trace.hpp>

#include <boost/json/parse.hpp>
#include <httplib.h>

#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace telemetry = weft::telemetry;
namespace bj = boost::json;

namespace {
telemetry::span_record sample() {
    telemetry::span_record r;
    r.name = "step/fetch";
    r.kind = telemetry::span_kind::consumer;
    r.trace = telemetry::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")->trace;
    r.span = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3};
    r.parent = telemetry::span_id{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    r.tracestate = "k=v";
    r.start_ns = 1764000000123456789ull;
    r.end_ns = 1764000000223456789ull;
    r.status = telemetry::span_status::error;
    r.status_message = "boom";
    r.attributes = {{"weft.step", std::string("fetch")}, {"weft.attempt", std::int64_t(2)},
                    {"ratio", 0.5}, {"retry", true}};
    return r;
}

const bj::object& value_of(const bj::array& attrs, std::string_view key) {
    for (auto& a : attrs)
        if (a.at("key").as_string() == key) return a.at("value").as_object();
    throw std::runtime_error("no attribute " + std::string(key));
}
}  // namespace

TEST_CASE("the OTLP JSON body spells ids as hex, times as strings, and kinds and status as OTLP numbers") {
    const std::vector<telemetry::span_record> spans{sample()};
    const bj::object body = bj::parse(weft::cli::otlp_json(spans, "billing")).as_object();
    const auto& rs = body.at("resourceSpans").as_array();
    REQUIRE(rs.size() == 1);
    CHECK(value_of(rs[0].at("resource").at("attributes").as_array(), "service.name").at("stringValue") == "billing");
    const auto& ss = rs[0].at("scopeSpans").as_array();
    REQUIRE(ss.size() == 1);
    CHECK(ss[0].at("scope").at("name") == "weft");
    const auto& s = ss[0].at("spans").as_array().at(0).as_object();
    CHECK(s.at("traceId") == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(s.at("spanId") == "deadbeef00010203");
    CHECK(s.at("parentSpanId") == "00f067aa0ba902b7");
    CHECK(s.at("traceState") == "k=v");
    CHECK(s.at("name") == "step/fetch");
    CHECK(s.at("kind").as_int64() == 5);  // SPAN_KIND_CONSUMER
    CHECK(s.at("startTimeUnixNano") == "1764000000123456789");
    CHECK(s.at("endTimeUnixNano") == "1764000000223456789");
    CHECK(s.at("status").at("code").as_int64() == 2);  // STATUS_CODE_ERROR
    CHECK(s.at("status").at("message") == "boom");
    const auto& attrs = s.at("attributes").as_array();
    CHECK(value_of(attrs, "weft.step").at("stringValue") == "fetch");
    CHECK(value_of(attrs, "weft.attempt").at("intValue") == "2");
    CHECK(value_of(attrs, "ratio").at("doubleValue").as_double() == 0.5);
    CHECK(value_of(attrs, "retry").at("boolValue").as_bool());
}

TEST_CASE("a root span has no parentSpanId and an unset status is code 0") {
    auto r = sample();
    r.parent.reset();
    r.tracestate.clear();
    r.status = telemetry::span_status::unset;
    r.status_message.clear();
    r.kind = telemetry::span_kind::producer;
    const std::vector<telemetry::span_record> spans{r};
    const bj::object body = bj::parse(weft::cli::otlp_json(spans, "x")).as_object();
    const auto& s = body.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").at(0).as_object();
    CHECK_FALSE(s.contains("parentSpanId"));
    CHECK_FALSE(s.contains("traceState"));
    CHECK(s.at("kind").as_int64() == 4);  // SPAN_KIND_PRODUCER
    CHECK(s.at("status").at("code").as_int64() == 0);
}

TEST_CASE("the traces URL comes from the flag, then the signal's variable, then the general one") {
    ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    ::unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    CHECK(weft::cli::traces_url("").empty());
    ::setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/", 1);
    CHECK(weft::cli::traces_url("") == "http://collector:4318/v1/traces");
    ::setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:1234/custom", 1);  // used as is (OTel spec)
    CHECK(weft::cli::traces_url("") == "http://other:1234/custom");
    CHECK(weft::cli::traces_url("http://flag:4318") == "http://flag:4318/v1/traces");
    CHECK(weft::cli::traces_url("http://flag:4318/v1/traces") == "http://flag:4318/v1/traces");
    ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    ::unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    CHECK_THROWS_AS(weft::cli::export_traces("ftp://nope"), weft::config_error);
}

namespace {
struct collector {
    httplib::Server http;
    int port = 0;
    std::thread thread;
    std::mutex m;
    std::vector<std::string> bodies, paths, types;
    int status = 200;
    collector() {
        http.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
            std::lock_guard l(m);
            bodies.push_back(req.body);
            paths.push_back(req.path);
            types.push_back(req.get_header_value("Content-Type"));
            res.status = status;
        });
        port = http.bind_to_any_port("127.0.0.1");
        thread = std::thread([this] { http.listen_after_bind(); });
    }
    ~collector() {
        http.stop();
        thread.join();
    }
    std::size_t spans() {
        std::lock_guard l(m);
        std::size_t n = 0;
        for (auto& b : bodies)
            n += bj::parse(b).at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array().size();
        return n;
    }
};
}  // namespace

TEST_CASE("the exporter posts batches of finished spans to /v1/traces and flushes when stopped") {
    collector c;
    REQUIRE(weft::cli::export_traces({.endpoint = "http://127.0.0.1:" + std::to_string(c.port), .service = "t",
                                      .max_batch = 3, .interval = std::chrono::seconds(30)}));
    for (int i = 0; i < 7; ++i) telemetry::span("s" + std::to_string(i), telemetry::span_kind::internal, nullptr);
    weft::cli::stop_traces();
    CHECK(c.spans() == 7);
    std::lock_guard l(c.m);
    CHECK(c.bodies.size() >= 3);  // at most 3 a request
    for (auto& p : c.paths) CHECK(p == "/v1/traces");
    for (auto& t : c.types) CHECK(t == "application/json");
    // Uninstalled: spans are no longer recorded.
    telemetry::span after("after", telemetry::span_kind::internal, nullptr);
    CHECK_FALSE(after.active());
}

TEST_CASE("spans beyond the queue's bound are dropped and counted") {
    collector c;
    telemetry::collect_metrics(true);
    REQUIRE(weft::cli::export_traces({.endpoint = "http://127.0.0.1:" + std::to_string(c.port), .service = "t",
                                      .max_queue = 4, .max_batch = 100, .interval = std::chrono::seconds(30)}));
    for (int i = 0; i < 10; ++i) telemetry::span("s", telemetry::span_kind::internal, nullptr);
    weft::cli::stop_traces();
    CHECK(c.spans() == 4);
    const std::string m = telemetry::metrics_text();
    CHECK(m.find("weft_spans_dropped_total{} 6") != std::string::npos);
    telemetry::collect_metrics(false);
}

TEST_CASE("spans the collector refuses are counted as dropped") {
    collector c;
    c.status = 500;
    telemetry::collect_metrics(true);
    const auto before = telemetry::metrics_text();
    REQUIRE(weft::cli::export_traces({.endpoint = "http://127.0.0.1:" + std::to_string(c.port), .service = "t"}));
    for (int i = 0; i < 2; ++i) telemetry::span("s", telemetry::span_kind::internal, nullptr);
    weft::cli::stop_traces();
    CHECK(c.bodies.size() == 1);
    CHECK(telemetry::metrics_text().find("weft_spans_dropped_total{} 8") != std::string::npos);  // 6 before, +2
    telemetry::collect_metrics(false);
}
