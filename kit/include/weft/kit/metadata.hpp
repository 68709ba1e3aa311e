// A run's metadata on the wire: every carrier (a Celery header, Temporal memo fields, Hatchet's
// additional_metadata) holds it as a JSON object, so one reading rule serves all of them.
#pragma once

#include <string_view>

#include <weft/json.hpp>
#include <weft/metadata.hpp>

namespace weft::kit {

// {"tenant":"acme",...}: the entries as JSON strings.
json::object metadata_object(const run_metadata& m);

// The entries of a carrier's object, added to `out`. A string is taken as it is; any other value
// (a Python caller's number, bool, list) becomes its compact JSON text: 42 -> "42". Keys weft keeps
// beside the caller's in the same carrier (reserved_metadata_key) are skipped.
void read_metadata(const json::object& carrier, run_metadata& out);
// The same for a value that should be such an object: anything else (null counts as no metadata)
// throws std::invalid_argument naming `where` (e.g. "the Celery header 'weft_metadata'").
void read_metadata(const json::value& carrier, std::string_view where, run_metadata& out);

}  // namespace weft::kit
