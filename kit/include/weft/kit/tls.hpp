// TLS as every backend configures it: the PEM files a setting names, read once, with errors that
// name the setting and the file and say what to do. No TLS library here; a transport hands the text
// to its own (gRPC's SslCredentials: weft/kit/grpc_tls.hpp).
#pragma once

#include <string>
#include <string_view>

namespace weft::kit {

// Paths as the settings hold them; empty: not set.
struct tls_files {
    std::string ca_file;      // roots that sign the server's certificate; empty: the system's roots
    std::string cert_file;    // the client's certificate chain (mTLS); needs key_file
    std::string key_file;     // its private key
    std::string server_name;  // the name checked against the server's certificate; empty: the host
};

// The PEM text. private_key is a secret: it is never logged and no error quotes it.
struct tls_material {
    std::string root_ca, cert_chain, private_key, server_name;
};

// `backend` prefixes the keys in errors ("temporal" -> temporal.tls_cert_file). Throws config_error
// for a file that cannot be read or holds no PEM block, and for a certificate without its key (or a
// key without its certificate). `require_client_cert`: mTLS was asked for, so both must be set.
tls_material read_tls(std::string_view backend, const tls_files& files, bool require_client_cert = false);

}  // namespace weft::kit
