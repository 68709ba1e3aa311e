// A consumer of weft::hatchet through the public API only (so it links the installed, generated
// weft::hatchet_api): the typed client and any_client construct without an engine, start() on a
// closed port fails (a gRPC call with protobuf messages ran), and a local workflow still runs.
#include <weft/any_client.hpp>
#include <weft/hatchet.hpp>

#include "common.hpp"

int main() {
    const char* me = "consumer_hatchet";
    const std::string address = "127.0.0.1:1";  // nothing listens on port 1
    const std::string token = "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl";  // a well-formed JWT of no tenant
    weft::client<weft::hatchet> typed(
        weft::hatchet::options{.host_port = address, .token = token, .timeout = std::chrono::seconds(2)});
    const std::string error = consumer::start_error(typed, me, address);
    auto configured = weft::any_client(weft::config::parse(
        "backend = hatchet\n[hatchet]\nhost_port = " + address + "\ntoken = " + token + "\n", "consumer.conf"));

    bool ok = consumer::check(!error.empty(), me, "start() on a closed port did not fail");
    ok &= consumer::check(configured.backend() == "hatchet", me, "any_client with backend = hatchet is not hatchet");
    ok &= consumer::check(consumer::local_runs(), me, "the local run is wrong");
    return ok ? 0 : 1;
}
