// The payload codec on hostile text: weft::json::parse, then decoding into every shape a step can
// take (integers of each width, floats, enums, optionals, containers, tuples, nested structs), and
// through a step table as a remote worker calls a step. Anything decoded must encode and decode back
// to the same value: a value weft accepts but cannot write, or writes but cannot read, is a finding.
#include "fuzz.hpp"

#include <weft/json.hpp>
#include <weft/step_table.hpp>

#include <boost/describe.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

namespace {

enum class color { red, green, blue };
BOOST_DESCRIBE_ENUM(color, red, green, blue)

struct leaf {
    std::int8_t i8 = 0;
    std::uint16_t u16 = 0;
    std::int64_t i64 = 0;
    std::uint64_t u64 = 0;
    float f = 0;
    double d = 0;
    bool b = false;
    bool operator==(const leaf&) const = default;
};
BOOST_DESCRIBE_STRUCT(leaf, (), (i8, u16, i64, u64, f, d, b))

struct tree {
    std::string name;
    std::optional<color> hue;
    std::vector<leaf> leaves;
    std::map<std::string, std::vector<int>> index;
    std::array<double, 2> pair{};
    std::tuple<int, std::string, std::optional<bool>> tag;
    std::vector<bool> bits;
    bool operator==(const tree&) const = default;
};
BOOST_DESCRIBE_STRUCT(tree, (), (name, hue, leaves, index, pair, tag, bits))

template <class T>
void round_trip(const weft::json::value& v) {
    T x;
    try {
        x = weft::json::from_value<T>(v);
    } catch (const weft::json::decode_error&) {
        return;  // refused with a path: what hostile input should get
    }
    std::string text;
    try {
        text = weft::json::encode(x);
    } catch (const weft::json::encode_error&) {
        weft::fuzz::require(false, "a decoded value does not encode");
    }
    T again;
    try {
        again = weft::json::decode<T>(text);
    } catch (const weft::json::decode_error& e) {
        std::fprintf(stderr, "%s\n%s\n", text.c_str(), e.what());
        weft::fuzz::require(false, "weft cannot read what it wrote");
    }
    weft::fuzz::require(again == x, "a value changed in a round trip");
}

struct total {
    static constexpr std::string_view name = "fuzz.total";
    double operator()(const tree& t) const {
        double s = t.pair[0] + t.pair[1];
        for (const leaf& l : t.leaves) s += l.d;
        return s;
    }
};
struct label {
    static constexpr std::string_view name = "fuzz.label";
    std::string operator()(double sum) const { return std::to_string(sum); }
};
constexpr auto flow = weft::workflow<"fuzz">(weft::step<total> >> weft::step<label>);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    weft::json::value v;
    try {
        v = weft::json::parse(weft::fuzz::text(data, size));
    } catch (const weft::json::decode_error&) {
        return 0;
    }
    // The DOM itself must serialize to JSON that parses again (no Infinity, no lone surrogates).
    const std::string dom = boost::json::serialize(v);
    try {
        weft::fuzz::require(weft::json::parse(dom) == v, "the DOM changed in a round trip");
    } catch (const weft::json::decode_error& e) {
        std::fprintf(stderr, "%s\n%s\n", dom.c_str(), e.what());
        weft::fuzz::require(false, "weft cannot parse its own DOM's text");
    }
    round_trip<tree>(v);
    round_trip<leaf>(v);
    round_trip<std::vector<std::optional<std::int32_t>>>(v);
    round_trip<std::map<std::string, color>>(v);
    round_trip<float>(v);
    round_trip<std::uint64_t>(v);
    round_trip<std::string>(v);
    // As a remote worker calls a step: the arguments array from the wire.
    if (const auto* args = v.if_array())
        for (const weft::erased_step& s : weft::step_table(flow)) {
            try {
                (void)s.invoke(*args);
            } catch (const weft::json::decode_error&) {
            } catch (const weft::json::encode_error&) {  // a sum that overflowed to infinity
            }
        }
    return 0;
}
