#include "transport.hpp"

#include <weft/telemetry.hpp>

extern "C" {
#include <hiredis/sds.h>  // first: hiredis 0.14 includes it without extern "C"
}
#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>

namespace weft::celery_wire {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

redis_reply convert(const redisReply* r) {
    redis_reply out;
    if (!r) return out;
    switch (r->type) {
    case REDIS_REPLY_STRING: out.type = redis_reply::kind::string; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: out.type = redis_reply::kind::status; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = redis_reply::kind::error; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = redis_reply::kind::integer; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
        out.type = redis_reply::kind::array;
        out.elements.reserve(r->elements);
        for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
        break;
    default: break;
    }
    return out;
}

struct reply_deleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

}  // namespace

std::string redact(std::string_view text) {
    static const std::regex url(R"((rediss?://[^:@/\s]*:)[^@\s]*@)");
    return std::regex_replace(std::string(text), url, "$1***@");
}

namespace {

std::string unquote(std::string_view v) {
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '%' && i + 2 < v.size() && std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += v[i];
        }
    }
    return out;
}

}  // namespace

redis_url redis_url::parse(std::string_view url) {
    redis_url u;
    std::string s(url);
    auto fail = [&](const std::string& why) {
        throw redis_error("weft: bad Redis URL '" + redact(s) + "': " + why +
                          " (expected redis[s]://[[user]:password@]host[:port][/db][?ssl_cert_reqs=required&...])");
    };
    std::string rest;
    if (s.rfind("redis://", 0) == 0) rest = s.substr(8);
    else if (s.rfind("rediss://", 0) == 0) {
        rest = s.substr(9);
        u.tls = true;
    } else {
        fail("it does not start with redis:// or rediss://");
    }
    // The query: after the credentials, which may hold a '?'.
    std::string query;
    auto q = rest.find('?', rest.rfind('@') == std::string::npos ? 0 : rest.rfind('@'));
    if (q != std::string::npos) {
        query = rest.substr(q + 1);
        rest.resize(q);
    }
    auto slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    if (slash != std::string::npos) {
        std::string db = rest.substr(slash + 1);
        if (!db.empty()) {
            char* end = nullptr;
            long n = std::strtol(db.c_str(), &end, 10);
            if (*end || n < 0) fail("the database is not a number");
            u.db = static_cast<int>(n);
        }
    }
    auto at = authority.rfind('@');
    if (at != std::string::npos) {
        std::string cred = authority.substr(0, at);
        authority = authority.substr(at + 1);
        auto colon = cred.find(':');
        if (colon == std::string::npos) u.password = cred;
        else {
            u.username = cred.substr(0, colon);
            u.password = cred.substr(colon + 1);
        }
    }
    auto colon = authority.rfind(':');
    if (colon != std::string::npos) {
        char* end = nullptr;
        long p = std::strtol(authority.c_str() + colon + 1, &end, 10);
        if (*end || p <= 0 || p > 65535) fail("the port is not a number");
        u.port = static_cast<int>(p);
        authority = authority.substr(0, colon);
    }
    if (!authority.empty()) u.host = authority;
    telemetry::add_secret(u.password);  // kept out of every log line, whoever writes it

    // The parameters Celery's Redis backend and kombu pass to redis-py's SSLConnection.
    for (std::size_t from = 0; from < query.size();) {
        auto amp = query.find('&', from);
        std::string pair = query.substr(from, amp == std::string::npos ? std::string::npos : amp - from);
        from = amp == std::string::npos ? query.size() : amp + 1;
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        const std::string key = pair.substr(0, eq);
        const std::string value = eq == std::string::npos ? std::string() : unquote(pair.substr(eq + 1));
        if (key.rfind("ssl_", 0) != 0)
            fail("unknown parameter '" + key +
                 "' (weft reads ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile and ssl_check_hostname)");
        if (!u.tls) fail("'" + key + "' needs the rediss:// scheme, as in Celery");
        if (key == "ssl_cert_reqs") {
            if (value == "required" || value == "CERT_REQUIRED" || value == "optional" || value == "CERT_OPTIONAL")
                u.tls_verify = true;  // a client's CERT_OPTIONAL verifies what the server presents: always a certificate
            else if (value == "none" || value == "CERT_NONE") u.tls_verify = false;
            else fail("ssl_cert_reqs is '" + value + "', not required, optional or none (or CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE)");
        } else if (key == "ssl_check_hostname") {
            if (value == "true" || value == "True" || value == "1" || value == "yes") u.tls_check_hostname = true;
            else if (value == "false" || value == "False" || value == "0" || value == "no") u.tls_check_hostname = false;
            else fail("ssl_check_hostname is '" + value + "', not true or false");
        } else if (key == "ssl_ca_certs") u.tls_ca_file = value;
        else if (key == "ssl_certfile") u.tls_cert_file = value;
        else if (key == "ssl_keyfile") u.tls_key_file = value;
        else
            fail("unknown parameter '" + key +
                 "' (weft reads ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile and ssl_check_hostname)");
    }
    if (!u.tls_key_file.empty() && u.tls_cert_file.empty()) fail("ssl_keyfile is set without ssl_certfile");
    // The files are read at every connect; a path that cannot be read is a mistake to say now.
    for (auto [key, path] : {std::pair{"ssl_ca_certs", &u.tls_ca_file}, std::pair{"ssl_certfile", &u.tls_cert_file},
                             std::pair{"ssl_keyfile", &u.tls_key_file}}) {
        if (path->empty()) continue;
        std::ifstream f(*path);
        if (!f) fail(std::string(key) + ": cannot read '" + *path + "' (" + std::strerror(errno) + ")");
        std::string head(4096, '\0');
        f.read(head.data(), static_cast<std::streamsize>(head.size()));
        head.resize(static_cast<std::size_t>(f.gcount()));
        if (head.find("-----BEGIN ") == std::string::npos) fail(std::string(key) + ": '" + *path + "' holds no PEM block");
    }
    return u;
}

std::string redis_url::redacted() const {
    std::string s = tls ? "rediss://" : "redis://";
    if (!username.empty() || !password.empty()) s += username + (password.empty() ? "" : ":***") + "@";
    return s + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

namespace {

// OpenSSL's own socket BIO writes with write(2): a peer that closed would raise SIGPIPE, which kills
// the process. This one sends with MSG_NOSIGNAL (and the plain path does the same).
BIO_METHOD* nosignal_socket() {
    static BIO_METHOD* m = [] {
        BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "weft socket");
        BIO_meth_set_write(b, [](BIO* bio, const char* data, int len) -> int {
            BIO_clear_retry_flags(bio);
            ssize_t n;
            do n = ::send(static_cast<int>(BIO_get_fd(bio, nullptr)), data, static_cast<std::size_t>(len), MSG_NOSIGNAL);
            while (n < 0 && errno == EINTR);
            return static_cast<int>(n);
        });
        BIO_meth_set_read(b, [](BIO* bio, char* data, int len) -> int {
            BIO_clear_retry_flags(bio);
            ssize_t n;
            do n = ::recv(static_cast<int>(BIO_get_fd(bio, nullptr)), data, static_cast<std::size_t>(len), 0);
            while (n < 0 && errno == EINTR);
            return static_cast<int>(n);
        });
        BIO_meth_set_ctrl(b, [](BIO* bio, int cmd, long num, void* ptr) -> long {
            switch (cmd) {
            case BIO_C_SET_FD: BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(*static_cast<int*>(ptr))));
                               BIO_set_init(bio, 1); return 1;
            case BIO_C_GET_FD: {
                int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
                if (ptr) *static_cast<int*>(ptr) = fd;
                return fd;
            }
            case BIO_CTRL_FLUSH: return 1;
            default: (void)num; return 0;
            }
        });
        return b;
    }();
    return m;
}

// What OpenSSL last said, for an error message.
std::string ssl_reason() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? std::string("no detail from OpenSSL") : out;
}

bool is_ip(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

struct redis_connection::impl {
    redisContext* c = nullptr;
    SSL_CTX* ctx = nullptr;
    SSL* ssl = nullptr;
    ~impl() {
        if (ssl) SSL_free(ssl);
        if (ctx) SSL_CTX_free(ctx);
        if (c) redisFree(c);
    }

    // Marks the context broken, as hiredis does, so broken() and the next call see it; the reason
    // is kept whole (hiredis's errstr holds 128 bytes).
    std::string why;
    bool fail(int kind, const std::string& reason) {
        c->err = kind;
        why = reason;
        std::snprintf(c->errstr, sizeof c->errstr, "%s", reason.c_str());
        return false;
    }
    std::string errstr() const { return !why.empty() ? why : c->errstr[0] ? std::string(c->errstr) : "connection lost"; }
    bool io_error(int n, const char* fallback) {
        if (!ssl) return n == 0 ? fail(REDIS_ERR_EOF, "Server closed the connection") : fail(REDIS_ERR_IO, std::strerror(errno));
        const int saved = errno;
        switch (SSL_get_error(ssl, n)) {
        case SSL_ERROR_ZERO_RETURN: return fail(REDIS_ERR_EOF, "Server closed the connection" + after_handshake);
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE: return fail(REDIS_ERR_IO, std::strerror(EAGAIN));  // the socket timeout
        case SSL_ERROR_SYSCALL:
            if (saved == 0 || n == 0) return fail(REDIS_ERR_EOF, "Server closed the connection" + after_handshake);
            return fail(REDIS_ERR_IO, std::strerror(saved) + after_handshake);
        default: return fail(REDIS_ERR_IO, std::string(fallback) + ": " + ssl_reason() + after_handshake);
        }
    }

    // Sends what the formatter appended to the output buffer.
    bool flush() {
        std::size_t done = 0, len = sdslen(c->obuf);
        while (done < len) {
            int n;
            if (ssl) {
                ERR_clear_error();
                n = SSL_write(ssl, c->obuf + done, static_cast<int>(std::min<std::size_t>(len - done, 1 << 20)));
            } else {
                ssize_t w;
                do w = ::send(c->fd, c->obuf + done, len - done, MSG_NOSIGNAL);
                while (w < 0 && errno == EINTR);
                n = static_cast<int>(w);
            }
            if (n <= 0) {
                if (!ssl && n < 0 && errno == 0) errno = EIO;
                return io_error(n, "TLS write failed");
            }
            done += static_cast<std::size_t>(n);
        }
        sdsclear(c->obuf);
        return true;
    }

    // Reads what has arrived (waiting up to the socket timeout) into the reply parser.
    bool fill() {
        char buf[16 * 1024];
        int n;
        if (ssl) {
            ERR_clear_error();
            n = SSL_read(ssl, buf, sizeof buf);
        } else {
            ssize_t r;
            do r = ::recv(c->fd, buf, sizeof buf, 0);
            while (r < 0 && errno == EINTR);
            n = static_cast<int>(r);
        }
        if (n <= 0) return io_error(n, "TLS read failed");
        if (redisReaderFeed(c->reader, buf, static_cast<std::size_t>(n)) != REDIS_OK)
            return fail(c->reader->err, c->reader->errstr);
        return true;
    }

    // hiredis's blocking redisGetReply, on this I/O.
    bool get_reply(void** reply) {
        if (redisGetReplyFromReader(c, reply) != REDIS_OK) return false;
        if (*reply) return true;
        if (!flush()) return false;
        while (!*reply) {
            if (!fill()) return false;
            if (redisGetReplyFromReader(c, reply) != REDIS_OK) return false;
        }
        after_handshake.clear();
        return true;
    }

    // Bytes already decrypted and waiting: poll(2) on the socket would not see them.
    bool buffered() const { return ssl && SSL_pending(ssl) > 0; }

    void handshake(const redis_url& url) {
        auto fail_tls = [&](const std::string& why) {
            throw redis_error("weft: TLS with Redis at " + url.redacted() + " failed: " + why);
        };
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) fail_tls(ssl_reason());
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        if (url.tls_verify) {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
            if (url.tls_ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) != 1
                                        : SSL_CTX_load_verify_locations(ctx, url.tls_ca_file.c_str(), nullptr) != 1)
                fail_tls("cannot load the CA certificates" +
                         (url.tls_ca_file.empty() ? std::string(" of the system") : " of ssl_ca_certs '" + url.tls_ca_file + "'") +
                         ": " + ssl_reason());
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        }
        if (!url.tls_cert_file.empty()) {
            const std::string& key = url.tls_key_file.empty() ? url.tls_cert_file : url.tls_key_file;
            if (SSL_CTX_use_certificate_chain_file(ctx, url.tls_cert_file.c_str()) != 1)
                fail_tls("cannot load ssl_certfile '" + url.tls_cert_file + "': " + ssl_reason());
            if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
                fail_tls("cannot load the private key of " +
                         std::string(url.tls_key_file.empty() ? "ssl_certfile" : "ssl_keyfile") + " '" + key + "': " + ssl_reason());
            if (SSL_CTX_check_private_key(ctx) != 1)
                fail_tls("the private key does not match ssl_certfile '" + url.tls_cert_file + "'");
        }
        ssl = SSL_new(ctx);
        BIO* bio = BIO_new(nosignal_socket());
        if (!ssl || !bio) fail_tls(ssl_reason());
        BIO_set_fd(bio, c->fd, BIO_NOCLOSE);
        SSL_set_bio(ssl, bio, bio);
        const bool ip = is_ip(url.host);
        if (!ip) SSL_set_tlsext_host_name(ssl, url.host.c_str());
        if (url.tls_verify && url.tls_check_hostname) {
            X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
            if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str()) : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0)) != 1)
                fail_tls("cannot check the name '" + url.host + "': " + ssl_reason());
        }
        ERR_clear_error();
        int r = SSL_connect(ssl);
        if (r != 1) {
            long verify = SSL_get_verify_result(ssl);
            if (verify != X509_V_OK)
                fail_tls(std::string("the server's certificate was refused: ") + X509_verify_cert_error_string(verify) +
                         (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH
                              ? " (it is not for '" + url.host + "'; ssl_check_hostname=false skips the check)"
                              : std::string(url.tls_ca_file.empty() ? " (set ssl_ca_certs to the CA that signed it)" : "")));
            io_error(r, "the handshake failed");
            const bool timed_out = why == std::strerror(EAGAIN);
            fail_tls(timed_out ? std::string("no TLS answer within the timeout (is it a TLS port?)")
                               : why + " during the handshake (is it a TLS port?)");
        }
        // TLS 1.3 finishes the client's handshake before the server checks its certificate: a
        // refusal shows as the connection's first reply never coming.
        after_handshake = url.tls_cert_file.empty()
                              ? " right after the TLS handshake: does the server want a client certificate (ssl_certfile, ssl_keyfile)?"
                              : " right after the TLS handshake: does the server trust the CA of ssl_certfile?";
    }
    std::string after_handshake;  // a hint for the first reply's failure; cleared once one came

};

redis_connection::redis_connection(const redis_url& url, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<impl>()), url_(url) {
    impl_->c = redisConnectWithTimeout(url.host.c_str(), url.port, to_timeval(timeout));
    if (!impl_->c) throw redis_error("weft: cannot allocate a Redis connection to " + url.redacted());
    if (impl_->c->err)
        throw redis_error("weft: cannot connect to Redis at " + url.redacted() + ": " + impl_->c->errstr);
    set_timeout(timeout);
    if (url.tls) impl_->handshake(url);
    if (!url.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!url.username.empty()) auth.push_back(url.username);
        auth.push_back(url.password);
        auto r = pipeline({auth}).front();
        if (r.type == redis_reply::kind::error)
            throw redis_error("weft: Redis at " + url.redacted() + " refused the password: " + redact(r.str));
    }
    if (url.db != 0) command({"SELECT", std::to_string(url.db)});
}

redis_connection::~redis_connection() = default;

bool redis_connection::broken() const noexcept { return impl_->c->err != 0; }

void redis_connection::set_timeout(std::chrono::milliseconds timeout) {
    if (redisSetTimeout(impl_->c, to_timeval(timeout)) != REDIS_OK)
        throw redis_error("weft: cannot set the socket timeout for Redis at " + url_.redacted());
}

namespace {
void append(redisContext* c, const std::vector<std::string>& argv) {
    std::vector<const char*> a;
    std::vector<std::size_t> l;
    a.reserve(argv.size());
    l.reserve(argv.size());
    for (auto& s : argv) {
        a.push_back(s.data());
        l.push_back(s.size());
    }
    redisAppendCommandArgv(c, static_cast<int>(argv.size()), a.data(), l.data());
}
}  // namespace

namespace {
bool transient(std::string_view error) {
    for (std::string_view code : {"LOADING ", "BUSY ", "MASTERDOWN ", "TRYAGAIN "})
        if (error.substr(0, code.size()) == code) return true;
    return false;
}
}  // namespace

std::vector<redis_reply> redis_connection::pipeline(const std::vector<std::vector<std::string>>& commands) {
    auto* c = impl_->c;
    if (c->err) throw redis_error("weft: the Redis connection to " + url_.redacted() + " is broken: " + impl_->errstr());
    for (auto& cmd : commands) append(c, cmd);
    std::vector<redis_reply> out;
    out.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
        void* raw = nullptr;
        if (!impl_->get_reply(&raw))
            throw redis_error("weft: Redis at " + url_.redacted() + " did not answer " + commands[i].front() + ": " +
                              impl_->errstr());
        reply_ptr r(static_cast<redisReply*>(raw));
        out.push_back(convert(r.get()));
    }
    // A server that is loading its data, running a long script or without its master ran none of
    // these commands and will soon: as redis-py does for LOADING, that is a connection failure,
    // which every caller retries after its backoff, never a command's own error (a flusher taking
    // it for one would drop the batch's results and acks).
    for (auto& r : out)
        if (r.type == redis_reply::kind::error && transient(r.str))
            throw redis_error("weft: Redis at " + url_.redacted() + " is not ready: " + redact(r.str));
    return out;
}

redis_reply redis_connection::command(const std::vector<std::string>& argv) {
    auto r = pipeline({argv}).front();
    if (r.type == redis_reply::kind::error)
        throw redis_error("weft: Redis at " + url_.redacted() + " rejected " + argv.front() + ": " + redact(r.str));
    return r;
}

void redis_connection::send(const std::vector<std::string>& argv) {
    append(impl_->c, argv);
    if (!impl_->flush()) throw redis_error("weft: cannot write to Redis at " + url_.redacted() + ": " + impl_->errstr());
}

std::optional<redis_reply> redis_connection::read(std::chrono::milliseconds wait) {
    auto* c = impl_->c;
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(c, &raw) != REDIS_OK)
            throw redis_error("weft: bad reply from Redis at " + url_.redacted() + ": " + impl_->errstr());
        if (raw) {
            reply_ptr r(static_cast<redisReply*>(raw));
            return convert(r.get());
        }
        if (!impl_->buffered()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{c->fd, POLLIN, 0};
            int n = ::poll(&p, 1, static_cast<int>(left.count()));
            if (n == 0) return std::nullopt;
            if (n < 0) continue;
        }
        if (!impl_->fill())
            throw redis_error("weft: lost the Redis connection to " + url_.redacted() + ": " + impl_->errstr());
    }
}

}  // namespace weft::celery_wire
