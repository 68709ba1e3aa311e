// A consumer of weft::temporal through the public API only (so it links the installed, generated
// weft::temporal_api): the typed client and any_client construct without a server, start() on a
// closed port fails (a gRPC call with protobuf messages ran), and a local workflow still runs.
#include <weft/any_client.hpp>
#include <weft/temporal.hpp>

#include "common.hpp"

int main() {
    const char* me = "consumer_temporal";
    const std::string address = "127.0.0.1:1";  // nothing listens on port 1
    weft::client<weft::temporal> typed(weft::temporal::options{
        .address = address, .task_queue = "weft.package", .timeout = std::chrono::seconds(2)});
    const std::string error = consumer::start_error(typed, me, address);
    auto configured = weft::any_client(weft::config::parse(
        "backend = temporal\n[temporal]\naddress = " + address + "\ntask_queue = weft.package\n", "consumer.conf"));

    bool ok = consumer::check(!error.empty(), me, "start() on a closed port did not fail");
    ok &= consumer::check(configured.backend() == "temporal", me, "any_client with backend = temporal is not temporal");
    ok &= consumer::check(consumer::local_runs(), me, "the local run is wrong");
    return ok ? 0 : 1;
}
