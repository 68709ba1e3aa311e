// The wire codec: weft's JSON payloads and errors <-> Temporal's protobuf messages. Shared by the
// client and (next) the workers; private to the library.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/support/status.h>

#include <temporal/api/common/v1/message.pb.h>
#include <temporal/api/failure/v1/message.pb.h>

#include <weft/metadata.hpp>
#include <weft/temporal/errors.hpp>
#include <weft/temporal/payload_codec.hpp>
#include <weft/trace.hpp>

namespace weft::temporal_detail::codec {

namespace common = ::temporal::api::common::v1;

// A json/plain payload holding `json` (already valid JSON text), as the Python SDK writes it.
void to_payload(std::string_view json, common::Payload& out);

// JSON text of a payload: json/plain as is, binary/null as "null"; anything else throws
// unsupported_payload naming the encoding.
std::string from_payload(const common::Payload& p);

// W3C trace context in a Header, as temporalio.contrib.opentelemetry.TracingInterceptor carries it
// (and the Go and Java SDKs' interceptors): the field "_tracer-data", a json/plain payload of the
// carrier {"traceparent": ..., "tracestate": ...}.
inline constexpr std::string_view tracer_header = "_tracer-data";
void inject_trace(const telemetry::span_context& c, common::Header& h);
// nullopt when the header is absent or does not hold a valid traceparent (never throws).
std::optional<telemetry::span_context> extract_trace(const common::Header& h);

// A run's metadata. The caller puts it in the start's memo, one field per key (a Python caller's
// `memo={...}`; weft's own fields, weft_*, are not metadata). Activity tasks do not see the memo, so
// the workflow worker copies it into the header of every step it schedules, as the field
// "weft_metadata": a json/plain payload of an object of strings.
inline constexpr std::string_view metadata_header = "weft_metadata";
// The memo's fields as metadata: a json/plain string as it is, other JSON as its text (7 -> "7"),
// binary/plain as its bytes; binary/null and other encodings are left out. A function of the memo
// alone: the same history schedules the same headers.
run_metadata metadata_of_memo(const common::Memo& memo);
// Sets the header field (nothing when `m` is empty).
void inject_metadata(const run_metadata& m, common::Header& h);
// The header field's entries into `out`; throws std::invalid_argument when it is not an object.
void extract_metadata(const common::Header& h, run_metadata& out);

// A Failure as weft reads it, including the SDKs' encoded attributes (message and stack trace moved
// into a json/plain payload when the failure converter encodes common attributes).
failure from_failure(const ::temporal::api::failure::v1::Failure& f);

// The user's payload codec over protobuf payloads, in place; a null codec leaves them as they are.
// Each throws codec_error, with the codec's own message, when the codec throws or, for one payload,
// gives back another number of payloads.
void encode(const payload_codec* c, common::Payloads& ps);
void decode(const payload_codec* c, common::Payloads& ps);
void encode(const payload_codec* c, common::Payload& p);
void decode(const payload_codec* c, common::Payload& p);
// A failure and its causes: application details and encoded attributes, as the Python SDK applies
// its codec to failures. decode leaves a payload it cannot decode as it was (a failure must still be
// reported).
void encode(const payload_codec* c, ::temporal::api::failure::v1::Failure& f);
void decode(const payload_codec* c, ::temporal::api::failure::v1::Failure& f);

// Throws the typed rpc_error for a failed call: already started, not found, namespace not found,
// unavailable, or plain rpc_error; the server's message and its Temporal error detail are kept.
[[noreturn]] void throw_rpc_error(std::string_view rpc, const grpc::Status& status);

}  // namespace weft::temporal_detail::codec
