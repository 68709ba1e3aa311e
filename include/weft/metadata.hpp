// A run's metadata: a flat map of string keys to string values that the caller sets when it starts
// the run (run_options::metadata, or its backend's own carrier from Python) and that every step of
// the run reads (weft::this_step::metadata()). Flat strings are what every backend can carry: a
// Celery header, a Temporal memo, Hatchet's additional_metadata (docs/design.md, "Run metadata").
#pragma once

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace weft {

// std::less<> so that a step looks a key up by string_view without building a string.
using run_metadata = std::map<std::string, std::string, std::less<>>;

// Keys weft writes beside the caller's in the same carrier, so a caller cannot set them and a step
// does not see them: those beginning with "weft_" (its records in Hatchet's additional_metadata and
// Temporal's memo) and the W3C trace context, "traceparent" and "tracestate" (carried there too;
// the step's span already continues it).
inline constexpr std::string_view reserved_metadata_prefix = "weft_";

inline bool reserved_metadata_key(std::string_view key) noexcept {
    return key.starts_with(reserved_metadata_prefix) || key == "traceparent" || key == "tracestate";
}

// What start() refuses, before anything is sent: an empty key, or a reserved one.
inline void check_metadata(const run_metadata& m) {
    for (const auto& [k, v] : m) {
        if (k.empty()) throw std::invalid_argument("weft: run metadata has an empty key; name every entry");
        if (reserved_metadata_key(k))
            throw std::invalid_argument("weft: run metadata key '" + k +
                                        "' is weft's own (keys beginning with 'weft_', traceparent, "
                                        "tracestate); rename it");
    }
}

}  // namespace weft
