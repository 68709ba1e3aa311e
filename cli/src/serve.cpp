#include <weft/cli/serve.hpp>

#include <weft/run.hpp>
#include <weft/telemetry.hpp>

#include <httplib.h>

#include <thread>

namespace weft::cli {

struct metrics_server::impl {
    httplib::Server http;
    std::string host;
    int port = 0;
    std::thread thread;
};

metrics_server::metrics_server(const std::string& address) : impl_(std::make_unique<impl>()) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0)
        throw config_error("weft: bad metrics address '" + address + "': expected host:port, e.g. 127.0.0.1:9464");
    impl_->host = address.substr(0, colon);
    int port = 0;
    try {
        port = std::stoi(address.substr(colon + 1));
    } catch (...) {
        port = -1;
    }
    if (port < 0 || port > 65535) throw config_error("weft: bad metrics address '" + address + "': the port is not a number from 0 to 65535");
    telemetry::collect_metrics(true);
    impl_->http.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(telemetry::metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    impl_->http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
        res.status = telemetry::healthy() ? 200 : 503;
        res.set_content(telemetry::health_report(), "text/plain; charset=utf-8");
    });
    if (port == 0) impl_->port = impl_->http.bind_to_any_port(impl_->host);
    else impl_->port = impl_->http.bind_to_port(impl_->host, port) ? port : -1;
    if (impl_->port <= 0) throw config_error("weft: cannot listen on metrics address '" + address + "' (in use, or not this machine's)");
    impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
}

metrics_server::~metrics_server() {
    impl_->http.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

std::string metrics_server::address() const { return impl_->host + ":" + std::to_string(impl_->port); }

}  // namespace weft::cli
