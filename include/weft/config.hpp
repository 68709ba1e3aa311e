// Configuration: which backend, and its settings, from environment variables and/or a file.
//
//   WEFT_BACKEND=local                 the backend (default: local)
//   WEFT_CONFIG=/etc/weft.conf         an optional file, read first; the environment overrides it
//   WEFT_LOCAL_THREADS=8               setting `threads` of backend `local` (WEFT_<BACKEND>_<KEY>)
//
// The file holds `key = value` lines, `[backend]` sections and `#` comments:
//
//   backend = celery
//   [celery]
//   broker_url = redis://:secret@127.0.0.1:6379/0
//
// Every error names the setting and where it came from (`WEFT_LOCAL_THREADS`, `weft.conf:4`).
#pragma once

#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <weft/run.hpp>

extern char** environ;

namespace weft {

class config {
public:
    struct setting {
        std::string value;
        std::string origin;  // "WEFT_LOCAL_THREADS" or "weft.conf:4"
    };

    // Settings from `text`, reported as coming from `origin` (a file name).
    static config parse(std::string_view text, std::string_view origin) {
        config c;
        std::string section;
        std::size_t line_no = 0;
        std::size_t pos = 0;
        while (pos <= text.size()) {
            std::size_t end = text.find('\n', pos);
            if (end == std::string_view::npos) end = text.size();
            std::string_view line = trim(text.substr(pos, end - pos));
            pos = end + 1;
            ++line_no;
            const std::string where = std::string(origin) + ":" + std::to_string(line_no);
            if (line.empty() || line.front() == '#' || line.front() == ';') continue;
            if (line.front() == '[') {
                if (line.back() != ']' || line.size() < 3)
                    throw config_error("weft: " + where + ": expected a section header like [local], got '" + std::string(line) + "'");
                section = std::string(trim(line.substr(1, line.size() - 2)));
                continue;
            }
            std::size_t eq = line.find('=');
            if (eq == std::string_view::npos)
                throw config_error("weft: " + where + ": expected `key = value`, got '" + std::string(line) + "'");
            std::string key(trim(line.substr(0, eq)));
            std::string value(unquote(trim(line.substr(eq + 1))));
            if (key.empty()) throw config_error("weft: " + where + ": a setting has no name before '='");
            c.settings_[section.empty() ? key : section + "." + key] = {std::move(value), where};
        }
        return c;
    }

    static config from_file(const std::string& path) {
        std::ifstream in(path);
        if (!in) throw config_error("weft: cannot read the config file '" + path + "' (named by WEFT_CONFIG or passed to config::from_file)");
        std::stringstream ss;
        ss << in.rdbuf();
        return parse(ss.str(), path);
    }

    // WEFT_CONFIG's file if set, overridden by WEFT_BACKEND and WEFT_<BACKEND>_<KEY> variables.
    static config from_env() {
        config c;
        if (const char* file = std::getenv("WEFT_CONFIG"); file && *file) c = from_file(file);
        for (char** e = environ; e && *e; ++e) {
            std::string_view entry(*e);
            if (!entry.starts_with("WEFT_")) continue;
            std::size_t eq = entry.find('=');
            if (eq == std::string_view::npos) continue;
            std::string name(entry.substr(0, eq));
            std::string value(entry.substr(eq + 1));
            if (name == "WEFT_BACKEND") c.settings_["backend"] = {value, name};
            else c.env_[name] = value;  // resolved against the chosen backend's keys in get()
        }
        return c;
    }

    void set(std::string key, std::string value, std::string origin = "set in code") {
        settings_[std::move(key)] = {std::move(value), std::move(origin)};
    }

    std::string backend() const {
        auto b = find("backend");
        return b ? b->value : "local";
    }
    std::string backend_origin() const {
        auto b = find("backend");
        return b ? b->origin : "the default";
    }

    // "local.threads": the file's [local] threads, overridden by WEFT_LOCAL_THREADS.
    std::optional<setting> find(std::string_view key) const {
        if (auto v = env_.find(env_name(key)); v != env_.end()) return setting{v->second, v->first};
        if (auto s = settings_.find(std::string(key)); s != settings_.end()) return s->second;
        return std::nullopt;
    }

    std::string get_string(std::string_view key, std::string fallback) const {
        auto s = find(key);
        return s ? s->value : fallback;
    }

    unsigned long get_unsigned(std::string_view key, unsigned long fallback, unsigned long max) const {
        auto s = find(key);
        if (!s) return fallback;
        const std::string& v = s->value;
        std::size_t used = 0;
        unsigned long n = 0;
        bool ok = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
        if (ok) {
            try {
                n = std::stoul(v, &used);
            } catch (...) {
                ok = false;
            }
        }
        if (!ok || used != v.size() || n > max)
            throw config_error("weft: " + std::string(key) + " = '" + v + "' (from " + s->origin +
                               "): expected a whole number from 0 to " + std::to_string(max));
        return n;
    }

    // Rejects settings of `backend` that it does not know: a typo must not pass silently.
    void check_keys(std::string_view backend, const std::vector<std::string_view>& known) const {
        const std::string prefix = std::string(backend) + ".";
        auto is_known = [&](std::string_view key) {
            for (auto k : known)
                if (key == k) return true;
            return false;
        };
        auto list = [&] {
            std::string l;
            for (auto k : known) l += (l.empty() ? "" : ", ") + std::string(k);
            return l.empty() ? std::string("no settings") : l;
        };
        for (auto& [key, s] : settings_)
            if (key.starts_with(prefix) && !is_known(std::string_view(key).substr(prefix.size())))
                throw config_error("weft: unknown setting '" + key + "' (from " + s.origin + "); backend '" +
                                   std::string(backend) + "' accepts: " + list());
        const std::string env_prefix = env_name(prefix);
        for (auto& [name, value] : env_)
            if (name.starts_with(env_prefix)) {
                std::string key = lower(name.substr(env_prefix.size()));
                if (!is_known(key))
                    throw config_error("weft: unknown setting " + name + " in the environment; backend '" +
                                       std::string(backend) + "' accepts: " + list());
            }
    }

    // Settings in file sections that name no backend at all.
    std::vector<std::string> sections() const {
        std::vector<std::string> out;
        for (auto& [key, s] : settings_)
            if (auto dot = key.find('.'); dot != std::string::npos) {
                std::string sec = key.substr(0, dot);
                if (out.empty() || out.back() != sec) out.push_back(sec);
            }
        return out;
    }
    std::string origin_of_section(const std::string& section) const {
        for (auto& [key, s] : settings_)
            if (key.starts_with(section + ".")) return s.origin;
        return {};
    }

private:
    static std::string_view trim(std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
        return s;
    }
    static std::string_view unquote(std::string_view s) {
        if (s.size() >= 2 && ((s.front() == '"' && s.back() == '"') || (s.front() == '\'' && s.back() == '\'')))
            return s.substr(1, s.size() - 2);
        return s;
    }
    static std::string env_name(std::string_view key) {
        std::string n = "WEFT_";
        for (char ch : key) n += (ch == '.') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        return n;
    }
    static std::string lower(std::string s) {
        for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return s;
    }

    std::map<std::string, setting> settings_;
    std::map<std::string, std::string> env_;
};

}  // namespace weft
