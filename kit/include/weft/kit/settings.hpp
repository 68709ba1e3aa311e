// A backend's settings as one declarative table: key, the options field it fills, and help text.
// The same table reads a config (with errors that name the setting and where it came from), lists
// the keys the registry accepts, and prints --help and docs rows, so none of them can drift.
//
//     const kit::settings_table<celery::options> table{"celery", {
//         {"broker_url", &celery::options::broker_url, "Redis URL of the broker"},
//         {"timeout_ms", &celery::options::timeout, "connect and reply timeout"},
//     }};
//     celery::options o = table.read(c);
#pragma once

#include <chrono>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <weft/backend.hpp>
#include <weft/config.hpp>

namespace weft::kit {

// Values as text, and back; a bad value throws config_error naming the setting and its origin.
namespace settings_text {
std::string format(const std::string& v);
std::string format(unsigned v);
std::string format(bool v);
std::string format(std::chrono::milliseconds v);
std::string format(std::chrono::seconds v);
void parse(const std::string& key, const config::setting& s, std::string& out);
void parse(const std::string& key, const config::setting& s, unsigned& out, unsigned max = 0);
void parse(const std::string& key, const config::setting& s, bool& out);
void parse(const std::string& key, const config::setting& s, std::chrono::milliseconds& out);
void parse(const std::string& key, const config::setting& s, std::chrono::seconds& out);
std::string type_of(const std::string*);
std::string type_of(const unsigned*);
std::string type_of(const bool*);
std::string type_of(const std::chrono::milliseconds*);
std::string type_of(const std::chrono::seconds*);
}  // namespace settings_text

template <class Options>
class settings_table {
public:
    using member = std::variant<std::monostate, std::string Options::*, unsigned Options::*, bool Options::*,
                                std::chrono::milliseconds Options::*, std::chrono::seconds Options::*>;
    struct row {
        std::string_view key;
        member field;  // monostate: accepted for compatibility, not used
        std::string_view help;
        unsigned max = 0;  // whole numbers: the largest accepted (0: any)
        // Refuses a value the field's type allows but the backend does not (throws config_error).
        std::function<void(const Options&, const config::setting&)> check = {};
        // The variable the backend's Python SDK reads for the same thing (TEMPORAL_ADDRESS, ...):
        // read when neither WEFT_<BACKEND>_<KEY> nor the file sets the key, so a team's existing
        // environment and secrets carry over.
        std::string_view sdk_env = {};
    };

    settings_table(std::string_view backend, std::initializer_list<row> rows) : backend_(backend), rows_(rows) {}

    // The options from `c`: defaults (Options{}) overridden by what c sets.
    Options read(const config& c) const {
        Options o{};
        for (const row& r : rows_) {
            const std::string key = std::string(backend_) + "." + std::string(r.key);
            auto s = c.find(key);
            if (!s && !r.sdk_env.empty())
                if (const char* v = std::getenv(std::string(r.sdk_env).c_str()); v && *v)
                    s = config::setting{v, std::string(r.sdk_env)};
            if (!s) continue;
            std::visit(
                [&](auto m) {
                    if constexpr (std::is_same_v<decltype(m), unsigned Options::*>)
                        settings_text::parse(key, *s, o.*m, r.max);
                    else if constexpr (!std::is_same_v<decltype(m), std::monostate>)
                        settings_text::parse(key, *s, o.*m);
                },
                r.field);
            if (r.check) r.check(o, *s);
        }
        return o;
    }

    // What the registry, --help and docs show.
    std::vector<setting_doc> docs() const {
        const Options defaults{};
        std::vector<setting_doc> out;
        for (const row& r : rows_) {
            setting_doc d{std::string(r.key), "ignored", "", std::string(r.help)};
            if (!r.sdk_env.empty()) d.help += " (else " + std::string(r.sdk_env) + ")";
            std::visit(
                [&](auto m) {
                    if constexpr (!std::is_same_v<decltype(m), std::monostate>) {
                        d.type = settings_text::type_of(&(defaults.*m));
                        d.default_value = settings_text::format(defaults.*m);
                    }
                },
                r.field);
            out.push_back(std::move(d));
        }
        return out;
    }

private:
    std::string_view backend_;
    std::vector<row> rows_;
};

// The rows as an aligned text table (key, type, default, help): --help and docs/<backend>.md.
std::string settings_help(std::string_view backend, const std::vector<setting_doc>& docs);

}  // namespace weft::kit
