// What a deployment hands a weft program: a config file, each value as every setting type reads it
// (the kit's settings table), a run's metadata and a W3C traceparent from a caller's headers. Each
// reads or throws a weft error that names the place; a traceparent that reads must print back as is.
#include "fuzz.hpp"

#include <weft/config.hpp>
#include <weft/kit/carrier.hpp>
#include <weft/kit/metadata.hpp>
#include <weft/kit/settings.hpp>
#include <weft/trace.hpp>

namespace {

void settings(std::string_view text) {
    weft::config c;
    try {
        c = weft::config::parse(text, "fuzz.conf");
    } catch (const weft::config_error&) {
        return;
    }
    for (const std::string& section : c.sections()) {
        (void)c.origin_of_section(section);
        for (const char* k : {"threads", "url", "timeout", "drain_timeout", "enabled"}) {
            const std::string key = section + "." + k;
            auto s = c.find(key);
            if (!s) continue;
            try {
                std::string str;
                weft::kit::settings_text::parse(key, *s, str);
            } catch (const weft::config_error&) {
            }
            try {
                unsigned u = 0;
                weft::kit::settings_text::parse(key, *s, u, 1000);
            } catch (const weft::config_error&) {
            }
            try {
                bool b = false;
                weft::kit::settings_text::parse(key, *s, b);
            } catch (const weft::config_error&) {
            }
            try {
                std::chrono::milliseconds ms{};
                weft::kit::settings_text::parse(key, *s, ms);
                // What `weft config` prints must read back as the same duration.
                std::chrono::milliseconds back{};
                weft::kit::settings_text::parse(key, {weft::kit::settings_text::format(ms), "format"}, back);
                weft::fuzz::require(back == ms, "a duration changed when printed and read back");
            } catch (const weft::config_error&) {
            }
            try {
                std::chrono::seconds sec{};
                weft::kit::settings_text::parse(key, *s, sec);
            } catch (const weft::config_error&) {
            }
            try {
                (void)c.get_unsigned(key, 0, 1u << 20);
            } catch (const weft::config_error&) {
            }
        }
        try {
            c.check_keys(section, {"threads", "url"});
        } catch (const weft::config_error&) {
        }
    }
}

void carriers(std::string_view text) {
    if (auto t = weft::telemetry::parse_traceparent(text)) {
        const std::string again = weft::telemetry::format_traceparent(*t);
        auto back = weft::telemetry::parse_traceparent(again);
        weft::fuzz::require(back && weft::telemetry::format_traceparent(*back) == again, "a traceparent changed in a round trip");
    }
    (void)weft::kit::context_from_json(text);
    weft::json::value v;
    try {
        v = weft::json::parse(text);
    } catch (const weft::json::decode_error&) {
        return;
    }
    weft::run_metadata m;
    try {
        weft::kit::read_metadata(v, "the fuzzed carrier", m);
    } catch (const std::invalid_argument&) {
        return;
    }
    weft::run_metadata again;
    weft::kit::read_metadata(weft::json::value(weft::kit::metadata_object(m)), "the round trip", again);
    weft::fuzz::require(again == m, "run metadata changed in a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = weft::fuzz::text(data, size);
    settings(text);
    carriers(text);
    return 0;
}
