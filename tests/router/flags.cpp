#include <catch2/catch.hpp>

#include <weft/json.hpp>
#include <weft/router/flags.hpp>
#include <weft/telemetry.hpp>

#include <boost/json/serialize.hpp>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <unistd.h>

using weft::flags::context;
using weft::flags::flag_error;
using weft::flags::flag_file;
using weft::flags::flag_set;

namespace {

std::string ingest_file(std::string_view targeting = "{}") {
    return R"({
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "weft.ingest": {
      "state": "ENABLED",
      "variants": {"celery": "celery", "temporal": "temporal"},
      "defaultVariant": "celery",
      "targeting": )" + std::string(targeting) + R"(
    }
  }
})";
}

// The error of parsing `text`, or "" when it parses.
std::string error_of(const std::string& text) {
    try {
        flag_set::parse(text, "flags.json");
    } catch (const flag_error& e) {
        return e.what();
    }
    return "";
}

// What a rule evaluates to, as flagd-core turns a targeting result into a variant name (Python's
// str(): true/false, 3, 3.0, strings as they are); "<null>" when it returned null.
std::string result_of(const std::string& rule, const context& ctx = {}) {
    auto set = flag_set::parse(R"({"flags": {"f": {"state": "ENABLED", "variants": {"v": 1},
                                   "targeting": )" + rule + "}}}",
                               "rule.json");
    auto e = set.evaluate("f", ctx);
    if (e.reason == "DEFAULT") return "<null>";
    if (e.reason == "TARGETING_MATCH") return e.variant;
    const std::string prefix = "Resolved variant ", suffix = " not in variants config.";
    if (e.error_message.starts_with(prefix)) return e.error_message.substr(prefix.size(), e.error_message.size() - prefix.size() - suffix.size());
    return "<error " + e.error_code + ": " + e.error_message + ">";
}

context ctx_of(std::string_view json, std::string key = {}) {
    return {std::move(key), weft::json::parse(json).as_object()};
}

}  // namespace

TEST_CASE("a static flag resolves to its default variant") {
    auto set = flag_set::parse(ingest_file(), "flags.json");
    auto e = set.evaluate("weft.ingest", {});
    CHECK(e.variant == "celery");
    CHECK(e.value == "celery");
    CHECK(e.reason == "STATIC");
    CHECK(e.error_code.empty());
    CHECK(set.keys() == std::vector<std::string>{"weft.ingest"});
    CHECK(set.variants("weft.ingest") == std::vector<std::string>{"celery", "temporal"});
}

TEST_CASE("fractional buckets as flagd-core does: murmur3 of the CBOR of [flagKey, targetingKey]") {
    auto set = flag_set::parse(ingest_file(R"({"fractional": [["celery", 90], ["temporal", 10]]})"), "flags.json");
    // Expected values computed with openfeature-flagd-core 2.0.0 (cbor2 + mmh3).
    auto e = set.evaluate("weft.ingest", {"run-1", {}});
    CHECK(e.variant == "celery");
    CHECK(e.reason == "TARGETING_MATCH");
    CHECK(e.why == "fractional: bucket 85 of 100 -> celery (weights celery 90, temporal 10)");
    CHECK(set.evaluate("weft.ingest", {"run-5", {}}).variant == "temporal");
    CHECK(set.evaluate("weft.ingest", {"run-11", {}}).variant == "temporal");
    CHECK(set.evaluate("weft.ingest", {"run-12", {}}).variant == "celery");
    // No targetingKey: no bucket, so the default variant.
    auto none = set.evaluate("weft.ingest", {});
    CHECK(none.reason == "DEFAULT");
    CHECK(none.variant == "celery");
}

TEST_CASE("fractional buckets by its first argument when that is an expression, with relative weights") {
    // murmur3(cbor("acme/run-1")) = 1770102867: bucket (h * 9) >> 32 = 3 of 9.
    auto set = flag_set::parse(ingest_file(R"({"fractional": [{"cat": [{"var": "tenant"}, "/", {"var": "targetingKey"}]},
                                                ["celery", 3], ["temporal", 6]]})"),
                               "flags.json");
    auto e = set.evaluate("weft.ingest", ctx_of(R"({"tenant": "acme"})", "run-1"));
    CHECK(e.why == "fractional: bucket 3 of 9 -> temporal (weights celery 3, temporal 6)");
    // Numbers hash as CBOR numbers: 42 -> bucket 33 of 100, 1.5 -> 8, -7 -> 14, 2^40 -> 35.
    auto by_shard = flag_set::parse(ingest_file(R"({"fractional": [{"var": "shard"}, ["celery", 10], ["temporal", 90]]})"), "f.json");
    CHECK(by_shard.evaluate("weft.ingest", ctx_of(R"({"shard": 42})")).why.starts_with("fractional: bucket 33 of 100"));
    CHECK(by_shard.evaluate("weft.ingest", ctx_of(R"({"shard": 42.0})")).why.starts_with("fractional: bucket 33 of 100"));
    CHECK(by_shard.evaluate("weft.ingest", ctx_of(R"({"shard": 1.5})")).why.starts_with("fractional: bucket 8 of 100"));
    CHECK(by_shard.evaluate("weft.ingest", ctx_of(R"({"shard": -7})")).why.starts_with("fractional: bucket 14 of 100"));
    CHECK(by_shard.evaluate("weft.ingest", ctx_of(R"({"shard": 1099511627776})")).why.starts_with("fractional: bucket 35 of 100"));
    CHECK(by_shard.evaluate("weft.ingest", ctx_of(R"({"shard": -9223372036854775808.0})")).why.starts_with("fractional: bucket 8 of 100"));
    // A bucketing expression that yields an array makes it a bucket, as in flagd-core: the value is
    // then [flagKey, targetingKey] (run-1: bucket 86 of 101).
    auto array_by = flag_set::parse(ingest_file(R"({"fractional": [{"var": "pair"}, ["celery", 90], ["temporal", 10]]})"), "f.json");
    auto arr = array_by.evaluate("weft.ingest", ctx_of(R"({"pair": ["celery"]})", "run-1"));
    CHECK(arr.why == "fractional: bucket 86 of 101 -> celery (weights celery 1, celery 90, temporal 10)");
    // Weights default to 1; negative weights count as 0.
    auto defaults = flag_set::parse(ingest_file(R"({"fractional": [{"var": "shard"}, ["celery", -5], ["temporal"]]})"), "f.json");
    CHECK(defaults.evaluate("weft.ingest", ctx_of(R"({"shard": 42})")).variant == "temporal");
    // A bucketing value that is null gives no bucket.
    CHECK(by_shard.evaluate("weft.ingest", {}).reason == "DEFAULT");
}

TEST_CASE("targeting results: a variant, null for the default, anything else an error") {
    auto set = flag_set::parse(ingest_file(R"({"if": [{"==": [{"var": "tenant"}, "acme"]}, "temporal",
                                                      {"==": [{"var": "tenant"}, "bad"]}, "tmeporal", null]})"),
                               "flags.json");
    auto match = set.evaluate("weft.ingest", ctx_of(R"({"tenant": "acme"})"));
    CHECK(match.variant == "temporal");
    CHECK(match.reason == "TARGETING_MATCH");
    CHECK(match.why == "targeting returned 'temporal'");
    auto fallback = set.evaluate("weft.ingest", ctx_of(R"({"tenant": "other"})"));
    CHECK(fallback.variant == "celery");
    CHECK(fallback.reason == "DEFAULT");
    auto bad = set.evaluate("weft.ingest", ctx_of(R"({"tenant": "bad"})"));
    CHECK(bad.reason == "ERROR");
    CHECK(bad.error_code == "GENERAL");
    CHECK(bad.error_message == "Resolved variant tmeporal not in variants config.");
    CHECK(bad.variant.empty());
    CHECK(bad.value.is_null());
}

TEST_CASE("disabled and unknown flags") {
    auto set = flag_set::parse(R"({"flags": {"off": {"state": "DISABLED", "variants": {"a": 1}, "defaultVariant": "a"},
                                             "nodefault": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": null},
                                             "meta": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
                                                      "metadata": {"owner": "ops", "version": 3}}},
                                   "metadata": {"set": "weft"}})",
                               "flags.json");
    auto off = set.evaluate("off", {});
    CHECK(off.reason == "DISABLED");  // flagd-core 2.0: no error, the caller's default
    CHECK(off.error_code.empty());
    CHECK(off.variant.empty());
    auto missing = set.evaluate("nope", {});
    CHECK(missing.reason == "ERROR");
    CHECK(missing.error_code == "FLAG_NOT_FOUND");
    auto nodefault = set.evaluate("nodefault", {});
    CHECK(nodefault.reason == "DEFAULT");
    CHECK(nodefault.variant.empty());
    REQUIRE(set.metadata("meta"));
    CHECK(set.metadata("meta")->at("owner") == "ops");
    CHECK(set.metadata("off") == nullptr);
    CHECK(set.set_metadata().at("set") == "weft");
}

TEST_CASE("$ref names a shared evaluator") {
    auto set = flag_set::parse(R"({
      "$evaluators": {"big": {"in": [{"var": "tenant"}, ["acme", "globex"]]},
                      "big_eu": {"and": [{"$ref": "big"}, {"starts_with": [{"var": "region"}, "eu-"]}]}},
      "flags": {"f": {"state": "ENABLED", "variants": {"yes": 1, "no": 0}, "defaultVariant": "no",
                      "targeting": {"if": [{"$ref": "big_eu"}, "yes", "no"]}}}})",
                               "flags.json");
    CHECK(set.evaluate("f", ctx_of(R"({"tenant": "acme", "region": "eu-west-1"})")).variant == "yes");
    CHECK(set.evaluate("f", ctx_of(R"({"tenant": "acme", "region": "us-east-1"})")).variant == "no");
    CHECK(set.evaluate("f", ctx_of(R"({"tenant": "hooli", "region": "eu-west-1"})")).variant == "no");
}

TEST_CASE("var reads the context, dotted paths, defaults, targetingKey and $flagd") {
    auto c = ctx_of(R"({"user": {"plan": "pro", "tags": ["a", "b"]}, "n": 3, "empty": ""})", "run-9");
    CHECK(result_of(R"({"var": "user.plan"})", c) == "pro");
    CHECK(result_of(R"({"var": "user.tags.1"})", c) == "b");
    CHECK(result_of(R"({"var": "user.tags.length"})", c) == "2");
    CHECK(result_of(R"({"var": ["user.nothing", "fallback"]})", c) == "fallback");
    CHECK(result_of(R"({"var": "nothing"})", c) == "<null>");
    CHECK(result_of(R"({"var": "targetingKey"})", c) == "run-9");
    CHECK(result_of(R"({"var": "$flagd.flagKey"})", c) == "f");
    CHECK(result_of(R"({">": [{"var": "$flagd.timestamp"}, 1700000000]})", c) == "true");
    CHECK(result_of(R"({"var": "n"})", c) == "3");
    CHECK(result_of(R"({"cat": {"missing": ["n", "empty", "gone"]}})", c) == "empty,gone");
    CHECK(result_of(R"({"cat": {"missing_some": [1, ["n", "gone"]]}})", c) == "");
    CHECK(result_of(R"({"cat": {"missing_some": [2, ["n", "gone"]]}})", c) == "gone");
}

TEST_CASE("JsonLogic operators follow Python's json_logic") {
    CHECK(result_of(R"({"if": [false, "a", 0, "b", "c"]})") == "c");
    CHECK(result_of(R"({"if": [false, "a", 1, "b", "c"]})") == "b");
    CHECK(result_of(R"({"if": [false, "a"]})") == "<null>");
    CHECK(result_of(R"({"==": [1, "1"]})") == "true");
    CHECK(result_of(R"({"==": [0, null]})") == "true");     // Python's json_logic, not JavaScript
    CHECK(result_of(R"({"==": ["", null]})") == "false");
    CHECK(result_of(R"({"===": [1, 1.0]})") == "true");
    CHECK(result_of(R"({"===": [1, "1"]})") == "false");
    CHECK(result_of(R"({"!=": [1, 2]})") == "true");
    CHECK(result_of(R"({"!==": ["a", "a"]})") == "false");
    CHECK(result_of(R"({"!": [[]]})") == "true");
    CHECK(result_of(R"({"!!": ["0"]})") == "true");
    CHECK(result_of(R"({"!!": [{}]})") == "true");
    CHECK(result_of(R"({"or": [0, "", "x"]})") == "x");
    CHECK(result_of(R"({"and": [1, "", "x"]})") == "");
    CHECK(result_of(R"({"<": [1, 2, 3]})") == "true");
    CHECK(result_of(R"({"<": [1, 4, 3]})") == "false");
    CHECK(result_of(R"({"<=": [2, 2]})") == "true");
    CHECK(result_of(R"({">": ["b", "a"]})") == "true");
    CHECK(result_of(R"({">=": [1, "x"]})") == "false");
    CHECK(result_of(R"({"in": ["ell", "hello"]})") == "true");
    CHECK(result_of(R"({"in": [2, [1, 2.0]]})") == "true");
    CHECK(result_of(R"({"cat": ["a", 1, 2.5, null, true]})") == "a12.5nullTrue");
    CHECK(result_of(R"({"substr": ["weft-router", 5]})") == "router");
    CHECK(result_of(R"({"substr": ["weft-router", -6, 3]})") == "rou");
    CHECK(result_of(R"({"substr": ["héllo", 1, 2]})") == "él");
    CHECK(result_of(R"({"+": [1, 2, "3"]})") == "6.0");
    CHECK(result_of(R"({"+": [1, 2]})") == "3");
    // A float result is named as Python's str() writes it.
    for (auto [in, out] : {std::pair{"0.0001", "0.0001"}, {"1e-5", "1e-05"}, {"100.0", "100.0"}, {"1e16", "1e+16"},
                           {"123456789012345678.0", "1.2345678901234568e+17"}, {"-2.5e-7", "-2.5e-07"},
                           {"9999999999999998.0", "9999999999999998.0"}})
        CHECK(result_of(std::string(R"({"*": [1.0, )") + in + "]}") == out);
    CHECK(result_of(R"({"-": [5]})") == "-5");
    CHECK(result_of(R"({"*": [2, 1.5]})") == "3.0");
    CHECK(result_of(R"({"/": [7, 2]})") == "3.5");
    CHECK(result_of(R"({"%": [-7, 3]})") == "2");           // Python's modulo: the divisor's sign
    CHECK(result_of(R"({"/": [1, 0]})").starts_with("<error GENERAL"));
    CHECK(result_of(R"({"min": [3, 1, 2]})") == "1");
    CHECK(result_of(R"({"max": [3, 1, 2.5]})") == "3");
    CHECK(result_of(R"({"cat": {"merge": [1, [2, 3], [[4]]]}})") == "1,2,3,4");
    CHECK(result_of(R"({"cat": {"map": [[1, 2], {"*": [{"var": ""}, 2]}]}})") == "2,4");
    CHECK(result_of(R"({"cat": {"filter": [[1, 2, 3], {">": [{"var": ""}, 1]}]}})") == "2,3");
    CHECK(result_of(R"({"reduce": [[1, 2, 3], {"+": [{"var": "accumulator"}, {"var": "current"}]}, 0]})") == "6");
    CHECK(result_of(R"({"all": [[1, 2], {">": [{"var": ""}, 0]}]})") == "true");
    CHECK(result_of(R"({"all": [[], {">": [{"var": ""}, 0]}]})") == "false");
    CHECK(result_of(R"({"none": [[1, 2], {">": [{"var": ""}, 5]}]})") == "true");
    CHECK(result_of(R"({"some": [[1, 2], {">": [{"var": ""}, 1]}]})") == "true");
}

TEST_CASE("flagd's string and version operations") {
    CHECK(result_of(R"({"starts_with": ["eu-west-1", "eu-"]})") == "true");
    CHECK(result_of(R"({"ends_with": ["a@example.com", "@example.com"]})") == "true");
    CHECK(result_of(R"({"starts_with": [1, "1"]})") == "<null>");   // not strings: null
    CHECK(result_of(R"({"sem_ver": ["1.4.0", ">=", "1.4.0"]})") == "true");
    CHECK(result_of(R"({"sem_ver": ["v1.10.2", ">", "1.9"]})") == "true");
    CHECK(result_of(R"({"sem_ver": ["1.4.0-rc.1", "<", "1.4.0"]})") == "true");
    CHECK(result_of(R"({"sem_ver": ["1.4.0-rc.2", ">", "1.4.0-rc.10"]})") == "false");
    CHECK(result_of(R"({"sem_ver": ["1.4.0+b1", "=", "1.4.0+b2"]})") == "true");
    CHECK(result_of(R"({"sem_ver": ["1.9.3", "^", "1.2"]})") == "true");
    CHECK(result_of(R"({"sem_ver": ["1.9.3", "~", "1.8"]})") == "false");
    CHECK(result_of(R"({"sem_ver": ["banana", "=", "1.0.0"]})") == "<null>");
}

TEST_CASE("a bad flag file is rejected with its line, column and reason") {
    CHECK(error_of("{\n  \"flags\": {\n    \"a\": }\n}") == "flags.json:3:10: expected valid JSON, got syntax error at \"}\\x0a}\"");
    CHECK(error_of(R"({"flags": {
  "weft.ingest": {
      "state": "ENABLED", "variants": {"celery": 1, "temporal": 2}, "defaultVariant": "tmeporal"}}})") ==
          "flags.json:2:3: flag 'weft.ingest': defaultVariant 'tmeporal' is not one of its variants (celery, temporal)");
    CHECK(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
                   "targeting": {"if": [{"regex": ["x", "y"]}, "a", null]}}}})") ==
          "flags.json:1:12: flag 'f': unknown operator 'regex' (at targeting.if[0])");
    CHECK(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
                   "targeting": {"fractional": [["a", 50.5]]}}}})") ==
          "flags.json:1:12: flag 'f': a fractional weight must be an integer, got number 50.5 (at targeting.fractional[0][1])");
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"fractional": ["a"]}}}})"),
               Catch::Contains("fractional has no buckets"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"fractional": [{"var": "x"}, "a"]}}}})"),
               Catch::Contains("a fractional bucket is [variant] or [variant, weight]"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"fractional": [["a", 0]]}}}})"),
               Catch::Contains("fractional weights sum to 0"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"fractional": [["a", 2147483647], ["b"]]}}}})"),
               Catch::Contains("more than 2147483647"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"$ref": "nope"}}}})"),
               Catch::Contains("$ref to an unknown evaluator 'nope'"));
    CHECK_THAT(error_of(R"({"$evaluators": {"x": {"$ref": "y"}, "y": {"$ref": "x"}}, "flags": {}})"),
               Catch::Contains("$ref cycle"));
    CHECK(error_of(R"({"flags": {"f": "on"}})") == "flags.json:1:12: flag 'f': a flag is an object, got string \"on\"");
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "on", "variants": {"a": 1}}}})"), Catch::Contains("state must be"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {}}}})"), Catch::Contains("variants must be a non-empty object"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultvariant": "a"}}})"),
               Catch::Contains("unknown field 'defaultvariant'"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "metadata": {"x": null}}}})"),
               Catch::Contains("metadata 'x' must be a string, number or boolean"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": "a"}}})"),
               Catch::Contains("targeting must be a JsonLogic object"));
    CHECK(error_of(R"({"flag": {}})") == "flags.json:1:1: no \"flags\" object");
    CHECK(error_of("[]") == "flags.json:1:1: a flag file is a JSON object with a \"flags\" object, got array of 0 elements");
}

TEST_CASE("hostile flag files cost an error, not a crash") {
    std::string deep = R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": )";
    for (int i = 0; i < 100000; ++i) deep += "[";
    CHECK_THAT(error_of(deep), Catch::Contains("nested arrays and objects"));
    CHECK_THAT(error_of(R"({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1e999}}}})"), Catch::Contains("out of range"));
    // Evaluators that refer to each other many times are shared, not copied.
    std::string wide = R"({"$evaluators": {"e0": true)";
    for (int i = 1; i < 60; ++i)
        wide += ", \"e" + std::to_string(i) + "\": {\"and\": [{\"$ref\": \"e" + std::to_string(i - 1) + "\"}, {\"$ref\": \"e" +
                std::to_string(i - 1) + "\"}]}";
    wide += R"(}, "flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"if": [{"$ref": "e3"}, "a", null]}}}})";
    auto set = flag_set::parse(wide, "wide.json");
    CHECK(set.evaluate("f", {}).variant == "a");
    // A chain of evaluators deeper than the limit is refused.
    std::string chain = R"({"$evaluators": {"e0": true)";
    for (int i = 1; i < 300; ++i)
        chain += ", \"e" + std::to_string(i) + "\": {\"!!\": [{\"!!\": [{\"$ref\": \"e" + std::to_string(i - 1) + "\"}]}]}";
    chain += R"(}, "flags": {}})";
    CHECK_THAT(error_of(chain), Catch::Contains("nested deeper than"));
}

namespace {

struct scratch_file {
    std::string path;
    scratch_file() {
        char templ[] = "/tmp/weft-flags-XXXXXX";
        int fd = ::mkstemp(templ);
        ::close(fd);
        path = templ;
    }
    ~scratch_file() { std::remove(path.c_str()); }
    // Writes and moves the mtime on by `seconds`, so that a rewrite within the same clock tick is
    // seen too.
    void write(const std::string& text, int seconds) const {
        std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
        auto t = std::filesystem::last_write_time(path);
        std::filesystem::last_write_time(path, t + std::chrono::seconds(seconds));
    }
};

struct captured_log {
    std::mutex mutex;
    std::vector<std::string> lines;
    captured_log() {
        weft::telemetry::configure({.format = weft::telemetry::log_format::json, .min_level = weft::telemetry::severity::info,
                                    .sink = [this](std::string_view line) {
                                        std::lock_guard lock(mutex);
                                        lines.emplace_back(line);
                                    }});
    }
    ~captured_log() { weft::telemetry::configure({}); }
    bool has(std::string_view text) {
        std::lock_guard lock(mutex);
        for (auto& l : lines)
            if (l.find(text) != std::string::npos) return true;
        return false;
    }
};

}  // namespace

TEST_CASE("a flag file is reloaded when it changes; a bad rewrite keeps the rules in force") {
    captured_log log;
    scratch_file file;
    file.write(ingest_file(), 1);
    flag_file flags(file.path, {.poll = std::chrono::milliseconds(20), .validate = {}});
    CHECK(flags.current()->evaluate("weft.ingest", {}).variant == "celery");

    auto text = ingest_file();
    text.replace(text.find("\"defaultVariant\": \"celery\""), 26, "\"defaultVariant\": \"temporal\"");
    file.write(text, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    CHECK(flags.current()->evaluate("weft.ingest", {}).variant == "temporal");
    CHECK(flags.last_error().empty());
    CHECK(log.has("\"flags.reloaded\""));

    auto broken = text;
    broken.replace(broken.find("\"defaultVariant\": \"temporal\""), 28, "\"defaultVariant\": \"tmeporal\"");
    file.write(broken, 3);
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    CHECK(flags.current()->evaluate("weft.ingest", {}).variant == "temporal");
    CHECK_THAT(flags.last_error(), Catch::Contains(":4:5: flag 'weft.ingest': defaultVariant 'tmeporal' is not one of its variants"));
    CHECK(log.has("\"flags.rejected\""));
    CHECK(log.has("tmeporal"));
}

TEST_CASE("validate() can refuse a reload") {
    scratch_file file;
    file.write(ingest_file(), 1);
    flag_file flags(file.path, {.poll = std::chrono::milliseconds(0),
                                .validate = [](const flag_set& old, const flag_set& next) -> std::string {
                                    for (auto& k : old.keys())
                                        if (next.variants(k).empty()) return "flag '" + k + "' would disappear";
                                    return "";
                                }});
    file.write(R"({"flags": {"other": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}})", 2);
    auto set = flags.current();
    CHECK(set->keys() == std::vector<std::string>{"weft.ingest"});
    CHECK_THAT(flags.last_error(), Catch::Contains("refused: flag 'weft.ingest' would disappear"));
}

TEST_CASE("the first load of a bad flag file throws") {
    scratch_file file;
    file.write("{\"flags\": 3}", 1);
    CHECK_THROWS_WITH(flag_file(file.path), Catch::Contains(":1:2: \"flags\" must be an object"));
    CHECK_THROWS_AS(flag_file("/nonexistent/flags.json"), flag_error);
}

TEST_CASE("a fractional evaluation takes well under a microsecond") {
    auto set = flag_set::parse(ingest_file(R"({"fractional": [["celery", 90], ["temporal", 10]]})"), "flags.json");
    context ctx{"run-0123456789abcdef-0123456789abcdef", {}};
    constexpr int n = 100000;
    int temporal = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
        ctx.targeting_key[4] = static_cast<char>('0' + i % 10);
        temporal += set.evaluate("weft.ingest", ctx).variant == "temporal";
    }
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / n;
    WARN("fractional evaluation: " << ns << " ns");
    CHECK(temporal > 0);
    CHECK(ns < 5000);  // generous: a shared, loaded machine
}
