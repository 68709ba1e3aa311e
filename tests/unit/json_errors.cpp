// The payload codec refuses what does not fit, and says where and what it expected.
#include <catch2/catch.hpp>

#include <boost/describe.hpp>
#include <weft/json.hpp>

#include <cmath>
#include <limits>

namespace shipping {

enum class color { red, green, blue };
BOOST_DESCRIBE_ENUM(color, red, green, blue)

struct item {
    std::string name;
    std::uint32_t qty = 0;
    std::optional<color> c;
};
BOOST_DESCRIBE_STRUCT(item, (), (name, qty, c))

struct address {
    std::string street;
    std::string city;
};
BOOST_DESCRIBE_STRUCT(address, (), (street, city))

struct order {
    std::vector<item> items;
    address ship_to;
    std::map<std::string, std::int8_t> scores;
    std::tuple<int, std::string> pair;
    std::array<double, 2> point{};
    bool paid = false;
};
BOOST_DESCRIBE_STRUCT(order, (), (items, ship_to, scores, pair, point, paid))

}  // namespace shipping

namespace {

using weft::json::decode;
using weft::json::decode_error;
using weft::json::encode;
using weft::json::encode_error;

// A valid order with one field replaced by `patch`'s text.
std::string order_with(const std::string& field, const std::string& value) {
    std::map<std::string, std::string> fields{
        {"items", R"([{"name":"a","qty":1},{"name":"b","qty":2},{"name":"c","qty":3},{"name":"d","qty":4}])"},
        {"ship_to", R"({"street":"1 Main St","city":"Oslo"})"},
        {"scores", R"({"x":1})"},
        {"pair", R"([1,"one"])"},
        {"point", "[0.5,1.5]"},
        {"paid", "true"}};
    if (value.empty()) fields.erase(field);
    else fields[field] = value;
    std::string text = "{";
    for (auto& [k, v] : fields) text += (text.size() > 1 ? ",\"" : "\"") + k + "\":" + v;
    return text + "}";
}

struct failure {
    std::string what, path, expected, got;
    std::optional<std::size_t> offset;
};

template <class T>
failure decode_failure(std::string_view text) {
    try {
        decode<T>(text);
    } catch (const decode_error& e) {
        return {e.what(), e.path(), e.expected(), e.got(), e.offset()};
    }
    FAIL("decoding succeeded but should have failed: " << text.substr(0, 200));
    return {};
}

template <class T>
failure from_value_failure(const weft::json::value& v) {
    try {
        weft::json::from_value<T>(v);
    } catch (const decode_error& e) {
        return {e.what(), e.path(), e.expected(), e.got(), e.offset()};
    }
    FAIL("from_value succeeded but should have failed");
    return {};
}

}  // namespace

TEST_CASE("the sample order used below decodes when nothing is wrong") {
    auto o = decode<shipping::order>(order_with("paid", "true"));
    REQUIRE(o.items.size() == 4);
    REQUIRE(o.ship_to.city == "Oslo");
}

TEST_CASE("a wrong type names the path, the expected type and what was found") {
    auto f = decode_failure<shipping::order>(order_with("items", R"([{"name":"a","qty":1},{"name":"b","qty":2},{"name":"c","qty":3},{"name":"d","qty":"x"}])"));
    REQUIRE(f.what == R"(weft: cannot decode payload at $.items[3].qty: expected unsigned 32-bit integer, got string "x")");
    REQUIRE(f.path == "$.items[3].qty");
    REQUIRE(f.expected == "unsigned 32-bit integer");
    REQUIRE(f.got == R"(string "x")");
    REQUIRE_FALSE(f.offset);
}

TEST_CASE("wrong types are reported for every kind of target") {
    REQUIRE(decode_failure<shipping::order>(order_with("paid", "1")).expected == "boolean");
    REQUIRE(decode_failure<shipping::order>(order_with("paid", "1")).got == "number 1");
    REQUIRE(decode_failure<shipping::order>(order_with("items", "{}")).expected == "array");
    REQUIRE(decode_failure<shipping::order>(order_with("items", "{}")).got == "object");
    REQUIRE(decode_failure<shipping::order>(order_with("ship_to", "[]")).path == "$.ship_to");
    REQUIRE(decode_failure<shipping::order>(order_with("ship_to", "[]")).got == "array of 0 elements");
    REQUIRE(decode_failure<shipping::order>(order_with("scores", "null")).expected == "object");
    REQUIRE(decode_failure<shipping::order>(order_with("ship_to", R"({"street":7,"city":"x"})")).expected == "string");
    REQUIRE(decode_failure<shipping::order>(order_with("ship_to", R"({"street":7,"city":"x"})")).path == "$.ship_to.street");
    REQUIRE(decode_failure<double>("\"1.5\"").expected == "64-bit floating-point number");
    REQUIRE(decode_failure<float>("true").expected == "32-bit floating-point number");
    REQUIRE(decode_failure<std::string>("false").got == "false");
    REQUIRE(decode_failure<std::vector<int>>("[1,null]").path == "$[1]");
    REQUIRE(decode_failure<std::optional<int>>("\"x\"").expected == "signed 32-bit integer or null");
}

TEST_CASE("a missing required field is named; a missing optional one is not an error") {
    auto f = decode_failure<shipping::order>(order_with("ship_to", R"({"street":"1 Main St"})"));
    REQUIRE(f.path == "$.ship_to.city");
    REQUIRE(f.expected == "string");
    REQUIRE(f.got == R"(no value (required field "city" is missing))");
    REQUIRE(decode_failure<shipping::order>(order_with("paid", "")).path == "$.paid");
    REQUIRE_NOTHROW(decode<shipping::item>(R"({"name":"a","qty":1})"));
}

TEST_CASE("an unknown enum name lists the names that are allowed") {
    auto f = decode_failure<shipping::order>(order_with("items", R"([{"name":"a","qty":1,"c":"purple"}])"));
    REQUIRE(f.path == "$.items[0].c");
    REQUIRE(f.expected == "one of red|green|blue or null");
    REQUIRE(f.got == R"(string "purple")");
    REQUIRE(decode_failure<shipping::color>("\"Red\"").expected == "one of red|green|blue");
    REQUIRE(decode_failure<shipping::color>("0").got == "number 0");
}

TEST_CASE("integers out of range for the target type are refused") {
    auto f = decode_failure<shipping::order>(order_with("scores", R"({"x":1,"odd key.":128})"));
    REQUIRE(f.path == R"($.scores["odd key."])");
    REQUIRE(f.expected == "signed 8-bit integer");
    REQUIRE(f.got == "number 128 (out of range)");
    REQUIRE(decode_failure<std::int8_t>("-129").got == "number -129 (out of range)");
    REQUIRE(decode_failure<std::uint32_t>("-1").got == "number -1 (out of range)");
    REQUIRE(decode_failure<std::uint32_t>("4294967296").got == "number 4294967296 (out of range)");
    REQUIRE(decode_failure<std::int64_t>("9223372036854775808").got == "number 9223372036854775808 (out of range)");
    REQUIRE(decode_failure<std::uint64_t>("-1").expected == "unsigned 64-bit integer");
    REQUIRE(decode<std::int8_t>("-128") == -128);
    REQUIRE(decode<std::uint32_t>("4294967295") == 4294967295u);
}

TEST_CASE("huge numbers do not wrap into an int64") {
    auto twenty_digits = decode_failure<std::int64_t>("99999999999999999999");
    REQUIRE(twenty_digits.expected == "signed 64-bit integer");
    REQUIRE(twenty_digits.got == "number 1e+20 (out of range)");
    REQUIRE(decode_failure<std::uint64_t>("18446744073709551616").got == "number 18446744073709551616 (out of range)");
    REQUIRE(decode_failure<std::int64_t>("9.3e18").got == "number 9.3e+18 (out of range)");
    REQUIRE(decode_failure<float>("1e39").got == "number 1e+39 (out of range)");
}

TEST_CASE("a number beyond the range of a double is refused while parsing, with its path and offset") {
    auto f = decode_failure<shipping::order>(order_with("point", "[0.5, -1e400]"));
    REQUIRE(f.path == "$.point[1]");
    REQUIRE(f.expected == "a number within the range of a double (at most 1.7976931348623157e+308)");
    REQUIRE(f.got == "number -1e400 (out of range)");
    REQUIRE(f.offset);
    REQUIRE_THAT(f.what, Catch::Contains("at $.point[1] (offset " + std::to_string(*f.offset) + ", line 1, column "));
    // Whatever the target type, and wherever the number is: no DOM ever holds an infinity.
    REQUIRE(decode_failure<std::int64_t>("1e400").path == "$");
    REQUIRE(decode_failure<double>("  1E+309").offset == 2u);
    REQUIRE(decode_failure<std::map<std::string, double>>(R"({"a\"b":1, "c": {"d": [1, 2, 1.8e308]}})").path ==
            R"($.c.d[2])");
    REQUIRE(decode_failure<shipping::item>(R"({"name":"a","qty":1,"unknown":[)" + std::string(400, '9') + "]}").got ==
            "number " + std::string(40, '9') + "... (out of range)");
    REQUIRE_THROWS_AS(weft::json::parse(R"({"x":1e400})"), decode_error);
    // The largest double is in range; underflow is the nearest double, zero, as in Python.
    REQUIRE(decode<double>("1.7976931348623157e308") == std::numeric_limits<double>::max());
    REQUIRE(decode<double>("-1e-400") == 0.0);
    REQUIRE(std::signbit(decode<double>("-1e-400")));
}

TEST_CASE("a non-integral number is refused for an integer") {
    auto f = decode_failure<std::vector<int>>("[1, 2.5]");
    REQUIRE(f.path == "$[1]");
    REQUIRE(f.expected == "signed 32-bit integer");
    REQUIRE(f.got == "number 2.5 (not an integer)");
    REQUIRE(decode_failure<std::uint8_t>("1e-3").got == "number 0.001 (not an integer)");
}

TEST_CASE("a tuple or fixed-size array of the wrong length is refused") {
    auto longer = decode_failure<shipping::order>(order_with("pair", R"([1,"one",true])"));
    REQUIRE(longer.path == "$.pair");
    REQUIRE(longer.expected == "array of 2 elements");
    REQUIRE(longer.got == "array of 3 elements");
    REQUIRE(decode_failure<shipping::order>(order_with("pair", "[1]")).got == "array of 1 elements");
    REQUIRE(decode_failure<shipping::order>(order_with("pair", R"([1,2])")).path == "$.pair[1]");
    REQUIRE(decode_failure<shipping::order>(order_with("point", "[1,2,3]")).expected == "array of 2 elements");
}

TEST_CASE("invalid JSON is reported with its offset, line and column") {
    auto f = decode_failure<shipping::item>("{\n  \"name\": \"a\",\n  \"qty\": tru\n}");
    REQUIRE(f.offset == 26u);
    REQUIRE(f.path.empty());
    REQUIRE(f.expected == "valid JSON");
    REQUIRE_THAT(f.what, Catch::StartsWith("weft: cannot decode payload at offset 26 (line 3, column 10): expected valid JSON, got "));
    REQUIRE(decode_failure<std::vector<int>>("[1,]").offset == 3u);
    REQUIRE(decode_failure<std::vector<int>>("[1,2").got == "incomplete JSON at end of input");
    REQUIRE(decode_failure<std::string>("").expected == "valid JSON");
    REQUIRE(decode_failure<double>("NaN").expected == "valid JSON");
    REQUIRE(decode_failure<std::string>("\"raw\nnewline\"").offset == 4u);
    REQUIRE(decode_failure<std::string>(R"("\ud800")").expected == "valid JSON");
}

TEST_CASE("JSON extensions are not accepted") {
    REQUIRE(decode_failure<std::vector<int>>("[1,2,]").expected == "valid JSON");
    REQUIRE(decode_failure<std::vector<int>>("// comment\n[1]").expected == "valid JSON");
    REQUIRE(decode_failure<int>("01").expected == "end of input after the JSON value");
}

TEST_CASE("trailing characters after the value are refused") {
    auto f = decode_failure<int>("1 2");
    REQUIRE(f.offset == 2u);
    REQUIRE(f.expected == "end of input after the JSON value");
    REQUIRE(f.got == R"(trailing characters "2")");
    REQUIRE(decode_failure<shipping::item>(R"({"name":"a","qty":1}})").got == R"(trailing characters "}")");
}

TEST_CASE("invalid UTF-8 in a string is refused with its position") {
    auto lone = decode_failure<std::string>("\"ab\x80\"");
    REQUIRE(lone.offset == 3u);
    REQUIRE(lone.expected == "valid UTF-8");
    REQUIRE(lone.got == R"(invalid byte sequence "\x80")");
    REQUIRE(lone.what == R"(weft: cannot decode payload at offset 3 (line 1, column 4): expected valid UTF-8, got invalid byte sequence "\x80")");
    REQUIRE(decode_failure<std::string>("\"\xc0\x80\"").expected == "valid UTF-8");          // overlong NUL
    REQUIRE(decode_failure<std::string>("\"\xed\xa0\x80\"").expected == "valid UTF-8");      // encoded surrogate
    REQUIRE(decode_failure<std::string>("\"\xf4\x90\x80\x80\"").expected == "valid UTF-8");  // above U+10FFFF
    REQUIRE(decode_failure<std::string>("\"ok \xe2\x82\"").offset == 4u);                    // truncated sequence
    REQUIRE(decode_failure<shipping::item>("{\n\"name\": \"\xff\"}").what.find("line 2, column 10") != std::string::npos);
}

TEST_CASE("nesting deeper than the limit is an error, not a stack overflow") {
    static_assert(weft::json::max_depth == 256);
    auto over = decode_failure<std::vector<int>>(std::string(257, '[') + std::string(257, ']'));
    REQUIRE(over.expected == "at most 256 nested arrays and objects");
    REQUIRE(over.offset == 256u);
    std::string arrays(100000, '[');
    REQUIRE(decode_failure<std::vector<int>>(arrays).expected == "at most 256 nested arrays and objects");
    std::string objects;
    for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
    REQUIRE(decode_failure<shipping::item>(objects).expected == "at most 256 nested arrays and objects");
    // Deep nesting inside an unknown key is refused too: the limit is on the text, not the type.
    REQUIRE(decode_failure<shipping::item>(R"({"name":"a","qty":1,"x":)" + std::string(300, '[')).offset.has_value());
}

TEST_CASE("a 10 MB string is accepted and a long string is cut short in messages") {
    std::string big = "\"" + std::string(10 * 1024 * 1024, 'y') + "\"";
    REQUIRE(decode<std::string>(big).size() == 10u * 1024 * 1024);
    auto f = decode_failure<int>(big);
    REQUIRE(f.got.size() < 100);
    REQUIRE_THAT(f.got, Catch::EndsWith("\"..."));
}

TEST_CASE("errors from a DOM carry paths that start at the value given") {
    weft::json::value v = {{"name", "a"}, {"qty", -5}};
    auto f = from_value_failure<shipping::item>(v);
    REQUIRE(f.path == "$.qty");
    REQUIRE(f.got == "number -5 (out of range)");
    REQUIRE_FALSE(f.offset);
}

TEST_CASE("a duplicate key keeps the last value") {
    REQUIRE(decode<shipping::item>(R"({"name":"a","qty":1,"qty":2})").qty == 2);
}

TEST_CASE("encoding refuses what JSON cannot carry, with the path") {
    auto encode_failure = [](const auto& x) -> std::string {
        try {
            encode(x);
        } catch (const encode_error& e) {
            // to_value must refuse the same value in the same words.
            REQUIRE_THROWS_WITH(weft::json::to_value(x), e.what());
            return e.what();
        }
        FAIL("encoding succeeded but should have failed");
        return {};
    };
    REQUIRE(encode_failure(std::vector<double>{1.0, std::nan("")}) == "weft: cannot encode payload at $[1]: JSON has no NaN");
    REQUIRE(encode_failure(std::map<std::string, float>{{"k", INFINITY}}) == "weft: cannot encode payload at $.k: JSON has no infinity");
    REQUIRE(encode_failure(shipping::item{"bad \xff", 1, {}}) == "weft: cannot encode payload at $.name: string is not valid UTF-8 (byte 4)");
    REQUIRE(encode_failure(std::map<std::string, int>{{"\xc3", 1}}) == R"(weft: cannot encode payload at $["\xc3"]: string is not valid UTF-8 (byte 0))");
    REQUIRE(encode_failure(shipping::item{"a", 1, static_cast<shipping::color>(7)}) ==
            "weft: cannot encode payload at $.c: enum value 7 has no described name");
}
