// W3C trace context and weft's spans without a server: traceparent parsing against hostile input,
// ids, the current context, the exporter hook, and the attempt span kit::run_task makes (a child of
// the context the task carried, current while the step runs, with the weft attributes).
#include <catch2/catch.hpp>

#include <weft/kit/carrier.hpp>
#include <weft/kit/worker.hpp>
#include <weft/step_table.hpp>
#include <weft/telemetry.hpp>
#include <weft/trace.hpp>
#include <weft/weft.hpp>

#include <boost/json/parse.hpp>

#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace telemetry = weft::telemetry;

namespace {
constexpr std::string_view good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct collected {
    std::mutex m;
    std::vector<telemetry::span_record> spans;
    collected() {
        telemetry::set_span_exporter([this](telemetry::span_record&& r) {
            std::lock_guard l(m);
            spans.push_back(std::move(r));
        });
    }
    ~collected() { telemetry::set_span_exporter({}); }
};

const telemetry::attribute_value* attr(const telemetry::span_record& r, std::string_view key) {
    for (auto& [k, v] : r.attributes)
        if (k == key) return &v;
    return nullptr;
}
}  // namespace

TEST_CASE("a valid traceparent reads back as it was written") {
    auto c = telemetry::parse_traceparent(good);
    REQUIRE(c);
    CHECK(telemetry::to_hex(c->trace) == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(telemetry::to_hex(c->span) == "00f067aa0ba902b7");
    CHECK(c->flags == 1);
    CHECK(c->sampled());
    CHECK(telemetry::format_traceparent(*c) == good);
    auto unsampled = telemetry::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    REQUIRE(unsampled);
    CHECK_FALSE(unsampled->sampled());
    CHECK(telemetry::parse_traceparent(std::string(" ") + std::string(good) + "\t"));  // OWS around the value
}

TEST_CASE("traceparent parsing refuses hostile input") {
    const std::vector<std::string> bad = {
        "",
        "00",
        std::string(good.substr(0, 54)),                                  // one short
        std::string(good) + "0",                                          // version 00 is exactly 55
        std::string(good) + "-extra",                                     // ... even with a dash
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",        // version ff is invalid
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",        // non-hex version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",        // all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",        // all-zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",        // uppercase (HEXDIGLC)
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",        // non-hex trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bx-01",        // non-hex span id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",        // non-hex flags
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",        // wrong separators
        "00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01",        // dashes in the wrong place
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",         // short flags
        "00-4bf92f3577b34da6a3ce929d0e0e4736a-0f067aa0ba902b7-01",        // long trace, short span
        std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").replace(10, 1, 1, '\0'),
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",       // a later version: '-' must follow
    };
    for (const std::string& s : bad) {
        INFO("traceparent: " << s);
        CHECK_FALSE(telemetry::parse_traceparent(s));
    }
}

TEST_CASE("a later traceparent version is read as version 00 when its prefix has that shape") {
    auto c = telemetry::parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-says");
    REQUIRE(c);
    CHECK(telemetry::to_hex(c->span) == "00f067aa0ba902b7");
    CHECK(telemetry::format_traceparent(*c).starts_with("00-"));  // we speak the version we know
}

TEST_CASE("new ids are random, lowercase hex, and never all zero") {
    std::set<std::string> traces, spans;
    for (int i = 0; i < 200; ++i) {
        traces.insert(telemetry::to_hex(telemetry::new_trace_id()));
        spans.insert(telemetry::to_hex(telemetry::new_span_id()));
    }
    CHECK(traces.size() == 200);
    CHECK(spans.size() == 200);
    for (auto& t : traces) {
        CHECK(t.size() == 32);
        CHECK(t.find_first_not_of("0123456789abcdef") == std::string::npos);
    }
    CHECK(spans.begin()->size() == 16);
}

TEST_CASE("a span is inert and free without an exporter or a context to continue") {
    telemetry::span s("nothing", telemetry::span_kind::internal, telemetry::current_context());
    CHECK_FALSE(s.active());
    CHECK(s.context() == nullptr);
}

TEST_CASE("a span continues a context even when nothing is exported, so the trace goes on downstream") {
    auto parent = *telemetry::parse_traceparent(good);
    telemetry::span s("child", telemetry::span_kind::producer, &parent);
    REQUIRE(s.active());
    CHECK(s.context()->trace == parent.trace);
    CHECK(s.context()->span != parent.span);
}

TEST_CASE("scoped_context makes a context current and restores the previous one") {
    CHECK(telemetry::current_context() == nullptr);
    auto outer = *telemetry::parse_traceparent(good);
    {
        telemetry::scoped_context a(outer);
        REQUIRE(telemetry::current_context());
        CHECK(telemetry::current_context()->span == outer.span);
        auto inner = outer;
        inner.span = telemetry::new_span_id();
        {
            telemetry::scoped_context b(inner);
            CHECK(telemetry::current_context()->span == inner.span);
        }
        CHECK(telemetry::current_context()->span == outer.span);
    }
    CHECK(telemetry::current_context() == nullptr);
}

TEST_CASE("the exporter receives finished spans with their parent, times and status") {
    collected got;
    auto parent = *telemetry::parse_traceparent(good);
    parent.tracestate = "vendor=1";
    {
        telemetry::span s("work", telemetry::span_kind::client, &parent);
        s.set("weft.step", std::string("a"));
        s.set("weft.attempt", std::int64_t(2));
        s.set("weft.attempt", std::int64_t(3));  // set again: replaced, not repeated
        s.set_error("it broke");
    }
    {
        telemetry::span root("root", telemetry::span_kind::internal, nullptr);  // a new trace
        root.set_ok();
        root.end();
        root.end();  // once only
    }
    REQUIRE(got.spans.size() == 2);
    const auto& w = got.spans[0];
    CHECK(w.name == "work");
    CHECK(w.kind == telemetry::span_kind::client);
    CHECK(w.trace == parent.trace);
    REQUIRE(w.parent);
    CHECK(*w.parent == parent.span);
    CHECK(w.tracestate == "vendor=1");
    CHECK(w.start_ns > 1'600'000'000'000'000'000ull);
    CHECK(w.end_ns >= w.start_ns);
    CHECK(w.status == telemetry::span_status::error);
    CHECK(w.status_message == "it broke");
    CHECK(w.attributes.size() == 2);
    REQUIRE(attr(w, "weft.attempt"));
    CHECK(std::get<std::int64_t>(*attr(w, "weft.attempt")) == 3);
    const auto& r = got.spans[1];
    CHECK_FALSE(r.parent);
    CHECK(r.trace != parent.trace);
    CHECK(r.status == telemetry::span_status::ok);
}

TEST_CASE("an unsampled context is propagated but not exported") {
    collected got;
    auto parent = *telemetry::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    {
        telemetry::span s("quiet", telemetry::span_kind::internal, &parent);
        CHECK(s.active());
        CHECK_FALSE(s.context()->sampled());
    }
    CHECK(got.spans.empty());
}

namespace {
struct triple {
    static constexpr std::string_view name = "triple";
    int operator()(int x) const {
        if (x < 0) throw std::invalid_argument("negative");
        if (auto* c = telemetry::current_context()) seen = telemetry::to_hex(c->span);
        return 3 * x;
    }
    static inline std::string seen;
};
constexpr auto tripling = weft::workflow<"tripling">(weft::step<triple>);

struct plain_task {
    std::string args;
    std::string traceparent;
};
struct carrier_hooks {
    const weft::erased_step& s;
    std::string reported_in;  // the span current while report ran
    const weft::erased_step* find(const plain_task&) const { return &s; }
    void begin(plain_task& t, const weft::erased_step&, weft::kit::task_context& ctx) {
        ctx.attempt = 2;
        ctx.run_id = "run-7";
        if (auto p = telemetry::parse_traceparent(t.traceparent)) ctx.parent = *p;
    }
    weft::json::array decode(const plain_task& t, const weft::erased_step&) { return weft::json::parse(t.args).as_array(); }
    void report(plain_task&, const weft::erased_step*, weft::kit::step_outcome&, weft::kit::task_context&) {
        auto* c = telemetry::current_context();
        reported_in = c ? telemetry::to_hex(c->span) : "<none>";
    }
};
}  // namespace

TEST_CASE("kit::run_task makes the attempt a child span of the carried context, current while the step runs") {
    collected got;
    std::vector<std::string> lines;
    telemetry::configure({.format = telemetry::log_format::json, .min_level = telemetry::severity::debug,
                          .sink = [&](std::string_view l) { lines.emplace_back(l); }});
    const weft::kit::origin who{.backend = "celery", .worker = "weft@test"};
    auto table = weft::step_table(tripling);
    carrier_hooks hooks{table[0]};
    plain_task ok{"[2]", std::string(good)}, bad{"[-1]", std::string(good)};
    weft::kit::task_context c1, c2;
    c1.who = c2.who = &who;
    weft::kit::run_task(hooks, ok, c1);
    const std::string reported_ok = hooks.reported_in;
    weft::kit::run_task(hooks, bad, c2);
    telemetry::configure({.format = telemetry::log_format::json, .min_level = telemetry::severity::off});
    CHECK(telemetry::current_context() == nullptr);  // nothing leaks out of the attempt

    REQUIRE(got.spans.size() == 2);
    const auto& s = got.spans[0];
    CHECK(s.name == "step/triple");
    CHECK(s.kind == telemetry::span_kind::consumer);
    CHECK(telemetry::to_hex(s.trace) == "4bf92f3577b34da6a3ce929d0e0e4736");
    REQUIRE(s.parent);
    CHECK(telemetry::to_hex(*s.parent) == "00f067aa0ba902b7");
    CHECK(triple::seen.empty() == false);
    CHECK(reported_ok == telemetry::to_hex(s.span));  // report runs inside the span
    REQUIRE(c1.span);                                  // and the backend keeps it for what follows
    CHECK(c1.span->span == s.span);
    CHECK(s.status == telemetry::span_status::ok);
    CHECK(std::get<std::string>(*attr(s, "weft.backend")) == "celery");
    CHECK(std::get<std::string>(*attr(s, "weft.workflow")) == "tripling");
    CHECK(std::get<std::string>(*attr(s, "weft.run_id")) == "run-7");
    CHECK(std::get<std::string>(*attr(s, "weft.step")) == "triple");
    CHECK(std::get<std::int64_t>(*attr(s, "weft.attempt")) == 2);
    CHECK(got.spans[1].status == telemetry::span_status::error);
    CHECK(got.spans[1].status_message.find("negative") != std::string::npos);

    // The step's log lines carry the span they happened in.
    int with_ids = 0;
    for (auto& l : lines) {
        auto o = boost::json::parse(l).as_object();
        if (o.at("event").as_string() != "step.started" && o.at("event").as_string() != "step.succeeded") continue;
        REQUIRE(o.contains("trace_id"));
        CHECK(o.at("trace_id").as_string() == "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(o.at("span_id").as_string().size() == 16);
        ++with_ids;
    }
    CHECK(with_ids >= 2);
}

TEST_CASE("log lines carry no trace fields outside a span") {
    std::vector<std::string> lines;
    telemetry::configure({.format = telemetry::log_format::json, .min_level = telemetry::severity::debug,
                          .sink = [&](std::string_view l) { lines.emplace_back(l); }});
    telemetry::emit({.event = "worker.started", .backend = "celery"});
    telemetry::configure({.format = telemetry::log_format::json, .min_level = telemetry::severity::off});
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("trace_id") == std::string::npos);
}

TEST_CASE("a JSON carrier is written as Python's payload converter writes it and read leniently") {
    auto c = *telemetry::parse_traceparent(good);
    CHECK(weft::kit::carrier_json(c) == std::string("{\"traceparent\":\"") + std::string(good) + "\"}");
    c.tracestate = "a=1,b=2";
    CHECK(weft::kit::carrier_json(c) ==
          std::string("{\"traceparent\":\"") + std::string(good) + "\",\"tracestate\":\"a=1,b=2\"}");
    auto back = weft::kit::context_from_json(weft::kit::carrier_json(c));
    REQUIRE(back);
    CHECK(back->span == c.span);
    CHECK(back->tracestate == "a=1,b=2");
    // Hatchet's metadata: other keys around it.
    CHECK(weft::kit::context_from_json(std::string("{\"weft.workflow\":\"x\",\"traceparent\":\"") + std::string(good) + "\"}"));
    for (std::string bad : {"", "not json", "[1]", "{}", "{\"traceparent\":5}", "{\"traceparent\":\"00-zz\"}",
                            "{\"traceparent\":\"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}"}) {
        INFO("carrier: " << bad);
        CHECK_FALSE(weft::kit::context_from_json(bad));
    }
}
