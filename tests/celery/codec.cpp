// The Celery wire codec against bytes recorded from Python Celery 5.7 (tests/celery/fixtures/,
// regenerate with tests/celery/capture_fixtures.py).
#include <catch2/catch.hpp>

#include "codec.hpp"
#include "fixture.hpp"
#include "pidbox.hpp"
#include "transport.hpp"

#include <boost/json/serialize.hpp>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

using namespace weft::celery_wire;
namespace json = weft::json;


TEST_CASE("a Python apply_async envelope decodes to its task, id, args and queue") {
    auto m = decode_envelope(fixture("envelope_simple.json"));
    CHECK(m.task == "etl.add");
    CHECK(m.id == "79671bc4-ca31-4c7f-9fa4-2f72e957780b");
    CHECK(m.root_id == m.id);
    CHECK(!m.parent_id);
    REQUIRE(m.args.size() == 2);
    CHECK(m.args[0].is_int64());  // ints stay ints
    CHECK(m.args[0].get_int64() == 2);
    CHECK(m.queue.rfind("weft-capture-", 0) == 0);
    CHECK(m.delivery_tag == "37701e85-6f31-4f0c-ae63-dbbf47d0a874");
    CHECK(m.chain.empty());
    CHECK(!m.chord);
}

TEST_CASE("priority, eta, expires and [hard, soft] time limits are read from a recorded envelope") {
    auto m = decode_envelope(fixture("envelope_priority_eta.json"));
    CHECK(m.priority == 5);
    REQUIRE(m.eta);
    CHECK(parse_iso(*m.eta).has_value());
    REQUIRE(m.expires);
    CHECK(*parse_iso(*m.expires) > *parse_iso(*m.eta));
    CHECK(m.hard_time_limit == 10.0);
    CHECK(m.soft_time_limit == 5.0);
    CHECK(priority_list("q", m.priority) == std::string("q\x06\x16" "3"));
}

TEST_CASE("a recorded chain carries the remaining steps in reverse order, next step last") {
    auto m = decode_envelope(fixture("envelope_chain.json"));
    REQUIRE(m.chain.size() == 2);
    CHECK(m.chain.back().task == "etl.scale");
    CHECK(m.chain.back().args.size() == 1);
    CHECK(!m.chain.back().immutable);
    CHECK(m.chain.front().task == "etl.tsum");
    CHECK(m.chain.front().immutable);
    CHECK(!m.chain.back().task_id().empty());
    CHECK(m.chain.back().queue() == m.queue);
}

TEST_CASE("recorded chord headers carry the group, their index and the body signature") {
    auto h0 = decode_envelope(fixture("envelope_chord_header0.json"));
    auto h1 = decode_envelope(fixture("envelope_chord_header1.json"));
    REQUIRE(h0.group);
    CHECK(h0.group == h1.group);
    CHECK(h0.group_index == 0);
    CHECK(h1.group_index == 1);
    REQUIRE(h0.chord);
    CHECK(h0.chord->task == "etl.tsum");
    CHECK(h0.chord->task_id() == h1.chord->task_id());
    // Celery >= 5.6 freezes the body with the group id in its options.
    CHECK(h0.chord->options.at("group_id").as_string() == *h0.group);
}

TEST_CASE("an envelope weft encodes decodes to the same message, and has what Python requires") {
    message m;
    m.task = "etl.add";
    m.id = new_id();
    m.root_id = m.id;
    m.args = json::array{2, 3};
    m.queue = "weft";
    m.priority = 6;
    m.group = "g";
    m.group_index = 1;
    signature next;
    next.task = "etl.scale";
    next.args = json::array{10};
    next.options["task_id"] = "t2";
    next.options["queue"] = "celery";
    m.chain.push_back(next);
    auto text = encode_envelope(m);
    auto v = json::parse(text).as_object();
    // Without delivery_info.exchange a Python worker process dies (KeyError('exchange')).
    CHECK(v.at("properties").as_object().at("delivery_info").as_object().contains("exchange"));
    CHECK(!v.at("properties").as_object().at("delivery_tag").as_string().empty());
    CHECK(v.at("headers").as_object().at("timelimit").as_array().size() == 2);
    CHECK(v.at("headers").as_object().contains("stamps"));
    auto back = decode_envelope(text);
    CHECK(back.task == m.task);
    CHECK(back.id == m.id);
    CHECK(back.args == m.args);
    CHECK(back.priority == 6);
    CHECK(back.group == m.group);
    CHECK(back.group_index == 1);
    REQUIRE(back.chain.size() == 1);
    CHECK(back.chain[0].task_id() == "t2");
    CHECK(back.chain[0].queue() == "celery");
}

TEST_CASE("the body weft encodes for a recorded message equals Python's body") {
    auto m = decode_envelope(fixture("envelope_chain.json"));
    auto env = json::parse(fixture("envelope_chain.json")).as_object();
    auto python_body = json::parse(base64_decode(env.at("body").as_string()));
    CHECK(json::parse(encode_body(m)) == python_body);
}

TEST_CASE("recorded result metas decode: success value, failure exception, NotRegistered") {
    auto ok = decode_meta(fixture("meta_success.json"));
    CHECK(ok.state == task_state::success);
    CHECK(ok.result == json::value(42));
    CHECK(ok.date_done.has_value());
    auto bad = decode_meta(fixture("meta_failure.json"));
    CHECK(bad.state == task_state::failure);
    REQUIRE(bad.exception());
    CHECK(bad.exception()->type == "ValueError");
    CHECK(bad.exception()->module == "builtins");
    CHECK(bad.exception()->text() == "ValueError: bad thing");
    CHECK(bad.traceback->find("Traceback") == 0);
    auto nr = decode_meta(fixture("meta_not_registered.json"));
    CHECK(nr.exception()->type == "NotRegistered");
    CHECK(nr.exception()->module == "celery.exceptions");
}

TEST_CASE("a meta weft encodes has the fields and shape of Python's") {
    auto py = json::parse(fixture("meta_failure.json")).as_object();
    task_meta m;
    m.task_id = "x";
    m.state = task_state::failure;
    m.result = exception_info{"ValueError", "builtins", json::array{"bad thing"}}.to_value();
    m.traceback = "tb";
    m.date_done = iso_utc(std::chrono::system_clock::now());
    auto ours = json::parse(encode_meta(m)).as_object();
    for (auto& kv : py) CHECK(ours.contains(kv.key()));
    CHECK(ours.at("result") == py.at("result"));
}

TEST_CASE("a meta's retries (result_extended's field) round-trips, and is absent when unknown") {
    task_meta m;
    m.task_id = "x";
    m.state = task_state::success;
    CHECK_FALSE(decode_meta(encode_meta(m)).retries.has_value());
    m.retries = 2;
    CHECK(json::parse(encode_meta(m)).as_object().at("retries") == json::value(2));
    CHECK(decode_meta(encode_meta(m)).retries == 2);
}

TEST_CASE("truncated, non-JSON and headless messages are rejected with a reason and the id when readable") {
    auto whole = fixture("envelope_simple.json");
    CHECK_THROWS_WITH(decode_envelope(whole.substr(0, whole.size() / 2)), Catch::Contains("not JSON"));
    CHECK_THROWS_WITH(decode_envelope("[1,2]"), Catch::Contains("not a JSON object"));
    auto env = json::parse(whole).as_object();
    env["body"] = "!!!notbase64";
    try {
        decode_envelope(boost::json::serialize(env));
        FAIL("accepted a bad body");
    } catch (const wire_error& e) {
        CHECK(e.id() == "79671bc4-ca31-4c7f-9fa4-2f72e957780b");
        CHECK(e.task() == "etl.add");
        CHECK(e.reason().find("base64") != std::string::npos);
    }
    env = json::parse(whole).as_object();
    env["headers"].as_object().erase("task");
    CHECK_THROWS_WITH(decode_envelope(boost::json::serialize(env)), Catch::Contains("headers.task is missing"));
}

TEST_CASE("ISO times with and without offsets, and base64, round-trip") {
    auto t = std::chrono::system_clock::now();
    auto back = parse_iso(iso_utc(t));
    REQUIRE(back);
    CHECK(std::chrono::abs(*back - t) < std::chrono::microseconds(2));
    CHECK(parse_iso("2026-11-26T10:00:00+01:00") == parse_iso("2026-11-26T09:00:00"));
    CHECK(!parse_iso("yesterday"));
    for (std::string s : {"", "a", "ab", "abc", "abcd", "\x06\x16\xff"}) CHECK(base64_decode(base64_encode(s)) == s);
}

TEST_CASE("times past 2262 saturate instead of overflowing system_clock, and impossible dates are refused") {
    using std::chrono::system_clock;
    CHECK(parse_iso("2300-01-01T00:00:00+00:00") == system_clock::time_point::max());
    CHECK(parse_iso("9999-12-31T23:59:59.999999+00:00") == system_clock::time_point::max());
    CHECK(parse_iso("1500-01-01T00:00:00") == system_clock::time_point::min());
    CHECK(parse_iso("2262-04-11T23:47:15.5Z")->time_since_epoch() == std::chrono::milliseconds(9223372035500));
    CHECK(parse_iso("1970-01-01T01:00:00+01:00")->time_since_epoch().count() == 0);
    CHECK(parse_iso("1970-01-01 00:00:00-0130")->time_since_epoch() == std::chrono::minutes(90));
    CHECK(parse_iso("2024-02-29T12:00:00+05"));
    for (std::string bad : {"2023-02-29T00:00:00", "2026-13-01T00:00:00", "2026-00-10T00:00:00", "2026-11-31T00:00:00",
                            "2026-11-26T24:00:00", "2026-11-26T10:60:00", "2026-11-26T10:00:60", "0000-01-01T00:00:00",
                            "2026-+1-01T00:00:00", "2026- 1-01T00:00:00", "2026-11-26T10:00:00.", "10000-01-01T00:00:00",
                            "2026-11-26T10:00:00+24:00", "2026-11-26T10:00:00+01:0", "2026-11-26T10:00:00Zjunk",
                            " 2026-11-26T10:00:00", "2026-11-26", "2026-11-26T10:00:00+01:00:00"}) {
        INFO(bad);
        CHECK_FALSE(parse_iso(bad));
    }
}

namespace {
// The recorded simple envelope with headers changed.
std::string envelope_with(const std::function<void(json::object&)>& patch) {
    auto env = json::parse(fixture("envelope_simple.json")).as_object();
    patch(env["headers"].as_object());
    return boost::json::serialize(env);
}
// The reason decode_envelope gives, checking it still names the task.
std::string refusal(const std::string& text) {
    try {
        decode_envelope(text);
    } catch (const wire_error& e) {
        CHECK(e.id() == "79671bc4-ca31-4c7f-9fa4-2f72e957780b");
        return e.reason();
    }
    FAIL("accepted: " << text);
    return {};
}
}  // namespace

TEST_CASE("far eta and expires decode, and an impossible one is an error for that message, naming the header") {
    auto m = decode_envelope(envelope_with([](json::object& h) {
        h["eta"] = "9999-12-31T23:59:59.999999+00:00";
        h["expires"] = "2300-01-01T00:00:00+00:00";
    }));
    CHECK(parse_iso(*m.expires) > std::chrono::system_clock::now());  // not expired on arrival
    CHECK(parse_iso(*m.eta) == std::chrono::system_clock::time_point::max());
    CHECK(*m.eta == "9999-12-31T23:59:59.999999+00:00");  // re-encoded as it came
    CHECK_THAT(refusal(envelope_with([](json::object& h) { h["expires"] = "2026-02-30T00:00:00"; })),
               Catch::Contains("headers.expires") && Catch::Contains("2026-02-30"));
    CHECK_THAT(refusal(envelope_with([](json::object& h) { h["eta"] = "99999-01-01T00:00:00"; })),
               Catch::Contains("headers.eta"));
}

TEST_CASE("a deadline after a huge time limit or a far ETA saturates at never instead of wrapping into the past") {
    using clock = std::chrono::steady_clock;
    auto now = clock::now();
    CHECK(deadline_after(now, std::chrono::duration<double>(1e300)) == clock::time_point::max());
    CHECK(deadline_after(now, std::chrono::duration<double>(HUGE_VAL)) == clock::time_point::max());
    CHECK(deadline_after(now, std::chrono::system_clock::time_point::max() - std::chrono::system_clock::now()) >
          now + std::chrono::hours(24 * 365 * 100));
    CHECK(deadline_after(clock::time_point::max() - std::chrono::seconds(1), std::chrono::seconds(2)) == clock::time_point::max());
    CHECK(deadline_after(now, std::chrono::duration<double>(1.5)) == now + std::chrono::milliseconds(1500));
    CHECK(deadline_after(now, std::chrono::duration<double>(-1)) == now);
}

TEST_CASE("retries: negative is refused, huge saturates, and the attempt never overflows") {
    CHECK_THAT(refusal(envelope_with([](json::object& h) { h["retries"] = -1; })),
               Catch::Contains("headers.retries is negative: -1"));
    auto huge = decode_envelope(envelope_with([](json::object& h) { h["retries"] = std::uint64_t(-1); }));
    CHECK(huge.retries == std::numeric_limits<std::int64_t>::max());
    // 10**30 from Python: digits that read as a double
    auto text = envelope_with([](json::object& h) { h["retries"] = 0; });
    auto at = text.find("\"retries\":0");
    REQUIRE(at != std::string::npos);
    text.replace(at, 11, "\"retries\":1" + std::string(30, '0'));
    CHECK(decode_envelope(text).retries == std::numeric_limits<std::int64_t>::max());
    CHECK_THAT(refusal(envelope_with([](json::object& h) { h["retries"] = 1.5; })), Catch::Contains("headers.retries"));
    CHECK(attempt_after(0) == 1);
    CHECK(attempt_after(2) == 3);
    CHECK(attempt_after(std::numeric_limits<std::int64_t>::max()) == std::numeric_limits<int>::max());
    CHECK(attempt_after(std::numeric_limits<int>::max() - 1) == std::numeric_limits<int>::max());
}

TEST_CASE("time limits: null and 0 are none, huge ones are kept, negative and non-numbers are refused") {
    auto limits = [](json::value tl) {
        auto m = decode_envelope(envelope_with([&](json::object& h) { h["timelimit"] = tl; }));
        return std::pair{m.hard_time_limit, m.soft_time_limit};
    };
    using none = std::optional<double>;
    CHECK(limits(json::array{nullptr, nullptr}) == std::pair{none{}, none{}});
    CHECK(limits(nullptr) == std::pair{none{}, none{}});
    CHECK(limits(json::array{0, 0.0}) == std::pair{none{}, none{}});  // Python: `time_limit or task.time_limit`
    CHECK(limits(json::array{1e300, 2}) == std::pair{none{1e300}, none{2.0}});
    CHECK(limits(json::array{std::uint64_t(-1), nullptr}).first == 18446744073709551615.0);
    CHECK_THAT(refusal(envelope_with([](json::object& h) { h["timelimit"] = json::array{nullptr, -1}; })),
               Catch::Contains("headers.timelimit[1] (the soft time limit) is negative: -1"));
    CHECK_THAT(refusal(envelope_with([](json::object& h) { h["timelimit"] = json::array{"10", nullptr}; })),
               Catch::Contains("headers.timelimit[0] (the hard time limit) is not a number"));
    CHECK_THAT(refusal(envelope_with([](json::object& h) { h["timelimit"] = json::array{1}; })),
               Catch::Contains("headers.timelimit is not [hard, soft]"));
}

TEST_CASE("a number beyond a double in a header or the body refuses the message, saying where") {
    auto text = envelope_with([](json::object& h) { h["timelimit"] = json::array{nullptr, nullptr}; });
    auto at = text.find("[null,null]");
    REQUIRE(at != std::string::npos);
    text.replace(at, 11, "[1e400,null]");
    CHECK_THROWS_WITH(decode_envelope(text), Catch::Contains("$.headers.timelimit[0]") && Catch::Contains("1e400"));
    auto env = json::parse(fixture("envelope_simple.json")).as_object();
    env["body"] = base64_encode(R"([[2, -1e400], {}, null])");
    try {
        decode_envelope(boost::json::serialize(env));
        FAIL("accepted 1e400 in the args");
    } catch (const wire_error& e) {
        CHECK(e.id() == "79671bc4-ca31-4c7f-9fa4-2f72e957780b");
        CHECK_THAT(e.reason(), Catch::Contains("$[0][1]") && Catch::Contains("-1e400"));
    }
}

TEST_CASE("a priority beyond kombu's 0..9 is clamped as kombu clamps it, not wrapped") {
    auto priority = [](std::int64_t p) {
        auto env = json::parse(fixture("envelope_simple.json")).as_object();
        env["properties"].as_object()["priority"] = p;
        return decode_envelope(boost::json::serialize(env)).priority;
    };
    CHECK(priority(255) == 9);
    CHECK(priority((std::int64_t{1} << 32) + 3) == 9);
    CHECK(priority(-5) == 0);
    CHECK(priority(6) == 6);
}

TEST_CASE("Redis URLs parse, and their passwords never appear in messages") {
    auto u = redis_url::parse("redis://:s3cret@127.0.0.1:16379/2");
    CHECK(u.password == "s3cret");
    CHECK(u.port == 16379);
    CHECK(u.db == 2);
    CHECK(u.redacted().find("s3cret") == std::string::npos);
    CHECK(redact("connect redis://:s3cret@h:1/0 failed") == "connect redis://:***@h:1/0 failed");
    CHECK_THROWS_WITH(redis_url::parse("redis://:s3cret@h:notaport/0"), !Catch::Contains("s3cret"));
    // Nothing listens on port 1: the error names the address, without the password.
    CHECK_THROWS_WITH(redis_connection(redis_url::parse("redis://:s3cret@127.0.0.1:1/0"), std::chrono::milliseconds(500)),
                      Catch::Contains("127.0.0.1:1") && !Catch::Contains("s3cret"));
}

TEST_CASE("rediss:// URLs read Celery's and redis-py's ssl_ parameters, and refuse what they cannot use") {
    const std::string pem = std::string(WEFT_CELERY_FIXTURES) + "/test-ca.pem";  // a certificate only, no key
    auto u = redis_url::parse("rediss://u:p%3Fw@redis.example:6380/1?ssl_cert_reqs=CERT_NONE&ssl_check_hostname=false");
    CHECK(u.tls);
    CHECK_FALSE(u.tls_verify);
    CHECK_FALSE(u.tls_check_hostname);
    CHECK(u.password == "p%3Fw");  // credentials are taken as written, as before
    CHECK(u.redacted() == "rediss://u:***@redis.example:6380/1");
    auto v = redis_url::parse("rediss://h/0?ssl_ca_certs=" + pem + "&ssl_certfile=" + pem);
    CHECK(v.tls_verify);  // redis-py's default: required
    CHECK(v.tls_check_hostname);
    CHECK(v.tls_ca_file == pem);
    CHECK(v.tls_key_file.empty());  // the key then comes from ssl_certfile, as in Python's ssl
    CHECK_FALSE(v.same_as(redis_url::parse("redis://h/0")));
    CHECK(redis_url::parse("rediss://h/0?ssl_ca_certs=" + std::string(WEFT_CELERY_FIXTURES) + "%2Ftest-ca.pem").tls_ca_file ==
          pem);  // values are percent-decoded, as Celery unquotes them
    CHECK_THROWS_WITH(redis_url::parse("redis://h/0?ssl_cert_reqs=none"), Catch::Contains("needs the rediss:// scheme"));
    CHECK_THROWS_WITH(redis_url::parse("rediss://h/0?ssl_cert_reqs=sometimes"), Catch::Contains("ssl_cert_reqs is 'sometimes'"));
    CHECK_THROWS_WITH(redis_url::parse("rediss://h/0?ssl_check_hostname=perhaps"), Catch::Contains("ssl_check_hostname"));
    CHECK_THROWS_WITH(redis_url::parse("rediss://h/0?timeout=5"), Catch::Contains("unknown parameter 'timeout'"));
    CHECK_THROWS_WITH(redis_url::parse("rediss://h/0?ssl_keyfile=" + pem), Catch::Contains("without ssl_certfile"));
    CHECK_THROWS_WITH(redis_url::parse("rediss://:s3cret@h/0?ssl_ca_certs=/nonexistent/ca.pem"),
                      Catch::Contains("ssl_ca_certs: cannot read '/nonexistent/ca.pem'") && !Catch::Contains("s3cret"));
    CHECK_THROWS_WITH(redis_url::parse("rediss://h/0?ssl_ca_certs=" + std::string(WEFT_CELERY_FIXTURES) + "/meta_success.json"),
                      Catch::Contains("holds no PEM block"));
    CHECK_THROWS_WITH(redis_url::parse("http://h/0"), Catch::Contains("redis:// or rediss://"));
}

TEST_CASE("a recorded Python revoke broadcast yields its task id, and weft's broadcast reads back") {
    auto python = read_revoke(fixture("pidbox_revoke.json"));
    REQUIRE(python);
    CHECK(python->ids == std::vector<std::string>{"11111111-2222-4333-8444-555555555555"});
    auto ours = revoke_broadcast(json::array{"a", "b"});
    REQUIRE(read_revoke(ours));
    CHECK(read_revoke(ours)->ids == std::vector<std::string>{"a", "b"});
    auto env = json::parse(ours).as_object();
    CHECK(env.at("properties").as_object().at("delivery_info").as_object().at("exchange") == "celery.pidbox");
    CHECK_FALSE(read_revoke(fixture("envelope_simple.json")));  // a task message is not a revoke
    CHECK_FALSE(python->terminate);                              // revoke() without terminate=True
    CHECK(pidbox_channel(0) == "/0.celery.pidbox");
}
