// A consumer of weft::celery through the public API only: the typed client and any_client construct
// without a broker (they connect on start), start() on a closed port fails naming the URL, and a
// local workflow still runs next to them.
#include <weft/any_client.hpp>
#include <weft/celery.hpp>

#include "common.hpp"

int main() {
    const char* me = "consumer_celery";
    const std::string url = "redis://127.0.0.1:1/0";  // nothing listens on port 1
    weft::client<weft::celery> typed(weft::celery::options{.broker_url = url, .queue = "weft.package"});
    const std::string error = consumer::start_error(typed, me, url);
    auto configured = weft::any_client(
        weft::config::parse("backend = celery\n[celery]\nbroker_url = " + url + "\n", "consumer.conf"));

    bool ok = consumer::check(error.find("127.0.0.1:1") != std::string::npos, me, "start() did not fail naming the broker URL");
    ok &= consumer::check(configured.backend() == "celery", me, "any_client with backend = celery is not celery");
    ok &= consumer::check(consumer::local_runs(), me, "the local run is wrong");
    return ok ? 0 : 1;
}
