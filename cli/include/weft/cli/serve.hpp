// The HTTP endpoint of a worker or a long-lived client: /metrics (Prometheus text format 0.0.4) and
// /healthz (200 while every part works, 503 with the failing parts otherwise), on cpp-httplib. The
// CLI's worker serves it at --metrics-address; a program of its own (a web service that starts runs)
// keeps one alive for as long as it should be scraped:
//
//     weft::cli::metrics_server metrics("127.0.0.1:9464");
#pragma once

#include <memory>
#include <string>

namespace weft::cli {

class metrics_server {
public:
    // "host:port"; port 0 picks a free one (address() tells which). Throws config_error for an
    // address it cannot listen on, naming it.
    explicit metrics_server(const std::string& address);
    ~metrics_server();
    std::string address() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace weft::cli
