#include "transport.hpp"

#include <weft/telemetry.hpp>

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/time.h>

#include <cstdlib>
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

redis_url redis_url::parse(std::string_view url) {
    redis_url u;
    std::string s(url);
    auto fail = [&](const std::string& why) {
        throw redis_error("weft: bad Redis URL '" + redact(s) + "': " + why +
                          " (expected redis://[:password@]host[:port][/db])");
    };
    if (s.rfind("redis://", 0) != 0) fail("it does not start with redis://");
    std::string rest = s.substr(8);
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
    return u;
}

std::string redis_url::redacted() const {
    std::string s = "redis://";
    if (!username.empty() || !password.empty()) s += username + (password.empty() ? "" : ":***") + "@";
    return s + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

struct redis_connection::impl {
    redisContext* c = nullptr;
    ~impl() {
        if (c) redisFree(c);
    }
};

redis_connection::redis_connection(const redis_url& url, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<impl>()), url_(url) {
    impl_->c = redisConnectWithTimeout(url.host.c_str(), url.port, to_timeval(timeout));
    if (!impl_->c) throw redis_error("weft: cannot allocate a Redis connection to " + url.redacted());
    if (impl_->c->err)
        throw redis_error("weft: cannot connect to Redis at " + url.redacted() + ": " + impl_->c->errstr);
    set_timeout(timeout);
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
    if (c->err) throw redis_error("weft: the Redis connection to " + url_.redacted() + " is broken: " + c->errstr);
    for (auto& cmd : commands) append(c, cmd);
    std::vector<redis_reply> out;
    out.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
        void* raw = nullptr;
        if (redisGetReply(c, &raw) != REDIS_OK)
            throw redis_error("weft: Redis at " + url_.redacted() + " did not answer " + commands[i].front() + ": " +
                              (c->errstr[0] ? c->errstr : "connection lost"));
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
    int done = 0;
    while (!done)
        if (redisBufferWrite(impl_->c, &done) != REDIS_OK)
            throw redis_error("weft: cannot write to Redis at " + url_.redacted() + ": " + impl_->c->errstr);
}

std::optional<redis_reply> redis_connection::read(std::chrono::milliseconds wait) {
    auto* c = impl_->c;
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(c, &raw) != REDIS_OK)
            throw redis_error("weft: bad reply from Redis at " + url_.redacted() + ": " + c->errstr);
        if (raw) {
            reply_ptr r(static_cast<redisReply*>(raw));
            return convert(r.get());
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{c->fd, POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n == 0) return std::nullopt;
        if (n < 0) continue;
        if (redisBufferRead(c) != REDIS_OK)
            throw redis_error("weft: lost the Redis connection to " + url_.redacted() + ": " + c->errstr);
    }
}

}  // namespace weft::celery_wire
