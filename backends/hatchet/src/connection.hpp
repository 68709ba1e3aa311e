// The transport shared by the client and the worker: one channel to the engine, the Dispatcher and
// v1.AdminService stubs, the bearer token on every call, and unary calls whose failures become
// exceptions that name the RPC and never contain the token.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include <dispatcher/dispatcher.grpc.pb.h>
#include <v1/workflows.grpc.pb.h>

#include <weft/hatchet.hpp>

namespace weft::hatchet_detail {

// A failed RPC: what() is "weft: hatchet: <rpc>: <status code>: <engine's message>".
class rpc_error : public std::runtime_error {
public:
    rpc_error(std::string what, grpc::StatusCode code) : std::runtime_error(std::move(what)), code_(code) {}
    grpc::StatusCode code() const noexcept { return code_; }

private:
    grpc::StatusCode code_;
};

std::string_view status_name(grpc::StatusCode c);

// What a Hatchet API token (a JWT) says about itself, read without checking its signature (the
// engine does that): the tenant, when it was issued and when it expires.
struct token_claims {
    std::string tenant;      // `sub`
    std::string server_url;  // where the engine expects its REST API
    std::optional<std::chrono::system_clock::time_point> issued, expires;  // `iat`, `exp`
};
// Throws config_error saying which part does not decode (never quoting the token).
token_claims decode_token(std::string_view jwt);

class connection {
public:
    using dispatcher = ::Dispatcher;
    using admin = ::v1::AdminService;

    explicit connection(const hatchet::options& o);

    dispatcher::Stub& dispatcher_stub() const noexcept { return *dispatcher_; }
    admin::Stub& admin_stub() const noexcept { return *admin_; }

    // Authorization metadata and, when timeout > 0, a deadline.
    void prepare(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) const;

    template <class Stub, class Request, class Response>
    Response call(std::string_view rpc, Stub& stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                  const Request& req) const {
        grpc::ClientContext ctx;
        prepare(ctx, timeout_);
        Response resp;
        grpc::Status st = (stub.*method)(&ctx, req, &resp);
        if (!st.ok()) fail(rpc, st);
        return resp;
    }
    template <class Request, class Response>
    Response dispatch(std::string_view rpc,
                      grpc::Status (dispatcher::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                      const Request& req) const {
        return call(rpc, *dispatcher_, method, req);
    }
    template <class Request, class Response>
    Response administer(std::string_view rpc,
                        grpc::Status (admin::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                        const Request& req) const {
        return call(rpc, *admin_, method, req);
    }

    [[noreturn]] void fail(std::string_view rpc, const grpc::Status& st) const;
    // `text` with every occurrence of the token replaced by "<token>".
    std::string redact(std::string text) const;
    token_claims claims() const { return decode_token(token_); }

private:
    std::string token_;
    std::chrono::milliseconds timeout_;
    std::shared_ptr<grpc::Channel> channel_;
    std::unique_ptr<dispatcher::Stub> dispatcher_;
    std::unique_ptr<admin::Stub> admin_;
};

// The plan weft registers for `wf`: its lowering with the limits `o` declares for it.
hatchet_wire::workflow_plan plan_for(const hatchet::options& o, const graph_view& wf);

// Whether workers and clients put weft's definitions when they start (replace_definitions "always")
// or leave the engine's as they are ("never"); config_error for any other value.
bool replaces_definitions(const hatchet::options& o);

// PutWorkflow for a plan (identical definitions keep the engine's current version): returns the
// workflow version id and the workflow id.
std::pair<std::string, std::string> put_workflow(const connection& c, const hatchet_wire::workflow_plan& plan);

}  // namespace weft::hatchet_detail
