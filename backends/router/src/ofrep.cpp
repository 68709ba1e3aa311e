// OFREP over cpp-httplib: the request body is the evaluation context as flagd reads it (attributes
// and targetingKey), the answer is mapped onto the same `evaluation` the in-process engine returns.
#include <weft/router/flags.hpp>

#include <weft/json.hpp>

#include <boost/json/serialize.hpp>
#include <httplib.h>

namespace weft::flags {

namespace {

std::string percent_encoded(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string string_field(const boost::json::object& o, std::string_view key) {
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

ofrep_source::ofrep_source(std::string base_url) : ofrep_source(std::move(base_url), options{}) {}

ofrep_source::ofrep_source(std::string base_url, options o) : base_url_(std::move(base_url)), options_(std::move(o)) {
    auto scheme = base_url_.find("://");
    auto path = base_url_.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    host_ = base_url_.substr(0, path);
    prefix_ = path == std::string::npos ? "" : base_url_.substr(path);
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
}

evaluation ofrep_source::evaluate(std::string_view flag_key, const context& ctx) const {
    evaluation out;
    out.flag_key = flag_key;
    auto fail = [&](std::string code, std::string message) {
        out.reason = "ERROR";
        out.error_code = std::move(code);
        out.error_message = std::move(message);
        out.why = "OFREP " + base_url_ + ": " + out.error_code + (out.error_message.empty() ? "" : ": " + out.error_message);
        return out;
    };
    boost::json::object body_context = ctx.attributes;
    if (!ctx.targeting_key.empty()) body_context["targetingKey"] = ctx.targeting_key;
    std::string body = boost::json::serialize(boost::json::object{{"context", std::move(body_context)}});

    httplib::Client client(host_);
    auto seconds = options_.timeout.count() / 1000, micros = (options_.timeout.count() % 1000) * 1000;
    client.set_connection_timeout(seconds, micros);
    client.set_read_timeout(seconds, micros);
    client.set_write_timeout(seconds, micros);
    httplib::Headers headers;
    for (auto& [k, v] : options_.headers) headers.emplace(k, v);
    auto path = prefix_ + "/ofrep/v1/evaluate/flags/" + percent_encoded(flag_key);
    auto res = client.Post(path.c_str(), headers, body, "application/json");
    if (!res) return fail("GENERAL", "no answer: " + httplib::to_string(res.error()));

    boost::json::object answer;
    try {
        auto v = weft::json::parse(res->body);
        if (v.is_object()) answer = std::move(v.get_object());
    } catch (const std::exception&) {
        // An error status with a body that is not JSON: the status says enough.
    }
    if (res->status != 200) {
        if (auto code = string_field(answer, "errorCode"); !code.empty())
            return fail(code, string_field(answer, "errorDetails"));
        // OFREP: 404 is an unknown flag, 400 a bad request, 401/403 the credentials, 429 the rate.
        if (res->status == 404) return fail("FLAG_NOT_FOUND", "HTTP 404");
        return fail("GENERAL", "HTTP " + std::to_string(res->status));
    }
    if (answer.empty()) return fail("PARSE_ERROR", "the answer is not a JSON object");
    if (auto code = string_field(answer, "errorCode"); !code.empty()) return fail(code, string_field(answer, "errorDetails"));
    out.value = answer.contains("value") ? answer.at("value") : boost::json::value();
    out.variant = string_field(answer, "variant");
    out.reason = string_field(answer, "reason");
    if (out.reason.empty()) out.reason = "UNKNOWN";
    out.why = "OFREP " + base_url_ + ": " + out.reason + (out.variant.empty() ? "" : " -> " + out.variant);
    return out;
}

}  // namespace weft::flags
