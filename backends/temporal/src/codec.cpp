#include "codec.hpp"

#include <google/protobuf/unknown_field_set.h>
#include <zlib.h>

#include <weft/config.hpp>
#include <weft/json.hpp>
#include <weft/kit/carrier.hpp>
#include <weft/kit/metadata.hpp>

#include <boost/json/serialize.hpp>

namespace weft::temporal_detail::codec {

namespace {

std::string encoding_of(const common::Payload& p) {
    auto it = p.metadata().find("encoding");
    return it == p.metadata().end() ? std::string() : it->second;
}

const char* code_name(grpc::StatusCode c) {
    switch (c) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
    }
}

// A length-delimited field of a message we have no generated class for (google.rpc.Status, and the
// errordetails messages outside the workflow service's import closure).
std::string bytes_field(const std::string& message, int number) {
    google::protobuf::UnknownFieldSet fields;
    if (!fields.ParseFromString(message)) return {};
    for (int i = 0; i < fields.field_count(); ++i)
        if (fields.field(i).number() == number && fields.field(i).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
            return fields.field(i).length_delimited();
    return {};
}

}  // namespace

void to_payload(std::string_view json, common::Payload& out) {
    (*out.mutable_metadata())["encoding"] = "json/plain";
    out.set_data(std::string(json));
}

std::string from_payload(const common::Payload& p) {
    const std::string enc = encoding_of(p);
    if (enc == "json/plain") return p.data();
    if (enc == "binary/null") return "null";
    throw unsupported_payload("weft: cannot read a Temporal payload with encoding '" + enc +
                              "'; weft reads json/plain and binary/null (use a JSON-serializable type in the peer)");
}

void inject_trace(const telemetry::span_context& c, common::Header& h) {
    to_payload(kit::carrier_json(c), (*h.mutable_fields())[std::string(tracer_header)]);
}

std::optional<telemetry::span_context> extract_trace(const common::Header& h) {
    auto it = h.fields().find(std::string(tracer_header));
    if (it == h.fields().end() || encoding_of(it->second) != "json/plain") return std::nullopt;
    return kit::context_from_json(it->second.data());
}

run_metadata metadata_of_memo(const common::Memo& memo) {
    json::object fields;
    for (const auto& [k, p] : memo.fields()) {
        const std::string enc = encoding_of(p);
        if (enc == "json/plain") {
            try {
                fields[k] = json::parse(p.data());
            } catch (const std::exception&) {  // not JSON after all: its text
                fields[k] = p.data();
            }
        } else if (enc == "binary/plain") {
            fields[k] = p.data();
        }
    }
    run_metadata m;
    kit::read_metadata(fields, m);
    return m;
}

void inject_metadata(const run_metadata& m, common::Header& h) {
    if (!m.empty()) to_payload(boost::json::serialize(kit::metadata_object(m)), (*h.mutable_fields())[std::string(metadata_header)]);
}

void extract_metadata(const common::Header& h, run_metadata& out) {
    auto it = h.fields().find(std::string(metadata_header));
    if (it == h.fields().end()) return;
    json::value v;
    try {
        v = json::parse(from_payload(it->second));
    } catch (const std::exception& e) {
        throw std::invalid_argument("weft: the step's header '" + std::string(metadata_header) + "' is not JSON: " + e.what());
    }
    kit::read_metadata(v, "the step's header '" + std::string(metadata_header) + "'", out);
}

failure from_failure(const ::temporal::api::failure::v1::Failure& f) {
    using F = ::temporal::api::failure::v1::Failure;
    failure out;
    out.message = f.message();
    out.source = f.source();
    out.stack_trace = f.stack_trace();
    if (f.has_encoded_attributes()) {
        // {"message": ..., "stack_trace": ...} in a json/plain payload, replacing "Encoded failure".
        try {
            auto v = weft::json::parse(from_payload(f.encoded_attributes()));
            if (auto o = v.if_object()) {
                if (auto m = o->if_contains("message"); m && m->is_string()) out.message = m->as_string().c_str();
                if (auto s = o->if_contains("stack_trace"); s && s->is_string()) out.stack_trace = s->as_string().c_str();
            }
        } catch (const std::exception&) {
            // Keep the outer message: a failure must still be reported when its attributes are unreadable.
        }
    }
    switch (f.failure_info_case()) {
    case F::kApplicationFailureInfo: {
        const auto& info = f.application_failure_info();
        out.kind = "application";
        out.type = info.type();
        out.non_retryable = info.non_retryable();
        for (const auto& p : info.details().payloads()) {
            try {
                out.details.push_back(from_payload(p));
            } catch (const unsupported_payload&) {
                out.details.push_back("null");
            }
        }
        break;
    }
    case F::kTimeoutFailureInfo: out.kind = "timeout"; break;
    case F::kCanceledFailureInfo: out.kind = "canceled"; break;
    case F::kTerminatedFailureInfo: out.kind = "terminated"; break;
    case F::kServerFailureInfo:
        out.kind = "server";
        out.non_retryable = f.server_failure_info().non_retryable();
        break;
    case F::kResetWorkflowFailureInfo: out.kind = "reset_workflow"; break;
    case F::kActivityFailureInfo:
        out.kind = "activity";
        out.type = f.activity_failure_info().activity_type().name();
        break;
    case F::kChildWorkflowExecutionFailureInfo:
        out.kind = "child_workflow";
        out.type = f.child_workflow_execution_failure_info().workflow_type().name();
        break;
    default: out.kind = "unknown"; break;
    }
    if (f.has_cause()) out.cause = std::make_shared<const failure>(from_failure(f.cause()));
    return out;
}

void throw_rpc_error(std::string_view rpc, const grpc::Status& status) {
    // grpc-status-details-bin is a google.rpc.Status{code=1, message=2, repeated Any details=3};
    // Temporal puts one errordetails message in it. Any{type_url=1, value=2}.
    std::string detail_type, detail_value;
    if (!status.error_details().empty()) {
        std::string any = bytes_field(status.error_details(), 3);
        if (!any.empty()) {
            std::string url = bytes_field(any, 1);
            detail_type = url.substr(url.rfind('/') + 1);
            detail_value = bytes_field(any, 2);
        }
    }
    rpc_error e(std::string(rpc), static_cast<int>(status.error_code()), code_name(status.error_code()),
                status.error_message(), detail_type);
    if (detail_type == "temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure")
        throw workflow_already_started(std::move(e), bytes_field(detail_value, 2));  // run_id = 2
    if (detail_type == "temporal.api.errordetails.v1.NamespaceNotFoundFailure") throw namespace_not_found(std::move(e));
    if (detail_type == "temporal.api.errordetails.v1.NotFoundFailure") throw not_found(std::move(e));
    switch (status.error_code()) {
    case grpc::StatusCode::ALREADY_EXISTS:
        if (rpc == "StartWorkflowExecution") throw workflow_already_started(std::move(e), {});
        throw e;
    case grpc::StatusCode::NOT_FOUND: throw not_found(std::move(e));
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: throw unavailable(std::move(e));
    default: throw e;
    }
}

// Between protobuf and weft's payload (also for serialize() and parse_payload() below).
payload to_weft(const common::Payload& p) {
    payload out;
    for (const auto& [k, v] : p.metadata()) out.metadata.emplace(k, v);
    out.data = p.data();
    return out;
}

void to_proto(payload&& p, common::Payload& out) {
    out.Clear();
    for (auto& [k, v] : p.metadata) (*out.mutable_metadata())[k] = std::move(v);
    out.set_data(std::move(p.data));
}

namespace {

template <class Fn>
std::vector<payload> through(const char* what, Fn&& fn, std::vector<payload> in) {
    try {
        return fn(std::move(in));
    } catch (const codec_error&) {
        throw;
    } catch (const std::exception& e) {
        throw codec_error(std::string("weft: the payload codec's ") + what + " failed: " + e.what());
    }
}

void apply(const payload_codec* c, bool enc, common::Payloads& ps) {
    if (!c || ps.payloads_size() == 0) return;
    std::vector<payload> in;
    for (const auto& p : ps.payloads()) in.push_back(to_weft(p));
    auto out = enc ? through("encode", [&](auto v) { return c->encode(std::move(v)); }, std::move(in))
                   : through("decode", [&](auto v) { return c->decode(std::move(v)); }, std::move(in));
    ps.clear_payloads();
    for (auto& p : out) to_proto(std::move(p), *ps.add_payloads());
}

void apply(const payload_codec* c, bool enc, common::Payload& p) {
    if (!c) return;
    common::Payloads one;
    *one.add_payloads() = std::move(p);
    apply(c, enc, one);
    if (one.payloads_size() != 1)
        throw codec_error("weft: the payload codec's " + std::string(enc ? "encode" : "decode") + " turned one payload into " +
                          std::to_string(one.payloads_size()));
    p = std::move(*one.mutable_payloads(0));
}

void apply(const payload_codec* c, bool enc, ::temporal::api::failure::v1::Failure& f) {
    if (!c) return;
    for (auto* x = &f; x; x = x->has_cause() ? x->mutable_cause() : nullptr) {
        try {
            if (x->has_encoded_attributes()) apply(c, enc, *x->mutable_encoded_attributes());
            if (x->has_application_failure_info() && x->application_failure_info().has_details())
                apply(c, enc, *x->mutable_application_failure_info()->mutable_details());
        } catch (const codec_error&) {
            if (enc) throw;  // never send in the clear what the codec was meant to hide
        }
    }
}

}  // namespace

void encode(const payload_codec* c, common::Payloads& ps) { apply(c, true, ps); }
void decode(const payload_codec* c, common::Payloads& ps) { apply(c, false, ps); }
void encode(const payload_codec* c, common::Payload& p) { apply(c, true, p); }
void decode(const payload_codec* c, common::Payload& p) { apply(c, false, p); }
void encode(const payload_codec* c, ::temporal::api::failure::v1::Failure& f) { apply(c, true, f); }
void decode(const payload_codec* c, ::temporal::api::failure::v1::Failure& f) { apply(c, false, f); }

}  // namespace weft::temporal_detail::codec

namespace weft::temporal_detail {

std::string serialize(const payload& p) {
    codec::common::Payload proto;
    codec::to_proto(payload(p), proto);
    return proto.SerializeAsString();
}

payload parse_payload(std::string_view bytes) {
    codec::common::Payload proto;
    if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        throw codec_error("weft: not the bytes of a temporal.api.common.v1.Payload (" + std::to_string(bytes.size()) + " bytes)");
    return codec::to_weft(proto);
}

namespace {

class zlib : public payload_codec {
public:
    explicit zlib(int level) : level_(level) {}

    std::vector<payload> encode(std::vector<payload> ps) const override {
        for (payload& p : ps) {
            const std::string raw = serialize(p);
            uLongf size = compressBound(static_cast<uLong>(raw.size()));
            std::string out(size, '\0');
            if (compress2(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                          static_cast<uLong>(raw.size()), level_) != Z_OK)
                throw codec_error("weft: zlib could not compress a payload of " + std::to_string(raw.size()) + " bytes");
            out.resize(size);
            p = payload{{{"encoding", std::string(encoding)}}, std::move(out)};
        }
        return ps;
    }

    std::vector<payload> decode(std::vector<payload> ps) const override {
        for (payload& p : ps) {
            auto e = p.metadata.find("encoding");
            if (e == p.metadata.end() || e->second != encoding) continue;
            z_stream z{};
            if (inflateInit(&z) != Z_OK) throw codec_error("weft: zlib: inflateInit failed");
            z.next_in = reinterpret_cast<Bytef*>(p.data.data());
            z.avail_in = static_cast<uInt>(p.data.size());
            std::string out;
            int rc = Z_OK;
            char buf[16384];
            while (rc == Z_OK) {
                z.next_out = reinterpret_cast<Bytef*>(buf);
                z.avail_out = sizeof buf;
                rc = inflate(&z, Z_NO_FLUSH);
                out.append(buf, sizeof buf - z.avail_out);
                if (rc == Z_BUF_ERROR && z.avail_in == 0) break;  // truncated input
            }
            inflateEnd(&z);
            if (rc != Z_STREAM_END)
                throw codec_error("weft: a binary/zlib payload of " + std::to_string(p.data.size()) +
                                  " bytes does not inflate (zlib error " + std::to_string(rc) + ")");
            p = parse_payload(out);
        }
        return ps;
    }

private:
    static constexpr std::string_view encoding = "binary/zlib";
    int level_;
};

}  // namespace

std::shared_ptr<const payload_codec> zlib_codec(int level) {
    if (level < 0 || level > 9) throw config_error("weft: zlib_codec level must be 0 to 9, not " + std::to_string(level));
    return std::make_shared<const zlib>(level);
}

}  // namespace weft::temporal_detail
