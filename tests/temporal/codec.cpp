// The Temporal wire codec without a server: payload encodings, failures as the Python SDK writes them,
// and the server's error details turned into typed errors; the client's settings from weft's configuration.
#include <catch2/catch.hpp>

#include "codec.hpp"  // backends/temporal/src: private to the library, tested here

#include <weft/config.hpp>
#include <weft/temporal.hpp>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

using tp = weft::temporal;
namespace codec = weft::temporal_detail::codec;
using ::temporal::api::common::v1::Payload;
using ::temporal::api::failure::v1::Failure;

namespace {

// One length-delimited field, as protobuf writes it: enough to build a google.rpc.Status by hand.
std::string field(int number, const std::string& bytes) {
    std::string out;
    {
        google::protobuf::io::StringOutputStream s(&out);
        google::protobuf::io::CodedOutputStream o(&s);
        o.WriteTag(static_cast<std::uint32_t>(number << 3 | 2));
        o.WriteVarint32(static_cast<std::uint32_t>(bytes.size()));
        o.WriteString(bytes);
    }
    return out;
}

std::string rpc_status(const std::string& type, const std::string& value) {
    return field(2, "msg") + field(3, field(1, "type.googleapis.com/" + type) + field(2, value));
}

}  // namespace

TEST_CASE("a payload is json/plain with the JSON text as its data, like the Python SDK's") {
    Payload p;
    codec::to_payload(R"({"a":1})", p);
    CHECK(p.metadata().at("encoding") == "json/plain");
    CHECK(p.data() == R"({"a":1})");
    CHECK(codec::from_payload(p) == R"({"a":1})");
}

TEST_CASE("a binary/null payload (Python's None) reads as JSON null") {
    Payload p;
    (*p.mutable_metadata())["encoding"] = "binary/null";
    CHECK(codec::from_payload(p) == "null");
}

TEST_CASE("a payload in another encoding is refused with the encoding's name") {
    Payload p;
    (*p.mutable_metadata())["encoding"] = "binary/protobuf";
    CHECK_THROWS_WITH(codec::from_payload(p), Catch::Contains("'binary/protobuf'"));
}

TEST_CASE("an ApplicationError with a cause decodes with type, message, details and the cause") {
    Failure f;
    f.set_message("no stock");
    f.set_source("PythonSDK");
    f.set_stack_trace("  File \"wf.py\", line 3");
    auto* info = f.mutable_application_failure_info();
    info->set_type("OutOfStock");
    info->set_non_retryable(true);
    codec::to_payload(R"({"sku":"a"})", *info->mutable_details()->add_payloads());
    f.mutable_cause()->set_message("db down");
    f.mutable_cause()->mutable_application_failure_info()->set_type("ConnectionError");

    tp::failure d = codec::from_failure(f);
    CHECK(d.kind == "application");
    CHECK(d.type == "OutOfStock");
    CHECK(d.message == "no stock");
    CHECK(d.non_retryable);
    CHECK(d.source == "PythonSDK");
    CHECK(d.stack_trace.find("wf.py") != std::string::npos);
    CHECK(d.details == std::vector<std::string>{R"({"sku":"a"})"});
    REQUIRE(d.cause);
    CHECK(d.cause->type == "ConnectionError");
    CHECK(d.describe() == "OutOfStock: no stock; caused by ConnectionError: db down");
}

TEST_CASE("an encoded failure's real message and stack trace come from its encoded attributes") {
    Failure f;
    f.set_message("Encoded failure");
    codec::to_payload(R"({"message":"the real one","stack_trace":"trace"})", *f.mutable_encoded_attributes());
    f.mutable_application_failure_info()->set_type("E");
    tp::failure d = codec::from_failure(f);
    CHECK(d.message == "the real one");
    CHECK(d.stack_trace == "trace");
}

TEST_CASE("server error details select the typed error and keep the server's message") {
    grpc::Status already(grpc::StatusCode::ALREADY_EXISTS, "Workflow execution is already running.",
                         rpc_status("temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure",
                                    field(1, "req") + field(2, "run-7")));
    try {
        codec::throw_rpc_error("StartWorkflowExecution", already);
    } catch (const tp::workflow_already_started& e) {
        CHECK(e.run_id() == "run-7");
        CHECK(e.server_message() == "Workflow execution is already running.");
        CHECK(std::string(e.what()) ==
              "weft: Temporal StartWorkflowExecution failed (ALREADY_EXISTS): Workflow execution is already running.");
    }
    grpc::Status ns(grpc::StatusCode::NOT_FOUND, "Namespace x is not found.",
                    rpc_status("temporal.api.errordetails.v1.NamespaceNotFoundFailure", field(1, "x")));
    CHECK_THROWS_AS(codec::throw_rpc_error("DescribeWorkflowExecution", ns), tp::namespace_not_found);
    grpc::Status plain(grpc::StatusCode::NOT_FOUND, "workflow not found");
    CHECK_THROWS_AS(codec::throw_rpc_error("DescribeWorkflowExecution", plain), tp::not_found);
    grpc::Status down(grpc::StatusCode::UNAVAILABLE, "connection refused");
    CHECK_THROWS_AS(codec::throw_rpc_error("DescribeWorkflowExecution", down), tp::unavailable);
    grpc::Status other(grpc::StatusCode::INVALID_ARGUMENT, "bad");
    CHECK_THROWS_MATCHES(codec::throw_rpc_error("X", other), tp::rpc_error,
                         Catch::Matchers::Predicate<tp::rpc_error>([](const tp::rpc_error& e) {
                             return e.code_name() == "INVALID_ARGUMENT" && e.server_message() == "bad";
                         }));
}

TEST_CASE("the client's settings come from weft's configuration, file section or environment") {
    auto c = weft::config::parse("backend = temporal\n[temporal]\naddress = 10.0.0.7:7233\nnamespace = orders\n"
                                 "task_queue = pricing\n",
                                 "weft.conf");
    auto s = weft::temporal_detail::options_from(c);
    CHECK(s.address == "10.0.0.7:7233");
    CHECK(s.namespace_name == "orders");
    CHECK(s.task_queue == "pricing");
    auto d = weft::temporal_detail::options_from(weft::config::parse("", "empty.conf"));
    CHECK(d.address == "127.0.0.1:7233");
    CHECK(d.namespace_name == "default");
    CHECK(d.task_queue.empty());
}

namespace {
std::string unhex(std::string_view h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
    return out;
}
}  // namespace

TEST_CASE("zlib_codec reads what Python's zlib codec writes, and writes what it reads", "[temporal][codec]") {
    // Recorded in Python: zlib.compress(Payload(metadata={"encoding": b"json/plain"},
    //                                           data=b'{"customer":"ada","quantities":[2,3,5]}').SerializeToString())
    const std::string python = unhex(
        "789ce312e3e248cd4bce4fc9cc4b17e2ca2acecfd32fc849cccc1352af564a2e2d2ec9cf4d2d52b2524a4c4954d2512a2c4dcc2bc92cc9"
        "4c2d56b28a36d231d6318dad05009f5414b9");
    const std::string serialized = unhex(
        "0a160a08656e636f64696e67120a6a736f6e2f706c61696e12277b22637573746f6d6572223a22616461222c227175616e746974696573"
        "223a5b322c332c355d7d");
    const auto zlib = weft::temporal::zlib_codec();
    ::temporal::api::common::v1::Payloads ps;
    auto& p = *ps.add_payloads();
    (*p.mutable_metadata())["encoding"] = "binary/zlib";
    p.set_data(python);
    codec::decode(zlib.get(), ps);
    REQUIRE(ps.payloads_size() == 1);
    CHECK(ps.payloads(0).metadata().at("encoding") == "json/plain");
    CHECK(codec::from_payload(ps.payloads(0)) == R"({"customer":"ada","quantities":[2,3,5]})");
    CHECK(weft::temporal::serialize(weft::temporal::parse_payload(serialized)) == serialized);

    // Encode, then decode: the same payload; other encodings pass through decode.
    codec::encode(zlib.get(), ps);
    CHECK(ps.payloads(0).metadata().at("encoding") == "binary/zlib");
    CHECK(ps.payloads(0).data() != serialized);
    codec::to_payload("42", *ps.add_payloads());
    codec::decode(zlib.get(), ps);
    CHECK(codec::from_payload(ps.payloads(0)) == R"({"customer":"ada","quantities":[2,3,5]})");
    CHECK(codec::from_payload(ps.payloads(1)) == "42");

    // Damaged bytes: a codec_error naming the payload, not a crash.
    ::temporal::api::common::v1::Payload bad;
    (*bad.mutable_metadata())["encoding"] = "binary/zlib";
    bad.set_data(python.substr(0, python.size() / 2));
    CHECK_THROWS_WITH(codec::decode(zlib.get(), bad), Catch::Contains("does not inflate"));
    CHECK_THROWS_AS(weft::temporal::zlib_codec(12), weft::config_error);
}
