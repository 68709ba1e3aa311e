// Celery's wire format, protocol v2 over Redis: the envelope a producer LPUSHes, the body
// [args, kwargs, embed] inside it, canvas signatures, and the result meta the result backend stores.
// Fixtures recorded from Python Celery 5.7 are in tests/celery/fixtures/; docs/celery.md has the
// field tables. Reading is lenient about what weft does not need (unknown headers, options and meta
// fields are kept or ignored, never rejected) and strict about what it does (task, id, body).
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <weft/json.hpp>

namespace weft::celery_wire {

// A message or meta that cannot be read. `id` and `task` are set when they could be read anyway, so
// a worker can still store FAILURE for the task.
class wire_error : public std::runtime_error {
public:
    wire_error(std::string reason, std::string id = {}, std::string task = {})
        : std::runtime_error("weft: malformed Celery message: " + reason), reason_(std::move(reason)),
          id_(std::move(id)), task_(std::move(task)) {}
    const std::string& reason() const noexcept { return reason_; }
    const std::string& id() const noexcept { return id_; }
    const std::string& task() const noexcept { return task_; }

private:
    std::string reason_, id_, task_;
};

// A canvas signature: {"task", "args", "kwargs", "options", "subtask_type", "immutable"}.
struct signature {
    std::string task;
    json::array args;
    json::object kwargs;
    json::object options;  // open map: task_id, queue, group_id, ...; unknown keys pass through
    std::optional<std::string> subtask_type;
    bool immutable = false;

    std::string task_id() const;
    std::string queue() const;
    json::value to_value() const;
    static signature from_value(const json::value& v);  // throws wire_error
};

// One task message: the headers, body and properties weft reads and writes.
struct message {
    // headers
    std::string task;
    std::string id;
    std::string root_id;
    std::optional<std::string> parent_id;
    std::optional<std::string> group;
    std::optional<std::int64_t> group_index;
    std::int64_t retries = 0;  // never negative once decoded
    std::optional<std::string> eta;      // ISO 8601 with offset
    std::optional<std::string> expires;  // ISO 8601 with offset
    std::optional<double> hard_time_limit;  // headers.timelimit is [hard, soft]; seconds, > 0 once decoded
    std::optional<double> soft_time_limit;
    bool ignore_result = false;
    std::string origin;
    // W3C trace context, top-level headers as opentelemetry-instrumentation-celery injects them
    // (Celery copies them onto task.request, where its getter reads them).
    std::optional<std::string> traceparent;
    std::optional<std::string> tracestate;
    // The run's metadata, headers.weft_metadata: an object of strings, or null for none (a Python
    // caller sets it with apply_async(headers={"weft_metadata": {...}})). Decoding refuses anything else.
    json::value metadata;
    // body
    json::array args;
    json::object kwargs;
    std::vector<signature> chain;  // remaining steps, next step LAST
    std::optional<signature> chord;
    std::vector<signature> callbacks;
    std::vector<signature> errbacks;
    // properties
    std::string queue;  // delivery_info.routing_key
    std::string exchange;
    int priority = 0;
    std::string delivery_tag;
    std::string reply_to;
    bool redelivered = false;
};

// The attempt after `retries` retries: retries + 1, within the int a retry policy counts in (a
// header or meta may hold any Python int).
constexpr int attempt_after(std::int64_t retries) noexcept {
    constexpr int most = std::numeric_limits<int>::max();
    return retries < 0 ? 1 : retries >= most ? most : static_cast<int>(retries) + 1;
}

// The envelope JSON text (a Redis list element).
std::string encode_envelope(const message& m);
// Throws wire_error naming what is wrong, leaving in `m` what could be read (the id, task and
// delivery keys, so a worker can still store FAILURE and ack).
void decode_envelope(std::string_view text, message& m);
inline message decode_envelope(std::string_view text) {
    message m;
    decode_envelope(text, m);
    return m;
}

// A kombu message around `body` (JSON text, base64-encoded as kombu's Redis transport does).
std::string envelope_text(std::string_view body, json::object headers, json::object properties);

// [args, kwargs, embed] as JSON text, and back.
std::string encode_body(const message& m);
void decode_body(std::string_view json_text, message& m);

// Result backend: celery-task-meta-<id>.
enum class task_state { pending, received, started, retry, success, failure, revoked };
std::string_view to_string(task_state s) noexcept;
task_state state_from_string(std::string_view s);  // unknown names read as pending
constexpr bool is_ready(task_state s) noexcept {
    return s == task_state::success || s == task_state::failure || s == task_state::revoked;
}

// An exception as Celery stores it: {"exc_type", "exc_message": [args...], "exc_module"}.
struct exception_info {
    std::string type;
    std::string module;
    json::array message;  // the exception's args
    json::value to_value() const;
    static std::optional<exception_info> from_value(const json::value& v);
    std::string text() const;  // "ValueError: bad thing"
};
// Celery's TaskRevokedError, `reason` "revoked", "expired" or "terminated".
inline json::value task_revoked(std::string reason) {
    return exception_info{"TaskRevokedError", "celery.exceptions", json::array{json::value(reason)}}.to_value();
}

// Python's repr() of a JSON value (None, True, 'text', [1, 2], {'k': 1}), as Celery's events and
// argsrepr show values; and of an exception: ValueError('bad thing').
std::string py_repr(const json::value& v);
std::string py_repr_exception(const exception_info& e);
std::string py_repr_args(const json::array& args);  // a tuple: (2, 3), ('a',)

struct task_meta {
    std::string task_id;
    task_state state = task_state::pending;
    json::value result;  // the return value, or an exception object for FAILURE/RETRY/REVOKED
    std::optional<std::string> traceback;
    std::optional<std::string> date_done;
    std::optional<std::string> parent_id;
    std::optional<std::string> group_id;
    json::array children;
    // Retries before this state (Celery writes it with result_extended; the C++ worker always).
    std::optional<std::int64_t> retries;
    std::optional<exception_info> exception() const { return exception_info::from_value(result); }
};

std::string encode_meta(const task_meta& m);
task_meta decode_meta(std::string_view text);  // throws wire_error

inline std::string meta_key(std::string_view task_id) { return "celery-task-meta-" + std::string(task_id); }
inline std::string taskset_key(std::string_view group_id) { return "celery-taskset-meta-" + std::string(group_id); }

// kombu's Redis priority lists: 0-2 -> queue, 3-5 -> queue\x06\x163, 6-8 -> \x06\x166, 9 -> \x06\x169.
std::string priority_list(std::string_view queue, int priority);
// The queue a priority list belongs to (strips the separator and step).
std::string queue_of_list(std::string_view list);

// Remote control (kombu's pidbox fanout on Redis: PUBLISH /<db>.celery.pidbox <envelope>).
std::string pidbox_channel(int db);
// The envelope of `app.control.revoke(task_ids)` (terminate=false).
std::string revoke_broadcast(const json::array& task_ids);
// The envelope of `app.control.ping()`: replies go to the queues bound to reply.celery.pidbox with
// routing key `oid` (kombu's Mailbox.oid), tagged with `ticket`.
std::string ping_broadcast(const std::string& ticket, const std::string& oid);
// The node names in a remote-control reply envelope ({nodename: reply}); empty for one that cannot be read.
std::vector<std::string> reply_nodes(std::string_view envelope);

// Helpers shared by client and worker.
const json::value* member(const json::object& o, std::string_view key);  // null when absent
// `text` as a JSON object; throws wire_error saying that `what` is not JSON, or not an object.
json::object parse_object(std::string_view text, const std::string& what);
double unix_now();  // seconds since the epoch, as Python's time.time()
std::string new_id();  // a random uuid4, as Celery's ids are
std::string host_name();
std::string iso_utc(std::chrono::system_clock::time_point t);  // 2026-11-26T09:12:17.756659+00:00
// Celery's ISO 8601 (datetime.isoformat(): a fraction and an offset when there are any; naive times
// are UTC); nothing for anything else or an impossible date. Times beyond system_clock's range
// (1677 to 2262) saturate at its min and max, which the worker reads as "always" and "never".
std::optional<std::chrono::system_clock::time_point> parse_iso(std::string_view s);
// from + d, saturating at time_point::max(), which kit::task_context's deadline and the worker's
// ETA timers read as never: a huge time limit or a far ETA must not overflow into the past.
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::time_point from,
                                                            std::chrono::duration<double> d) {
    using clock = std::chrono::steady_clock;
    // Half the clock's range (146 years) is never; below it, the double converts without overflow.
    constexpr std::chrono::duration<double> never = clock::duration::max() / 2;
    if (d <= d.zero()) return from;
    if (!(d < never)) return clock::time_point::max();
    auto step = std::chrono::duration_cast<clock::duration>(d);
    return from.time_since_epoch() > clock::duration::max() - step ? clock::time_point::max() : from + step;
}
std::string base64_encode(std::string_view bytes);
std::string base64_decode(std::string_view text);  // throws wire_error

}  // namespace weft::celery_wire
