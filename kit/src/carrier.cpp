#include <weft/kit/carrier.hpp>

#include <weft/json.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace weft::kit {

std::string carrier_json(const telemetry::span_context& c) {
    json::object carrier{{"traceparent", telemetry::format_traceparent(c)}};
    if (!c.tracestate.empty()) carrier["tracestate"] = c.tracestate;
    return boost::json::serialize(carrier);
}

std::optional<telemetry::span_context> context_from_json(std::string_view text) {
    boost::system::error_code ec;
    const json::value v = boost::json::parse(boost::json::string_view(text.data(), text.size()), ec);
    if (ec || !v.is_object()) return std::nullopt;
    const auto* tp = v.get_object().if_contains("traceparent");
    const auto* ts = v.get_object().if_contains("tracestate");
    if (!tp || !tp->is_string()) return std::nullopt;
    return telemetry::extract(std::string_view(tp->get_string()),
                              ts && ts->is_string() ? std::string_view(ts->get_string()) : std::string_view());
}

}  // namespace weft::kit
