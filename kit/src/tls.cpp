#include <weft/kit/tls.hpp>

#include <weft/run.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace weft::kit {

namespace {

std::string read_pem(std::string_view backend, std::string_view key, const std::string& path, std::string_view block) {
    const std::string setting = std::string(backend) + "." + std::string(key);
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw config_error("weft: " + setting + ": cannot read " + path + ": " + std::strerror(errno) +
                           "; point it at a readable PEM file");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    // Only the marker is checked: the TLS library parses the rest and names its own failure.
    if (text.find("-----BEGIN ") == std::string::npos || (!block.empty() && text.find(block) == std::string::npos))
        throw config_error("weft: " + setting + ": " + path + " holds no PEM " +
                           (block.empty() ? std::string("block") : std::string(block.substr(11))) +
                           " (-----BEGIN ...-----); convert it with openssl (e.g. `openssl x509 -outform PEM`)");
    return text;
}

}  // namespace

tls_material read_tls(std::string_view backend, const tls_files& f, bool require_client_cert) {
    const std::string b(backend);
    if (f.cert_file.empty() != f.key_file.empty())
        throw config_error("weft: " + b + ": " + (f.cert_file.empty() ? "tls_key_file" : "tls_cert_file") +
                           " is set without " + (f.cert_file.empty() ? "tls_cert_file" : "tls_key_file") +
                           ": a client certificate needs both");
    if (require_client_cert && f.cert_file.empty())
        throw config_error("weft: " + b + ": mutual TLS needs a client certificate: set tls_cert_file and tls_key_file");
    tls_material m;
    m.server_name = f.server_name;
    if (!f.ca_file.empty()) m.root_ca = read_pem(backend, "tls_ca_file", f.ca_file, "-----BEGIN CERTIFICATE");
    if (!f.cert_file.empty()) {
        m.cert_chain = read_pem(backend, "tls_cert_file", f.cert_file, "-----BEGIN CERTIFICATE");
        m.private_key = read_pem(backend, "tls_key_file", f.key_file, "");
        if (m.private_key.find("PRIVATE KEY-----") == std::string::npos)
            throw config_error("weft: " + b + ".tls_key_file: " + f.key_file + " holds no PEM private key");
    }
    return m;
}

}  // namespace weft::kit
