// The payload codec: every supported type survives encode/decode and to_value/from_value unchanged,
// in the natural JSON shape peers expect.
#include <catch2/catch.hpp>

#include <boost/describe.hpp>
#include <boost/json/serialize.hpp>
#include <weft/json.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

namespace store {

enum class color { red, green, blue };
BOOST_DESCRIBE_ENUM(color, red, green, blue)

enum class priority : std::uint8_t { low = 1, high = 200 };
BOOST_DESCRIBE_ENUM(priority, low, high)

struct address {
    std::string city;
    std::optional<std::string> postcode;
    friend bool operator==(const address&, const address&) = default;
};
BOOST_DESCRIBE_STRUCT(address, (), (city, postcode))

struct line {
    std::string sku;
    std::uint32_t qty = 0;
    double price = 0;
    color c = color::red;
    std::vector<std::string> tags;
    friend bool operator==(const line&, const line&) = default;
};
BOOST_DESCRIBE_STRUCT(line, (), (sku, qty, price, c, tags))

struct order {
    std::string id;
    std::int64_t customer = 0;
    priority urgency = priority::low;
    address ship_to;
    std::vector<line> lines;
    std::map<std::string, std::string> metadata;
    std::optional<std::string> note;
    std::optional<address> bill_to;
    std::tuple<int, std::string, bool> stamp;
    std::array<float, 3> weights{};
    friend bool operator==(const order&, const order&) = default;
};
BOOST_DESCRIBE_STRUCT(order, (), (id, customer, urgency, ship_to, lines, metadata, note, bill_to, stamp, weights))

struct base {
    std::string trace_id;
    int attempt = 0;
};
BOOST_DESCRIBE_STRUCT(base, (), (trace_id, attempt))

struct derived : base {
    std::vector<bool> flags;
    friend bool operator==(const derived& a, const derived& b) {
        return a.trace_id == b.trace_id && a.attempt == b.attempt && a.flags == b.flags;
    }
};
BOOST_DESCRIBE_STRUCT(derived, (base), (flags))

}  // namespace store

namespace {

using weft::json::decode;
using weft::json::encode;
using weft::json::from_value;
using weft::json::to_value;

// Both paths, text and DOM, and the DOM written by Boost.JSON's serializer, give back x.
template <class T>
void require_roundtrip(const T& x) {
    INFO("encoded: " << encode(x));
    REQUIRE(decode<T>(encode(x)) == x);
    REQUIRE(from_value<T>(to_value(x)) == x);
    REQUIRE(decode<T>(boost::json::serialize(to_value(x))) == x);
    // The text writer and the DOM builder agree on the shape.
    REQUIRE(weft::json::parse(encode(x)) == to_value(x));
}

template <class T>
bool same_bits(T a, T b) {
    return std::memcmp(&a, &b, sizeof(T)) == 0;
}

store::order sample_order(std::mt19937_64& rng) {
    auto pick = [&](std::uint64_t n) { return static_cast<std::size_t>(rng() % n); };
    static const char* words[] = {"alpha", "Zürich", "naïve café", "東京", "emoji 😀", "quote \" and \\", "tab\tnew\nline", ""};
    auto word = [&] { return std::string(words[pick(std::size(words))]); };
    store::order o;
    o.id = "ord-" + std::to_string(rng());
    o.customer = static_cast<std::int64_t>(rng());
    o.urgency = pick(2) ? store::priority::low : store::priority::high;
    o.ship_to = {word(), pick(2) ? std::optional<std::string>(word()) : std::nullopt};
    for (std::size_t i = 0, n = pick(6); i < n; ++i) {
        store::line l{word(), static_cast<std::uint32_t>(rng()), std::ldexp(static_cast<double>(rng() % 1000000), -static_cast<int>(pick(40))),
                     static_cast<store::color>(pick(3)), {}};
        for (std::size_t t = 0, m = pick(4); t < m; ++t) l.tags.push_back(word());
        o.lines.push_back(std::move(l));
    }
    for (std::size_t i = 0, n = pick(4); i < n; ++i) o.metadata[word() + std::to_string(i)] = word();
    if (pick(2)) o.note = word();
    if (pick(2)) o.bill_to = store::address{word(), std::nullopt};
    o.stamp = {static_cast<int>(rng()), word(), pick(2) == 1};
    o.weights = {static_cast<float>(pick(100)) / 7.0f, -0.0f, 1e-40f};
    return o;
}

}  // namespace

TEST_CASE("a described struct encodes as an object keyed by field names, in declaration order") {
    store::line l{"A-1", 3, 2.5, store::color::green, {"x", "y"}};
    REQUIRE(encode(l) == R"({"sku":"A-1","qty":3,"price":2.5,"c":"green","tags":["x","y"]})");
    require_roundtrip(l);
}

TEST_CASE("an empty optional encodes as null and a missing key decodes to an empty optional") {
    store::address a{"Lyon", std::nullopt};
    REQUIRE(encode(a) == R"({"city":"Lyon","postcode":null})");
    REQUIRE(decode<store::address>(R"({"city":"Lyon"})") == a);
    REQUIRE(decode<store::address>(R"({"city":"Lyon","postcode":"69002"})").postcode == "69002");
    require_roundtrip(a);
    require_roundtrip(std::optional<int>{});
    require_roundtrip(std::optional<int>{7});
}

TEST_CASE("an enum travels by its described name, not its number") {
    REQUIRE(encode(store::color::blue) == R"("blue")");
    REQUIRE(encode(store::priority::high) == R"("high")");
    REQUIRE(decode<store::color>(R"("green")") == store::color::green);
    require_roundtrip(store::priority::high);
}

TEST_CASE("a tuple encodes as a JSON array and a string map as an object") {
    std::tuple<int, std::string, store::color> t{4, "four", store::color::red};
    REQUIRE(encode(t) == R"([4,"four","red"])");
    require_roundtrip(t);
    std::map<std::string, int> m{{"b", 2}, {"a", 1}, {"with space", 3}};
    REQUIRE(encode(m) == R"({"a":1,"b":2,"with space":3})");
    require_roundtrip(m);
    require_roundtrip(std::map<std::string, std::vector<store::line>>{{"k", {store::line{"s", 1, 0.5, store::color::blue, {}}}}});
}

TEST_CASE("vectors and fixed-size arrays, including vector<bool>, round-trip") {
    REQUIRE(encode(std::vector<bool>{true, false, true}) == "[true,false,true]");
    require_roundtrip(std::vector<bool>{true, false, true});
    require_roundtrip(std::vector<int>{});
    require_roundtrip(std::array<std::int16_t, 4>{-32768, 0, 1, 32767});
    require_roundtrip(std::vector<std::optional<double>>{1.5, std::nullopt, -2.0});
    require_roundtrip(std::vector<std::vector<std::string>>{{"a"}, {}, {"b", "c"}});
}

TEST_CASE("members inherited from a described base travel with the derived struct's own") {
    store::derived d;
    d.trace_id = "t-1";
    d.attempt = 2;
    d.flags = {true, false};
    REQUIRE(encode(d) == R"({"trace_id":"t-1","attempt":2,"flags":[true,false]})");
    require_roundtrip(d);
}

TEST_CASE("every integer type round-trips its extremes exactly") {
    auto extremes = [](auto zero) {
        using I = decltype(zero);
        require_roundtrip(std::numeric_limits<I>::min());
        require_roundtrip(std::numeric_limits<I>::max());
        require_roundtrip(I{0});
    };
    extremes(static_cast<signed char>(0));
    extremes(static_cast<unsigned char>(0));
    extremes(short{});
    extremes(static_cast<unsigned short>(0));
    extremes(int{});
    extremes(0u);
    extremes(0l);
    extremes(0ul);
    extremes(0ll);
    extremes(0ull);
    REQUIRE(encode(std::numeric_limits<std::int64_t>::min()) == "-9223372036854775808");
    REQUIRE(encode(std::numeric_limits<std::uint64_t>::max()) == "18446744073709551615");
    REQUIRE(decode<std::int64_t>("-9223372036854775808") == std::numeric_limits<std::int64_t>::min());
    REQUIRE(decode<std::uint64_t>("18446744073709551615") == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("random int64 and uint64 values round-trip exactly") {
    std::mt19937_64 rng(1);
    for (int i = 0; i < 20000; ++i) {
        auto u = rng() >> (rng() % 64);
        REQUIRE(decode<std::uint64_t>(encode(u)) == u);
        auto s = static_cast<std::int64_t>(rng()) >> (rng() % 64);
        REQUIRE(decode<std::int64_t>(encode(s)) == s);
        REQUIRE(from_value<std::int64_t>(to_value(s)) == s);
    }
}

TEST_CASE("integers written as integral doubles by other peers are accepted") {
    REQUIRE(decode<int>("3.0") == 3);
    REQUIRE(decode<std::uint32_t>("1e3") == 1000);
    REQUIRE(decode<std::int64_t>("-9.223372036854775808e18") == std::numeric_limits<std::int64_t>::min());
}

TEST_CASE("a double stays a double on the wire and round-trips bit for bit") {
    REQUIRE(encode(5.0) == "5.0");
    REQUIRE(encode(-0.0) == "-0.0");
    REQUIRE(encode(0.1) == "0.1");
    REQUIRE(encode(1e300) == "1e+300");
    REQUIRE(same_bits(decode<double>("-0.0"), -0.0));
    for (double d : {std::numeric_limits<double>::min(), std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
                     std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::epsilon(), 0.1 + 0.2, 1.0 / 3.0}) {
        INFO(d);
        REQUIRE(same_bits(decode<double>(encode(d)), d));
    }
}

TEST_CASE("random double bit patterns round-trip exactly through text, DOM and Boost's serializer") {
    // Boost.JSON 1.81's own parser gets about a quarter of these wrong by one ulp; weft's does not.
    std::mt19937_64 rng(2);
    int checked = 0;
    for (int i = 0; i < 200000; ++i) {
        double d = std::bit_cast<double>(rng());
        if (!std::isfinite(d)) continue;
        ++checked;
        auto text = encode(d);
        double back = decode<double>(text);
        if (!same_bits(back, d)) FAIL("double " << text << " came back as " << encode(back));
        double via_boost = decode<double>(boost::json::serialize(to_value(d)));
        if (!same_bits(via_boost, d)) FAIL("double " << text << " via Boost's serializer came back as " << encode(via_boost));
    }
    REQUIRE(checked > 190000);
}

TEST_CASE("the extreme floats round-trip exactly: FLT_MAX, denormals, -0.0") {
    using limits = std::numeric_limits<float>;
    for (float f : {limits::max(), limits::lowest(), limits::min(), -limits::min(), limits::denorm_min(),
                    -limits::denorm_min(), std::nextafter(limits::min(), 0.0f), std::nextafter(limits::max(), 0.0f),
                    -0.0f, 0.0f, limits::epsilon(),
                    // Its shortest text's nearest double rounds to the next float up: written longer.
                    std::strtof("7.038531e-26", nullptr), -std::strtof("7.038531e-26", nullptr)}) {
        INFO(encode(f));
        REQUIRE(same_bits(decode<float>(encode(f)), f));
        REQUIRE(same_bits(from_value<float>(to_value(f)), f));
        REQUIRE(same_bits(decode<float>(boost::json::serialize(to_value(f))), f));
    }
    // Numbers round to the nearest float: up to halfway between FLT_MAX and 2^128 is FLT_MAX.
    constexpr double halfway = 0x1.ffffffp+127;  // ties to even: to 2^128, out of range
    REQUIRE(decode<float>(encode(std::nextafter(halfway, 0.0))) == limits::max());
    REQUIRE(decode<float>(encode(-std::nextafter(halfway, 0.0))) == limits::lowest());
    REQUIRE_THROWS_AS(decode<float>(encode(halfway)), weft::json::decode_error);
    REQUIRE_THROWS_AS(decode<float>(encode(-halfway)), weft::json::decode_error);
}

TEST_CASE("random float bit patterns round-trip exactly and are written shortest") {
    REQUIRE(encode(0.1f) == "0.1");
    REQUIRE(encode(std::numeric_limits<float>::max()) == "3.4028235e+38");
    std::mt19937 rng(3);
    for (int i = 0; i < 200000; ++i) {
        float f = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
        if (!std::isfinite(f)) continue;
        float back = decode<float>(encode(f));
        if (!same_bits(back, f)) FAIL("float " << encode(f) << " came back different");
        float via_dom = from_value<float>(to_value(f));
        if (!same_bits(via_dom, f)) FAIL("float " << encode(f) << " via the DOM came back different");
        float via_boost = decode<float>(boost::json::serialize(to_value(f)));
        if (!same_bits(via_boost, f)) FAIL("float " << encode(f) << " via Boost's serializer came back different");
    }
}

TEST_CASE("strings keep unicode, control characters, quotes and NUL bytes") {
    require_roundtrip(std::string("Zürich 東京 😀 \"quoted\" back\\slash"));
    require_roundtrip(std::string("\x01\x1f\b\f\n\r\t", 7));
    require_roundtrip(std::string("nul\0inside", 10));
    REQUIRE(encode(std::string("a\"b\\c\nd\x01")) == R"("a\"b\\c\nd\u0001")");
    REQUIRE(encode(std::string("é")) == "\"\xc3\xa9\"");  // UTF-8 passes through unescaped
    // Escapes written by other peers, including a surrogate pair.
    REQUIRE(decode<std::string>(R"("\u00e9\ud83d\ude00\/")") == "\xc3\xa9\xf0\x9f\x98\x80/");
}

TEST_CASE("random valid UTF-8 strings round-trip byte for byte") {
    std::mt19937 rng(4);
    auto append_utf8 = [](std::string& s, char32_t c) {
        if (c < 0x80) {
            s += static_cast<char>(c);
        } else if (c < 0x800) {
            s += static_cast<char>(0xc0 | (c >> 6));
            s += static_cast<char>(0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            s += static_cast<char>(0xe0 | (c >> 12));
            s += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (c & 0x3f));
        } else {
            s += static_cast<char>(0xf0 | (c >> 18));
            s += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
            s += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (c & 0x3f));
        }
    };
    for (int i = 0; i < 5000; ++i) {
        std::string s;
        for (int n = static_cast<int>(rng() % 20); n > 0; --n) {
            char32_t c;
            switch (rng() % 4) {
            case 0: c = rng() % 0x80; break;
            case 1: c = 0x80 + rng() % (0x800 - 0x80); break;
            case 2: do c = 0x800 + rng() % (0x10000 - 0x800); while (c >= 0xd800 && c <= 0xdfff); break;
            default: c = 0x10000 + rng() % (0x110000 - 0x10000);
            }
            append_utf8(s, c);
        }
        REQUIRE(decode<std::string>(encode(s)) == s);
        REQUIRE(from_value<std::string>(to_value(s)) == s);
    }
}

TEST_CASE("a nested payload round-trips for many generated values") {
    std::mt19937_64 rng(5);
    for (int i = 0; i < 2000; ++i) {
        auto o = sample_order(rng);
        INFO("order " << i << ": " << encode(o));
        REQUIRE(decode<store::order>(encode(o)) == o);
        REQUIRE(from_value<store::order>(to_value(o)) == o);
    }
}

TEST_CASE("unknown object keys from other peers are ignored") {
    auto a = decode<store::address>(R"({"extra":[1,{"deep":true}],"city":"Oslo","__celery_meta":null})");
    REQUIRE(a == store::address{"Oslo", std::nullopt});
}

TEST_CASE("whitespace around the value is accepted") {
    REQUIRE(decode<std::vector<int>>(" \t\r\n[ 1 ,\n 2 ]\n\n ") == std::vector<int>{1, 2});
}

TEST_CASE("a payload embeds in a larger envelope through the DOM") {
    // A Celery-like body: [args, kwargs, embed], with the payload as the only positional argument.
    store::address a{"Oslo", "0150"};
    boost::json::array body{boost::json::array{to_value(a)}, boost::json::object{}, boost::json::object{{"chain", nullptr}}};
    auto text = boost::json::serialize(body);
    REQUIRE(text == R"([[{"city":"Oslo","postcode":"0150"}],{},{"chain":null}])");
    auto parsed = weft::json::parse(text);
    REQUIRE(from_value<store::address>(parsed.as_array()[0].as_array()[0]) == a);
}

TEST_CASE("the depth limit admits exactly max_depth levels of nesting") {
    std::string ok = std::string(weft::json::max_depth, '[') + std::string(weft::json::max_depth, ']');
    REQUIRE_NOTHROW(weft::json::parse(ok));
}

TEST_CASE("a 10 MB string round-trips") {
    std::string big(10 * 1024 * 1024, 'x');
    for (std::size_t i = 0; i < big.size(); i += 997) big[i] = '"';
    auto text = encode(big);
    REQUIRE(text.size() > big.size());
    REQUIRE(decode<std::string>(text) == big);
}

TEST_CASE("a long double travels as the nearest double") {
    REQUIRE(encode(0.5L) == "0.5");
    REQUIRE(decode<long double>("0.1") == static_cast<long double>(0.1));
    REQUIRE_THROWS_AS(encode(std::numeric_limits<long double>::max()), weft::json::encode_error);
}
