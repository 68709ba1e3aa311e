// Remote control and events on the wire, against bytes recorded from Python Celery 5.7's worker
// and app.control (tests/celery/fixtures/pidbox_*.json, event_*.json; capture_fixtures.py).
#include <catch2/catch.hpp>

#include "codec.hpp"
#include "fixture.hpp"
#include "pidbox.hpp"

#include <fstream>
#include <set>
#include <sstream>

using namespace weft::celery_wire;
namespace json = weft::json;

namespace {

json::object envelope(const std::string& text) { return json::parse(text).as_object(); }
json::value body_of(const json::object& env) { return json::parse(base64_decode(env.at("body").as_string())); }
std::set<std::string> keys(const json::object& o) {
    std::set<std::string> out;
    for (auto& kv : o) out.insert(std::string(kv.key()));
    return out;
}
}  // namespace

TEST_CASE("a recorded app.control call reads as a call for its destination, with where to reply") {
    auto r = decode_control(fixture("pidbox_ping.json"));
    CHECK(r.method == "ping");
    CHECK(r.arguments.empty());
    REQUIRE(r.destination);
    CHECK(*r.destination == std::vector<std::string>{"cap-4ab0a49708@nowhere"});
    CHECK(r.ticket == "e38b639d-c625-4c57-a3a2-7dc8e8c5f056");
    CHECK(r.reply_exchange == "reply.celery.pidbox");
    CHECK(r.reply_routing_key == "ad08d5e7-0b0c-3c24-ad34-488e66130eed");
    CHECK(r.clock == 2);
    CHECK(r.wants_reply());
    CHECK(addressed_to(r, "cap-4ab0a49708@nowhere"));
    CHECK_FALSE(addressed_to(r, "cpp@vm"));
    auto revoke = decode_control(fixture("pidbox_revoke.json"));
    CHECK_FALSE(revoke.wants_reply());  // app.control.revoke() is a cast
    CHECK(addressed_to(revoke, "cpp@vm"));
}

TEST_CASE("nodes are addressed by destination, else by a glob or pcre pattern, as kombu's Node does") {
    control_request r;
    r.method = "ping";
    r.pattern = "cpp@*";
    r.matcher = "glob";
    CHECK(addressed_to(r, "cpp@vm"));
    CHECK_FALSE(addressed_to(r, "py@vm"));
    r.matcher = "pcre";
    r.pattern = "cp+@";  // re.match: anchored at the start only
    CHECK(addressed_to(r, "cpp@vm"));
    CHECK_FALSE(addressed_to(r, "xcpp@vm"));
    r.pattern = "(((";  // a bad regex addresses nobody, and throws nothing
    CHECK_FALSE(addressed_to(r, "cpp@vm"));
    r.matcher = "nonsense";
    CHECK_FALSE(addressed_to(r, "cpp@vm"));
    r.destination = std::vector<std::string>{"py@vm"};  // a destination wins over a pattern
    CHECK(addressed_to(r, "py@vm"));
    CHECK_FALSE(addressed_to(r, "cpp@vm"));
}

TEST_CASE("weft's reply has the shape of the recorded Python reply") {
    auto python = envelope(fixture("pidbox_reply_ping.json"));
    control_request call;
    call.method = "ping";
    call.ticket = "e38b639d-c625-4c57-a3a2-7dc8e8c5f056";
    call.reply_exchange = "reply.celery.pidbox";
    call.reply_routing_key = "cap-4ab0a49708-oid";
    auto ours = envelope(control_reply(call, "cap-4ab0a49708@vm", json::object{{"ok", "pong"}}, 4));
    CHECK(keys(ours) == keys(python));
    CHECK(ours.at("headers") == python.at("headers"));
    auto props = ours.at("properties").as_object(), pprops = python.at("properties").as_object();
    CHECK(keys(props) == keys(pprops));
    props.erase("delivery_tag");
    pprops.erase("delivery_tag");
    CHECK(props == pprops);
    CHECK(body_of(ours) == body_of(python));
}

TEST_CASE("weft's events carry the fields and envelope of the recorded Python events") {
    auto python = envelope(fixture("event_worker_heartbeat.json"));
    auto cmd = event_command("", 0, "worker-heartbeat",
                             {{"freq", 2.0}, {"active", 0}, {"processed", 2}, {"loadavg", load_average()},
                              {"sw_ident", "weft-celery"}, {"sw_ver", "0.1.0"}, {"sw_sys", "Linux"}},
                             "cap-4ab0a49708@vm", 9);
    REQUIRE(cmd.size() == 3);
    CHECK(cmd[0] == "PUBLISH");
    CHECK(cmd[1] == "/0.celeryev/worker.heartbeat");  // the fanout kombu's Redis transport publishes to
    auto ours = envelope(cmd[2]);
    CHECK(keys(ours) == keys(python));
    CHECK(ours.at("headers") == python.at("headers"));
    auto props = ours.at("properties").as_object(), pprops = python.at("properties").as_object();
    props.erase("delivery_tag");
    pprops.erase("delivery_tag");
    CHECK(props == pprops);
    auto body = body_of(ours).as_object(), pbody = body_of(python).as_object();
    CHECK(keys(body) == keys(pbody));
    CHECK(body.at("type") == "worker-heartbeat");
    CHECK(body.at("clock") == 9);
    CHECK(body.at("utcoffset").is_double());

    // Python sends task events in task.multi batches; each element has the fields weft sends alone.
    auto multi = body_of(envelope(fixture("event_task_multi.json"))).as_array();
    auto python_event = [&](std::string_view type) {
        for (auto& e : multi)
            if (e.as_object().at("type").as_string() == type) return e.as_object();
        FAIL("no " << type << " in event_task_multi.json");
        return json::object{};
    };
    auto succeeded = body_of(envelope(event_command("pre:", 3, "task-succeeded",
                                                    {{"uuid", "x"}, {"result", py_repr(json::value(42))}, {"runtime", 0.5}},
                                                    "n@h", 1)[2]))
                         .as_object();
    CHECK(keys(succeeded) == keys(python_event("task-succeeded")));
    CHECK(succeeded.at("result") == python_event("task-succeeded").at("result"));  // "42"
    auto received = python_event("task-received");
    CHECK(received.at("args").as_string() == py_repr_args(json::array{20, 22}));  // "(20, 22)"
    CHECK(event_command("pre:", 3, "task-failed", {}, "n@h", 1)[1] == "pre:/3.celeryev/task.failed");
}

TEST_CASE("values print as Python's repr prints them") {
    CHECK(py_repr(json::value(nullptr)) == "None");
    CHECK(py_repr(json::value(true)) == "True");
    CHECK(py_repr(json::value("n=3")) == "'n=3'");
    CHECK(py_repr(json::value("it's")) == "\"it's\"");
    CHECK(py_repr(json::value("both ' and \"")) == "'both \\' and \"'");
    CHECK(py_repr(json::value("a\nb\\")) == "'a\\nb\\\\'");
    CHECK(py_repr(json::value(1.0)) == "1.0");
    CHECK(py_repr(json::value(2.5)) == "2.5");
    CHECK(py_repr(json::value(1e16)) == "1e+16");
    CHECK(py_repr(json::value(0.0001)) == "0.0001");
    CHECK(py_repr(json::value(1e-05)) == "1e-05");
    CHECK(py_repr(json::value(-7)) == "-7");
    CHECK(py_repr(json::parse(R"([1, "x", {"k": null}])")) == "[1, 'x', {'k': None}]");
    CHECK(py_repr_args(json::array{"a"}) == "('a',)");
    CHECK(py_repr_args(json::array{}) == "()");
    CHECK(py_repr_exception({"ValueError", "builtins", json::array{"bad thing"}}) == "ValueError('bad thing')");
    CHECK(py_repr_exception({"KeyError", "builtins", json::array{}}) == "KeyError()");
}

TEST_CASE("a control message that cannot be read says what is wrong") {
    auto refused = [](const std::string& text) {
        try {
            decode_control(text);
        } catch (const wire_error& e) {
            return e.reason();
        }
        return std::string("accepted");
    };
    auto wrap = [](const std::string& body) { return R"({"body": ")" + base64_encode(body) + R"(", "headers": {}})"; };
    CHECK_THAT(refused("not json {"), Catch::Contains("is not JSON"));
    CHECK_THAT(refused("[1, 2, 3]"), Catch::Contains("not a JSON object"));  // what kills Python's worker
    CHECK_THAT(refused(R"({"body": 42})"), Catch::Contains("no body string"));
    CHECK_THAT(refused(wrap("[]")), Catch::Contains("body is not a JSON object"));
    CHECK_THAT(refused(wrap(std::string(100000, '['))), Catch::Contains("nested"));
    CHECK_THAT(refused(wrap(R"({"method": 5})")), Catch::Contains("method is not a string"));
    CHECK_THAT(refused(wrap(R"({"arguments": {}})")), Catch::Contains("names no method"));
    CHECK_THAT(refused(wrap(R"({"method": "ping", "arguments": [1]})")), Catch::Contains("arguments of 'ping'"));
    CHECK_THAT(refused(wrap(R"({"method": "ping", "destination": 7})")), Catch::Contains("destination of 'ping'"));
    CHECK_THAT(refused(wrap(R"({"method": "ping", "destination": [1]})")), Catch::Contains("not a string"));
    CHECK_THAT(refused(wrap(R"({"method": "ping", "reply_to": "x"})")), Catch::Contains("reply_to of 'ping'"));
    CHECK(refused(wrap(R"({"method": "ping", "destination": null, "reply_to": null})")) == "accepted");
    CHECK_THROWS_AS(revoke_arguments(json::parse(R"({"task_id": {"a": 1}})").as_object()), wire_error);
    CHECK_THROWS_AS(revoke_arguments(json::parse(R"({"task_id": "a", "terminate": "yes"})").as_object()), wire_error);
    CHECK(revoke_arguments(json::parse(R"({"task_id": ["a", "b"], "terminate": true})").as_object()).ids.size() == 2);
}
