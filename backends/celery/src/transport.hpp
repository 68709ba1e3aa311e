// A small blocking Redis connection (RESP2): password auth, TLS, timeouts, pipelines, and pub/sub
// reads with a deadline. hiredis 0.14 formats commands and parses replies; the socket I/O is ours,
// plain or through OpenSSL (hiredis 0.14 has no TLS). Neither stays in this header.
//
// Every error message carries the server's address with the password redacted
// (redis://:***@127.0.0.1:16379/0), never the password itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace weft::celery_wire {

class redis_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct redis_url {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string username;
    std::string password;
    int db = 0;
    // rediss://: TLS, with the query parameters Celery and redis-py read from such a URL.
    bool tls = false;
    bool tls_verify = true;          // ssl_cert_reqs: required (the default) or optional; none: false
    bool tls_check_hostname = true;  // ssl_check_hostname (redis-py's default; off when not verifying)
    std::string tls_ca_file;         // ssl_ca_certs; empty: the system's roots
    std::string tls_cert_file;       // ssl_certfile: the client's chain, for mTLS
    std::string tls_key_file;        // ssl_keyfile; empty: the key is in ssl_certfile

    // redis[s]://[[user]:password@]host[:port][/db][?ssl_...=...]; throws redis_error (with the
    // password redacted) naming what is wrong, also a named file that cannot be read.
    static redis_url parse(std::string_view url);
    std::string redacted() const;  // the URL with the password replaced by ***
    // The same server and database with the same credentials: one connection serves both.
    bool same_as(const redis_url& o) const {
        return host == o.host && port == o.port && username == o.username && password == o.password && db == o.db &&
               tls == o.tls && tls_verify == o.tls_verify && tls_check_hostname == o.tls_check_hostname &&
               tls_ca_file == o.tls_ca_file && tls_cert_file == o.tls_cert_file && tls_key_file == o.tls_key_file;
    }
};

// Replaces the password of every redis:// URL in `text` by ***.
std::string redact(std::string_view text);

// Where the backend logs: level "info", "warning" or "error".
using log_fn = std::function<void(std::string_view level, const std::string& text)>;

struct redis_reply {
    enum class kind { nil, string, integer, array, status, error };
    kind type = kind::nil;
    std::string str;  // string, status and error
    long long integer = 0;
    std::vector<redis_reply> elements;
    bool is_nil() const noexcept { return type == kind::nil; }
};

class redis_connection {
public:
    // Connects, authenticates and selects the database, each within `timeout`.
    explicit redis_connection(const redis_url& url, std::chrono::milliseconds timeout = std::chrono::seconds(5));
    ~redis_connection();
    redis_connection(const redis_connection&) = delete;
    redis_connection& operator=(const redis_connection&) = delete;

    // One command; arguments are binary-safe. An error reply throws redis_error naming the command.
    redis_reply command(const std::vector<std::string>& argv);
    // Several commands in one round trip; error replies are returned, not thrown (EXEC's are inside),
    // except a server's "not now" (LOADING, BUSY, MASTERDOWN, TRYAGAIN), thrown as a lost connection.
    std::vector<redis_reply> pipeline(const std::vector<std::vector<std::string>>& commands);

    // The socket timeout for command replies (BRPOP's block time must stay below it).
    void set_timeout(std::chrono::milliseconds timeout);

    // Pub/sub: after SUBSCRIBE (sent with command_no_reply), reads the next pushed reply, or
    // nothing when `wait` passes.
    void send(const std::vector<std::string>& argv);
    std::optional<redis_reply> read(std::chrono::milliseconds wait);

    const redis_url& url() const noexcept { return url_; }
    // After an I/O error or a timeout (a reply may still be on its way) the connection refuses
    // every command: it is replaced, never reused.
    bool broken() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    redis_url url_;
};

}  // namespace weft::celery_wire
