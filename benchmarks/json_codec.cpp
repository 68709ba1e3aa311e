// Payload codec benchmark: one realistic nested payload, encoded and decoded by each candidate JSON
// library, in one run. Prints the median of many timed batches, in ns per operation and MB/s.
//
// Every decoder reads the same text (weft's encoding) and checks types as it goes; every candidate
// decodes from its DOM, because the backends need a DOM to embed payloads in envelopes. Each
// candidate's result is compared with the original before timing, so a fast wrong codec shows up.
//
// Build and run (docs/payloads.md records the figures):
//   g++ -std=c++20 -O2 -DNDEBUG -Iinclude benchmarks/json_codec.cpp -lboost_json -lsimdjson -o /tmp/json_codec
//   /tmp/json_codec
// Libraries: libboost-json1.81-dev, rapidjson-dev, libsimdjson-dev, nlohmann-json3-dev, libcereal-dev.
// Define WEFT_BENCH_NO_OTHERS to build with Boost.JSON alone.
#include <weft/json.hpp>

#include <boost/describe.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

#ifndef WEFT_BENCH_NO_OTHERS
#include <cereal/archives/json.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <nlohmann/json.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace shop {

enum class priority { low, normal, high, urgent };
BOOST_DESCRIBE_ENUM(priority, low, normal, high, urgent)

struct address {
    std::string street;
    std::string city;
    std::string country;
    std::optional<std::string> postcode;
    friend bool operator==(const address&, const address&) = default;
};
BOOST_DESCRIBE_STRUCT(address, (), (street, city, country, postcode))

struct line_item {
    std::string sku;
    std::string title;
    std::uint32_t qty;
    double unit_price;
    std::vector<std::string> tags;
    std::optional<std::string> gift_note;
    friend bool operator==(const line_item&, const line_item&) = default;
};
BOOST_DESCRIBE_STRUCT(line_item, (), (sku, title, qty, unit_price, tags, gift_note))

struct order {
    std::string id;
    std::uint64_t customer_id;
    priority urgency;
    address ship_to;
    std::vector<line_item> items;
    std::map<std::string, std::string> metadata;
    std::optional<std::string> note;
    double total;
    bool paid;
    friend bool operator==(const order&, const order&) = default;
};
BOOST_DESCRIBE_STRUCT(order, (), (id, customer_id, urgency, ship_to, items, metadata, note, total, paid))


order sample(int items) {
    order o{"ord-2024-000123", 884422113355ULL, priority::high,
            {"12 Rue de l'Église", "Lyon", "FR", "69002"}, {}, {}, std::nullopt, 0.0, true};
    for (int i = 0; i < items; ++i) {
        line_item li{"SKU-" + std::to_string(100000 + i * 7), "Widget model " + std::to_string(i) + " \"deluxe\" – blue",
                     static_cast<std::uint32_t>(1 + i % 5), 3.25 + i * 1.1, {"hardware", "blue", "promo-" + std::to_string(i % 3)},
                     i % 4 == 0 ? std::optional<std::string>("Happy birthday!\nLove, A.") : std::nullopt};
        o.total += li.qty * li.unit_price;
        o.items.push_back(std::move(li));
    }
    o.metadata = {{"channel", "web"}, {"campaign", "spring-sale"}, {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"}};
    o.note = "Leave at the door";
    return o;
}

}  // namespace shop

namespace d = weft::json::detail;

#ifndef WEFT_BENCH_NO_OTHERS
// ------------------------------------------------------------------------------------------------
// RapidJSON: SAX writer out, DOM (full-precision parse) in.
namespace rj {
template <class W, class T>
void write(W& w, const T& x) {
    if constexpr (std::is_same_v<T, bool>) w.Bool(x);
    else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) w.Int64(x);
    else if constexpr (std::is_integral_v<T>) w.Uint64(x);
    else if constexpr (std::is_floating_point_v<T>) w.Double(x);
    else if constexpr (std::is_same_v<T, std::string>) w.String(x.data(), static_cast<rapidjson::SizeType>(x.size()));
    else if constexpr (d::described_enum<T>) w.String(d::enum_name(x));
    else if constexpr (d::is_optional<T>::value) { if (x) write(w, *x); else w.Null(); }
    else if constexpr (d::is_vector<T>::value) { w.StartArray(); for (auto& e : x) write(w, e); w.EndArray(); }
    else if constexpr (d::is_string_map<T>::value) {
        w.StartObject();
        for (auto& [k, e] : x) { w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size())); write(w, e); }
        w.EndObject();
    } else {
        w.StartObject();
        boost::mp11::mp_for_each<weft::detail::public_members<T>>([&](auto m) { w.Key(m.name); write(w, x.*m.pointer); });
        w.EndObject();
    }
}
[[noreturn]] inline void bad() { throw std::runtime_error("rapidjson: type mismatch"); }
template <class V, class T>
void read(const V& v, T& out) {
    if constexpr (std::is_same_v<T, bool>) { if (!v.IsBool()) bad(); out = v.GetBool(); }
    else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) { if (!v.IsInt64()) bad(); out = static_cast<T>(v.GetInt64()); }
    else if constexpr (std::is_integral_v<T>) {
        if (!v.IsUint64() || !std::in_range<T>(v.GetUint64())) bad();
        out = static_cast<T>(v.GetUint64());
    } else if constexpr (std::is_floating_point_v<T>) { if (!v.IsNumber()) bad(); out = v.GetDouble(); }
    else if constexpr (std::is_same_v<T, std::string>) { if (!v.IsString()) bad(); out.assign(v.GetString(), v.GetStringLength()); }
    else if constexpr (d::described_enum<T>) {
        if (!v.IsString()) bad();
        bool found = false;
        boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto e) {
            if (!found && std::strcmp(v.GetString(), e.name) == 0) { out = e.value; found = true; }
        });
        if (!found) bad();
    } else if constexpr (d::is_optional<T>::value) { if (v.IsNull()) out.reset(); else read(v, out.emplace()); }
    else if constexpr (d::is_vector<T>::value) {
        if (!v.IsArray()) bad();
        out.clear(); out.reserve(v.Size());
        for (auto& e : v.GetArray()) read(e, out.emplace_back());
    } else if constexpr (d::is_string_map<T>::value) {
        if (!v.IsObject()) bad();
        out.clear();
        for (auto& m : v.GetObject()) read(m.value, out[std::string(m.name.GetString(), m.name.GetStringLength())]);
    } else {
        if (!v.IsObject()) bad();
        boost::mp11::mp_for_each<weft::detail::public_members<T>>([&](auto m) {
            auto it = v.FindMember(m.name);
            if (it == v.MemberEnd()) bad();
            read(it->value, out.*m.pointer);
        });
    }
}
std::string encode(const shop::order& o) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    write(w, o);
    return {sb.GetString(), sb.GetSize()};
}
shop::order decode(const std::string& s) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(s.data(), s.size());
    if (doc.HasParseError()) throw std::runtime_error("rapidjson: parse error");
    shop::order o;
    read(doc, o);
    return o;
}
}  // namespace rj

// ------------------------------------------------------------------------------------------------
// simdjson 3.0.1: DOM in only (it has no general writer).
namespace sj {
[[noreturn]] inline void bad() { throw std::runtime_error("simdjson: type mismatch"); }
template <class T>
void read(simdjson::dom::element v, T& out) {
    if constexpr (std::is_same_v<T, bool>) { if (v.get(out)) bad(); }
    else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) { std::int64_t x; if (v.get(x)) bad(); out = static_cast<T>(x); }
    else if constexpr (std::is_integral_v<T>) { std::uint64_t x; if (v.get(x) || !std::in_range<T>(x)) bad(); out = static_cast<T>(x); }
    else if constexpr (std::is_floating_point_v<T>) { double x; if (v.get(x)) bad(); out = x; }
    else if constexpr (std::is_same_v<T, std::string>) { std::string_view s; if (v.get(s)) bad(); out.assign(s); }
    else if constexpr (d::described_enum<T>) {
        std::string_view s; if (v.get(s)) bad();
        bool found = false;
        boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto e) {
            if (!found && s == e.name) { out = e.value; found = true; }
        });
        if (!found) bad();
    } else if constexpr (d::is_optional<T>::value) { if (v.is_null()) out.reset(); else read(v, out.emplace()); }
    else if constexpr (d::is_vector<T>::value) {
        simdjson::dom::array a; if (v.get(a)) bad();
        out.clear(); out.reserve(a.size());
        for (auto e : a) read(e, out.emplace_back());
    } else if constexpr (d::is_string_map<T>::value) {
        simdjson::dom::object o; if (v.get(o)) bad();
        out.clear();
        for (auto [k, e] : o) read(e, out[std::string(k)]);
    } else {
        simdjson::dom::object o; if (v.get(o)) bad();
        boost::mp11::mp_for_each<weft::detail::public_members<T>>([&](auto m) {
            simdjson::dom::element e;
            if (o.at_key(m.name).get(e)) bad();
            read(e, out.*m.pointer);
        });
    }
}
shop::order decode(simdjson::dom::parser& p, const std::string& s) {
    simdjson::dom::element doc;
    if (p.parse(s.data(), s.size()).get(doc)) throw std::runtime_error("simdjson: parse error");
    shop::order o;
    read(doc, o);
    return o;
}
}  // namespace sj

// ------------------------------------------------------------------------------------------------
// nlohmann::json 3.11: DOM both ways.
namespace nl {
using json = nlohmann::json;
template <class T>
json to(const T& x) {
    if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string>) return json(x);
    else if constexpr (d::described_enum<T>) return json(d::enum_name(x));
    else if constexpr (d::is_optional<T>::value) return x ? to(*x) : json(nullptr);
    else if constexpr (d::is_vector<T>::value) { json a = json::array(); for (auto& e : x) a.push_back(to(e)); return a; }
    else if constexpr (d::is_string_map<T>::value) { json o = json::object(); for (auto& [k, e] : x) o[k] = to(e); return o; }
    else {
        json o = json::object();
        boost::mp11::mp_for_each<weft::detail::public_members<T>>([&](auto m) { o[m.name] = to(x.*m.pointer); });
        return o;
    }
}
[[noreturn]] inline void bad() { throw std::runtime_error("nlohmann: type mismatch"); }
template <class T>
void read(const json& v, T& out) {
    if constexpr (std::is_same_v<T, bool>) { if (!v.is_boolean()) bad(); out = v.get<bool>(); }
    else if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) bad();
        if (v.is_number_unsigned()) { auto x = v.get<std::uint64_t>(); if (!std::in_range<T>(x)) bad(); out = static_cast<T>(x); }
        else { auto x = v.get<std::int64_t>(); if (!std::in_range<T>(x)) bad(); out = static_cast<T>(x); }
    } else if constexpr (std::is_floating_point_v<T>) { if (!v.is_number()) bad(); out = v.get<double>(); }
    else if constexpr (std::is_same_v<T, std::string>) { if (!v.is_string()) bad(); out = v.get_ref<const std::string&>(); }
    else if constexpr (d::described_enum<T>) {
        if (!v.is_string()) bad();
        auto& s = v.get_ref<const std::string&>();
        bool found = false;
        boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto e) {
            if (!found && s == e.name) { out = e.value; found = true; }
        });
        if (!found) bad();
    } else if constexpr (d::is_optional<T>::value) { if (v.is_null()) out.reset(); else read(v, out.emplace()); }
    else if constexpr (d::is_vector<T>::value) {
        if (!v.is_array()) bad();
        out.clear(); out.reserve(v.size());
        for (auto& e : v) read(e, out.emplace_back());
    } else if constexpr (d::is_string_map<T>::value) {
        if (!v.is_object()) bad();
        out.clear();
        for (auto& [k, e] : v.items()) read(e, out[k]);
    } else {
        if (!v.is_object()) bad();
        boost::mp11::mp_for_each<weft::detail::public_members<T>>([&](auto m) {
            auto it = v.find(m.name);
            if (it == v.end()) bad();
            read(*it, out.*m.pointer);
        });
    }
}
}  // namespace nl
#endif  // WEFT_BENCH_NO_OTHERS

#ifndef WEFT_BENCH_NO_OTHERS
// ------------------------------------------------------------------------------------------------
// cereal 1.3 (the design card's bridge): its own shapes — a root object, enums as numbers, maps as
// arrays of {key, value} — so it reads only its own output, not the common text.
namespace cereal {
template <class Archive, class T>
    requires(boost::describe::has_describe_members<T>::value && !traits::has_member_serialize<T, Archive>::value)
void serialize(Archive& ar, T& t) {
    boost::mp11::mp_for_each<boost::describe::describe_members<T, boost::describe::mod_public>>(
        [&](auto m) { ar(cereal::make_nvp(m.name, t.*m.pointer)); });
}
}  // namespace cereal
namespace cr {
std::string encode(const shop::order& o) {
    std::ostringstream os;
    {
        cereal::JSONOutputArchive ar(os, cereal::JSONOutputArchive::Options::NoIndent());
        ar(cereal::make_nvp("order", o));
    }
    return os.str();
}
shop::order decode(const std::string& s) {
    std::istringstream is(s);
    cereal::JSONInputArchive ar(is);
    shop::order o;
    ar(cereal::make_nvp("order", o));
    return o;
}
}  // namespace cr
#endif

// ------------------------------------------------------------------------------------------------
// Timing. Candidates are interleaved: every round runs one batch of each, so a busy machine slows
// them alike. Each batch is sized to about 1 ms; the figure is the median over the rounds (the
// fastest round is printed too, as the least disturbed one).

struct candidate {
    std::string name, op;
    std::size_t bytes;
    std::function<void()> run;
    std::size_t batch = 1;
    std::vector<double> samples{};
};

template <class T>
void keep(const T& x) {
    asm volatile("" : : "g"(&x) : "memory");
}

void measure(std::vector<candidate>& cs, int rounds) {
    using clock = std::chrono::steady_clock;
    auto time_batch = [](candidate& c) {
        auto t0 = clock::now();
        for (std::size_t i = 0; i < c.batch; ++i) c.run();
        return std::chrono::duration<double, std::nano>(clock::now() - t0).count();
    };
    for (auto& c : cs)
        while (time_batch(c) < 1e6) c.batch *= 2;
    for (int r = 0; r < rounds; ++r)
        for (auto& c : cs) c.samples.push_back(time_batch(c) / static_cast<double>(c.batch));
    std::printf("%-46s %-7s %7s %12s %10s %12s\n", "candidate", "op", "bytes", "median ns/op", "MB/s", "best ns/op");
    for (auto& c : cs) {
        auto s = c.samples;
        std::sort(s.begin(), s.end());
        double median = s[s.size() / 2];
        std::printf("%-46s %-7s %7zu %12.0f %10.1f %12.0f\n", c.name.c_str(), c.op.c_str(), c.bytes, median,
                    static_cast<double>(c.bytes) / median * 1e3, s.front());
    }
}

// A candidate that does not reproduce the payload is still timed, but flagged.
bool check(bool ok, const char* who) {
    if (!ok) std::printf("!! %s: round trip does not reproduce the payload exactly\n", who);
    return ok;
}

int main(int argc, char** argv) {
    int items = argc > 1 ? std::atoi(argv[1]) : 25;
    int rounds = argc > 2 ? std::atoi(argv[2]) : 101;
    const shop::order o = shop::sample(items);
    const std::string text = weft::json::encode(o);
    std::printf("payload: order with %d line items, %zu bytes of JSON (weft encoding); %d rounds\n\n", items, text.size(), rounds);
    std::vector<candidate> cs;

    // weft::json: direct text writer; Boost.JSON parser with correctly rounded doubles + from_value.
    check(weft::json::decode<shop::order>(text) == o, "weft::json");
    cs.push_back({"weft::json (Boost.JSON 1.81 + from_chars)", "encode", text.size(), [&] { keep(weft::json::encode(o)); }});
    cs.push_back({"weft::json (Boost.JSON 1.81 + from_chars)", "decode", text.size(), [&] { keep(weft::json::decode<shop::order>(text)); }});
    auto via_dom = boost::json::serialize(weft::json::to_value(o));
    check(weft::json::decode<shop::order>(via_dom) == o, "weft to_value");
    cs.push_back({"  weft to_value + boost::json::serialize", "encode", via_dom.size(),
                  [&] { keep(boost::json::serialize(weft::json::to_value(o))); }});
    cs.push_back({"  weft::json::parse (heap DOM)", "parse", text.size(), [&] { keep(weft::json::parse(text)); }});
    cs.push_back({"  boost::json::parse (stock, heap DOM)", "parse", text.size(), [&] { keep(boost::json::parse(text)); }});
    const auto dom = weft::json::parse(text);
    cs.push_back({"  weft::json::from_value", "walk", text.size(), [&] { keep(weft::json::from_value<shop::order>(dom)); }});

    // Boost.JSON's own Describe-aware conversions (value_from / parse + value_to).
    auto boost_text = boost::json::serialize(boost::json::value_from(o));
    check(boost::json::value_to<shop::order>(boost::json::parse(text)) == o, "Boost.JSON value_to (1.81 parser rounds doubles inexactly)");
    cs.push_back({"Boost.JSON 1.81 value_from/value_to", "encode", boost_text.size(),
                  [&] { keep(boost::json::serialize(boost::json::value_from(o))); }});
    cs.push_back({"Boost.JSON 1.81 value_from/value_to", "decode", text.size(),
                  [&] { keep(boost::json::value_to<shop::order>(boost::json::parse(text))); }});
#ifndef WEFT_BENCH_NO_OTHERS
    auto rj_text = rj::encode(o);
    check(rj::decode(text) == o && rj::decode(rj_text) == o, "RapidJSON");
    cs.push_back({"RapidJSON 1.1 (Writer; Document full-prec.)", "encode", rj_text.size(), [&] { keep(rj::encode(o)); }});
    cs.push_back({"RapidJSON 1.1 (Writer; Document full-prec.)", "decode", text.size(), [&] { keep(rj::decode(text)); }});

    static simdjson::dom::parser sj_parser;
    check(sj::decode(sj_parser, text) == o, "simdjson");
    cs.push_back({"simdjson 3.0.1 DOM (no writer)", "decode", text.size(), [&] { keep(sj::decode(sj_parser, text)); }});

    auto nl_text = nl::to(o).dump();
    auto nl_decode = [&] {
        shop::order x;
        nl::read(nl::json::parse(text), x);
        return x;
    };
    check(nl_decode() == o, "nlohmann");
    cs.push_back({"nlohmann::json 3.11.2", "encode", nl_text.size(), [&] { keep(nl::to(o).dump()); }});
    cs.push_back({"nlohmann::json 3.11.2", "decode", text.size(), [&] { keep(nl_decode()); }});

    auto cr_text = cr::encode(o);
    check(cr::decode(cr_text) == o, "cereal");
    cs.push_back({"cereal 1.3.2 JSON archives (own shapes)", "encode", cr_text.size(), [&] { keep(cr::encode(o)); }});
    cs.push_back({"cereal 1.3.2 JSON archives (own shapes)", "decode", cr_text.size(), [&] { keep(cr::decode(cr_text)); }});
#endif
    measure(cs, rounds);
}
