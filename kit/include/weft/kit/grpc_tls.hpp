// The channel credentials of the gRPC backends (temporal, hatchet) from kit::tls_material. Header
// only, so that weft::kit itself does not link gRPC; only a source that includes this needs it.
#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>

#include <weft/kit/tls.hpp>

namespace weft::kit {

// null: plaintext. Otherwise TLS with the given roots (empty: the system's), the client certificate
// if any (mTLS), and the server name checked in place of the host's (set on `args`).
inline std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const tls_material* tls, grpc::ChannelArguments& args) {
    if (!tls) return grpc::InsecureChannelCredentials();
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = tls->root_ca;
    o.pem_cert_chain = tls->cert_chain;
    o.pem_private_key = tls->private_key;
    if (!tls->server_name.empty()) args.SetSslTargetNameOverride(tls->server_name);
    return grpc::SslCredentials(o);
}

}  // namespace weft::kit
