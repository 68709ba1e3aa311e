#include "connection.hpp"

#include <weft/kit/grpc_tls.hpp>
#include <weft/telemetry.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <random>

#include <unistd.h>

namespace weft::temporal_detail {

namespace {

std::string default_identity() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return std::to_string(::getpid()) + "@" + host;
}

// `authorization: Bearer <key>` on every call, plain or TLS alike (call credentials would refuse a
// plaintext channel, and the SDKs send the key either way).
class api_key_interceptor : public grpc::experimental::Interceptor {
public:
    explicit api_key_interceptor(const std::string& value) : value_(value) {}
    void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
        if (m->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA))
            m->GetSendInitialMetadata()->emplace("authorization", value_);
        m->Proceed();
    }

private:
    const std::string& value_;
};

class api_key_factory : public grpc::experimental::ClientInterceptorFactoryInterface {
public:
    explicit api_key_factory(std::string key) : value_("Bearer " + std::move(key)) {}
    grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
        return new api_key_interceptor(value_);
    }

private:
    std::string value_;  // outlives every call: the channel owns the factory
};

bool uses_tls(const options& o) {
    if (!o.tls.empty()) return *tls_switch(o.tls);
    return !o.api_key.empty() || !o.tls_ca_file.empty() || !o.tls_cert_file.empty() || !o.tls_server_name.empty();
}

}  // namespace

std::optional<bool> tls_switch(std::string_view v) {
    std::string l(v);
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (l == "true" || l == "1" || l == "yes" || l == "on") return true;
    if (l == "false" || l == "0" || l == "no" || l == "off") return false;
    return std::nullopt;
}

connection::connection(options s) : options_(std::move(s)) {
    if (options_.identity.empty()) options_.identity = default_identity();
    if (!options_.tls.empty() && !tls_switch(options_.tls))
        throw config_error("weft: temporal.tls = '" + options_.tls + "': expected true, false, or empty");
    if (!options_.api_key.empty()) telemetry::add_secret(options_.api_key);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(128 * 1024 * 1024);  // what the SDKs use; histories can be large
    // gRPC's own reconnect backoff grows to 2 min; a worker should see a restarted server within seconds.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 3000);
    std::optional<kit::tls_material> tls;
    if (uses_tls(options_))
        tls = kit::read_tls("temporal", {options_.tls_ca_file, options_.tls_cert_file, options_.tls_key_file,
                                         options_.tls_server_name});
    auto credentials = kit::channel_credentials(tls ? &*tls : nullptr, args);
    if (options_.api_key.empty()) {
        channel_ = grpc::CreateCustomChannel(options_.address, credentials, args);
    } else {
        std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
        interceptors.push_back(std::make_unique<api_key_factory>(options_.api_key));
        channel_ = grpc::experimental::CreateCustomChannelWithInterceptors(options_.address, credentials, args,
                                                                           std::move(interceptors));
    }
    stub_ = service::NewStub(channel_);
}

std::string connection::request_id() {
    static thread_local std::mt19937_64 gen{std::random_device{}()};
    std::uint64_t hi = gen(), lo = gen();
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
    char buf[37];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                  static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                  static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffULL));
    return buf;
}

}  // namespace weft::temporal_detail
