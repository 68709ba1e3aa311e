#include "compare.hpp"

#include <boost/json/serialize.hpp>

#include <weft/run.hpp>

namespace weft::router_detail {

namespace {

// RFC 6901: "~" is written "~0" and "/" is written "~1" inside a segment.
std::string escape(std::string_view key) {
    std::string s;
    for (char c : key) {
        if (c == '~') s += "~0";
        else if (c == '/') s += "~1";
        else s += c;
    }
    return s;
}

bool ignored(const std::string& path, const std::vector<std::string>& ignore) {
    for (const std::string& pattern : ignore) {
        std::size_t i = 0, j = 0;
        bool match = true;
        while (match && (i < pattern.size() || j < path.size())) {
            if (i >= pattern.size() || j >= path.size() || pattern[i] != '/' || path[j] != '/') {
                match = false;
                break;
            }
            const std::size_t pe = std::min(pattern.find('/', i + 1), pattern.size());
            const std::size_t qe = std::min(path.find('/', j + 1), path.size());
            const std::string_view ps(pattern.data() + i + 1, pe - i - 1), qs(path.data() + j + 1, qe - j - 1);
            if (ps != "*" && ps != qs) match = false;
            i = pe;
            j = qe;
        }
        if (match) return true;
    }
    return false;
}

std::string shown(const json::value& v) {
    std::string s = boost::json::serialize(v);
    if (s.size() > 80) s = s.substr(0, 77) + "...";
    return s;
}

void walk(const json::value& a, const json::value& b, const std::string& path, const std::vector<std::string>& ignore,
          std::vector<std::string>& out, std::size_t limit) {
    if (out.size() > limit) return;
    if (!ignore.empty() && ignored(path, ignore)) return;
    auto differ = [&] {
        if (out.size() == limit) out.push_back("...");
        else if (out.size() < limit) out.push_back((path.empty() ? "/" : path) + ": " + shown(a) + " != " + shown(b));
    };
    if (a.is_number() && b.is_number()) {
        const bool ints = !a.is_double() && !b.is_double();
        if (ints ? !(a.is_int64() == b.is_int64() ? a == b
                                                  : (a.is_int64() ? a.get_int64() >= 0 && std::uint64_t(a.get_int64()) == b.get_uint64()
                                                                  : b.get_int64() >= 0 && std::uint64_t(b.get_int64()) == a.get_uint64()))
                 : a.to_number<double>() != b.to_number<double>())
            differ();
        return;
    }
    if (a.kind() != b.kind()) return differ();
    if (a.is_object()) {
        const auto &ao = a.get_object(), &bo = b.get_object();
        for (auto& [k, v] : ao) {
            const std::string p = path + "/" + escape(k);
            if (auto* w = bo.if_contains(k)) walk(v, *w, p, ignore, out, limit);
            else if (!ignored(p, ignore)) walk(v, json::value(), p, ignore, out, limit);
        }
        for (auto& [k, v] : bo)
            if (!ao.contains(k)) walk(json::value(), v, path + "/" + escape(k), ignore, out, limit);
        return;
    }
    if (a.is_array()) {
        const auto &aa = a.get_array(), &ba = b.get_array();
        if (aa.size() != ba.size()) {
            if (out.size() < limit)
                out.push_back((path.empty() ? "/" : path) + ": " + std::to_string(aa.size()) + " items != " +
                              std::to_string(ba.size()) + " items");
            return;
        }
        for (std::size_t i = 0; i < aa.size(); ++i) walk(aa[i], ba[i], path + "/" + std::to_string(i), ignore, out, limit);
        return;
    }
    if (a != b) differ();
}

}  // namespace

std::vector<std::string> json_differences(const json::value& a, const json::value& b,
                                          const std::vector<std::string>& ignore, std::size_t limit) {
    std::vector<std::string> out;
    walk(a, b, "", ignore, out, limit);
    return out;
}

std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t end = text.find(',', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view part = text.substr(pos, end - pos);
        while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
        while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
        if (!part.empty()) out.emplace_back(part);
        pos = end + 1;
    }
    return out;
}

std::vector<std::string> ignore_list(std::string_view text, std::string_view flag) {
    std::vector<std::string> out = split_list(text);
    for (const std::string& p : out)
        if (p.front() != '/')
            throw config_error("weft: flag '" + std::string(flag) + "': compareIgnore entry '" + p +
                               "' is not a JSON pointer (it starts with '/', e.g. /stats/elapsed_ms or /items/*/id)");
    return out;
}

}  // namespace weft::router_detail
