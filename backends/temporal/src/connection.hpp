// The transport shared by the client and (next) the workflow and activity workers: one channel to the
// frontend, its stub, the settings, and unary calls whose failures become the typed rpc_errors.
// Long polls (worker polls, history waits) use stub() with their own deadline.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include <temporal/api/workflowservice/v1/service.grpc.pb.h>

#include <weft/temporal/client.hpp>

#include "codec.hpp"

namespace weft::temporal_detail {

// temporal.tls's text as a switch (true/1/yes/on, false/0/no/off); nullopt: neither.
std::optional<bool> tls_switch(std::string_view v);

class connection {
public:
    using service = ::temporal::api::workflowservice::v1::WorkflowService;

    explicit connection(options s);

    const options& configuration() const noexcept { return options_; }
    service::Stub& stub() const noexcept { return *stub_; }

    // One unary call with the settings' deadline; a failure throws the typed rpc_error.
    template <class Request, class Response>
    Response call(std::string_view rpc, grpc::Status (service::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                  const Request& req) const {
        grpc::ClientContext ctx;
        set_deadline(ctx, options_.timeout);
        Response resp;
        grpc::Status st = ((*stub_).*method)(&ctx, req, &resp);
        if (!st.ok()) codec::throw_rpc_error(rpc, st);
        return resp;
    }

    static void set_deadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
        ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    }

    // A random (version 4) UUID: the request id the server deduplicates retried calls by.
    static std::string request_id();

private:
    options options_;
    std::shared_ptr<grpc::Channel> channel_;
    std::unique_ptr<service::Stub> stub_;
};

}  // namespace weft::temporal_detail
