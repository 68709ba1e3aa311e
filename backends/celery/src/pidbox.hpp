// Celery's remote control and events on kombu's Redis transport, the worker's end: the pidbox
// broadcasts it reads (PUBLISH on /<db>.celery.pidbox, kombu's fanout), the replies it sends
// ({nodename: reply} LPUSHed to the queues bound to the reply exchange with the caller's routing
// key, as kombu's direct exchange routes), and the event messages it publishes (PUBLISH on
// /<db>.celeryev/<type with dots>: Celery makes the event exchange a fanout on Redis).
#pragma once

#include "codec.hpp"
#include "transport.hpp"

#include <weft/kit/worker_threads.hpp>

#include <atomic>
#include <functional>

namespace weft::celery_wire {

// One control message: kombu's Mailbox._publish body, {method, arguments, destination, pattern,
// matcher, ticket, reply_to}, and the sender's Lamport clock (headers.clock).
struct control_request {
    std::string method;
    json::object arguments;
    std::optional<std::vector<std::string>> destination;  // unset or empty: every node
    std::string pattern, matcher;                         // matcher "glob" or "pcre"
    std::string ticket;
    std::string reply_exchange, reply_routing_key;        // empty: a cast, nobody waits for a reply
    std::uint64_t clock = 0;
    bool wants_reply() const { return !reply_exchange.empty() && !reply_routing_key.empty(); }
};

// Throws wire_error saying what is wrong (not JSON, no body, no method, a field of the wrong type).
control_request decode_control(std::string_view envelope);
// kombu's Node.handle_message: a destination list names the node, else a pattern matches it, else
// everybody.
bool addressed_to(const control_request& r, std::string_view nodename);

// The reply envelope kombu's Mailbox._publish_reply writes: body {nodename: reply}, headers ticket
// and clock, delivery_mode 1.
std::string control_reply(const control_request& r, const std::string& nodename, json::value reply,
                          std::uint64_t clock);
// Sends a reply the way kombu routes a direct exchange on Redis: SMEMBERS
// _kombu.binding.<exchange>, LPUSH to every queue bound with the reply's routing key. Returns how
// many queues it went to (0: the caller is gone).
unsigned send_reply(redis_connection& c, const std::string& keyprefix, const control_request& r,
                    const std::string& envelope);

// An event as Celery's EventDispatcher sends it: `fields` plus hostname, utcoffset, pid, clock,
// timestamp and type; the PUBLISH command that delivers it.
std::vector<std::string> event_command(const std::string& keyprefix, int db, std::string_view type,
                                       json::object fields, const std::string& nodename, std::uint64_t clock);

// A revoke's task ids (`task_id`: one id or a list) and whether it terminates running tasks
// (revoke(terminate=True)); throws wire_error for arguments of the wrong types.
struct revoke_request {
    std::vector<std::string> ids;
    bool terminate = false;
};
revoke_request revoke_arguments(const json::object& arguments);
// The revoke in a broadcast envelope; nothing for any other message, or one that cannot be read.
std::optional<revoke_request> read_revoke(std::string_view envelope);

// Celery's app.clock: a Lamport clock, forwarded by every message sent, adjusted by those received.
class lamport_clock {
public:
    std::uint64_t value() const { return v_.load(); }
    std::uint64_t forward() { return ++v_; }
    std::uint64_t adjust(std::uint64_t other) {
        auto cur = v_.load();
        while (!v_.compare_exchange_weak(cur, std::max(cur, other) + 1)) {
        }
        return std::max(cur, other) + 1;
    }

private:
    std::atomic<std::uint64_t> v_{0};
};

// Reads the pidbox channel until `threads` stop, handing each message's text to `on_message`;
// throws when Redis fails (a kit::fetch_loop reconnects after its backoff). What on_message throws
// is its own business: it must not throw.
void listen_once(const redis_url& broker, std::chrono::milliseconds timeout, const std::string& channel,
                 const kit::worker_threads& threads, const std::function<void(const std::string&)>& on_message);

// The parts of Celery's replies that describe the worker rather than its tasks.
json::object rusage_info();                  // getrusage(RUSAGE_SELF) with Python's field names
json::array load_average();                  // os.getloadavg(), rounded up to 2 decimals as Celery does
json::object queue_info(const std::string& queue);  // kombu's Queue.as_dict for `active_queues`
json::object broker_info(const redis_url& broker, std::chrono::milliseconds timeout, const std::string& keyprefix);

}  // namespace weft::celery_wire
