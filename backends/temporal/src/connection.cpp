#include "connection.hpp"

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

}  // namespace

connection::connection(options s) : options_(std::move(s)) {
    if (options_.identity.empty()) options_.identity = default_identity();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(128 * 1024 * 1024);  // what the SDKs use; histories can be large
    // gRPC's own reconnect backoff grows to 2 min; a worker should see a restarted server within seconds.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 3000);
    channel_ = grpc::CreateCustomChannel(options_.address, grpc::InsecureChannelCredentials(), args);
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
