// weft::flags::ofrep_source against an OFREP server on 127.0.0.1 that this test runs (cpp-httplib):
// the request it sends, a success, the protocol's error shape, a bare HTTP error, no server.
#include <catch2/catch.hpp>

#include <weft/json.hpp>
#include <weft/router/flags.hpp>

#include <httplib.h>

#include <mutex>
#include <thread>

namespace {

struct ofrep_server {
    httplib::Server server;
    std::thread thread;
    int port = 0;
    std::mutex mutex;
    std::string last_path, last_body, last_auth;

    ofrep_server() {
        server.Post(R"(/ofrep/v1/evaluate/flags/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
            {
                std::lock_guard lock(mutex);
                last_path = req.path;
                last_body = req.body;
                last_auth = req.get_header_value("Authorization");
            }
            auto key = req.matches[1].str();
            if (key == "weft.ingest") {
                auto ctx = weft::json::parse(req.body).at("context").as_object();
                bool acme = ctx.contains("tenant") && ctx.at("tenant") == "acme";
                res.set_content(std::string(R"({"key": "weft.ingest", "reason": "TARGETING_MATCH", "variant": ")") +
                                    (acme ? "temporal" : "celery") + R"(", "value": ")" + (acme ? "temporal" : "celery") +
                                    R"(", "metadata": {"owner": "ops"}})",
                                "application/json");
            } else if (key == "missing") {
                res.status = 404;
                res.set_content(R"({"key": "missing", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "flag missing was not found"})",
                                "application/json");
            } else {
                res.status = 503;
                res.set_content("overloaded", "text/plain");
            }
        });
        port = server.bind_to_any_port("127.0.0.1");
        thread = std::thread([this] { server.listen_after_bind(); });
        while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~ofrep_server() {
        server.stop();
        thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

}  // namespace

TEST_CASE("ofrep_source posts the context and reads the evaluation") {
    ofrep_server s;
    weft::flags::ofrep_source source(s.url() + "/", {.timeout = std::chrono::milliseconds(2000), .headers = {{"Authorization", "Bearer t0ken"}}});
    auto e = source.evaluate("weft.ingest", {.targeting_key = "run-1", .attributes = {{"tenant", "acme"}}});
    CHECK(e.reason == "TARGETING_MATCH");
    CHECK(e.variant == "temporal");
    CHECK(e.value == "temporal");
    CHECK(e.error_code.empty());
    std::lock_guard lock(s.mutex);
    CHECK(s.last_path == "/ofrep/v1/evaluate/flags/weft.ingest");
    CHECK(weft::json::parse(s.last_body) == weft::json::parse(R"({"context": {"tenant": "acme", "targetingKey": "run-1"}})"));
    CHECK(s.last_auth == "Bearer t0ken");
}

TEST_CASE("ofrep_source reports the protocol's errors and unreachable servers") {
    ofrep_server s;
    weft::flags::ofrep_source source(s.url());
    auto missing = source.evaluate("missing", {});
    CHECK(missing.reason == "ERROR");
    CHECK(missing.error_code == "FLAG_NOT_FOUND");
    CHECK(missing.error_message == "flag missing was not found");
    auto busy = source.evaluate("busy", {});
    CHECK(busy.error_code == "GENERAL");
    CHECK(busy.error_message == "HTTP 503");

    int port = s.port;
    s.server.stop();
    weft::flags::ofrep_source gone("http://127.0.0.1:" + std::to_string(port), {.timeout = std::chrono::milliseconds(300), .headers = {}});
    auto none = gone.evaluate("weft.ingest", {});
    CHECK(none.reason == "ERROR");
    CHECK(none.error_code == "GENERAL");
    CHECK_THAT(none.error_message, Catch::StartsWith("no answer"));
}
