// The C++ Celery worker proper: its threads (a fetcher and the pidbox listener on kit::fetch_loop,
// the consumers and the event heartbeat on kit::worker_threads, a flusher), steps run through
// kit::run_task, results stored in Celery's format with PUBLISH, and everything it cannot run
// dead-lettered. Fetching and acks are kombu.cpp's, what runs next is canvas.cpp's, chords are
// joined in chord.cpp, revokes are kept in revoke.cpp, remote control and events are on the wire
// as pidbox.cpp writes them; the control commands themselves are answered here (`control`).
#include <weft/celery.hpp>
#include <weft/kit/backoff.hpp>
#include <weft/kit/metadata.hpp>
#include <weft/kit/worker.hpp>
#include "canvas.hpp"
#include "chord.hpp"
#include "kombu.hpp"
#include "pidbox.hpp"
#include "revoke.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <sys/utsname.h>
#include <unistd.h>

namespace weft {

using namespace celery_wire;

namespace {

class time_limit_exceeded : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A step's exception as Celery stores it. Python re-raises builtins by name, so map the common
// standard exceptions onto them; arguments that do not fit (a bad payload) are a TypeError.
exception_info to_exception(const kit::step_outcome& out) {
    std::string type = out.what == kit::step_outcome::kind::bad_payload ? "TypeError" : "RuntimeError";
    if (out.exception) {
        try {
            std::rethrow_exception(out.exception);
        } catch (const time_limit_exceeded& e) {
            return {"TimeLimitExceeded", "billiard.exceptions", json::array{e.what()}};
        } catch (const json::decode_error&) {
            type = "TypeError";
        } catch (const std::invalid_argument&) {
            type = "ValueError";
        } catch (const std::domain_error&) {
            type = "ValueError";
        } catch (const std::out_of_range&) {
            type = "IndexError";
        } catch (...) {
        }
    }
    return {type, "builtins", json::array{out.error}};
}

// Celery's node name from worker_options::hostname (%h, %n, %d as in `celery worker -n`).
std::string node_name(std::string pattern) {
    if (pattern.empty()) pattern = "weft@%h";
    if (pattern.find('@') == std::string::npos) pattern = "weft@" + pattern;
    const std::string host = host_name();
    const auto dot = host.find('.');
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] != '%' || i + 1 == pattern.size()) {
            out += pattern[i];
            continue;
        }
        switch (pattern[++i]) {
        case 'h': out += host; break;
        case 'n': out += host.substr(0, dot); break;
        case 'd': out += dot == std::string::npos ? std::string() : host.substr(dot + 1); break;
        case '%': out += '%'; break;
        default: out += '%', out += pattern[i];
        }
    }
    return out;
}

json::value ok(std::string_view text) { return json::object{{"ok", text}}; }
json::value nok(std::string_view text) { return json::object{{"error", text}}; }

bool bool_argument(const json::object& a, std::string_view key) {
    auto it = a.find(key);
    if (it == a.end() || it->value().is_null()) return false;
    if (it->value().is_bool()) return it->value().get_bool();
    if (it->value().is_string()) {  // the command line sends "true"/"1" (Celery's strtobool)
        std::string v(it->value().get_string());
        return v == "1" || v == "true" || v == "True" || v == "yes" || v == "on";
    }
    throw std::invalid_argument(std::string(key) + " is not a boolean");
}

// One id or a list of ids (a control command's variadic argument); none when absent.
std::vector<std::string> ids_argument(const json::object& a, std::string_view key) {
    std::vector<std::string> out;
    auto it = a.find(key);
    if (it == a.end() || it->value().is_null()) return out;
    if (it->value().is_string()) out.emplace_back(it->value().get_string());
    else if (auto arr = it->value().if_array())
        for (auto& x : *arr) {
            if (!x.is_string()) throw std::invalid_argument(std::string(key) + " holds something that is not a string");
            out.emplace_back(x.get_string());
        }
    else throw std::invalid_argument(std::string(key) + " is not an id or a list of ids");
    return out;
}

// What a hostile message looks like in a log line: its start, non-printable bytes escaped.
std::string excerpt(std::string_view raw) {
    std::string out;
    for (unsigned char c : raw.substr(0, 160)) {
        if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
        else {
            char buf[5];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return raw.size() > 160 ? out + "... (" + std::to_string(raw.size()) + " bytes)" : out;
}

}  // namespace

struct celery::worker::impl {
    explicit impl(worker_options o)
        : opts(std::move(o)), broker(redis_url::parse(opts.broker_url)),
          results(redis_url::parse(opts.result_url.empty() ? opts.broker_url : opts.result_url)),
          same_server(broker.same_as(results)),
          queues(opts.global_keyprefix, opts.queues, same_server ? opts.result_keyprefix + meta_key("") : ""),
          prefetch(opts.prefetch_multiplier * opts.concurrency) {}

    worker_options opts;
    redis_url broker, results;
    bool same_server;
    kombu queues;
    std::map<std::string, erased_step, std::less<>> steps;
    std::string hostname = node_name(opts.hostname);
    const kit::origin who{.backend = "celery", .worker = hostname};
    std::string meta_of(std::string_view id) const { return opts.result_keyprefix + meta_key(id); }
    std::string taskset_of(std::string_view gid) const { return opts.result_keyprefix + taskset_key(gid); }
    kit::worker_threads threads;  // the revoke listener, the fetcher, the consumers
    std::mutex threads_m;
    bool started = false, stopped = false;
    std::atomic<std::uint64_t> succeeded{0}, failed{0}, retried{0}, dead_lettered{0}, restored{0};
    revocations revokes;

    // What Celery's remote control and events report (celery/worker/state.py's counters).
    lamport_clock clock;
    std::atomic<bool> task_events{opts.task_events};
    std::atomic<std::uint64_t> processed{0};  // tasks started (Celery's all_total_count)
    std::map<std::string, std::atomic<std::uint64_t>, std::less<>> totals;  // per step; keys fixed by serve()
    const std::chrono::steady_clock::time_point born = std::chrono::steady_clock::now();

    // Prefetched messages (popped and recorded in unacked by a fetch) wait in `ready` for a step
    // thread; ETA messages wait on a timer heap, still unacked, without holding a thread.
    struct scheduled {
        std::chrono::steady_clock::time_point due;
        std::uint64_t seq;
        delivery d;
        bool operator>(const scheduled& o) const { return due != o.due ? due > o.due : seq > o.seq; }
    };
    static constexpr unsigned max_batch = 512;  // messages per fetch at most
    std::mutex work_m;
    std::condition_variable work_cv;  // consumers: a delivery, or an earlier ETA
    std::condition_variable room_cv;  // the fetcher: room under the prefetch limit
    std::deque<delivery> ready;
    std::vector<scheduled> timers;  // a min-heap on `due`
    std::uint64_t timer_seq = 0;
    unsigned held = 0;      // fetched and not finished; ETA messages do not count (as in Celery)
    std::vector<std::string> lost_fetches;  // scores of fetches whose reply was lost, to reclaim
    unsigned prefetch;      // prefetch_multiplier × concurrency; 0: no limit

    // Result stores and acks that need no answer; the flusher sends them in pipelines.
    std::mutex defer_m;
    std::condition_variable defer_cv;
    std::vector<std::vector<std::string>> deferred_results;  // SETEX + PUBLISH of final results
    std::vector<std::string> deferred_acks;                  // delivery tags
    std::vector<std::vector<std::string>> deferred_events;   // PUBLISH on celeryev, after the batch's results
    static constexpr std::size_t max_deferred_events = 10000;  // while Redis is away; the oldest go first
    bool flusher_stop = false;
    std::thread flusher;
    static constexpr std::chrono::seconds stop_flush_limit{30};  // how long stop() waits for Redis
    static constexpr int max_handle_attempts = 25;  // about 2 minutes of backoff for one message
    static constexpr retry_policy reconnect{.initial = std::chrono::milliseconds(100), .multiplier = 2.0,
                                            .maximum = std::chrono::seconds(5)};

    void log(std::string_view level, const std::string& text) {
        auto safe = redact(text);
        if (opts.log) opts.log(level, safe);
        else kit::log_message(who, level, safe);
    }
    const log_fn logger = [this](std::string_view level, const std::string& text) { log(level, text); };
    const kit::log_fn kit_log = [this](std::string_view level, std::string_view text) { log(level, std::string(text)); };

    // A consumer thread's connections for what must happen before it goes on (continuations, chord
    // joins, failures); one connection when the broker and the result backend are the same Redis.
    struct connections {
        std::unique_ptr<redis_connection> broker_conn;
        std::unique_ptr<redis_connection> results_conn;  // null: the broker's
        std::string fetch_sha;                           // the fetch script loaded on broker_conn
        redis_connection& broker() { return *broker_conn; }
        redis_connection& results() { return results_conn ? *results_conn : *broker_conn; }
    };

    // Stores a result now; with `ack_tag` (a task's last word: nothing follows it) the store and the
    // ack are handed to the flusher instead, which pipelines them with other threads' (result
    // first, then ack, so a crash in between leaves a stored result that redelivery respects).
    // Returns whether it took the ack along.
    bool store(connections& c, const task_meta& m, const std::string* ack_tag = nullptr) {
        auto text = encode_meta(m);
        auto key = meta_of(m.task_id);
        std::vector<std::vector<std::string>> cmds{{"SETEX", key, std::to_string(opts.result_expires.count()), text},
                                                   {"PUBLISH", key, std::move(text)}};
        if (!ack_tag) {
            c.results().pipeline(cmds);
            return false;
        }
        defer(std::move(cmds), *ack_tag);
        return true;
    }

    task_meta make_meta(const message& msg, task_state s, json::value result, std::optional<std::string> tb = {}) {
        task_meta m{.task_id = msg.id, .state = s, .result = std::move(result), .traceback = std::move(tb),
                    .parent_id = msg.parent_id, .group_id = msg.group};
        if (s != task_state::retry) m.date_done = iso_utc(std::chrono::system_clock::now());
        if (!msg.task.empty()) m.retries = msg.retries;  // not for a chain step that never ran
        return m;
    }

    std::optional<task_meta> read_meta(connections& c, const std::string& id) {
        auto r = c.results().command({"GET", meta_of(id)});
        if (r.type != redis_reply::kind::string) return std::nullopt;
        try {
            return decode_meta(r.str);
        } catch (const wire_error&) {
            return std::nullopt;
        }
    }

    void publish(connections& c, message& m) {
        if (m.delivery_tag.empty()) m.delivery_tag = new_id();
        m.origin = hostname;
        // Sent from inside an attempt (the next canvas element, a retry): the attempt's span is the
        // parent of what follows, as Python's instrumentation does with its apply_async span.
        if (const telemetry::span_context* t = telemetry::current_context()) {
            m.traceparent = telemetry::format_traceparent(*t);
            if (!t->tracestate.empty()) m.tracestate = t->tracestate;
            else m.tracestate.reset();
        }
        c.broker().command({"LPUSH", queues.list_of(m.queue, m.priority), encode_envelope(m)});
    }

    // Sends the next canvas element (a task, a group or a chord) fed with `retval`.
    void send_on(connections& c, const message& from, const signature& sig, const json::value& retval,
                 std::vector<signature> rest) {
        if (sig.subtask_type == "group" && !rest.empty())
            log("warning", "a chain continues after a group; weft does not run the rest after it");
        auto out = apply(feed_of(from, retval), sig, std::move(rest));
        for (auto& [gid, size] : out.chord_sizes)
            c.results().command({"SET", taskset_of(gid) + ".s", std::to_string(size), "EX",
                                 std::to_string(opts.result_expires.count())});
        for (auto& n : out.messages) publish(c, n);
    }
    static feed feed_of(const message& m, const json::value& retval) {
        feed f{m.root_id, m.id, m.queue, {}, m.metadata};
        f.args.push_back(retval);
        return f;
    }

    void dead_letter(connections& c, std::string_view list, const std::string& raw, const std::string& reason) {
        dead_letter(c.broker(), list, raw, reason);
    }
    void dead_letter(redis_connection& broker_conn, std::string_view list, const std::string& raw, const std::string& reason) {
        json::object o;
        o["reason"] = reason;
        o["queue"] = queues.queue_of(list);
        o["at"] = iso_utc(std::chrono::system_clock::now());
        o["worker"] = hostname;
        o["message"] = raw;
        auto text = boost::json::serialize(o);
        try {
            (void)json::parse(text);
        } catch (const std::exception&) {
            // The message is not valid UTF-8: keep its bytes base64-encoded, so the entry stays JSON.
            o["message"] = base64_encode(raw);
            o["message_encoding"] = "base64";
            text = boost::json::serialize(o);
        }
        broker_conn.command({"LPUSH", opts.global_keyprefix + opts.dead_letter, text});
        ++dead_lettered;
    }

    void ack(connections&, const std::string& tag) {
        if (!tag.empty()) defer({}, tag);
    }

    // Hands result stores and an ack to the flusher thread.
    void defer(std::vector<std::vector<std::string>> result_cmds, const std::string& ack_tag) {
        {
            std::lock_guard lock(defer_m);
            for (auto& cmd : result_cmds) deferred_results.push_back(std::move(cmd));
            if (!ack_tag.empty()) deferred_acks.push_back(ack_tag);
        }
        defer_cv.notify_one();
    }

    // A Celery event, sent by the flusher with the next batch. Task events only while task events
    // are on; worker events only with a heartbeat interval (as Celery's groups and Heart decide).
    void send_event(std::string_view type, json::object fields) {
        const bool task = type.starts_with("task-");
        if (task ? !task_events.load(std::memory_order_relaxed) : opts.heartbeat_interval.count() <= 0) return;
        auto cmd = event_command(opts.global_keyprefix, broker.db, type, std::move(fields), hostname, clock.forward());
        {
            std::lock_guard lock(defer_m);
            if (deferred_events.size() >= max_deferred_events) deferred_events.erase(deferred_events.begin());
            deferred_events.push_back(std::move(cmd));
        }
        defer_cv.notify_one();
    }
    void send_worker_event(std::string_view type) {
        static const std::string sys = [] {
            utsname u{};
            return ::uname(&u) == 0 ? std::string(u.sysname) : std::string("Linux");
        }();
        send_event(type, {{"freq", std::chrono::duration<double>(opts.heartbeat_interval).count()},
                          {"active", revokes.running_count()},
                          {"processed", processed.load()},
                          {"loadavg", load_average()},
                          {"sw_ident", "weft-celery"},
                          {"sw_ver", WEFT_VERSION},
                          {"sw_sys", sys}});
    }
    static json::object revoked_event(const message& m, bool terminated, bool expired) {
        return {{"uuid", m.id}, {"terminated", terminated}, {"signum", terminated ? json::value(15) : json::value(nullptr)},
                {"expired", expired}};
    }

    // The flusher: sends what step threads deferred, in pipelines of whatever has gathered
    // meanwhile, so a result is stored as soon as its step returns, whatever the thread does next.
    // A batch's results go first, then all its acks in one ZREM and one HDEL, so every task's
    // result is stored before its ack.
    void flush_deferred() {
        std::unique_ptr<redis_connection> bc, rc;
        for (;;) {
            std::vector<std::vector<std::string>> stores;
            std::vector<std::string> tags;
            std::vector<std::vector<std::string>> events;
            {
                std::unique_lock lock(defer_m);
                auto idle = [&] { return deferred_results.empty() && deferred_acks.empty() && deferred_events.empty(); };
                defer_cv.wait(lock, [&] { return flusher_stop || !idle(); });
                if (idle()) return;  // stopping, and nothing left
                stores.swap(deferred_results);
                tags.swap(deferred_acks);
                events.swap(deferred_events);
            }
            const bool only_events = stores.empty() && tags.empty();
            const std::size_t event_count = events.size();
            std::vector<std::vector<std::string>> acks;
            if (!tags.empty()) acks = queues.ack_commands(tags);
            // Events go to the broker after the batch's results: a monitor sees task-succeeded once
            // the result can be read, as Python sends it after storing.
            acks.insert(acks.end(), std::make_move_iterator(events.begin()), std::make_move_iterator(events.end()));
            if (same_server) {
                stores.insert(stores.end(), std::make_move_iterator(acks.begin()), std::make_move_iterator(acks.end()));
                acks.clear();
            }
            // A batch is sent again until Redis takes it (its commands are idempotent), and the next
            // batch waits for it: a result is never acked before it is stored, and a Redis restart
            // strands nothing. Only at stop is there a limit, after which the visibility timeout
            // brings back what was not acked.
            kit::backoff b(reconnect);
            std::optional<std::chrono::steady_clock::time_point> give_up;
            for (;;) {
                try {
                    if (!bc) bc = std::make_unique<redis_connection>(broker, opts.timeout);
                    if (!same_server && !rc) rc = std::make_unique<redis_connection>(results, opts.timeout);
                    auto replies = (same_server ? bc : rc)->pipeline(stores);
                    stores.clear();  // stored: a failure of the acks does not send them again
                    auto more = acks.empty() ? std::vector<redis_reply>{} : bc->pipeline(acks);
                    replies.insert(replies.end(), more.begin(), more.end());
                    for (auto& r : replies)
                        if (r.type == redis_reply::kind::error) log("error", "storing a result or an ack: " + r.str);
                    if (b.failures() > 0)
                        log("info", "flusher: Redis took the results and acks again after " + std::to_string(b.failures()) +
                                        " failed attempts");
                    break;
                } catch (const std::exception& e) {
                    bc.reset();
                    rc.reset();
                    const auto delay = b.failed();
                    bool stopping;
                    {
                        std::lock_guard lock(defer_m);
                        stopping = flusher_stop;
                    }
                    if (stopping && only_events) {  // worker-offline and the like: not worth a wait at stop
                        log("warning", "flusher: " + std::string(e.what()) + "; stopping without sending " +
                                           std::to_string(event_count) + " event(s)");
                        break;
                    }
                    if (stopping && !give_up) give_up = std::chrono::steady_clock::now() + stop_flush_limit;
                    if (give_up && std::chrono::steady_clock::now() + delay > *give_up) {
                        log("error", "flusher: " + std::string(e.what()) + "; stopping with " + std::to_string(stores.size()) +
                                         " result command(s) and " + std::to_string(tags.size()) +
                                         " ack(s) unsent: the visibility timeout restores those tasks");
                        break;
                    }
                    if (b.worth_logging())
                        log("warning", "flusher: " + std::string(e.what()) + "; " + std::to_string(tags.size()) +
                                           " ack(s) wait, retrying in " + std::to_string(delay.count()) + " ms");
                    std::this_thread::sleep_for(delay);
                }
            }
        }
    }

    // The fetcher: keeps up to `prefetch` messages in hand (Celery's prefetch multiplier ×
    // concurrency), fetched in batches; restores visible messages every restore_interval. One call
    // is one connection's life: a lost connection or a Redis error throws, and kit::fetch_loop
    // reconnects after its backoff.
    bool fetch_once() {
        redis_connection c(broker, opts.timeout);
        c.set_timeout(opts.timeout + std::chrono::seconds(1));  // above BRPOP's 1 s
        const std::string sha = queues.load_script(c);
        while (!threads.stopping()) {
            reclaim_lost(c);
            if (std::chrono::steady_clock::now() - last_sweep >= opts.restore_interval) {
                last_sweep = std::chrono::steady_clock::now();
                restored += queues.restore_visible(c, opts.visibility_timeout, logger,
                                                   [&](const std::string& entry, const std::string& reason) {
                                                       dead_letter(c, queues.list_of(opts.queues.front(), 0), entry, reason);
                                                   });
            }
            unsigned room;
            {
                std::unique_lock lock(work_m);
                // Refill as soon as there is room: a fetch's round trip overlaps the steps
                // in hand, and the rate stays near prefetch / round trip even for tiny steps.
                auto low = [&] { return prefetch == 0 || held < prefetch; };
                room_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return threads.stopping() || low(); });
                if (threads.stopping()) break;
                if (!low()) continue;
                room = this->room();
                held += room;  // reserved while the lock is released
            }
            refill(c, sha, room, true);
        }
        return true;
    }
    std::chrono::steady_clock::time_point last_sweep = std::chrono::steady_clock::now() - opts.restore_interval;

    // Puts back what the fetches whose reply was lost took (a step thread's too, whenever it was
    // lost). A score leaves the list only once reclaimed: should Redis fail again meanwhile, the
    // next connection tries again, and nothing waits for the visibility timeout.
    void reclaim_lost(redis_connection& c) {
        for (;;) {
            std::string score;
            {
                std::lock_guard lock(work_m);
                if (lost_fetches.empty()) return;
                score = lost_fetches.back();
            }
            restored += queues.reclaim(c, score, logger);
            std::lock_guard lock(work_m);
            lost_fetches.erase(std::find(lost_fetches.begin(), lost_fetches.end(), score));
        }
    }

    // Fetches up to `n` messages (already counted in `held`) for the step threads; returns how many.
    std::size_t refill(redis_connection& c, const std::string& sha, unsigned n, bool block) {
        std::vector<delivery> got;
        std::string score;
        const telemetry::stopwatch clock;
        try {
            got = queues.fetch(c, sha, n, block, logger, score);
            kit::fetched(who, "fetching", clock.ms());
        } catch (...) {
            std::lock_guard lock(work_m);
            held -= n;
            if (!score.empty()) lost_fetches.push_back(score);
            throw;
        }
        if (task_events.load(std::memory_order_relaxed))
            for (auto& d : got)
                if (!d.error && steps.count(d.m.task)) send_event("task-received", received_event(d.m));
        {
            std::lock_guard lock(work_m);
            held -= n - static_cast<unsigned>(got.size());
            for (auto& d : got) ready.push_back(std::move(d));
        }
        if (got.size() == 1) work_cv.notify_one();
        else if (got.size() > 1) work_cv.notify_all();
        return got.size();
    }

    static json::object received_event(const message& m) {
        auto opt = [](const std::optional<std::string>& v) { return v ? json::value(*v) : json::value(nullptr); };
        return {{"uuid", m.id},       {"name", m.task},        {"args", py_repr_args(m.args)},
                {"kwargs", py_repr(json::value(m.kwargs))}, {"root_id", m.root_id}, {"parent_id", opt(m.parent_id)},
                {"retries", m.retries}, {"eta", opt(m.eta)},   {"expires", opt(m.expires)}};
    }

    void handle(connections& c, delivery& d) {
        if (d.error) {
            const wire_error& e = *d.error;
            log("error", "dropping a malformed message from " + (d.m.queue.empty() ? queues.queue_of(d.list) : d.m.queue) +
                             ": " + e.reason() + (e.id().empty() ? "" : " (task id " + e.id() + ")"));
            // The dead letter first: whoever sees the failure can find its dead letter already. A
            // message that is not even JSON may still name its task: its failure is stored, or a
            // client's get() would wait for ever.
            dead_letter(c, d.list, d.raw, e.reason());
            const std::string id = e.id().empty() ? kombu::readable_id(d.raw) : e.id();
            if (!id.empty())
                store(c, make_meta(message{.id = id}, task_state::failure,
                                   exception_info{"ValueError", "builtins", json::array{std::string(e.what())}}.to_value()));
            ack(c, d.tag);
            return;
        }
        message& m = d.m;
        if (m.queue.empty()) m.queue = queues.queue_of(d.list);
        std::optional<task_meta> existing;
        if (d.meta) {
            try {
                existing = decode_meta(*d.meta);
            } catch (const wire_error&) {
            }
        } else if (!d.meta_read && !m.id.empty()) {
            existing = read_meta(c, m.id);
        }
        if (existing && existing->task_id != m.id) existing.reset();
        std::string tag = d.tag;  // d moves to the timers when it waits for its ETA
        if (!process(c, d, std::move(existing))) ack(c, tag);
    }

    // kit::run_task's hooks for one due message, with Celery's time limits the weft way: a thread
    // cannot be killed, so the step sees this_step::stop_requested() turn true at the soft (else
    // hard) limit, and a result that comes after the hard limit is discarded and stored as
    // TimeLimitExceeded. A revoke(terminate=True) raises the context's `cancelled`.
    struct invocation {
        impl& w;
        const erased_step& step;
        kit::step_outcome out;
        std::optional<double> hard;
        std::chrono::steady_clock::time_point started;
        double runtime = 0;                // seconds, for task-succeeded
        std::shared_ptr<void> registered;  // in the revocations' running set while it runs

        const erased_step* find(const delivery&) const { return &step; }
        void begin(const delivery& d, const erased_step& s, kit::task_context& ctx) {
            const message& m = d.m;
            started = std::chrono::steady_clock::now();
            hard = m.hard_time_limit;
            if (!hard && s.policy().timeout.count() > 0) hard = std::chrono::duration<double>(s.policy().timeout).count();
            if (auto soft = m.soft_time_limit ? m.soft_time_limit : hard)
                ctx.deadline = deadline_after(started, std::chrono::duration<double>(*soft));
            ctx.worker = &w.threads;
            ctx.attempt = attempt_after(m.retries);
            ctx.run_id = m.root_id.empty() ? m.id : m.root_id;
            // A step several workflows share belongs to the run's: a weft client's root id names it.
            if (auto r = run_id::parse(ctx.run_id); r && r->backend == celery::name) ctx.workflow = r->workflow;
            ctx.who = &w.who;
            if (m.traceparent) ctx.parent = telemetry::extract(*m.traceparent, m.tracestate.value_or(""));
            if (m.metadata.is_object()) kit::read_metadata(m.metadata.get_object(), ctx.run_meta);
            registered = w.revokes.running(m, ctx.cancelled, unix_now());
            ++w.processed;
            if (auto t = w.totals.find(m.task); t != w.totals.end()) ++t->second;
            w.send_event("task-started", {{"uuid", m.id}});
        }
        static json::array decode(const delivery& d, const erased_step& s) {
            const json::array& args = d.m.args;
            if (!d.m.kwargs.empty()) return with_kwargs(d.m, s);
            // A chord body receives [[r0, r1, ...]]; a weft join takes one parameter per parent.
            if (s.arity() >= 2 && args.size() == 1 && args[0].is_array() && args[0].get_array().size() == s.arity())
                return json::array(args[0].get_array());
            return args;
        }
        // Python binds keyword arguments by parameter name; a C++ step's parameters have none, but
        // the members of a described struct, its only parameter, do. Anything else fails the task
        // (TypeError, as Python's binding does) rather than losing an argument.
        static json::array with_kwargs(const message& m, const erased_step& s) {
            auto list = [](auto&& names) {
                std::string out;
                for (auto&& n : names) out += (out.empty() ? "" : ", ") + std::string(n);
                return out;
            };
            std::vector<std::string_view> keys;
            for (auto& kv : m.kwargs) keys.push_back(kv.key());
            if (s.fields.empty() || !m.args.empty())
                throw std::invalid_argument("weft: task '" + m.task + "' got keyword arguments (" + list(keys) +
                                            "); a C++ step takes positional arguments, or keyword arguments "
                                            "only as the members of a described struct that is its one parameter");
            for (auto k : keys)
                if (std::find(s.fields.begin(), s.fields.end(), k) == s.fields.end())
                    throw std::invalid_argument("weft: task '" + m.task + "' got an unexpected keyword argument '" +
                                                std::string(k) + "' (its parameter's members: " + list(s.fields) + ")");
            return json::array{json::value(m.kwargs)};
        }
        void report(const delivery&, const erased_step*, kit::step_outcome& o, kit::task_context&) {
            registered.reset();
            runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            out = std::move(o);
            if (out.ok() && hard && std::chrono::steady_clock::now() - started > std::chrono::duration<double>(*hard)) {
                out.what = kit::step_outcome::kind::failed;
                out.error = "TimeLimitExceeded(" + boost::json::serialize(json::value(*hard)) + ")";
                out.exception = std::make_exception_ptr(time_limit_exceeded(out.error));
            }
        }
    };

    // Returns true when the message was acked with its result, or waits for its ETA.
    bool process(connections& c, delivery& d, std::optional<task_meta> existing) {
        message& m = d.m;
        auto step = steps.find(m.task);
        if (step == steps.end()) {
            log("error", "Received unregistered task of type '" + m.task + "' (id " + m.id + ")");
            dead_letter(c, d.list, d.raw, "NotRegistered: " + m.task);  // before the failure is seen
            store(c, make_meta(m, task_state::failure,
                               exception_info{"NotRegistered", "celery.exceptions", json::array{m.task}}.to_value()));
            return false;
        }
        auto now = std::chrono::system_clock::now();
        if (expired(c, m, now)) {
            revoke_rest(c, m);
            return false;
        }
        // An ETA message waits on the timer heap, unacked, as Python holds it; no thread waits for it.
        if (m.eta) {
            auto due = *parse_iso(*m.eta);
            if (due > now) {
                {
                    std::lock_guard lock(work_m);
                    auto at = deadline_after(std::chrono::steady_clock::now(), due - now);  // 9999: never
                    timers.push_back({at, ++timer_seq, std::move(d)});
                    std::push_heap(timers.begin(), timers.end(), std::greater<>{});
                }
                work_cv.notify_all();  // an earlier deadline for whoever waits
                return true;
            }
        }
        return run(c, d, std::move(existing));
    }

    // `expires` has passed: REVOKED ("expired") instead of a run, checked when the message comes
    // and again when its ETA falls due, as Celery's Request.revoked() is.
    bool expired(connections& c, const message& m, std::chrono::system_clock::time_point now) {
        if (!m.expires || !(*parse_iso(*m.expires) < now)) return false;
        log("info", "task " + m.task + "[" + m.id + "] expired");
        revoked(c, m, "expired");
        send_event("task-revoked", revoked_event(m, false, true));
        return true;
    }

    // Celery's mark_as_revoked: the meta (unless the result is ignored), and the chord's part, so
    // the body fails with a ChordError instead of waiting for ever. Not the errbacks.
    void revoked(connections& c, const message& m, const std::string& reason) {
        auto exc = task_revoked(reason);
        if (!m.ignore_result) store(c, make_meta(m, task_state::revoked, exc));
        if (m.chord) chord_join(c, m, task_state::revoked, exc);
    }

    // An ETA message that fell due: its meta again (a cancel may have come meanwhile), then run.
    void run_due(connections& c, scheduled& t) {
        auto existing = t.d.m.id.empty() ? std::nullopt : read_meta(c, t.d.m.id);
        if (!run(c, t.d, std::move(existing))) ack(c, t.d.tag);
    }

    // Runs a task that is due: revokes first, then the step, its result and its continuation.
    // Returns true when it acked the message itself (together with the result).
    bool run(connections& c, delivery& d, std::optional<task_meta> existing) {
        message& m = d.m;
        const std::string& tag = d.tag;
        auto step = steps.find(m.task);
        if (expired(c, m, std::chrono::system_clock::now())) {
            revoke_rest(c, m);
            return false;
        }
        if (revokes.revoked(m.id)) {
            log("info", "discarding revoked task " + m.task + "[" + m.id + "]");
            revoked(c, m, "revoked");
            send_event("task-revoked", revoked_event(m, false, false));
            revoke_rest(c, m);
            return false;
        }
        if (existing && existing->state == task_state::revoked) {
            log("info", "task " + m.task + "[" + m.id + "] was revoked; not running it");
            send_event("task-revoked", revoked_event(m, false, false));
            revoke_rest(c, m);
            return false;
        }

        json::value retval;
        // What follows the attempt (its retry, its continuation) is sent in the attempt's span.
        std::optional<telemetry::scoped_context> in_span;
        if (existing && existing->state == task_state::success) {
            // Delivered again after its result was stored (a worker died before acking): the
            // result stands; only the continuation is repeated, under the same task ids.
            retval = existing->result;
            if (m.traceparent)
                if (auto t = telemetry::extract(*m.traceparent, m.tracestate.value_or(""))) in_span.emplace(*t);
        } else {
            kit::task_context ctx;
            invocation call{*this, step->second, {}};
            kit::run_task(call, d, ctx);
            if (ctx.span) in_span.emplace(*ctx.span);
            kit::step_outcome& out = call.out;
            if (!ctx.cancelled && !out.ok()) {
                fail(c, m, step->second, out);
                return false;
            }
            if (ctx.cancelled) {
                // A thread cannot be killed: the step was asked to stop (stop_requested()), and
                // whatever it returned is discarded, as Python's terminated task leaves nothing.
                log("info", "task " + m.task + "[" + m.id + "] terminated by a revoke");
                send_event("task-revoked", revoked_event(m, true, false));
                revoke_rest(c, m);
                if (m.chord) chord_join(c, m, task_state::revoked, task_revoked("terminated"));
                if (m.ignore_result) return false;
                return store(c, make_meta(m, task_state::revoked, task_revoked("terminated")), &tag);
            }
            retval = std::move(out.output);
            bool last = m.chain.empty() && m.callbacks.empty() && !m.chord;
            bool acked = false;
            if (!m.ignore_result) {
                auto meta = make_meta(m, task_state::success, retval);
                if (!m.chain.empty() && !m.chain.back().task_id().empty())
                    meta.children.push_back(json::array{json::array{json::value(m.chain.back().task_id()), nullptr}, nullptr});
                acked = store(c, meta, last ? &tag : nullptr);
            }
            ++succeeded;
            send_event("task-succeeded", {{"uuid", m.id}, {"result", py_repr(retval)}, {"runtime", call.runtime}});
            if (last) return acked;
        }
        try {
            for (auto& cb : m.callbacks) send_on(c, m, cb, retval, {});
            if (!m.chain.empty()) {
                auto rest = m.chain;
                auto next = rest.back();
                rest.pop_back();
                send_on(c, m, next, retval, std::move(rest));
            }
        } catch (const wire_error& e) {
            log("error", "task " + m.task + "[" + m.id + "] succeeded but its continuation cannot be sent: " + e.reason());
            dead_letter(c, d.list, d.raw, "continuation: " + e.reason());
        }
        if (m.chord) chord_join(c, m, task_state::success, retval);
        return false;
    }

    void fail(connections& c, message& m, const erased_step& s, const kit::step_outcome& out) {
        auto exc = to_exception(out);
        std::string tb = "weft C++ step '" + std::string(s.name()) + "' (workflow '" + std::string(s.workflow()) +
                         "') threw " + exc.type + ": " + out.error + "\n";
        int attempt = attempt_after(m.retries);
        if (attempt < s.policy().retry.max_attempts) {
            // Celery's retry: the same task id again, retries + 1, due after the backoff.
            auto delay = s.policy().retry.delay_before(attempt + 1);
            message r = m;
            r.retries = m.retries + 1;
            r.eta = iso_utc(std::chrono::system_clock::now() + delay);
            r.parent_id = m.id;
            r.delivery_tag = new_id();
            r.redelivered = false;
            publish(c, r);
            if (!m.ignore_result) store(c, make_meta(m, task_state::retry, exc.to_value(), tb));
            ++retried;
            send_event("task-retried", {{"uuid", m.id}, {"exception", py_repr_exception(exc)}, {"traceback", tb}});
            log("warning", "task " + m.task + "[" + m.id + "] retry " + std::to_string(r.retries) + " in " +
                               std::to_string(delay.count()) + " ms: " + exc.text());
            return;
        }
        log("error", "task " + m.task + "[" + m.id + "] failed: " + exc.text());
        // ignore_result: no failure meta either (Celery's store_errors_even_if_ignored is off), but
        // the chord's part and the errbacks all the same.
        if (!m.ignore_result) store(c, make_meta(m, task_state::failure, exc.to_value(), tb));
        ++failed;
        send_event("task-failed", {{"uuid", m.id}, {"exception", py_repr_exception(exc)}, {"traceback", tb}});
        // The chain's pending steps fail with it, or get() on the last one would hang.
        for (auto& sig : m.chain)
            if (!sig.task_id().empty() && !m.ignore_result)
                store(c, make_meta(message{.id = sig.task_id(), .parent_id = m.id}, task_state::failure, exc.to_value(), tb));
        if (m.chord) chord_join(c, m, task_state::failure, exc.to_value());
        // Celery sends the errbacks it cannot call inline as group(errbacks).apply_async((task_id,)):
        // the failed id goes before a partial errback's own args, and an immutable one keeps only its
        // own. A C++ worker never calls one inline (see docs/celery.md on new-style errbacks).
        for (auto& eb : m.errbacks) {
            message n = continuation(feed_of(m, json::value(m.id)), eb, {});
            if (n.root_id.empty()) n.root_id = m.id;
            publish(c, n);
        }
    }

    void revoke_rest(connections& c, const message& m) {
        for (auto& sig : m.chain)
            if (!sig.task_id().empty())
                store(c, make_meta(message{.id = sig.task_id()}, task_state::revoked, task_revoked("revoked")));
    }

    void chord_join(connections& c, const message& m, task_state state, const json::value& result) {
        if (!m.group) {
            log("error", "task " + m.id + " carries a chord but no group id; the chord cannot be joined");
            return;
        }
        auto taskset = taskset_of(*m.group);
        auto done = chord_part_return(c.results(), taskset, m, state, result, opts.result_expires, logger);
        if (!done) return;
        const signature& body = *m.chord;
        if (done->error) {
            store(c, make_meta(message{.id = body.task_id()}, task_state::failure, done->error->to_value()));
            chord_failed(c.results(), taskset);
            return;
        }
        auto n = continuation(feed_of(m, done->values), body, {});  // its group: the body's group_id
        n.group_index.reset();
        n.chord.reset();
        publish(c, n);
        chord_dispatched(c.results(), taskset, done->token);
    }

    // Room under the prefetch limit (work_m held).
    unsigned room() const {
        if (prefetch == 0) return max_batch;
        return held < prefetch ? std::min(prefetch - held, max_batch) : 0;
    }

    // A consumer thread: runs due ETA messages first, then prefetched ones, each to the end. With
    // nothing in hand it fetches for itself first (no hand-off from the fetcher, and several
    // fetches in flight when the prefetch is small), and waits only when that finds nothing.
    void consume(unsigned index) {
        connections c;
        while (true) {
            std::optional<delivery> d;
            std::optional<scheduled> due;
            {
                std::unique_lock lock(work_m);
                bool tried = false;
                for (;;) {
                    if (threads.stopping()) return;
                    if (!timers.empty() && timers.front().due <= std::chrono::steady_clock::now()) {
                        std::pop_heap(timers.begin(), timers.end(), std::greater<>{});
                        due = std::move(timers.back());
                        timers.pop_back();
                        break;
                    }
                    if (!ready.empty()) {
                        d = std::move(ready.front());
                        ready.pop_front();
                        break;
                    }
                    if (unsigned n = room(); !tried && n > 0 && c.broker_conn) {
                        held += n;  // reserved while the lock is released
                        lock.unlock();
                        std::size_t got = 0;
                        try {
                            got = refill(*c.broker_conn, c.fetch_sha, n, false);
                        } catch (const std::exception& e) {
                            log("error", "worker thread " + std::to_string(index) + ": " + e.what());
                            c.broker_conn.reset();
                            c.results_conn.reset();
                        }
                        lock.lock();
                        tried = got == 0;
                        continue;
                    }
                    if (timers.empty()) work_cv.wait(lock);
                    else work_cv.wait_until(lock, timers.front().due);
                    tried = false;
                }
            }
            // A lost connection or a Redis error: reconnect after the backoff and handle the same
            // message again (a Redis restart takes seconds; leaving the message to the visibility
            // timeout would hold it back for an hour). Its meta is read again, so a result stored
            // before the failure stands and only what follows it is redone. Never die.
            kit::backoff b(reconnect);
            for (int attempt = 1;; ++attempt) {
                try {
                    if (!c.broker_conn) {
                        c.broker_conn = std::make_unique<redis_connection>(broker, opts.timeout);
                        if (!same_server) c.results_conn = std::make_unique<redis_connection>(results, opts.timeout);
                        c.fetch_sha = queues.load_script(*c.broker_conn);
                    }
                    if (due) run_due(c, *due);
                    else handle(c, *d);
                    break;
                } catch (const std::exception& e) {
                    c.broker_conn.reset();
                    c.results_conn.reset();
                    if (attempt >= max_handle_attempts || threads.stopping()) {
                        log("error", "worker thread " + std::to_string(index) + ": " + e.what() +
                                         "; the message stays unacked, for the visibility timeout to bring back");
                        break;
                    }
                    const auto delay = b.failed();
                    if (b.worth_logging())
                        log("warning", "worker thread " + std::to_string(index) + ": " + e.what() +
                                           "; handling the message again in " + std::to_string(delay.count()) + " ms");
                    threads.sleep_for(delay);
                    delivery& again = due ? due->d : *d;
                    again.meta.reset();
                    again.meta_read = false;
                }
            }
            if (d) {
                std::unique_lock lock(work_m);
                bool low = --held < prefetch;
                lock.unlock();
                if (low) room_cv.notify_one();
            }
        }
    }

    // ---- remote control: what `celery inspect`, `celery status` and Flower ask -------------------

    // Celery's Request.info(): running tasks have a start time and this process as their pid. A
    // weft worker acks when the task is done, so a running task is not acknowledged yet.
    json::object request_info(const message& m, std::optional<double> time_start) const {
        return {{"id", m.id},
                {"name", m.task},
                {"args", m.args},
                {"kwargs", m.kwargs},
                {"type", m.task},
                {"hostname", hostname},
                {"time_start", time_start ? json::value(*time_start) : json::value(nullptr)},
                {"acknowledged", false},
                {"delivery_info", json::object{{"exchange", m.exchange}, {"routing_key", m.queue},
                                               {"priority", m.priority}, {"redelivered", m.redelivered}}},
                {"worker_pid", time_start ? json::value(static_cast<std::int64_t>(::getpid())) : json::value(nullptr)}};
    }
    json::array active_info() const {
        json::array out;
        revokes.each_running([&](const message& m, double t) { out.push_back(request_info(m, t)); });
        return out;
    }
    // A prefetched message whose ETA is ahead waits for a thread only to be put on the timers:
    // Celery lists it as scheduled from the moment it arrives.
    static bool waits_for_eta(const delivery& d, std::chrono::system_clock::time_point now) {
        if (d.error || !d.m.eta) return false;
        auto due = parse_iso(*d.m.eta);
        return due && *due > now;
    }
    json::array reserved_info() {
        json::array out;
        const auto now = std::chrono::system_clock::now();
        std::lock_guard lock(work_m);
        for (auto& d : ready)
            if (!d.error && !waits_for_eta(d, now)) out.push_back(request_info(d.m, std::nullopt));
        return out;
    }
    json::array scheduled_info() {
        json::array out;
        auto add = [&](const message& m) {  // 6: the priority Celery's ETA timer entries have
            out.push_back(json::object{{"eta", m.eta ? json::value(*m.eta) : json::value(nullptr)},
                                       {"priority", 6},
                                       {"request", request_info(m, std::nullopt)}});
        };
        const auto now = std::chrono::system_clock::now();
        std::lock_guard lock(work_m);
        for (auto& t : timers) add(t.d.m);
        for (auto& d : ready)
            if (waits_for_eta(d, now)) add(d.m);
        return out;
    }
    json::object stats_info() {
        json::object total;
        for (auto& [name, n] : totals)
            if (n.load() > 0) total[name] = n.load();
        std::size_t eta_held;
        {
            std::lock_guard lock(work_m);
            eta_held = timers.size();
        }
        return {{"total", std::move(total)},
                {"pid", static_cast<std::int64_t>(::getpid())},
                {"clock", std::to_string(clock.value())},
                {"uptime", std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - born).count()},
                {"pool", json::object{{"implementation", "weft.celery:threads"},
                                      {"max-concurrency", opts.concurrency},
                                      {"threads", opts.concurrency}}},
                {"broker", broker_info(broker, opts.timeout, opts.global_keyprefix)},
                // Celery raises its prefetch count by one for every ETA task it holds; so does this.
                {"prefetch_count", prefetch + eta_held},
                {"rusage", rusage_info()}};
    }

    // One control command's reply (kombu's Node.dispatch). Arguments of the wrong type throw, and
    // the caller replies with the error, as Python does.
    json::value control(const control_request& r) {
        const std::string& m = r.method;
        const json::object& a = r.arguments;
        if (m == "ping") return ok("pong");
        if (m == "revoke" || m == "terminate") {
            auto req = revoke_arguments(a);
            if (m == "terminate") req.terminate = true;
            auto stopped = revokes.revoke(req.ids, req.terminate);
            std::string ids;
            for (auto& id : req.terminate ? stopped : req.ids) ids += (ids.empty() ? "" : ", ") + (req.terminate ? id : py_repr(json::value(id)));
            log("info", "pidbox: tasks flagged as revoked: " + std::to_string(req.ids.size()));
            if (req.terminate) return ok(stopped.empty() ? "terminate: tasks unknown" : "terminate: " + ids);
            return ok("tasks {" + ids + "} flagged as revoked");
        }
        if (m == "stats") return stats_info();
        if (m == "active" || m == "dump_active") {
            (void)bool_argument(a, "safe");  // args are JSON already: safe or not, the same
            return active_info();
        }
        if (m == "reserved" || m == "dump_reserved") return reserved_info();
        if (m == "scheduled" || m == "dump_schedule") return scheduled_info();
        if (m == "registered" || m == "dump_tasks") {
            json::array names;
            for (auto& [name, step] : steps) names.push_back(json::value(name));
            return names;
        }
        if (m == "active_queues") {
            json::array out;
            for (auto& q : opts.queues) out.push_back(queue_info(q));
            return out;
        }
        if (m == "revoked" || m == "dump_revoked") {
            json::array out;
            for (auto& id : revokes.revoked_ids()) out.push_back(json::value(id));
            return out;
        }
        if (m == "clock") return json::object{{"clock", clock.value()}};
        if (m == "hello") {  // mingle: a starting worker asks for the revoked set
            auto from = a.find("from_node");
            if (from == a.end() || !from->value().is_string()) throw std::invalid_argument("hello() missing its from_node");
            if (from->value().get_string() == hostname) return nullptr;
            if (auto rv = a.find("revoked"); rv != a.end()) {
                std::vector<std::string> ids;
                if (auto o = rv->value().if_object())
                    for (auto& kv : *o) ids.emplace_back(kv.key());
                else ids = ids_argument(a, "revoked");
                revokes.revoke(ids);
            }
            json::array ids;
            for (auto& id : revokes.revoked_ids()) ids.push_back(json::value(id));
            return json::object{{"revoked", std::move(ids)}, {"clock", clock.forward()}};
        }
        if (m == "query_task") {
            auto wanted = ids_argument(a, "ids");
            json::object out;
            auto find = [&](std::string_view state, const message& msg, std::optional<double> t) {
                if (std::find(wanted.begin(), wanted.end(), msg.id) != wanted.end())
                    out[msg.id] = json::array{json::value(state), request_info(msg, t)};
            };
            revokes.each_running([&](const message& msg, double t) { find("active", msg, t); });
            const auto now = std::chrono::system_clock::now();
            std::lock_guard lock(work_m);
            for (auto& d : ready)
                if (!d.error) find(waits_for_eta(d, now) ? "scheduled" : "reserved", d.m, std::nullopt);
            for (auto& t : timers) find("scheduled", t.d.m, std::nullopt);
            return out;
        }
        if (m == "enable_events" || m == "disable_events") {
            const bool on = m == "enable_events";
            if (task_events.exchange(on) == on) return ok(on ? "task events already enabled" : "task events already disabled");
            log("info", std::string("pidbox: task events ") + (on ? "enabled" : "disabled") + " by remote");
            return ok(on ? "task events enabled" : "task events disabled");
        }
        if (m == "heartbeat") {  // an events receiver starting up wakes the workers
            send_worker_event("worker-heartbeat");
            return nullptr;
        }
        if (m == "election") return nullptr;  // gossip's leader election: a weft worker never stands
        static const std::set<std::string, std::less<>> not_here{
            "report",     "conf",      "dump_conf",  "shutdown",   "pool_grow",   "pool_shrink",  "pool_restart",
            "autoscale",  "rate_limit", "time_limit", "add_consumer", "cancel_consumer", "memsample", "memdump",
            "objgraph",   "revoke_by_stamped_headers"};
        if (not_here.count(m)) {
            log("warning", "pidbox: '" + m + "' is a Celery command the weft worker does not implement");
            return nok("'" + m + "' is not implemented by the weft C++ worker");
        }
        log("warning", "pidbox: no such control command: '" + m + "'");
        return nok("KeyError(" + py_repr(json::value(m)) + ")");  // Python's reply, word for word
    }

    // One message from the pidbox channel: decode, check it is for this node, answer, reply. A
    // message that cannot be read is logged and dropped; nothing it holds stops the listener.
    void on_control(std::unique_ptr<redis_connection>& replies, const std::string& raw) {
        control_request r;
        try {
            r = decode_control(raw);
        } catch (const std::exception& e) {
            log("warning", std::string("pidbox: dropping a control message: ") + e.what() + ": " + excerpt(raw));
            return;
        }
        clock.forward();
        if (r.clock) clock.adjust(r.clock);
        if (!addressed_to(r, hostname)) return;
        json::value reply;
        try {
            reply = control(r);
        } catch (const std::exception& e) {
            log("warning", "pidbox: '" + r.method + "' failed: " + e.what());
            reply = nok(e.what());
        }
        if (!r.wants_reply()) return;
        try {
            if (!replies) replies = std::make_unique<redis_connection>(broker, opts.timeout);
            if (send_reply(*replies, opts.global_keyprefix, r, control_reply(r, hostname, std::move(reply), clock.forward())) == 0)
                log("info", "pidbox: nobody waits for the reply to '" + r.method + "' any more");
        } catch (const std::exception& e) {
            replies.reset();
            log("warning", "pidbox: cannot reply to '" + r.method + "': " + e.what());
        }
    }

    // At stop, what was fetched but not started goes back to its list at the consuming end, as
    // kombu's restore_unacked does at shutdown (SIGKILL leaves it to the visibility timeout).
    void restore_held() {
        std::vector<delivery> left;
        {
            std::lock_guard lock(work_m);
            for (auto& d : ready) left.push_back(std::move(d));
            for (auto& t : timers) left.push_back(std::move(t.d));
            ready.clear();
            timers.clear();
            held = 0;
        }
        if (left.empty()) return;
        try {
            redis_connection c(broker, opts.timeout);
            for (auto& d : left) {
                queues.restore(c, d);
                ++restored;
            }
            log("info", "put " + std::to_string(left.size()) + " prefetched message(s) back on their queues");
        } catch (const std::exception& e) {
            log("error", "cannot put prefetched messages back (the visibility timeout will): " + std::string(e.what()));
        }
    }
};

celery::worker::worker(worker_options opts) {
    if (opts.queues.empty()) opts.queues.push_back(opts.queue);
    if (opts.concurrency == 0) opts.concurrency = 1;
    impl_ = std::make_unique<impl>(std::move(opts));
}

celery::worker::~worker() { stop(); }

void celery::worker::serve(const erased_step& step) {
    if (step.policy().transactional) refuse_transactional_steps(*step.graph, celery::name);
    impl_->steps.insert_or_assign(std::string(step.name()), step);
    impl_->totals.try_emplace(std::string(step.name()));
}

void celery::worker::start() {
    impl& w = *impl_;
    std::lock_guard lock(w.threads_m);
    if (std::exchange(w.started, true)) return;
    w.threads.drain_for(w.opts.drain_timeout);
    w.threads.on_stop([&w] {
        { std::lock_guard l(w.work_m); }  // no consumer misses the wake-up between its check and wait
        w.work_cv.notify_all();
        w.room_cv.notify_all();
    });
    const retry_policy reconnect = impl::reconnect;
    const std::string channel = w.opts.global_keyprefix + pidbox_channel(w.broker.db);
    kit::fetch_loop(w.threads, "the pidbox listener", w.who, w.opts.log ? w.kit_log : kit::log_fn{}, reconnect, [&w, channel] {
        std::unique_ptr<redis_connection> replies;  // a subscribed connection cannot send the replies
        listen_once(w.broker, w.opts.timeout, channel, w.threads,
                    [&](const std::string& raw) { w.on_control(replies, raw); });
        return true;
    });
    kit::fetch_loop(w.threads, "fetching", w.who, w.opts.log ? w.kit_log : kit::log_fn{}, reconnect, [&w] { return w.fetch_once(); });
    for (unsigned i = 0; i < w.opts.concurrency; ++i) w.threads.spawn([&w, i] { w.consume(i); });
    w.flusher = std::thread([&w] { w.flush_deferred(); });
    if (w.opts.heartbeat_interval.count() > 0)
        w.threads.spawn([&w] {
            w.send_worker_event("worker-online");
            while (w.threads.sleep_for(w.opts.heartbeat_interval)) w.send_worker_event("worker-heartbeat");
        });
    w.log("info", "worker " + w.hostname + (w.opts.task_events ? " (task events on)" : "") + " consuming " + std::to_string(w.opts.queues.size()) + " queue(s) from " +
                      w.broker.redacted() + " with " + std::to_string(w.opts.concurrency) + " thread(s), prefetch " +
                      (w.prefetch ? std::to_string(w.prefetch) : std::string("unlimited")));
}

void celery::worker::run() {
    start();
    impl_->threads.wait_until_stopped();
    stop();
}

void celery::worker::stop() {
    impl& w = *impl_;
    w.threads.stop();
    std::lock_guard lock(w.threads_m);
    if (!w.started || std::exchange(w.stopped, true)) return;
    w.send_worker_event("worker-offline");  // the flusher sends it before it ends
    {
        std::lock_guard dl(w.defer_m);
        w.flusher_stop = true;
    }
    w.defer_cv.notify_all();
    if (w.flusher.joinable()) w.flusher.join();
    w.restore_held();
}

celery::worker::counters celery::worker::stats() const {
    return {impl_->succeeded.load(), impl_->failed.load(), impl_->retried.load(), impl_->dead_lettered.load(),
            impl_->restored.load()};
}

celery::worker_options celery_detail::worker_options_from(const config& c, const worker_settings& s) {
    celery::worker_options o = worker_settings_from(c);
    static_cast<celery::options&>(o) = options_from(c);
    if (!s.queues.empty()) o.queues = s.queues;
    if (s.concurrency) o.concurrency = s.concurrency;
    if (!s.name.empty()) o.hostname = s.name;
    o.task_events = s.task_events;
    return o;
}

}  // namespace weft
