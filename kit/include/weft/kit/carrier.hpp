// Trace context in a JSON carrier: the text map {"traceparent": ..., "tracestate": ...} that
// Temporal's `_tracer-data` payload holds and Hatchet's additional_metadata is a superset of.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <weft/trace.hpp>

namespace weft::kit {

// {"traceparent":"00-...","tracestate":"..."}: sorted keys, no spaces, tracestate only when set (as
// Python's json/plain payload converter writes the carrier dict).
std::string carrier_json(const telemetry::span_context& c);

// The context in a JSON object's "traceparent" (and "tracestate") members; nullopt when the text is
// not a JSON object or holds no valid traceparent. Never throws.
std::optional<telemetry::span_context> context_from_json(std::string_view text);

}  // namespace weft::kit
