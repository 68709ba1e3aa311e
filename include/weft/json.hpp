// The payload codec: weft payloads <-> natural JSON, on Boost.JSON.
//
// Shapes (docs/payloads.md has the full table): described struct -> object keyed by field names,
// std::map<std::string, T> -> object, std::vector / std::array -> array, std::tuple -> array,
// std::optional -> the value or null (a missing key also reads as empty), described enum -> its name,
// bool -> true/false, integers and floating point -> numbers, std::string -> string.
//
// Reading is strict about what the target type needs (types, ranges, arity, required fields, enum
// names) and lenient about what it does not: unknown object keys are ignored, because Celery and
// Hatchet peers add fields of their own. Every failure is a decode_error naming the place and the
// expected type.
//
// Not included by DSL headers: link weft::json (Boost::json) and include this where bytes are made.
#pragma once

#include <weft/payload.hpp>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_stack.hpp>
#include <boost/mp11/algorithm.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace weft::json {

// The DOM the backends embed payloads in (Celery args arrays, Hatchet outputs, Temporal json/plain).
using value = boost::json::value;
using array = boost::json::array;
using object = boost::json::object;

// Arrays and objects nested deeper than this are rejected while parsing, so hostile input costs an
// error, not a stack overflow. Payload types themselves are never this deep.
inline constexpr std::size_t max_depth = 256;

// The text or the value does not fit the requested payload type.
class decode_error : public std::runtime_error {
public:
    // An error in a parsed value: path is JSON-pointer-ish ("$.items[3].qty").
    decode_error(std::string path, std::string expected, std::string got)
        : std::runtime_error(message("at " + path, expected, got)),
          path_(std::move(path)), expected_(std::move(expected)), got_(std::move(got)) {}

    // An error in the text itself (invalid JSON or UTF-8, nesting, trailing characters): the byte
    // offset is known, and what() adds line and column. A number out of range is valid JSON, so it
    // has a path as well.
    decode_error(std::size_t offset, std::string where, std::string expected, std::string got, std::string path = {})
        : std::runtime_error(message(where, expected, got)),
          path_(std::move(path)), expected_(std::move(expected)), got_(std::move(got)), offset_(offset) {}

    // "$" for the root; empty for errors in the syntax of the text.
    const std::string& path() const noexcept { return path_; }
    // The expected type or form in words: "unsigned 32-bit integer", "one of red|green|blue".
    const std::string& expected() const noexcept { return expected_; }
    // What was found instead: `string "x"`, "number 300 (out of range)", "no value (required ...)".
    const std::string& got() const noexcept { return got_; }
    // Byte offset into the text, for errors in the text.
    std::optional<std::size_t> offset() const noexcept { return offset_; }

private:
    static std::string message(const std::string& where, const std::string& expected, const std::string& got) {
        return "weft: cannot decode payload " + where + ": expected " + expected + ", got " + got;
    }

    std::string path_;
    std::string expected_;
    std::string got_;
    std::optional<std::size_t> offset_;
};

// The payload holds something JSON cannot carry faithfully: a NaN or infinity, a string that is not
// UTF-8, an enum value without a name.
class encode_error : public std::runtime_error {
public:
    encode_error(std::string path, std::string reason)
        : std::runtime_error("weft: cannot encode payload at " + path + ": " + reason),
          path_(std::move(path)), reason_(std::move(reason)) {}

    const std::string& path() const noexcept { return path_; }
    const std::string& reason() const noexcept { return reason_; }

private:
    std::string path_;
    std::string reason_;
};

namespace detail {

// ---------------------------------------------------------------------------------------------
// Where we are: one frame per level on the C++ stack, rendered into a path only when something fails.

struct frame {
    const frame* parent;
    std::string_view key;  // member name or map key, unless this is an array element
    std::size_t index = npos;

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
};

inline bool is_identifier(std::string_view s) {
    if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

// Printable quoting for messages: control characters, quotes and non-ASCII bytes escaped; cut at max.
inline std::string quoted(std::string_view s, std::size_t max = 40) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < max; ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += s.size() > max ? "\"..." : "\"";
    return out;
}

inline std::string render(const frame* at) {
    std::size_t depth = 0;
    for (auto f = at; f; f = f->parent) ++depth;
    std::vector<const frame*> chain(depth);
    for (auto f = at; f; f = f->parent) chain[--depth] = f;
    std::string path = "$";
    for (auto f : chain) {
        if (f->index != frame::npos)
            path += "[" + std::to_string(f->index) + "]";
        else if (is_identifier(f->key))
            path += "." + std::string(f->key);
        else
            path += "[" + quoted(f->key, std::string_view::npos) + "]";
    }
    return path;
}

inline std::string shortest(double d) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    return {buf, r.ptr};
}

inline std::string describe(const value& v) {
    switch (v.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return v.get_bool() ? "true" : "false";
    case boost::json::kind::int64: return "number " + std::to_string(v.get_int64());
    case boost::json::kind::uint64: return "number " + std::to_string(v.get_uint64());
    case boost::json::kind::double_:
        return std::isfinite(v.get_double()) ? "number " + shortest(v.get_double())
                                             : std::string("number beyond the range of a double");
    case boost::json::kind::string: return "string " + quoted(v.get_string());
    case boost::json::kind::array: return "array of " + std::to_string(v.get_array().size()) + " elements";
    case boost::json::kind::object: return "object";
    }
    return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Type traits for the shapes payload.hpp admits.

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_vector : std::false_type {};
template <class T, class A> struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T> struct is_std_array : std::false_type {};
template <class T, std::size_t N> struct is_std_array<std::array<T, N>> : std::true_type {};
template <class T> struct is_string_map : std::false_type {};
template <class T, class C, class A> struct is_string_map<std::map<std::string, T, C, A>> : std::true_type {};
template <class T> struct is_tuple : std::false_type {};
template <class... Ts> struct is_tuple<std::tuple<Ts...>> : std::true_type {};

template <class T>
concept described_enum = std::is_enum_v<T> && boost::describe::has_describe_enumerators<T>::value;

template <class T>
concept described_struct = std::is_class_v<T> && boost::describe::has_describe_members<T>::value &&
                           !is_optional<T>::value && !is_vector<T>::value && !is_std_array<T>::value &&
                           !is_string_map<T>::value && !is_tuple<T>::value;

// The expected type in words, for error messages only.
template <class T>
std::string expected_name() {
    if constexpr (std::is_same_v<T, bool>) {
        return "boolean";
    } else if constexpr (std::is_integral_v<T>) {
        return std::string(std::is_signed_v<T> ? "signed " : "unsigned ") + std::to_string(sizeof(T) * 8) + "-bit integer";
    } else if constexpr (std::is_same_v<T, float>) {
        return "32-bit floating-point number";
    } else if constexpr (std::is_floating_point_v<T>) {
        return "64-bit floating-point number";
    } else if constexpr (std::is_same_v<T, std::string>) {
        return "string";
    } else if constexpr (described_enum<T>) {
        std::string names;
        boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto e) {
            if (!names.empty()) names += '|';
            names += e.name;
        });
        return "one of " + names;
    } else if constexpr (is_optional<T>::value) {
        return expected_name<typename T::value_type>() + " or null";
    } else if constexpr (is_vector<T>::value) {
        return "array";
    } else if constexpr (is_std_array<T>::value) {
        return "array of " + std::to_string(std::tuple_size_v<T>) + " elements";
    } else if constexpr (is_tuple<T>::value) {
        return "array of " + std::to_string(std::tuple_size_v<T>) + " elements";
    } else {
        return "object";
    }
}

// ---------------------------------------------------------------------------------------------
// Writing text directly (encode) and building a DOM (to_value) share the checks below.

[[noreturn]] inline void encode_failure(const frame* at, std::string reason) {
    throw encode_error(render(at), std::move(reason));
}

// Length of the valid UTF-8 sequence starting at p (p < end, *p >= 0x80), or 0 if invalid.
// Rejects overlong forms, surrogates and code points above U+10FFFF, as RFC 3629 requires.
inline std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end) {
    auto cont = [&](std::size_t i) { return p + i < end && (p[i] & 0xc0) == 0x80; };
    unsigned char c = p[0];
    if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (!cont(1) || !cont(2)) return 0;
        if (c == 0xe0 && p[1] < 0xa0) return 0;   // overlong
        if (c == 0xed && p[1] >= 0xa0) return 0;  // surrogate
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        if (c == 0xf0 && p[1] < 0x90) return 0;  // overlong
        if (c == 0xf4 && p[1] >= 0x90) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}

inline std::size_t invalid_utf8_at(std::string_view s) {
    auto b = reinterpret_cast<const unsigned char*>(s.data());
    auto p = b, end = b + s.size();
    while (p != end) {
        if (*p < 0x80) {
            ++p;
            continue;
        }
        auto n = utf8_sequence(p, end);
        if (n == 0) return static_cast<std::size_t>(p - b);
        p += n;
    }
    return std::string_view::npos;
}

[[noreturn]] inline void invalid_utf8(const frame* at, std::size_t pos) {
    encode_failure(at, "string is not valid UTF-8 (byte " + std::to_string(pos) + ")");
}

template <class E>
const char* enum_name(E e) {
    const char* name = nullptr;
    boost::mp11::mp_for_each<boost::describe::describe_enumerators<E>>([&](auto d) {
        if (!name && d.value == e) name = d.name;
    });
    return name;
}

template <class F>
void require_finite(F x, const frame* at) {
    if (!std::isfinite(x)) encode_failure(at, "JSON has no " + std::string(std::isnan(x) ? "NaN" : "infinity"));
    if constexpr (!std::is_same_v<F, float> && !std::is_same_v<F, double>)
        if (std::fabs(x) > std::numeric_limits<double>::max()) encode_failure(at, "number beyond the range of a double");
}

// The float nearest to d; nothing where d rounds to an infinity (from halfway between FLT_MAX and
// 2^128 on). FLT_MAX's shortest text, 3.4028235e+38, reads as a double just above FLT_MAX.
inline std::optional<float> nearest_float(double d) {
    constexpr double halfway = 0x1.ffffffp+127;  // a tie, which goes to 2^128
    constexpr float most = std::numeric_limits<float>::max();
    if (!(std::fabs(d) < halfway)) return std::nullopt;
    return std::fabs(d) <= most ? static_cast<float>(d) : d > 0 ? most : -most;
}

// The shortest text of x that reads back as x the way every reader here (and a peer with only
// doubles) reads it: to the nearest double, then to the nearest float. For one float, 7.038531e-26
// (and its negative; found by trying all 2^32), that double rounding lands on the neighbour, so it is
// written with a double's digits.
inline char* float_text(char* first, char* last, float x) {
    auto r = std::to_chars(first, last, x);
    double d = 0;
    std::from_chars(first, r.ptr, d);
    if (nearest_float(d) != x) r = std::to_chars(first, last, static_cast<double>(x));
    return r.ptr;
}

template <class F>
double finite_double(F x, const frame* at) {
    require_finite(x, at);
    if constexpr (std::is_same_v<F, float>) {
        // The shortest decimal that reads back as this float, held as the nearest double, so a float
        // travels as 0.1 rather than 0.10000000149011612.
        char buf[32];
        auto end = float_text(buf, buf + sizeof buf, x);
        double d = x;
        std::from_chars(buf, end, d);
        return d;
    } else {
        return static_cast<double>(x);
    }
}

struct text_writer {
    std::string& out;

    void string(std::string_view s, const frame* at) {
        static constexpr char hex[] = "0123456789abcdef";
        auto b = reinterpret_cast<const unsigned char*>(s.data());
        auto p = b, end = b + s.size(), run = b;
        out.push_back('"');
        while (p != end) {
            unsigned char c = *p;
            if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
                ++p;
            } else if (c >= 0x80) {
                auto n = utf8_sequence(p, end);
                if (n == 0) invalid_utf8(at, static_cast<std::size_t>(p - b));
                p += n;
            } else {
                out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
                switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                }
                run = ++p;
            }
        }
        out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
        out.push_back('"');
    }

    template <class T>
    void write(const T& x, const frame* at) {
        if constexpr (std::is_same_v<T, bool>) {
            out += x ? "true" : "false";
        } else if constexpr (std::is_integral_v<T>) {
            char buf[24];
            auto r = std::to_chars(buf, buf + sizeof buf, x);
            out.append(buf, r.ptr);
        } else if constexpr (std::is_floating_point_v<T>) {
            require_finite(x, at);
            char buf[32];
            // Shortest text that reads back exactly; a long double travels as a double.
            auto end = std::is_same_v<T, float> ? float_text(buf, buf + sizeof buf, static_cast<float>(x))
                                                : std::to_chars(buf, buf + sizeof buf, static_cast<double>(x)).ptr;
            out.append(buf, end);
            // Keep a double a double for dynamically typed peers: 5.0 is written 5.0, not 5.
            if (std::find_if(buf, end, [](char c) { return c == '.' || c == 'e'; }) == end) out += ".0";
        } else if constexpr (std::is_same_v<T, std::string>) {
            string(x, at);
        } else if constexpr (described_enum<T>) {
            auto name = enum_name(x);
            if (!name) encode_failure(at, "enum value " + std::to_string(+static_cast<std::underlying_type_t<T>>(x)) + " has no described name");
            out += '"';
            out += name;
            out += '"';
        } else if constexpr (is_optional<T>::value) {
            if (x) write(*x, at);
            else out += "null";
        } else if constexpr (is_vector<T>::value || is_std_array<T>::value) {
            out += '[';
            std::size_t i = 0;
            for (const typename T::value_type& e : x) {
                if (i) out += ',';
                frame f{at, {}, i++};
                write(e, &f);
            }
            out += ']';
        } else if constexpr (is_string_map<T>::value) {
            out += '{';
            bool first = true;
            for (const auto& [k, e] : x) {
                if (!first) out += ',';
                first = false;
                frame f{at, k};
                string(k, &f);
                out += ':';
                write(e, &f);
            }
            out += '}';
        } else if constexpr (is_tuple<T>::value) {
            out += '[';
            auto element = [&](std::size_t i, const auto& e) {
                if (i) out += ',';
                frame f{at, {}, i};
                write(e, &f);
            };
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                (element(I, std::get<I>(x)), ...);
            }(std::make_index_sequence<std::tuple_size_v<T>>());
            out += ']';
        } else {
            static_assert(described_struct<T>);
            out += '{';
            bool first = true;
            boost::mp11::mp_for_each<weft::detail::public_members<T>>([&](auto d) {
                if (!first) out += ',';
                first = false;
                out += '"';
                out += d.name;
                out += "\":";
                frame f{at, d.name};
                write(x.*d.pointer, &f);
            });
            out += '}';
        }
    }
};

template <class T>
value make_value(const T& x, const frame* at) {
    if constexpr (std::is_same_v<T, bool>) {
        return value(x);
    } else if constexpr (std::is_integral_v<T>) {
        if constexpr (std::is_signed_v<T>) return value(static_cast<std::int64_t>(x));
        else return value(static_cast<std::uint64_t>(x));
    } else if constexpr (std::is_floating_point_v<T>) {
        return value(finite_double(x, at));
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (auto pos = invalid_utf8_at(x); pos != std::string_view::npos) invalid_utf8(at, pos);
        return value(boost::json::string_view(x.data(), x.size()));
    } else if constexpr (described_enum<T>) {
        auto name = enum_name(x);
        if (!name) encode_failure(at, "enum value " + std::to_string(+static_cast<std::underlying_type_t<T>>(x)) + " has no described name");
        return value(name);
    } else if constexpr (is_optional<T>::value) {
        return x ? make_value(*x, at) : value(nullptr);
    } else if constexpr (is_vector<T>::value || is_std_array<T>::value) {
        boost::json::array a;
        a.reserve(x.size());
        std::size_t i = 0;
        for (const typename T::value_type& e : x) {
            frame f{at, {}, i++};
            a.push_back(make_value(e, &f));
        }
        return value(std::move(a));
    } else if constexpr (is_string_map<T>::value) {
        boost::json::object o;
        o.reserve(x.size());
        for (const auto& [k, e] : x) {
            frame f{at, k};
            if (auto pos = invalid_utf8_at(k); pos != std::string_view::npos) invalid_utf8(&f, pos);
            o.emplace(boost::json::string_view(k.data(), k.size()), make_value(e, &f));
        }
        return value(std::move(o));
    } else if constexpr (is_tuple<T>::value) {
        boost::json::array a;
        a.reserve(std::tuple_size_v<T>);
        auto element = [&](std::size_t i, const auto& e) {
            frame f{at, {}, i};
            a.push_back(make_value(e, &f));
        };
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (element(I, std::get<I>(x)), ...);
        }(std::make_index_sequence<std::tuple_size_v<T>>());
        return value(std::move(a));
    } else {
        static_assert(described_struct<T>);
        boost::json::object o;
        o.reserve(boost::mp11::mp_size<weft::detail::public_members<T>>::value);
        boost::mp11::mp_for_each<weft::detail::public_members<T>>([&](auto d) {
            frame f{at, d.name};
            o.emplace(d.name, make_value(x.*d.pointer, &f));
        });
        return value(std::move(o));
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a DOM into a payload.

template <class T>
[[noreturn]] void mismatch(const value& v, const frame* at, std::string why = {}) {
    throw decode_error(render(at), expected_name<T>(), describe(v) + why);
}

template <class I>
void read_integer(const value& v, I& out, const frame* at) {
    using limits = std::numeric_limits<I>;
    switch (v.kind()) {
    case boost::json::kind::int64:
        if (std::in_range<I>(v.get_int64())) {
            out = static_cast<I>(v.get_int64());
            return;
        }
        mismatch<I>(v, at, " (out of range)");
    case boost::json::kind::uint64:
        if (std::in_range<I>(v.get_uint64())) {
            out = static_cast<I>(v.get_uint64());
            return;
        }
        mismatch<I>(v, at, " (out of range)");
    case boost::json::kind::double_: {
        // Peers that only have doubles (JavaScript) may write 3.0 or 1e3 for an integer: accept any
        // double that is exactly an integer in range.
        double d = v.get_double();
        if (std::isfinite(d) && d != std::trunc(d)) mismatch<I>(v, at, " (not an integer)");
        // Both bounds are powers of two (or zero), so exact as doubles.
        if (std::isfinite(d) && d >= static_cast<double>(limits::min()) && d < std::ldexp(1.0, limits::digits)) {
            out = static_cast<I>(d);
            return;
        }
        mismatch<I>(v, at, std::isfinite(d) ? " (out of range)" : "");
    }
    default: mismatch<I>(v, at);
    }
}

template <class F>
void read_floating(const value& v, F& out, const frame* at) {
    switch (v.kind()) {
    case boost::json::kind::int64: out = static_cast<F>(v.get_int64()); return;
    case boost::json::kind::uint64: out = static_cast<F>(v.get_uint64()); return;
    case boost::json::kind::double_: {
        double d = v.get_double();
        if (!std::isfinite(d)) mismatch<F>(v, at);
        if constexpr (std::is_same_v<F, float>) {
            auto f = nearest_float(d);
            if (!f) mismatch<F>(v, at, " (out of range)");
            out = *f;
        } else {
            out = static_cast<F>(d);
        }
        return;
    }
    default: mismatch<F>(v, at);
    }
}

template <class T>
void read(const value& v, T& out, const frame* at) {
    if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_bool()) mismatch<T>(v, at);
        out = v.get_bool();
    } else if constexpr (std::is_integral_v<T>) {
        read_integer(v, out, at);
    } else if constexpr (std::is_floating_point_v<T>) {
        read_floating(v, out, at);
    } else if constexpr (std::is_same_v<T, std::string>) {
        auto s = v.if_string();
        if (!s) mismatch<T>(v, at);
        out.assign(s->data(), s->size());
    } else if constexpr (described_enum<T>) {
        auto s = v.if_string();
        bool found = false;
        if (s)
            boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto d) {
                if (!found && *s == d.name) {
                    out = d.value;
                    found = true;
                }
            });
        if (!found) mismatch<T>(v, at);
    } else if constexpr (is_optional<T>::value) {
        if (v.is_null()) {
            out.reset();
        } else {
            if (!out) out.emplace();
            try {
                read(v, *out, at);
            } catch (const decode_error& e) {
                // The value itself did not fit (not something inside it): null would have.
                if (e.path() != render(at)) throw;
                throw decode_error(e.path(), e.expected() + " or null", e.got());
            }
        }
    } else if constexpr (is_vector<T>::value) {
        auto a = v.if_array();
        if (!a) mismatch<T>(v, at);
        out.clear();
        out.reserve(a->size());
        for (std::size_t i = 0; i < a->size(); ++i) {
            frame f{at, {}, i};
            if constexpr (std::is_same_v<typename T::value_type, bool>) {
                bool b;
                read((*a)[i], b, &f);
                out.push_back(b);
            } else {
                read((*a)[i], out.emplace_back(), &f);
            }
        }
    } else if constexpr (is_std_array<T>::value) {
        auto a = v.if_array();
        if (!a || a->size() != out.size()) mismatch<T>(v, at);
        for (std::size_t i = 0; i < out.size(); ++i) {
            frame f{at, {}, i};
            read((*a)[i], out[i], &f);
        }
    } else if constexpr (is_string_map<T>::value) {
        auto o = v.if_object();
        if (!o) mismatch<T>(v, at);
        out.clear();
        for (const auto& kv : *o) {
            std::string_view k(kv.key().data(), kv.key().size());
            frame f{at, k};
            read(kv.value(), out[std::string(k)], &f);
        }
    } else if constexpr (is_tuple<T>::value) {
        auto a = v.if_array();
        if (!a || a->size() != std::tuple_size_v<T>) mismatch<T>(v, at);
        auto element = [&](std::size_t i, auto& e) {
            frame f{at, {}, i};
            read((*a)[i], e, &f);
        };
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (element(I, std::get<I>(out)), ...);
        }(std::make_index_sequence<std::tuple_size_v<T>>());
    } else {
        static_assert(described_struct<T>);
        auto o = v.if_object();
        if (!o) mismatch<T>(v, at);
        // Unknown keys are ignored on purpose (peers add fields); see docs/payloads.md.
        boost::mp11::mp_for_each<weft::detail::public_members<T>>([&](auto d) {
            using member = std::remove_cvref_t<decltype(out.*d.pointer)>;
            frame f{at, d.name};
            if (auto it = o->find(d.name); it != o->end()) {
                read(it->value(), out.*d.pointer, &f);
            } else if constexpr (is_optional<member>::value) {
                (out.*d.pointer).reset();
            } else {
                throw decode_error(render(&f), expected_name<member>(),
                                   "no value (required field \"" + std::string(d.name) + "\" is missing)");
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing: Boost.JSON's parser with two changes. Doubles are converted with std::from_chars,
// because Boost.JSON 1.81's own conversion is not correctly rounded (about one random double in
// four comes back one ulp off); and the depth limit is weft's.

struct dom_handler {
    static constexpr std::size_t max_object_size = boost::json::object::max_size();
    static constexpr std::size_t max_array_size = boost::json::array::max_size();
    static constexpr std::size_t max_key_size = boost::json::string::max_size();
    static constexpr std::size_t max_string_size = boost::json::string::max_size();

    using error_code = boost::json::error_code;
    using string_view = boost::json::string_view;

    boost::json::value_stack st;
    std::string number;  // the parts of a number the parser delivered separately

    template <class... Args>
    explicit dom_handler(Args&&... args) : st(std::forward<Args>(args)...) {}

    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_object_begin(error_code&) { return true; }
    bool on_object_end(std::size_t n, error_code&) { st.push_object(n); return true; }
    bool on_array_begin(error_code&) { return true; }
    bool on_array_end(std::size_t n, error_code&) { st.push_array(n); return true; }
    bool on_key_part(string_view s, std::size_t, error_code&) { st.push_chars(s); return true; }
    bool on_key(string_view s, std::size_t, error_code&) { st.push_key(s); return true; }
    bool on_string_part(string_view s, std::size_t, error_code&) { st.push_chars(s); return true; }
    bool on_string(string_view s, std::size_t, error_code&) { st.push_string(s); return true; }
    bool on_number_part(string_view s, error_code&) { number.append(s.data(), s.size()); return true; }
    bool on_int64(std::int64_t i, string_view, error_code&) { number.clear(); st.push_int64(i); return true; }
    bool on_uint64(std::uint64_t u, string_view, error_code&) { number.clear(); st.push_uint64(u); return true; }
    bool on_double(double approx, string_view s, error_code& ec) {
        const char* b = s.data();
        const char* e = s.data() + s.size();
        if (!number.empty()) {
            number.append(s.data(), s.size());
            b = number.data();
            e = number.data() + number.size();
        }
        double d = approx;
        auto r = std::from_chars(b, e, d);
        if (r.ec == std::errc::result_out_of_range) {
            if (std::fabs(approx) >= 1) {
                // Beyond a double (1e400): an infinity in the DOM would be serialized as Infinity,
                // which is not JSON (Python's json writes it so), so the text is refused instead.
                out_of_range.assign(b, e);
                out_of_range_at = number.empty() ? s.data() : nullptr;
                number.clear();
                ec = boost::json::error::exponent_overflow;
                return false;
            }
            d = std::copysign(0.0, approx);  // below the smallest denormal: zero is the nearest double
        } else if (r.ec != std::errc() || r.ptr != e) {
            d = approx;  // not reachable for text the parser accepted, kept as a safe fallback
        }
        number.clear();
        st.push_double(d);
        return true;
    }
    std::string out_of_range;                // the literal of a number beyond a double
    const char* out_of_range_at = nullptr;  // where it starts in the text, when it came in one piece
    bool on_bool(bool b, error_code&) { st.push_bool(b); return true; }
    bool on_null(error_code&) { st.push_null(); return true; }
    bool on_comment_part(string_view, error_code&) { return true; }
    bool on_comment(string_view, error_code&) { return true; }
};

// The path of the value that starts at `offset`, from the text before it (which the parser has
// accepted), for the one error found in valid JSON while parsing. Keys are shown as written.
inline std::string path_at(std::string_view text, std::size_t offset) {
    struct level {
        bool object;
        bool want_key;
        std::size_t index;
        std::string_view key;
    };
    std::vector<level> open;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
        char c = text[i];
        if (c == '"') {
            std::size_t from = ++i;
            while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
            if (!open.empty() && open.back().want_key) {
                open.back().key = text.substr(from, i - from);
                open.back().want_key = false;
            }
        } else if (c == '[' || c == '{') {
            open.push_back({c == '{', c == '{', 0, {}});
        } else if (c == ']' || c == '}') {
            if (!open.empty()) open.pop_back();
        } else if (c == ',' && !open.empty()) {
            ++open.back().index;
            open.back().want_key = open.back().object;
        }
    }
    std::vector<frame> chain;
    chain.reserve(open.size());
    for (auto& l : open)
        chain.push_back({chain.empty() ? nullptr : &chain.back(), l.key, l.object ? frame::npos : l.index});
    return render(chain.empty() ? nullptr : &chain.back());
}

// The 1-based line and column (in bytes) of an offset, for messages about a text.
inline std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t offset) {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

[[noreturn]] inline void text_failure(std::string_view text, std::size_t offset, std::string expected, std::string got,
                                      std::string path = {}) {
    auto [line, column] = line_column(text, offset);
    auto offset_text = "offset " + std::to_string(offset);
    auto line_text = "line " + std::to_string(line) + ", column " + std::to_string(column);
    auto where = path.empty() ? "at " + offset_text + " (" + line_text + ")" : "at " + path + " (" + offset_text + ", " + line_text + ")";
    throw decode_error(offset, std::move(where), std::move(expected), std::move(got), std::move(path));
}

}  // namespace detail

// Parses JSON text into a DOM with weft's rules: strict RFC 8259 JSON (no comments, no trailing
// commas), strings must be UTF-8, at most max_depth levels, nothing but whitespace after the value,
// doubles correctly rounded, no number beyond the range of a double (RFC 8259 section 6 lets a parser
// limit the range; this one does so that a DOM never holds an infinity, which no serializer can
// write as JSON). Backends parse their envelopes with this too.
// The value's memory comes from sp (the default heap resource unless given).
inline value parse(std::string_view text, boost::json::storage_ptr sp = {}) {
    boost::json::parse_options opt;
    opt.max_depth = max_depth;
    unsigned char temp[BOOST_JSON_STACK_BUFFER_SIZE];
    boost::json::basic_parser<detail::dom_handler> p(opt, boost::json::storage_ptr(), temp, sizeof temp);
    p.handler().st.reset(std::move(sp));
    boost::json::error_code ec;
    std::size_t n = p.write_some(false, text.data(), text.size(), ec);
    if (const auto& big = p.handler().out_of_range; !big.empty()) {
        auto at = p.handler().out_of_range_at;
        std::size_t offset = at >= text.data() && at < text.data() + text.size() ? static_cast<std::size_t>(at - text.data()) : n;
        detail::text_failure(text, offset, "a number within the range of a double (at most 1.7976931348623157e+308)",
                             "number " + big.substr(0, 40) + (big.size() > 40 ? "..." : "") + " (out of range)",
                             detail::path_at(text, offset));
    }
    if (ec == boost::json::error::too_deep)
        detail::text_failure(text, n, "at most " + std::to_string(max_depth) + " nested arrays and objects",
                             "deeper nesting");
    if (ec) {
        // The parser reports a bad byte inside a string as a syntax error; say which it was.
        auto rest = text.substr(std::min(n, text.size()));
        if (!rest.empty() && static_cast<unsigned char>(rest[0]) >= 0x80 && detail::invalid_utf8_at(rest) == 0)
        {
            std::size_t len = 1;  // the lead byte and the continuation bytes after it
            while (len < 4 && len < rest.size() && (static_cast<unsigned char>(rest[len]) & 0xc0) == 0x80) ++len;
            detail::text_failure(text, n, "valid UTF-8", "invalid byte sequence " + detail::quoted(rest.substr(0, len)));
        }
        detail::text_failure(text, n, "valid JSON", ec.message() + (rest.empty() ? std::string(" at end of input") : " at " + detail::quoted(rest, 16)));
    }
    if (n < text.size())
        detail::text_failure(text, n, "end of input after the JSON value", "trailing characters " + detail::quoted(text.substr(n), 16));
    return p.handler().st.release();
}

// The DOM for a payload (for backends that embed it in an envelope). Throws encode_error for NaN,
// infinities, strings that are not UTF-8 and enum values without a described name.
template <weft::payload T>
value to_value(const T& x) {
    return detail::make_value(x, nullptr);
}

// Reads a payload from a DOM. Throws decode_error, whose path starts at this value ("$").
template <weft::payload T>
T from_value(const value& v) {
    static_assert(std::default_initializable<T>, "weft: a decoded payload type must be default-constructible");
    T out{};
    detail::read(v, out, nullptr);
    return out;
}

// Compact JSON text for a payload. Throws encode_error as to_value does.
template <weft::payload T>
std::string encode(const T& x) {
    std::string out;
    detail::text_writer{out}.write(x, nullptr);
    return out;
}

// Reads a payload from JSON text. Throws decode_error.
template <weft::payload T>
T decode(std::string_view text) {
    // The DOM is scaffolding here: allocate it from one arena and drop it in one go.
    unsigned char buffer[4096];
    boost::json::monotonic_resource arena(buffer, sizeof buffer);
    return from_value<T>(parse(text, &arena));
}

}  // namespace weft::json
