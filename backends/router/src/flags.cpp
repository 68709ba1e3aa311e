// flagd flag files: parsing with positions, JsonLogic and flagd's custom operations.
//
// The reference for every semantic choice is the official Python evaluator (openfeature-flagd-core
// 2.0.0 and the JsonLogic it uses, panzi-json-logic 1.0.1), because that is what the parity test
// (tests/router/flagd_parity.py) runs against: Python's truthiness, number coercion and string
// conversion, not JavaScript's. docs/flags.md lists the places where weft refuses at load time
// what Python only fails on at evaluation.
#include <weft/router/flags.hpp>

#include <weft/json.hpp>
#include <weft/telemetry.hpp>

#include <boost/json/serialize.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace weft::flags {

flag_error::flag_error(std::string origin, std::size_t line, std::size_t column, std::string reason)
    : std::runtime_error(origin + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + reason),
      origin_(std::move(origin)), line_(line), column_(column), reason_(std::move(reason)) {}

namespace {

using boost::json::array;
using boost::json::kind;
using boost::json::object;
using boost::json::value;

// Python's int32 limit on the sum of fractional weights.
constexpr std::int64_t max_weight_sum = 2147483647;
// Nesting of targeting rules, counted through $ref evaluators too (the JSON text is limited to
// weft::json::max_depth already; shared evaluators could multiply it).
constexpr std::size_t max_rule_depth = 512;

// ---------------------------------------------------------------------------------------------
// Rules, compiled once: the JSON tree with operators resolved, so evaluation never looks at names.

enum class op : std::uint8_t {
    literal, list, ref,
    var, missing, missing_some, if_, eq, strict_eq, ne, strict_ne, not_, truthy, or_, and_,
    lt, le, gt, ge, in, cat, substr, add, sub, mul, div, mod, min, max, merge,
    map, filter, reduce, all, none, some, log,
    fractional, starts_with, ends_with, sem_ver,
};

const std::map<std::string_view, op>& operators() {
    static const std::map<std::string_view, op> table{
        {"var", op::var}, {"missing", op::missing}, {"missing_some", op::missing_some}, {"if", op::if_},
        {"?:", op::if_}, {"==", op::eq}, {"===", op::strict_eq}, {"!=", op::ne}, {"!==", op::strict_ne},
        {"!", op::not_}, {"!!", op::truthy}, {"or", op::or_}, {"and", op::and_}, {"<", op::lt},
        {"<=", op::le}, {">", op::gt}, {">=", op::ge}, {"in", op::in}, {"cat", op::cat},
        {"substr", op::substr}, {"+", op::add}, {"-", op::sub}, {"*", op::mul}, {"/", op::div},
        {"%", op::mod}, {"min", op::min}, {"max", op::max}, {"merge", op::merge}, {"map", op::map},
        {"filter", op::filter}, {"reduce", op::reduce}, {"all", op::all}, {"none", op::none},
        {"some", op::some}, {"log", op::log}, {"fractional", op::fractional},
        {"starts_with", op::starts_with}, {"ends_with", op::ends_with}, {"sem_ver", op::sem_ver}};
    return table;
}

struct fraction {
    std::string variant;
    std::int64_t weight;
};

struct node {
    op code = op::literal;
    value literal;                       // op::literal
    std::vector<node> args;              // op::list: the elements; an operator: its arguments
    std::shared_ptr<const node> target;  // op::ref: the shared evaluator
    std::string name;                    // op::ref: the evaluator's name (for messages)
    // fractional whose buckets are all literal: no evaluation of them per call.
    bool static_fractions = false;
    bool shorthand = false;              // fractional without a bucketing expression
    std::vector<fraction> fractions;
    std::int64_t total_weight = 0;
    std::string weights;                 // "celery 90, temporal 10", for `why`
    std::size_t height = 1;              // levels of evaluation below and including this node
};

// ---------------------------------------------------------------------------------------------
// Python's coercions (json_logic/builtins.py), on Boost.JSON values. Python's bool is an int.

struct num {
    bool is_int;
    std::int64_t i;
    double d;
    double real() const { return is_int ? static_cast<double>(i) : d; }
};

num integer(std::int64_t i) { return {true, i, 0}; }
num real(double d) { return {false, 0, d}; }

struct eval_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Python's float(str): surrounding whitespace, an optional sign, decimal or nan/inf(inity); the
// exact words inf, -inf and +inf are NaN in json_logic (as JavaScript reads them).
num string_number(std::string_view s) {
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
    while (!s.empty() && ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && ws(s.back())) s.remove_suffix(1);
    std::string lower(s);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "inf" || lower == "-inf" || lower == "+inf" || s.empty()) return real(NAN);
    std::string_view t = s;
    bool negative = false;
    if (t.front() == '+' || t.front() == '-') {
        negative = t.front() == '-';
        t.remove_prefix(1);
    }
    std::string_view lt = std::string_view(lower).substr(s.size() - t.size());
    if (lt == "nan") return real(NAN);
    if (lt == "infinity") return real(negative ? -INFINITY : INFINITY);
    if (t.empty() || !(std::isdigit(static_cast<unsigned char>(t.front())) || t.front() == '.')) return real(NAN);
    double d = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), d, std::chars_format::general);
    if (r.ec == std::errc::result_out_of_range) {
        // Python rounds to inf or 0 instead of refusing.
        d = std::strtod(std::string(t).c_str(), nullptr);
    } else if (r.ec != std::errc() || r.ptr != t.data() + t.size()) {
        return real(NAN);
    }
    return real(negative ? -d : d);
}

num to_number(const value& v) {
    switch (v.kind()) {
    case kind::null: return integer(0);
    case kind::bool_: return integer(v.get_bool() ? 1 : 0);
    case kind::int64: return integer(v.get_int64());
    case kind::uint64:
        return v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX) ? integer(static_cast<std::int64_t>(v.get_uint64()))
                                                                       : real(static_cast<double>(v.get_uint64()));
    case kind::double_: return real(v.get_double());
    case kind::string: return string_number(v.get_string());
    case kind::array: {
        auto& a = v.get_array();
        if (a.empty()) return integer(0);
        if (a.size() > 1) return real(NAN);
        return to_number(a[0]);
    }
    case kind::object: return real(NAN);
    }
    return real(NAN);
}

value from_num(num n) { return n.is_int ? value(n.i) : value(n.d); }

bool is_numeric(const value& v) { return v.is_number() || v.is_bool(); }

// Python's repr of a float: the shortest text that reads back, with ".0" on integral values.
std::string python_float(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[40];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    std::string s(buf, r.ptr);
    auto e = s.find('e');
    std::string mantissa = s.substr(0, e), exponent = e == std::string::npos ? "" : s.substr(e + 1);
    int exp10 = 0;
    // to_chars chooses fixed or scientific by length; Python by exponent (< -4 or >= 16: scientific).
    std::string digits;
    int point;
    {
        std::string m = mantissa;
        bool neg = !m.empty() && m[0] == '-';
        if (neg) m.erase(0, 1);
        auto dot = m.find('.');
        std::string intpart = m.substr(0, dot), frac = dot == std::string::npos ? "" : m.substr(dot + 1);
        digits = intpart + frac;
        point = static_cast<int>(intpart.size());
        if (!exponent.empty()) point += std::stoi(exponent);
        auto nz = digits.find_first_not_of('0');
        if (nz == std::string::npos) return neg ? "-0.0" : "0.0";
        point -= static_cast<int>(nz);
        digits.erase(0, nz);
        while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
        exp10 = point - 1;
        std::string out = neg ? "-" : "";
        if (exp10 < -4 || exp10 >= 16) {
            out += digits.substr(0, 1);
            if (digits.size() > 1) out += "." + digits.substr(1);
            char eb[8];
            std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
            return out + eb;
        }
        if (point <= 0) return out + "0." + std::string(static_cast<std::size_t>(-point), '0') + digits;
        if (static_cast<std::size_t>(point) >= digits.size())
            return out + digits + std::string(static_cast<std::size_t>(point) - digits.size(), '0') + ".0";
        return out + digits.substr(0, static_cast<std::size_t>(point)) + "." + digits.substr(static_cast<std::size_t>(point));
    }
}

// json_logic's to_string: floats as '%.15g', and (Python's bool being an int) True/False.
void append_string(std::string& out, const value& v) {
    switch (v.kind()) {
    case kind::string: out.append(v.get_string().data(), v.get_string().size()); return;
    case kind::double_: {
        double d = v.get_double();
        if (std::isnan(d)) out += "nan";
        else if (std::isinf(d)) out += d > 0 ? "inf" : "-inf";
        else {
            char buf[40];
            std::snprintf(buf, sizeof buf, "%.15g", d);
            out += buf;
        }
        return;
    }
    case kind::int64: out += std::to_string(v.get_int64()); return;
    case kind::uint64: out += std::to_string(v.get_uint64()); return;
    case kind::bool_: out += v.get_bool() ? "True" : "False"; return;
    case kind::null: out += "null"; return;
    case kind::array: {
        bool first = true;
        for (auto& e : v.get_array()) {
            if (!first) out += ',';
            first = false;
            append_string(out, e);
        }
        return;
    }
    case kind::object: out += "[object Object]"; return;
    }
}

std::string to_string(const value& v) {
    std::string s;
    append_string(s, v);
    return s;
}

bool to_bool(const value& v) {
    switch (v.kind()) {
    case kind::null: return false;
    case kind::bool_: return v.get_bool();
    case kind::int64: return v.get_int64() != 0;
    case kind::uint64: return v.get_uint64() != 0;
    case kind::double_: return !std::isnan(v.get_double()) && v.get_double() != 0;
    case kind::string: return !v.get_string().empty();
    case kind::array: return !v.get_array().empty();
    case kind::object: return true;
    }
    return false;
}

bool ordered(num a, num b, int& out) {  // false when unordered (NaN)
    if (a.is_int && b.is_int) {
        out = a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
        return true;
    }
    double x = a.real(), y = b.real();
    if (std::isnan(x) || std::isnan(y)) return false;
    out = x < y ? -1 : x > y ? 1 : 0;
    return true;
}

bool num_eq(num a, num b) {
    int c;
    return ordered(a, b, c) && c == 0;
}

// Python's == between JSON values (for ===, !== and `in` on arrays): 1 == 1.0 == True.
bool py_eq(const value& a, const value& b) {
    if (is_numeric(a) && is_numeric(b)) return num_eq(to_number(a), to_number(b));
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
    case kind::null: return true;
    case kind::string: return a.get_string() == b.get_string();
    case kind::array: {
        auto &x = a.get_array(), &y = b.get_array();
        if (x.size() != y.size()) return false;
        for (std::size_t i = 0; i < x.size(); ++i)
            if (!py_eq(x[i], y[i])) return false;
        return true;
    }
    case kind::object: {
        auto &x = a.get_object(), &y = b.get_object();
        if (x.size() != y.size()) return false;
        for (auto& [k, v] : x) {
            auto it = y.find(k);
            if (it == y.end() || !py_eq(v, it->value())) return false;
        }
        return true;
    }
    default: return false;
    }
}

// json_logic's op_equals (loose ==). Two arrays or objects are equal only when they are the same
// Python object, which two evaluated arguments never are here.
bool loose_eq(const value& a, const value& b) {
    bool same_type = a.kind() == b.kind() || (a.is_int64() && b.is_uint64()) || (a.is_uint64() && b.is_int64());
    if (same_type) {
        if (a.is_array() || a.is_object()) return false;
        return py_eq(a, b);
    }
    if (is_numeric(a)) return num_eq(to_number(a), to_number(b));
    if (is_numeric(b)) return num_eq(to_number(a), to_number(b));
    if (a.is_null() || b.is_null()) return false;
    if (a.is_string()) return (b.is_array() || b.is_object()) && a.get_string() == to_string(b);
    if (a.is_array() || a.is_object()) return b.is_string() && to_string(a) == b.get_string();
    return false;
}

// json_logic's less_than & co.: numbers first, then strings, then numbers again.
template <class Cmp>
bool compare(const value& a, const value& b, Cmp cmp) {
    auto numeric = [&](num x, num y) {
        int c;
        return ordered(x, y, c) && cmp(c, 0);
    };
    if (is_numeric(a) || is_numeric(b)) return numeric(to_number(a), to_number(b));
    if (a.is_string() || b.is_string()) {
        std::string x = to_string(a), y = to_string(b);
        return cmp(x.compare(y), 0);
    }
    return numeric(to_number(a), to_number(b));
}

// UTF-8 code points, since Python indexes strings by them.
std::vector<std::size_t> code_point_starts(std::string_view s) {
    std::vector<std::size_t> starts;
    for (std::size_t i = 0; i < s.size(); ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) starts.push_back(i);
    return starts;
}

std::int64_t python_int(double d) {
    if (!std::isfinite(d)) throw eval_error("cannot convert " + python_float(d) + " to an integer");
    if (d >= 9.2e18 || d <= -9.2e18) throw eval_error("index out of range");
    return static_cast<std::int64_t>(d);  // int() truncates toward zero
}

// ---------------------------------------------------------------------------------------------
// Canonical CBOR (cbor2.dumps(canonical=True)) of the bucketing value, and MurmurHash3 x86 32.

void cbor_head(std::string& out, unsigned major, std::uint64_t n) {
    auto m = static_cast<char>(major << 5);
    if (n < 24) {
        out += static_cast<char>(m | static_cast<char>(n));
        return;
    }
    int bytes = n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffffu ? 4 : 8;
    out += static_cast<char>(m | static_cast<char>(bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27));
    for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((n >> (8 * i)) & 0xff);
}

void cbor_bits(std::string& out, char tag, std::uint64_t bits, int bytes) {
    out += tag;
    for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((bits >> (8 * i)) & 0xff);
}

// The half-precision bits of d, if d is exactly a half (d is finite and not zero here).
std::optional<std::uint16_t> exact_half(double d) {
    std::uint16_t sign = std::signbit(d) ? 0x8000 : 0;
    double a = std::fabs(d);
    if (a > 65504.0) return std::nullopt;
    int e;
    double m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    int exponent = e - 1;          // a = (2m) * 2^exponent
    if (exponent >= -14) {
        double mant = (2 * m - 1) * 1024;
        if (mant != std::floor(mant)) return std::nullopt;
        return static_cast<std::uint16_t>(sign | ((exponent + 15) << 10) | static_cast<int>(mant));
    }
    double q = std::ldexp(a, 24);
    if (q != std::floor(q) || q >= 1024) return std::nullopt;
    return static_cast<std::uint16_t>(sign | static_cast<int>(q));
}

void cbor(std::string& out, const value& v);

void cbor_double(std::string& out, double d) {
    // flagd-core's normalize_numbers: an integral float in [-2^63, 2^64) hashes as that integer.
    if (std::isfinite(d) && d == std::trunc(d) && d >= -9223372036854775808.0 && d < 18446744073709551616.0) {
        if (d < 0) cbor_head(out, 1, ~static_cast<std::uint64_t>(static_cast<std::int64_t>(d)));  // -1 - n, exactly
        else cbor_head(out, 0, static_cast<std::uint64_t>(d));
        return;
    }
    if (std::isnan(d)) return cbor_bits(out, '\xf9', 0x7e00, 2);
    if (std::isinf(d)) return cbor_bits(out, '\xf9', d > 0 ? 0x7c00 : 0xfc00, 2);
    auto f = static_cast<float>(d);
    if (static_cast<double>(f) == d) {
        if (auto h = exact_half(d)) return cbor_bits(out, '\xf9', *h, 2);
        std::uint32_t bits;
        std::memcpy(&bits, &f, 4);
        return cbor_bits(out, '\xfa', bits, 4);
    }
    std::uint64_t bits;
    std::memcpy(&bits, &d, 8);
    cbor_bits(out, '\xfb', bits, 8);
}

void cbor_string(std::string& out, std::string_view s) {
    cbor_head(out, 3, s.size());
    out.append(s);
}

void cbor(std::string& out, const value& v) {
    switch (v.kind()) {
    case kind::null: out += '\xf6'; return;
    case kind::bool_: out += v.get_bool() ? '\xf5' : '\xf4'; return;
    case kind::int64:
        if (v.get_int64() >= 0) cbor_head(out, 0, static_cast<std::uint64_t>(v.get_int64()));
        else cbor_head(out, 1, ~static_cast<std::uint64_t>(v.get_int64()));
        return;
    case kind::uint64: cbor_head(out, 0, v.get_uint64()); return;
    case kind::double_: cbor_double(out, v.get_double()); return;
    case kind::string: cbor_string(out, v.get_string()); return;
    case kind::array:
        cbor_head(out, 4, v.get_array().size());
        for (auto& e : v.get_array()) cbor(out, e);
        return;
    case kind::object: {
        // Canonical order: shorter encoded keys first, then bytewise (all keys are text strings).
        std::vector<const boost::json::key_value_pair*> kvs;
        for (auto& kv : v.get_object()) kvs.push_back(&kv);
        std::sort(kvs.begin(), kvs.end(), [](auto* a, auto* b) {
            auto x = a->key(), y = b->key();
            return x.size() != y.size() ? x.size() < y.size() : x < y;
        });
        cbor_head(out, 5, kvs.size());
        for (auto* kv : kvs) {
            cbor_string(out, kv->key());
            cbor(out, kv->value());
        }
        return;
    }
    }
}

std::uint32_t murmur3_32(std::string_view data, std::uint32_t seed = 0) {
    auto rotl = [](std::uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
    const std::uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
    std::uint32_t h = seed;
    std::size_t blocks = data.size() / 4;
    auto p = reinterpret_cast<const unsigned char*>(data.data());
    for (std::size_t i = 0; i < blocks; ++i) {
        std::uint32_t k = p[4 * i] | (p[4 * i + 1] << 8) | (p[4 * i + 2] << 16) | (static_cast<std::uint32_t>(p[4 * i + 3]) << 24);
        k *= c1;
        k = rotl(k, 15);
        k *= c2;
        h ^= k;
        h = rotl(h, 13);
        h = h * 5 + 0xe6546b64;
    }
    const unsigned char* tail = p + blocks * 4;
    std::uint32_t k = 0;
    switch (data.size() & 3) {
    case 3: k ^= tail[2] << 16; [[fallthrough]];
    case 2: k ^= tail[1] << 8; [[fallthrough]];
    case 1:
        k ^= tail[0];
        k *= c1;
        k = rotl(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= static_cast<std::uint32_t>(data.size());
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

// ---------------------------------------------------------------------------------------------
// sem_ver, as flagd-core normalizes versions and the semver package compares them.

struct version {
    std::uint64_t major = 0, minor = 0, patch = 0;
    std::vector<std::string> prerelease;  // empty: none
};

bool numeric_identifier(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool semver_number(std::string_view s, std::uint64_t& out) {
    if (!numeric_identifier(s) || (s.size() > 1 && s[0] == '0')) return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    std::size_t from = 0;
    for (;;) {
        auto at = s.find(sep, from);
        parts.push_back(s.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
        if (at == std::string_view::npos) return parts;
        from = at + 1;
    }
}

bool identifier_chars(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    });
}

// Python's str() of a value, for the version text (sem_ver calls str(arg)).
std::string python_str(const value& v) {
    switch (v.kind()) {
    case kind::null: return "None";
    case kind::bool_: return v.get_bool() ? "True" : "False";
    case kind::double_: return python_float(v.get_double());
    case kind::string: return std::string(v.get_string());
    case kind::int64: return std::to_string(v.get_int64());
    case kind::uint64: return std::to_string(v.get_uint64());
    default: return boost::json::serialize(v);  // Python's repr differs; it never parses as a version
    }
}

std::optional<version> parse_version(const value& arg) {
    std::string text = python_str(arg);
    std::string_view s = text;
    if (!s.empty() && (s[0] == 'v' || s[0] == 'V')) s.remove_prefix(1);
    // Partial versions are padded: "1" -> "1.0.0", "1.2-rc" -> "1.2.0-rc".
    std::string_view numeric = s.substr(0, std::min(s.find('-'), s.size()));
    numeric = numeric.substr(0, std::min(numeric.find('+'), numeric.size()));
    std::string padded(numeric);
    auto dots = std::count(numeric.begin(), numeric.end(), '.');
    for (auto i = dots; i < 2; ++i) padded += ".0";
    padded += s.substr(numeric.size());
    std::string_view p = padded;
    // ^major.minor.patch(-prerelease)?(+build)?$ with semver's identifier rules.
    std::string_view build_part, pre_part;
    auto plus = p.find('+');
    if (plus != std::string_view::npos) {
        build_part = p.substr(plus + 1);
        p = p.substr(0, plus);
        for (auto id : split(build_part, '.'))
            if (!identifier_chars(id)) return std::nullopt;
    }
    auto dash = p.find('-');
    bool has_pre = dash != std::string_view::npos;
    if (has_pre) {
        pre_part = p.substr(dash + 1);
        p = p.substr(0, dash);
    }
    auto core = split(p, '.');
    version v;
    if (core.size() != 3 || !semver_number(core[0], v.major) || !semver_number(core[1], v.minor) ||
        !semver_number(core[2], v.patch))
        return std::nullopt;
    if (has_pre) {
        for (auto id : split(pre_part, '.')) {
            if (!identifier_chars(id)) return std::nullopt;
            if (numeric_identifier(id) && id.size() > 1 && id[0] == '0') return std::nullopt;
            v.prerelease.emplace_back(id);
        }
    }
    return v;
}

int cmp_prerelease(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    // semver's _nat_cmp: numeric identifiers by value and below alphanumeric ones.
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        bool na = numeric_identifier(a[i]), nb = numeric_identifier(b[i]);
        int c;
        if (na && nb) {
            auto x = a[i].substr(std::min(a[i].find_first_not_of('0'), a[i].size() - 1));
            auto y = b[i].substr(std::min(b[i].find_first_not_of('0'), b[i].size() - 1));
            c = x.size() != y.size() ? (x.size() < y.size() ? -1 : 1) : x.compare(y);
        } else if (na != nb) {
            c = na ? -1 : 1;
        } else {
            c = a[i].compare(b[i]);
        }
        if (c) return c < 0 ? -1 : 1;
    }
    return a.size() == b.size() ? 0 : a.size() < b.size() ? -1 : 1;
}

int cmp_version(const version& a, const version& b) {
    if (a.major != b.major) return a.major < b.major ? -1 : 1;
    if (a.minor != b.minor) return a.minor < b.minor ? -1 : 1;
    if (a.patch != b.patch) return a.patch < b.patch ? -1 : 1;
    if (a.prerelease == b.prerelease) return 0;
    if (a.prerelease.empty()) return 1;
    if (b.prerelease.empty()) return -1;
    return cmp_prerelease(a.prerelease, b.prerelease);
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

struct env {
    const context* ctx;
    std::string_view flag_key;
    std::int64_t timestamp;
    // Built only when a rule reads them as values.
    std::optional<value> targeting_key, flagd, whole;
    // The last fractional decision, for `why`.
    std::string fractional_why;
    std::string fractional_variant;

    const value& targeting_key_value() {
        if (!targeting_key) targeting_key = ctx->targeting_key.empty() ? value() : value(ctx->targeting_key);
        return *targeting_key;
    }
    const value& flagd_value() {
        if (!flagd) flagd = value(object{{"flagKey", flag_key}, {"timestamp", timestamp}});
        return *flagd;
    }
    const value& whole_value() {
        if (!whole) {
            object o = ctx->attributes;
            o["$flagd"] = flagd_value();
            o["targetingKey"] = targeting_key_value();
            whole = value(std::move(o));
        }
        return *whole;
    }
};

// What var reads: the evaluation context (lazily), or an element of map/filter/... .
struct scope {
    const value* data;  // null: the root context
};

const value null_value;

// A member of the data, without building the root object.
const value* member(env& e, scope s, std::string_view key) {
    if (!s.data) {
        if (key == "targetingKey") return &e.targeting_key_value();
        if (key == "$flagd") return &e.flagd_value();
        auto it = e.ctx->attributes.find(key);
        return it == e.ctx->attributes.end() ? nullptr : &it->value();
    }
    if (!s.data->is_object()) return nullptr;
    auto it = s.data->get_object().find(key);
    return it == s.data->get_object().end() ? nullptr : &it->value();
}

value eval(const node& n, env& e, scope s);

value arg(const node& n, std::size_t i, env& e, scope s) { return i < n.args.size() ? eval(n.args[i], e, s) : value(); }

bool canonical_index(std::string_view prop, std::size_t& index) {
    if (prop.empty() || prop.size() > 18 || !numeric_identifier(prop) || (prop.size() > 1 && prop[0] == '0')) return false;
    std::from_chars(prop.data(), prop.data() + prop.size(), index);
    return true;
}

value string_at(std::string_view str, std::size_t index, bool& ok) {
    auto starts = code_point_starts(str);
    ok = index < starts.size();
    if (!ok) return {};
    std::size_t end = index + 1 < starts.size() ? starts[index + 1] : str.size();
    return value(str.substr(starts[index], end - starts[index]));
}

// json_logic's op_var.
value var(env& e, scope s, const value& key, const value& fallback) {
    if (key.is_null() || (key.is_string() && key.get_string().empty())) return s.data ? *s.data : e.whole_value();
    if (is_numeric(key)) {
        if (!s.data || !(s.data->is_array() || s.data->is_string())) return fallback;
        num k = to_number(key);
        if (!k.is_int && std::isnan(k.d)) return fallback;
        std::int64_t index = k.is_int ? k.i : python_int(k.d);
        if ((!k.is_int && static_cast<double>(index) != k.d) || index < 0) return fallback;
        if (s.data->is_array()) {
            auto& a = s.data->get_array();
            return static_cast<std::size_t>(index) < a.size() ? a[static_cast<std::size_t>(index)] : fallback;
        }
        bool ok;
        auto c = string_at(s.data->get_string(), static_cast<std::size_t>(index), ok);
        return ok ? c : fallback;
    }
    std::string path = to_string(key);
    const value* at = s.data;  // null while at the root context
    value held;  // a character of a string, when the path goes through one
    bool root = s.data == nullptr;
    for (auto prop : split(path, '.')) {
        if (root) {
            root = false;
            at = member(e, s, prop);
            if (!at) at = &null_value;
            continue;
        }
        if (at->is_array() || at->is_string()) {
            if (prop == "length")
                return value(static_cast<std::int64_t>(at->is_array() ? at->get_array().size()
                                                                      : code_point_starts(at->get_string()).size()));
            std::size_t index;
            if (!canonical_index(prop, index)) return fallback;
            if (at->is_array()) {
                if (index >= at->get_array().size()) return fallback;
                at = &at->get_array()[index];
            } else {
                bool ok;
                value c = string_at(at->get_string(), index, ok);
                if (!ok) return fallback;
                held = std::move(c);
                at = &held;
            }
        } else if (at->is_object()) {
            auto it = at->get_object().find(prop);
            at = it == at->get_object().end() ? &null_value : &it->value();
        } else {
            return fallback;
        }
    }
    if (!at || at->is_null()) return fallback;
    return *at;
}

value missing(env& e, scope s, const array& keys) {
    array out;
    for (auto& k : keys) {
        value v = var(e, s, k, value());
        if (v.is_null() || (v.is_string() && v.get_string().empty())) out.push_back(k);
    }
    return out;
}

num arith(num a, num b, op code) {
    if (a.is_int && b.is_int) {
        std::int64_t r;
        bool overflow = code == op::add ? __builtin_add_overflow(a.i, b.i, &r)
                        : code == op::sub ? __builtin_sub_overflow(a.i, b.i, &r)
                                          : __builtin_mul_overflow(a.i, b.i, &r);
        if (!overflow) return integer(r);  // else: Python's ints grow; a double is the nearest we have
    }
    double x = a.real(), y = b.real();
    return real(code == op::add ? x + y : code == op::sub ? x - y : x * y);
}

value fractional(const node& n, env& e, scope s);

value eval(const node& n, env& e, scope s) {
    switch (n.code) {
    case op::literal: return n.literal;
    case op::list: {
        array a;
        a.reserve(n.args.size());
        for (auto& c : n.args) a.push_back(eval(c, e, s));
        return a;
    }
    case op::ref: return eval(*n.target, e, s);
    case op::if_: {
        std::size_t argc = n.args.size(), i = 0;
        while (i + 1 < argc) {
            if (to_bool(eval(n.args[i], e, s))) return eval(n.args[i + 1], e, s);
            i += 2;
        }
        return i < argc ? eval(n.args[i], e, s) : value();
    }
    case op::and_: {
        value current;
        for (auto& c : n.args) {
            current = eval(c, e, s);
            if (!to_bool(current)) return current;
        }
        return current;
    }
    case op::or_: {
        value current;
        for (auto& c : n.args) {
            current = eval(c, e, s);
            if (to_bool(current)) return current;
        }
        return current;
    }
    case op::map: case op::filter: case op::all: case op::some: case op::none: {
        if (n.args.size() < (n.code == op::map ? 1u : 2u))
            return n.code == op::all ? value(false) : n.code == op::some ? value(false) : n.code == op::none ? value(true) : value(array());
        value items = eval(n.args[0], e, s);
        if (!items.is_array())
            return n.code == op::all || n.code == op::some ? value(false) : n.code == op::none ? value(true) : value(array());
        auto& list = items.get_array();
        static const node null_node;
        const node& sub = n.args.size() > 1 ? n.args[1] : null_node;
        switch (n.code) {
        case op::map: {
            array out;
            for (auto& it : list) out.push_back(eval(sub, e, scope{&it}));
            return out;
        }
        case op::filter: {
            array out;
            for (auto& it : list)
                if (to_bool(eval(sub, e, scope{&it}))) out.push_back(it);
            return out;
        }
        case op::all:
            if (list.empty()) return false;  // JsonLogic: all of nothing is false
            for (auto& it : list)
                if (!to_bool(eval(sub, e, scope{&it}))) return false;
            return true;
        case op::some:
            for (auto& it : list)
                if (to_bool(eval(sub, e, scope{&it}))) return true;
            return false;
        default:
            for (auto& it : list)
                if (to_bool(eval(sub, e, scope{&it}))) return false;
            return true;
        }
    }
    case op::reduce: {
        if (n.args.empty()) return {};
        value items = eval(n.args[0], e, s);
        // Python passes the initial value unevaluated.
        value acc = n.args.size() > 2 ? (n.args[2].code == op::literal ? n.args[2].literal : value()) : value();
        if (!items.is_array()) return acc;
        for (auto& it : items.get_array()) {
            value ctx(object{{"accumulator", acc}, {"current", it}});
            acc = n.args.size() > 1 ? eval(n.args[1], e, scope{&ctx}) : value();
        }
        return acc;
    }
    case op::fractional: return fractional(n, e, s);
    default: break;
    }

    // Every other operator gets its arguments evaluated first.
    switch (n.code) {
    case op::var: {
        value key = arg(n, 0, e, s);
        value fallback = arg(n, 1, e, s);
        return var(e, s, key, fallback);
    }
    case op::missing: {
        if (n.args.empty()) return array();
        value first = eval(n.args[0], e, s);
        if (first.is_array()) return missing(e, s, first.get_array());
        array keys{first};
        for (std::size_t i = 1; i < n.args.size(); ++i) keys.push_back(eval(n.args[i], e, s));
        return missing(e, s, keys);
    }
    case op::missing_some: {
        value need = arg(n, 0, e, s), keys = arg(n, 1, e, s);
        if (!keys.is_array()) return array();
        value miss = missing(e, s, keys.get_array());
        num have = integer(static_cast<std::int64_t>(keys.get_array().size() - miss.get_array().size()));
        int c;
        if (ordered(have, to_number(need), c) && c >= 0) return array();
        return miss;
    }
    case op::eq: return loose_eq(arg(n, 0, e, s), arg(n, 1, e, s));
    case op::ne: return !loose_eq(arg(n, 0, e, s), arg(n, 1, e, s));
    case op::strict_eq: return py_eq(arg(n, 0, e, s), arg(n, 1, e, s));
    case op::strict_ne: return !py_eq(arg(n, 0, e, s), arg(n, 1, e, s));
    case op::not_: return !to_bool(arg(n, 0, e, s));
    case op::truthy: return to_bool(arg(n, 0, e, s));
    case op::lt: case op::le: case op::gt: case op::ge: {
        value a = arg(n, 0, e, s), b = arg(n, 1, e, s), c = arg(n, 2, e, s);
        auto test = [&](const value& x, const value& y) {
            switch (n.code) {
            case op::lt: return compare(x, y, std::less<>());
            case op::le: return compare(x, y, std::less_equal<>());
            case op::gt: return compare(x, y, std::greater<>());
            default: return compare(x, y, std::greater_equal<>());
            }
        };
        if (c.is_null()) return test(a, b);  // between: a < b < c
        return test(a, b) && test(b, c);
    }
    case op::in: {
        value needle = arg(n, 0, e, s), haystack = arg(n, 1, e, s);
        if (haystack.is_array()) {
            for (auto& x : haystack.get_array())
                if (py_eq(needle, x)) return true;
            return false;
        }
        if (haystack.is_string()) return std::string_view(haystack.get_string()).find(to_string(needle)) != std::string_view::npos;
        return false;
    }
    case op::cat: {
        std::string out;
        for (auto& c : n.args) append_string(out, eval(c, e, s));
        return value(out);
    }
    case op::substr: {
        std::string str = to_string(arg(n, 0, e, s));
        num index = to_number(arg(n, 1, e, s));
        value length = arg(n, 2, e, s);
        auto starts = code_point_starts(str);
        auto len = static_cast<std::int64_t>(starts.size());
        std::int64_t from;
        if (!index.is_int && std::isnan(index.d)) {
            from = 0;
        } else if (index.real() < 0) {
            std::int64_t neg = index.is_int ? -index.i : python_int(-index.d);
            // Python compares the float before truncating it
            from = (index.is_int ? neg >= len : -index.d >= static_cast<double>(len)) ? 0 : len - neg;
        } else {
            from = index.is_int ? index.i : python_int(index.d);
            if (from >= len) from = len;
        }
        std::int64_t to;
        if (length.is_null()) {
            to = len;
        } else {
            num l = to_number(length);
            if (!l.is_int && std::isnan(l.d)) {
                to = from;
            } else {
                std::int64_t li = l.is_int ? l.i : python_int(l.d);
                if (li < 0) to = std::max(len + li, from);
                else to = from + li;
            }
        }
        to = std::min(to, len);
        if (to <= from) return value("");
        auto byte = [&](std::int64_t cp) { return cp >= len ? str.size() : starts[static_cast<std::size_t>(cp)]; };
        return value(std::string_view(str).substr(byte(from), byte(to) - byte(from)));
    }
    case op::add: case op::mul: {
        num acc = integer(n.code == op::add ? 0 : 1);
        for (auto& c : n.args) acc = arith(acc, to_number(eval(c, e, s)), n.code);
        return from_num(acc);
    }
    case op::sub: {
        num a = to_number(arg(n, 0, e, s));
        value b = arg(n, 1, e, s);
        if (b.is_null()) {  // negation: -0.0 stays a negative zero, as in Python
            if (!a.is_int) return value(-a.d);
            return a.i == INT64_MIN ? value(-static_cast<double>(a.i)) : value(-a.i);
        }
        return from_num(arith(a, to_number(b), op::sub));
    }
    case op::div: case op::mod: {
        num a = to_number(arg(n, 0, e, s)), b = to_number(arg(n, 1, e, s));
        if (b.real() == 0) throw eval_error(n.code == op::div ? "division by zero" : "modulo by zero");
        if (n.code == op::div) return value(a.real() / b.real());
        if (a.is_int && b.is_int) {
            if (b.i == -1) return value(std::int64_t{0});
            std::int64_t r = a.i % b.i;
            if (r != 0 && ((r < 0) != (b.i < 0))) r += b.i;  // Python: the sign of the divisor
            return value(r);
        }
        double x = a.real(), y = b.real();
        double r = std::fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        else if (r == 0) r = std::copysign(0.0, y);
        return value(r);
    }
    case op::min: case op::max: {
        if (n.args.empty()) return value(NAN);
        // Python's min/max return the element itself: to_number(True) is True, still a bool.
        auto number = [](const value& v) {
            const value* x = &v;
            while (x->is_array() && x->get_array().size() == 1) x = &x->get_array()[0];  // as to_number unwraps
            return x->is_bool() ? *x : from_num(to_number(v));
        };
        value best = number(eval(n.args[0], e, s));
        for (std::size_t i = 1; i < n.args.size(); ++i) {
            value x = number(eval(n.args[i], e, s));
            int c;
            if (ordered(to_number(x), to_number(best), c) && (n.code == op::min ? c < 0 : c > 0)) best = std::move(x);
        }
        return best;
    }
    case op::merge: {
        array out;
        for (auto& c : n.args) {
            value v = eval(c, e, s);
            if (v.is_array())
                for (auto& x : v.get_array()) out.push_back(x);
            else
                out.push_back(std::move(v));
        }
        return out;
    }
    case op::log: return arg(n, 0, e, s);
    case op::starts_with: case op::ends_with: {
        if (n.args.size() != 2) return {};
        value a = eval(n.args[0], e, s), b = eval(n.args[1], e, s);
        if (!a.is_string() || !b.is_string()) return {};
        std::string_view x = a.get_string(), y = b.get_string();
        return n.code == op::starts_with ? x.starts_with(y) : x.ends_with(y);
    }
    case op::sem_ver: {
        if (n.args.size() != 3) return {};
        value a = eval(n.args[0], e, s), o = eval(n.args[1], e, s), b = eval(n.args[2], e, s);
        auto v1 = parse_version(a), v2 = parse_version(b);
        if (!v1 || !v2) return {};
        std::string_view how = o.is_string() ? std::string_view(o.get_string()) : std::string_view("?");
        int c = cmp_version(*v1, *v2);
        if (how == "=") return c == 0;
        if (how == "!=") return c != 0;
        if (how == "<") return c < 0;
        if (how == "<=") return c <= 0;
        if (how == ">") return c > 0;
        if (how == ">=") return c >= 0;
        if (how == "^") return v1->major == v2->major;
        if (how == "~") return v1->major == v2->major && v1->minor == v2->minor;
        return {};
    }
    default: return {};
    }
}

std::string weights_text(const std::vector<fraction>& fs) {
    std::string out;
    for (auto& f : fs) {
        if (!out.empty()) out += ", ";
        out += f.variant + " " + std::to_string(f.weight);
    }
    return out;
}

// The variant name Python's str() gives a fraction's first element.
std::optional<std::string> fraction_variant(const value& v) {
    if (v.is_null()) return std::nullopt;
    if (v.is_bool()) return std::string(v.get_bool() ? "true" : "false");
    return python_str(v);
}

// flagd-core's fractional: hash = murmur3_32(canonical CBOR of the bucketing value), bucket =
// (hash * total weight) >> 32, the first fraction whose running sum of weights exceeds the bucket.
value fractional(const node& n, env& e, scope s) {
    thread_local std::string bytes;  // reused: no allocation per evaluation
    bytes.clear();
    std::size_t first_fraction = 0;
    std::vector<fraction> dynamic;
    const std::vector<fraction>* fractions = &n.fractions;
    std::int64_t total = n.total_weight;
    std::vector<value> variants;  // the fractions' variants as values, when computed

    auto shorthand_input = [&]() -> bool {
        // [flagKey, targetingKey]; no targetingKey: no bucket.
        const value* tk = s.data ? member(e, s, "targetingKey") : nullptr;
        std::string_view key;
        if (!s.data) key = e.ctx->targeting_key;
        else if (tk && tk->is_string()) key = tk->get_string();
        if (key.empty()) return false;
        std::string_view flag = e.flag_key;
        if (s.data) {
            const value* fd = member(e, s, "$flagd");
            flag = "";
            if (fd && fd->is_object())
                if (auto it = fd->get_object().find("flagKey"); it != fd->get_object().end() && it->value().is_string())
                    flag = it->value().get_string();
        }
        bytes += '\x82';
        cbor_string(bytes, flag);
        cbor_string(bytes, key);
        return true;
    };

    bool general = !n.static_fractions;
    if (n.static_fractions) {
        if (n.shorthand) {
            if (!shorthand_input()) return {};
        } else {
            value by = eval(n.args[0], e, s);
            // flagd-core decides on the value: an expression that yields an array makes every
            // argument a bucket, and the bucketing value [flagKey, targetingKey].
            if (by.is_array()) general = true;
            else if (by.is_null()) return {};
            else cbor(bytes, by);
        }
    }
    if (general) {
        bytes.clear();
        std::vector<value> args;
        args.reserve(n.args.size());
        for (auto& c : n.args) args.push_back(eval(c, e, s));
        if (args.empty()) return {};
        if (!args[0].is_array()) {
            if (args[0].is_null()) return {};
            cbor(bytes, args[0]);
            first_fraction = 1;
        } else if (!shorthand_input()) {
            return {};
        }
        total = 0;
        for (std::size_t i = first_fraction; i < args.size(); ++i) {
            if (!args[i].is_array() || args[i].get_array().empty() || args[i].get_array().size() > 2) return {};
            auto& a = args[i].get_array();
            std::int64_t w = 1;
            if (a.size() == 2) {
                if (a[1].is_int64()) w = std::max<std::int64_t>(0, a[1].get_int64());
                else if (a[1].is_uint64()) return {};  // beyond any total Python accepts
                else return {};
            }
            variants.push_back(a[0]);
            dynamic.push_back({fraction_variant(a[0]).value_or(""), w});
            total += w;
            if (total > max_weight_sum) return {};
        }
        if (total <= 0) return {};
        fractions = &dynamic;
    }
    std::uint32_t hash = murmur3_32(bytes);
    auto bucket = static_cast<std::int64_t>((static_cast<std::uint64_t>(hash) * static_cast<std::uint64_t>(total)) >> 32);
    std::int64_t end = 0;
    for (std::size_t i = 0; i < fractions->size(); ++i) {
        end += (*fractions)[i].weight;
        if (bucket < end) {
            auto& chosen = (*fractions)[i].variant;
            auto& w = e.fractional_why;
            w.clear();
            w.reserve(64 + chosen.size() + n.weights.size());
            w += "fractional: bucket ";
            w += std::to_string(bucket);
            w += " of ";
            w += std::to_string(total);
            w += " -> ";
            w += chosen;
            w += " (weights ";
            w += fractions == &n.fractions ? n.weights : weights_text(*fractions);
            w += ')';
            e.fractional_variant = chosen;
            return variants.empty() ? value(chosen) : variants[i];
        }
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// Parsing: where each flag's key is in the text, for messages about the flag.

struct positions {
    std::map<std::string, std::size_t, std::less<>> flags, evaluators, top;
};

// A scan of text the JSON parser has accepted: the offsets of the keys of the top-level object and
// of the objects under "flags" and "$evaluators".
positions scan(std::string_view text) {
    positions out;
    int depth = 0;
    std::string top_key;      // the current top-level member
    bool want_key = false;    // the next string at this depth is a key
    std::vector<bool> is_object;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '"') {
            std::size_t start = i++;
            std::string raw;
            while (i < text.size() && text[i] != '"') {
                if (text[i] == '\\') raw += text[i++];
                raw += text[i++];
            }
            if (want_key) {
                // Keys with escapes are matched after decoding them.
                std::string key;
                try {
                    key = std::string(weft::json::parse("\"" + raw + "\"").get_string());
                } catch (...) {
                    key = raw;
                }
                if (depth == 1) {
                    top_key = key;
                    out.top.emplace(key, start);
                } else if (depth == 2 && top_key == "flags") {
                    out.flags.emplace(key, start);
                } else if (depth == 2 && top_key == "$evaluators") {
                    out.evaluators.emplace(key, start);
                }
                want_key = false;
            }
        } else if (c == '{' || c == '[') {
            ++depth;
            is_object.push_back(c == '{');
            want_key = c == '{';
        } else if (c == '}' || c == ']') {
            --depth;
            if (!is_object.empty()) is_object.pop_back();
            want_key = false;
        } else if (c == ',') {
            want_key = !is_object.empty() && is_object.back();
        }
    }
    return out;
}

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

struct parse_failure {
    std::size_t offset;
    std::string reason;
};

}  // namespace

namespace detail {
struct flag {
    std::string key;
    bool enabled = true;
    object variants;
    std::optional<std::string> default_variant;  // none: the caller's default (flagd: null or absent)
    std::optional<node> targeting;               // none: static
    std::optional<object> metadata;
};
}  // namespace detail

struct flag_set::impl {
    std::map<std::string, detail::flag, std::less<>> flags;
    object metadata;
};

flag_set::flag_set() : impl_(std::make_unique<impl>()) {}
flag_set::flag_set(flag_set&&) noexcept = default;
flag_set& flag_set::operator=(flag_set&&) noexcept = default;
flag_set::~flag_set() = default;

namespace {

struct compiler {
    const object* evaluators = nullptr;
    std::map<std::string, std::shared_ptr<const node>, std::less<>> compiled;
    std::set<std::string, std::less<>> in_progress;
    std::string where;  // "flag 'x'" or "evaluator 'y'", for messages

    [[noreturn]] void fail(const std::string& path, const std::string& what) const {
        throw std::runtime_error(where + ": " + what + " (at " + path + ")");
    }

    node compile(const value& v, const std::string& path, std::size_t depth) {
        node n = compile_node(v, path, depth);
        for (auto& a : n.args) n.height = std::max(n.height, a.height + 1);
        if (n.target) n.height = n.target->height + 1;
        // Evaluation recurses once per level, through shared evaluators too.
        if (depth + n.height > max_rule_depth)
            fail(path, "rules nested deeper than " + std::to_string(max_rule_depth) + " levels");
        return n;
    }

    node compile_node(const value& v, const std::string& path, std::size_t depth) {
        if (depth > max_rule_depth) fail(path, "rules nested deeper than " + std::to_string(max_rule_depth) + " levels");
        node n;
        if (v.is_array()) {
            n.code = op::list;
            bool all_literal = true;
            std::size_t i = 0;
            for (auto& x : v.get_array()) {
                n.args.push_back(compile(x, path + "[" + std::to_string(i++) + "]", depth + 1));
                all_literal = all_literal && n.args.back().code == op::literal;
            }
            if (all_literal) {
                n.code = op::literal;
                n.literal = v;
                n.args.clear();
            }
            return n;
        }
        if (!v.is_object() || v.get_object().size() != 1) {  // JsonLogic: a literal
            n.literal = v;
            return n;
        }
        auto& [name, args] = *v.get_object().begin();
        std::string here = path + "." + std::string(name);
        if (name == "$ref") {
            if (!args.is_string()) fail(here, "$ref must name an evaluator (a string)");
            std::string_view ref = args.get_string();
            n.code = op::ref;
            n.name = ref;
            n.target = evaluator(ref, here, depth);
            return n;
        }
        auto it = operators().find(std::string_view(name));
        if (it == operators().end()) fail(path, "unknown operator " + quote(name));
        n.code = it->second;
        auto compile_arg = [&](const value& a, std::size_t i) {
            return compile(a, here + "[" + std::to_string(i) + "]", depth + 1);
        };
        if (args.is_array()) {
            std::size_t i = 0;
            for (auto& a : args.get_array()) n.args.push_back(compile_arg(a, i++));
        } else {
            n.args.push_back(compile_arg(args, 0));
        }
        if (n.code == op::fractional) check_fractional(n, args, here);
        if (n.code == op::sem_ver && n.args.size() != 3) fail(here, "sem_ver takes 3 arguments (version, operator, version)");
        if (n.code == op::sem_ver && n.args[1].code == op::literal) {
            static const std::set<std::string_view> ops{"=", "!=", "<", "<=", ">", ">=", "^", "~"};
            auto& o = n.args[1].literal;
            if (!o.is_string() || !ops.contains(std::string_view(o.get_string())))
                fail(here, "sem_ver's operator must be one of =, !=, <, <=, >, >=, ^, ~");
        }
        if ((n.code == op::starts_with || n.code == op::ends_with) && n.args.size() != 2)
            fail(here, std::string(name) + " takes 2 arguments");
        return n;
    }

    // The shapes flagd-core would refuse at every evaluation (returning null) are refused here.
    void check_fractional(node& n, const value& raw, const std::string& here) {
        if (!raw.is_array() || raw.get_array().empty())
            fail(here, "fractional takes an array: an optional bucketing expression, then [variant, weight] buckets");
        auto& a = raw.get_array();
        std::size_t first = a[0].is_array() ? 0 : 1;
        n.shorthand = first == 0;
        if (first == 1 && n.args[0].code == op::literal && n.args[0].literal.is_null())
            fail(here + "[0]", "fractional's bucketing expression is null");
        if (a.size() <= first) fail(here, "fractional has no buckets");
        bool all_static = true;
        std::int64_t total = 0;
        for (std::size_t i = first; i < a.size(); ++i) {
            std::string at = here + "[" + std::to_string(i) + "]";
            if (!a[i].is_array() || a[i].get_array().empty() || a[i].get_array().size() > 2)
                fail(at, "a fractional bucket is [variant] or [variant, weight]");
            auto& b = a[i].get_array();
            std::int64_t w = 1;
            if (b.size() == 2) {
                if (b[1].is_object()) {
                    all_static = false;  // a computed weight, checked per evaluation
                } else if (b[1].is_int64()) {
                    w = std::max<std::int64_t>(0, b[1].get_int64());
                } else {
                    fail(at + "[1]", "a fractional weight must be an integer, got " + weft::json::detail::describe(b[1]));
                }
            }
            if (b[0].is_object() || b[0].is_array() || b[0].is_null()) all_static = false;
            if (all_static) {
                n.fractions.push_back({fraction_variant(b[0]).value_or(""), w});
                total += w;
                if (total > max_weight_sum) fail(here, "fractional weights sum to more than 2147483647");
            }
        }
        if (all_static && total <= 0) fail(here, "fractional weights sum to 0");
        // A bucketing expression that is an array is read as a bucket by flagd; only literal values
        // and operators are expressions.
        n.static_fractions = all_static && (n.shorthand || n.args[0].code != op::list);
        n.total_weight = total;
        if (!n.static_fractions) n.fractions.clear();
        else n.weights = weights_text(n.fractions);
    }

    std::shared_ptr<const node> evaluator(std::string_view name, const std::string& path, std::size_t depth) {
        if (auto it = compiled.find(name); it != compiled.end()) return it->second;
        if (!evaluators || !evaluators->contains(name)) fail(path, "$ref to an unknown evaluator " + quote(name));
        if (in_progress.contains(name)) fail(path, "$ref cycle through evaluator " + quote(name));
        in_progress.emplace(name);
        auto saved = where;
        auto n = std::make_shared<const node>(compile(evaluators->at(name), "$evaluators." + std::string(name), depth + 1));
        where = saved;
        in_progress.erase(in_progress.find(name));
        compiled.emplace(std::string(name), n);
        return n;
    }
};

void check_metadata(const value& v, const std::string& what) {
    if (!v.is_object()) throw std::runtime_error(what + ": metadata must be an object");
    for (auto& [k, x] : v.get_object()) {
        if (k.empty()) throw std::runtime_error(what + ": metadata keys must not be empty");
        if (!(x.is_string() || x.is_number() || x.is_bool()))
            throw std::runtime_error(what + ": metadata " + quote(k) + " must be a string, number or boolean, got " +
                                     weft::json::detail::describe(x));
    }
}

std::string variant_list(const object& variants) {
    std::vector<std::string> names;
    for (auto& kv : variants) names.emplace_back(kv.key());
    std::sort(names.begin(), names.end());
    std::string out;
    for (auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

}  // namespace

flag_set flag_set::parse(std::string_view text, std::string_view origin) {
    auto error_at = [&](std::size_t offset, std::string reason) {
        auto [line, column] = weft::json::detail::line_column(text, offset);
        return flag_error(std::string(origin), line, column, std::move(reason));
    };
    value doc;
    try {
        doc = weft::json::parse(text);
    } catch (const weft::json::decode_error& e) {
        throw error_at(e.offset().value_or(0), "expected " + e.expected() + ", got " + e.got());
    }
    if (!doc.is_object()) throw error_at(text.find_first_not_of(" \t\r\n") == std::string_view::npos ? 0 : text.find_first_not_of(" \t\r\n"),
                                         "a flag file is a JSON object with a \"flags\" object, got " + weft::json::detail::describe(doc));
    auto pos = scan(text);
    auto top_at = [&](std::string_view key) { auto it = pos.top.find(key); return it == pos.top.end() ? 0 : it->second; };
    auto& root = doc.get_object();
    flag_set set;
    auto flags_it = root.find("flags");
    if (flags_it == root.end() || !flags_it->value().is_object())
        throw error_at(top_at("flags"), flags_it == root.end() ? "no \"flags\" object" : "\"flags\" must be an object");
    if (auto m = root.find("metadata"); m != root.end()) {
        try {
            check_metadata(m->value(), "the file's");
        } catch (const std::runtime_error& e) {
            throw error_at(top_at("metadata"), e.what());
        }
        set.impl_->metadata = m->value().get_object();
    }
    compiler c;
    if (auto ev = root.find("$evaluators"); ev != root.end()) {
        if (!ev->value().is_object()) throw error_at(top_at("$evaluators"), "\"$evaluators\" must be an object");
        c.evaluators = &ev->value().get_object();
        // Every evaluator compiles, used or not: a broken shared rule is an error in the file.
        for (auto& [name, rule] : *c.evaluators) {
            c.where = "evaluator " + quote(name);
            try {
                c.evaluator(name, "$evaluators." + std::string(name), 0);
            } catch (const std::runtime_error& e) {
                auto it = pos.evaluators.find(std::string_view(name));
                throw error_at(it == pos.evaluators.end() ? top_at("$evaluators") : it->second, e.what());
            }
        }
    }
    for (auto& [key, raw] : flags_it->value().get_object()) {
        std::string k(key);
        auto at = pos.flags.count(k) ? pos.flags.at(k) : top_at("flags");
        std::string what = "flag " + quote(k);
        try {
            if (!raw.is_object()) throw std::runtime_error(what + ": a flag is an object, got " + weft::json::detail::describe(raw));
            auto& f = raw.get_object();
            detail::flag flag;
            flag.key = k;
            for (auto& [field, v] : f) {
                static const std::set<std::string_view> known{"state", "variants", "defaultVariant", "targeting", "metadata", "source", "selector"};
                if (!known.contains(std::string_view(field)))
                    throw std::runtime_error(what + ": unknown field " + quote(field) +
                                             " (a flag has state, variants, defaultVariant, targeting, metadata)");
            }
            auto state = f.find("state");
            if (state == f.end() || !state->value().is_string() ||
                (state->value().get_string() != "ENABLED" && state->value().get_string() != "DISABLED"))
                throw std::runtime_error(what + ": state must be \"ENABLED\" or \"DISABLED\"");
            flag.enabled = state->value().get_string() == "ENABLED";
            auto variants = f.find("variants");
            if (variants == f.end() || !variants->value().is_object() || variants->value().get_object().empty())
                throw std::runtime_error(what + ": variants must be a non-empty object (name -> value)");
            flag.variants = variants->value().get_object();
            if (auto d = f.find("defaultVariant"); d != f.end() && !d->value().is_null()) {
                std::string name;
                if (d->value().is_bool()) name = d->value().get_bool() ? "true" : "false";
                else if (d->value().is_string()) name = d->value().get_string();
                else throw std::runtime_error(what + ": defaultVariant must name a variant, got " + weft::json::detail::describe(d->value()));
                if (!flag.variants.contains(name))
                    throw std::runtime_error(what + ": defaultVariant " + quote(name) + " is not one of its variants (" +
                                             variant_list(flag.variants) + ")");
                flag.default_variant = name;
            }
            if (auto t = f.find("targeting"); t != f.end()) {
                auto& tv = t->value();
                bool empty = tv.is_null() || (tv.is_object() && tv.get_object().empty());
                if (!empty) {
                    if (!tv.is_object()) throw std::runtime_error(what + ": targeting must be a JsonLogic object, got " + weft::json::detail::describe(tv));
                    c.where = what;
                    flag.targeting = c.compile(tv, "targeting", 0);
                }
            }
            if (auto m = f.find("metadata"); m != f.end()) {
                check_metadata(m->value(), what);
                flag.metadata = m->value().get_object();
            }
            set.impl_->flags.emplace(k, std::move(flag));
        } catch (const std::runtime_error& e) {
            throw error_at(at, e.what());
        }
    }
    return set;
}

evaluation flag_set::evaluate(std::string_view flag_key, const context& ctx) const {
    evaluation out;
    out.flag_key = flag_key;
    auto it = impl_->flags.find(flag_key);
    if (it == impl_->flags.end()) {
        out.reason = "ERROR";
        out.error_code = "FLAG_NOT_FOUND";
        out.error_message = "Flag with key " + std::string(flag_key) + " not present in flag store.";
        out.why = "no flag " + quote(flag_key);
        return out;
    }
    auto& f = it->second;
    if (!f.enabled) {
        out.reason = "DISABLED";
        out.why = "the flag is disabled";
        return out;
    }
    auto use_default = [&](std::string reason, std::string why) {
        if (!f.default_variant) {
            out.reason = "DEFAULT";
            out.why = why + "; no defaultVariant: the caller's default";
            return;
        }
        out.reason = std::move(reason);
        out.variant = *f.default_variant;
        out.value = f.variants.at(*f.default_variant);
        out.why = why + " -> defaultVariant " + quote(out.variant);
    };
    if (!f.targeting) {
        use_default("STATIC", "no targeting");
        return out;
    }
    env e{&ctx, flag_key, std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(),
          {}, {}, {}, {}, {}};
    value result;
    try {
        result = eval(*f.targeting, e, scope{nullptr});
    } catch (const std::exception& x) {
        out.reason = "ERROR";
        out.error_code = "GENERAL";
        out.error_message = x.what();
        out.why = std::string("targeting failed: ") + x.what();
        return out;
    }
    if (result.is_null()) {
        use_default("DEFAULT", "targeting returned null");
        return out;
    }
    std::string name = result.is_string() ? std::string(result.get_string()) : fraction_variant(result).value_or("");
    auto v = f.variants.find(name);
    if (name.empty() || v == f.variants.end() || v->value().is_null()) {
        out.reason = "ERROR";
        out.error_code = "GENERAL";
        out.error_message = "Resolved variant " + name + " not in variants config.";
        out.why = "targeting returned " + quote(name) + ", which is not one of the variants (" + variant_list(f.variants) + ")";
        return out;
    }
    out.reason = "TARGETING_MATCH";
    out.variant = name;
    out.value = v->value();
    out.why = !e.fractional_why.empty() && e.fractional_variant == name ? std::move(e.fractional_why)
                                                                         : "targeting returned " + quote(name);
    return out;
}

std::vector<std::string> flag_set::keys() const {
    std::vector<std::string> out;
    for (auto& [k, f] : impl_->flags) out.push_back(k);
    return out;
}

const object* flag_set::metadata(std::string_view flag_key) const {
    auto it = impl_->flags.find(flag_key);
    return it == impl_->flags.end() || !it->second.metadata ? nullptr : &*it->second.metadata;
}

const object& flag_set::set_metadata() const { return impl_->metadata; }

std::vector<std::string> flag_set::variants(std::string_view flag_key) const {
    std::vector<std::string> out;
    auto it = impl_->flags.find(flag_key);
    if (it == impl_->flags.end()) return out;
    for (auto& kv : it->second.variants) out.emplace_back(kv.key());
    std::sort(out.begin(), out.end());
    return out;
}

// ---------------------------------------------------------------------------------------------
// The file.

namespace {

std::optional<flag_file::file_id> stat_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return flag_file::file_id{static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                              static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

flag_file::flag_file(std::string path) : flag_file(std::move(path), options{}) {}

flag_file::flag_file(std::string path, options o) : path_(std::move(path)), options_(std::move(o)) {
    auto id = stat_file(path_);
    auto text = read_file(path_);
    if (!id || !text) throw flag_error(path_, 0, 0, std::string("cannot read the flag file: ") + std::strerror(errno));
    current_ = std::make_shared<const flag_set>(flag_set::parse(*text, path_));
    seen_ = *id;
    next_check_ = std::chrono::steady_clock::now() + options_.poll;
}

std::shared_ptr<const flag_set> flag_file::current() {
    std::lock_guard lock(mutex_);
    if (std::chrono::steady_clock::now() >= next_check_) {
        check();
        next_check_ = std::chrono::steady_clock::now() + options_.poll;
    }
    return current_;
}

std::string flag_file::last_error() const {
    std::lock_guard lock(mutex_);
    return last_error_;
}

void flag_file::check() {
    auto id = stat_file(path_);
    auto reject = [&](std::string why) {
        last_error_ = std::move(why);
        telemetry::emit({.level = telemetry::severity::error, .event = "flags.rejected", .backend = "router",
                         .error = last_error_, .message = "the flag file was rejected; the rules in force stay in force"});
    };
    if (!id) {
        // A file being replaced (rename over it) can be briefly absent; keep the rules and say so once.
        if (seen_.size != -2) reject(path_ + ": cannot read the flag file: " + std::strerror(errno));
        seen_.size = -2;
        return;
    }
    if (*id == seen_) return;
    seen_ = *id;
    auto text = read_file(path_);
    if (!text) return reject(path_ + ": cannot read the flag file: " + std::strerror(errno));
    try {
        auto next = std::make_shared<const flag_set>(flag_set::parse(*text, path_));
        if (options_.validate) {
            if (auto why = options_.validate(*current_, *next); !why.empty()) return reject(path_ + ": refused: " + why);
        }
        current_ = std::move(next);
        last_error_.clear();
        telemetry::emit({.level = telemetry::severity::info, .event = "flags.reloaded", .backend = "router",
                         .count = static_cast<std::int64_t>(current_->keys().size()), .message = path_});
    } catch (const flag_error& e) {
        reject(e.what());
    }
}

}  // namespace weft::flags
