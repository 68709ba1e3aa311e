// A long-lived client's /metrics and /healthz (weft::cli::metrics_server), scraped over HTTP after
// runs on the embedded engine: the run counters match the runs, and a bad address is refused by name.
#include <catch2/catch.hpp>

#include <weft/cli/serve.hpp>
#include <weft/telemetry.hpp>
#include <weft/weft.hpp>

#include <httplib.h>

#include "../engine_steps.hpp"

namespace {
double series(const std::string& text, const std::string& prefix) {
    for (std::size_t at = 0; (at = text.find(prefix + " ", at)) != std::string::npos; at += prefix.size())
        if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + prefix.size() + 1));
    return -1;
}
}  // namespace

TEST_CASE("a client's metrics are served over HTTP and count its runs") {
    weft::cli::metrics_server server("127.0.0.1:0");
    const std::string address = server.address();
    const auto colon = address.rfind(':');
    httplib::Client http(address.substr(0, colon), std::stoi(address.substr(colon + 1)));

    weft::client<weft::local> client;
    for (int i = 1; i <= 3; ++i) CHECK(client.start(engine_steps::diamond, i).get().find("sum=") != std::string::npos);

    auto res = http.Get("/metrics");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type").find("version=0.0.4") != std::string::npos);
    const std::string& m = res->body;
    CHECK(series(m, R"(weft_runs_finished_total{backend="local",workflow="diamond",state="succeeded"})") == 3);
    CHECK(series(m, R"(weft_runs_in_flight{backend="local",workflow="diamond"})") == 0);
    CHECK(series(m, R"(weft_steps_succeeded_total{backend="local",workflow="diamond",step="report"})") == 3);
    CHECK(series(m, R"(weft_step_duration_seconds_count{backend="local",workflow="diamond",step="load"})") == 3);

    auto health = http.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    weft::telemetry::set_health("fetching", false, "connection refused");
    health = http.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 503);
    CHECK(health->body.find("fetching: failing (connection refused)") != std::string::npos);
}

TEST_CASE("a metrics address that is not host:port, or not this machine's, is refused by name") {
    CHECK_THROWS_WITH(weft::cli::metrics_server("9464"), Catch::Contains("bad metrics address '9464'"));
    CHECK_THROWS_WITH(weft::cli::metrics_server("127.0.0.1:99999"), Catch::Contains("from 0 to 65535"));
    CHECK_THROWS_WITH(weft::cli::metrics_server("192.0.2.1:9464"), Catch::Contains("cannot listen on metrics address"));
}
