#include <weft/kit/settings.hpp>

#include <algorithm>
#include <cctype>
#include <limits>

namespace weft::kit {

namespace settings_text {

namespace {
[[noreturn]] void bad(const std::string& key, const config::setting& s, const std::string& expected) {
    throw config_error("weft: " + key + " = '" + s.value + "' (from " + s.origin + "): expected " + std::string(expected));
}

bool whole(std::string_view v, unsigned long long max, unsigned long long& out) {
    if (v.empty() || v.size() > 19) return false;
    out = 0;
    for (char ch : v) {
        if (ch < '0' || ch > '9') return false;
        out = out * 10 + static_cast<unsigned>(ch - '0');
    }
    return out <= max;
}

// "1500" in the key's unit, or with a unit: 250ms, 10s, 5m, 2h.
bool duration_ms(std::string_view v, std::chrono::milliseconds unit, std::chrono::milliseconds& out) {
    std::size_t digits = 0;
    while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') ++digits;
    unsigned long long n = 0;
    if (!whole(v.substr(0, digits), 1ull << 40, n)) return false;
    const std::string_view suffix = v.substr(digits);
    long long per = unit.count();
    if (suffix == "ms") per = 1;
    else if (suffix == "s") per = 1000;
    else if (suffix == "m") per = 60'000;
    else if (suffix == "h") per = 3'600'000;
    else if (!suffix.empty()) return false;
    out = std::chrono::milliseconds(static_cast<long long>(n) * per);
    return true;
}
}  // namespace

std::string format(const std::string& v) { return v; }
std::string format(unsigned v) { return std::to_string(v); }
std::string format(bool v) { return v ? "true" : "false"; }
std::string format(std::chrono::milliseconds v) {
    if (v.count() % 1000 == 0) return std::to_string(v.count() / 1000) + "s";
    return std::to_string(v.count()) + "ms";
}
std::string format(std::chrono::seconds v) { return std::to_string(v.count()) + "s"; }

void parse(const std::string&, const config::setting& s, std::string& out) { out = s.value; }
void parse(const std::string& key, const config::setting& s, unsigned& out, unsigned max) {
    if (max == 0) max = std::numeric_limits<unsigned>::max();
    unsigned long long n = 0;
    if (!whole(s.value, max, n)) bad(key, s, "a whole number from 0 to " + std::to_string(max));
    out = static_cast<unsigned>(n);
}
void parse(const std::string& key, const config::setting& s, bool& out) {
    std::string v = s.value;
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (v == "true" || v == "1" || v == "yes" || v == "on") out = true;
    else if (v == "false" || v == "0" || v == "no" || v == "off") out = false;
    else bad(key, s, "true or false");
}
void parse(const std::string& key, const config::setting& s, std::chrono::milliseconds& out) {
    // A key named *_ms counts bare numbers in milliseconds, any other in seconds.
    const auto unit = key.ends_with("_ms") ? std::chrono::milliseconds(1) : std::chrono::milliseconds(1000);
    if (!duration_ms(s.value, unit, out))
        bad(key, s, key.ends_with("_ms") ? "a duration: whole milliseconds, or with a unit (250ms, 10s, 5m, 2h)"
                                         : "a duration: whole seconds, or with a unit (250ms, 10s, 5m, 2h)");
}
void parse(const std::string& key, const config::setting& s, std::chrono::seconds& out) {
    std::chrono::milliseconds ms{};
    if (!duration_ms(s.value, std::chrono::milliseconds(1000), ms) || ms.count() % 1000 != 0)
        bad(key, s, "a duration in whole seconds, or with a unit (10s, 5m, 2h)");
    out = std::chrono::duration_cast<std::chrono::seconds>(ms);
}
std::string type_of(const std::string*) { return "string"; }
std::string type_of(const unsigned*) { return "whole number"; }
std::string type_of(const bool*) { return "true|false"; }
std::string type_of(const std::chrono::milliseconds*) { return "duration"; }
std::string type_of(const std::chrono::seconds*) { return "duration"; }

}  // namespace settings_text

std::string settings_help(std::string_view backend, const std::vector<setting_doc>& docs) {
    std::size_t key_w = 3, type_w = 4, def_w = 7;
    for (auto& d : docs) {
        key_w = std::max(key_w, d.key.size());
        type_w = std::max(type_w, d.type.size());
        def_w = std::max(def_w, d.default_value.size());
    }
    auto pad = [](std::string s, std::size_t w) { return s + std::string(w - std::min(w, s.size()) + 2, ' '); };
    std::string out = "settings of backend '" + std::string(backend) + "' ([" + std::string(backend) +
                      "] in a file, WEFT_<BACKEND>_<KEY> in the environment):\n";
    for (auto& d : docs)
        out += "  " + pad(d.key, key_w) + pad(d.type, type_w) + pad(d.default_value, def_w) + d.help + "\n";
    return out;
}

}  // namespace weft::kit
