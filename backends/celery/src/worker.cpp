// The C++ Celery worker proper: its threads (a fetcher and the revoke listener on kit::fetch_loop,
// the consumers on kit::worker_threads, a flusher), steps run through kit::run_task, results stored
// in Celery's format with PUBLISH, and everything it cannot run dead-lettered. Fetching and acks are kombu.cpp's, what runs next is
// canvas.cpp's, chords are joined in chord.cpp, revokes come through revoke.cpp.
#include <weft/celery.hpp>
#include <weft/kit/backoff.hpp>
#include <weft/kit/worker.hpp>
#include "canvas.hpp"
#include "chord.hpp"
#include "kombu.hpp"
#include "revoke.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

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
    std::string hostname = "weft@" + host_name();
    const kit::origin who{.backend = "celery", .worker = hostname};
    std::string meta_of(std::string_view id) const { return opts.result_keyprefix + meta_key(id); }
    std::string taskset_of(std::string_view gid) const { return opts.result_keyprefix + taskset_key(gid); }
    kit::worker_threads threads;  // the revoke listener, the fetcher, the consumers
    std::mutex threads_m;
    bool started = false, stopped = false;
    std::atomic<std::uint64_t> succeeded{0}, failed{0}, retried{0}, dead_lettered{0}, restored{0};
    revocations revokes;

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
        feed f{m.root_id, m.id, m.queue, {}};
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

    // The flusher: sends what step threads deferred, in pipelines of whatever has gathered
    // meanwhile, so a result is stored as soon as its step returns, whatever the thread does next.
    // A batch's results go first, then all its acks in one ZREM and one HDEL, so every task's
    // result is stored before its ack.
    void flush_deferred() {
        std::unique_ptr<redis_connection> bc, rc;
        for (;;) {
            std::vector<std::vector<std::string>> stores;
            std::vector<std::string> tags;
            {
                std::unique_lock lock(defer_m);
                defer_cv.wait(lock, [&] { return flusher_stop || !deferred_results.empty() || !deferred_acks.empty(); });
                if (deferred_results.empty() && deferred_acks.empty()) return;  // stopping, and nothing left
                stores.swap(deferred_results);
                tags.swap(deferred_acks);
            }
            std::vector<std::vector<std::string>> acks;
            if (!tags.empty()) acks = queues.ack_commands(tags);
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
        std::vector<std::string> lost;
        {
            std::lock_guard lock(work_m);
            lost.swap(lost_fetches);
        }
        for (auto& score : lost) restored += queues.reclaim(c, score, logger);
        while (!threads.stopping()) {
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
        {
            std::lock_guard lock(work_m);
            held -= n - static_cast<unsigned>(got.size());
            for (auto& d : got) ready.push_back(std::move(d));
        }
        if (got.size() == 1) work_cv.notify_one();
        else if (got.size() > 1) work_cv.notify_all();
        return got.size();
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
            ctx.who = &w.who;
            registered = w.revokes.running(m.id, ctx.cancelled);
        }
        static json::array decode(const delivery& d, const erased_step& s) {
            const json::array& args = d.m.args;
            // A chord body receives [[r0, r1, ...]]; a weft join takes one parameter per parent.
            if (s.arity() >= 2 && args.size() == 1 && args[0].is_array() && args[0].get_array().size() == s.arity())
                return json::array(args[0].get_array());
            return args;
        }
        void report(const delivery&, const erased_step*, kit::step_outcome& o, kit::task_context&) {
            registered.reset();
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
        if (m.expires && *parse_iso(*m.expires) < now) {
            log("info", "task " + m.task + "[" + m.id + "] expired");
            store(c, make_meta(m, task_state::revoked, task_revoked("expired")));
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
        if (revokes.revoked(m.id)) {
            log("info", "discarding revoked task " + m.task + "[" + m.id + "]");
            store(c, make_meta(m, task_state::revoked, task_revoked("revoked")));
            revoke_rest(c, m);
            return false;
        }
        if (existing && existing->state == task_state::revoked) {
            log("info", "task " + m.task + "[" + m.id + "] was revoked; not running it");
            revoke_rest(c, m);
            return false;
        }

        json::value retval;
        if (existing && existing->state == task_state::success) {
            // Delivered again after its result was stored (a worker died before acking): the
            // result stands; only the continuation is repeated, under the same task ids.
            retval = existing->result;
        } else {
            kit::task_context ctx;
            invocation call{*this, step->second, {}};
            kit::run_task(call, d, ctx);
            kit::step_outcome& out = call.out;
            if (!ctx.cancelled && !out.ok()) {
                fail(c, m, step->second, out);
                return false;
            }
            if (ctx.cancelled) {
                // A thread cannot be killed: the step was asked to stop (stop_requested()), and
                // whatever it returned is discarded, as Python's terminated task leaves nothing.
                log("info", "task " + m.task + "[" + m.id + "] terminated by a revoke");
                revoke_rest(c, m);
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
            store(c, make_meta(m, task_state::retry, exc.to_value(), tb));
            ++retried;
            log("warning", "task " + m.task + "[" + m.id + "] retry " + std::to_string(r.retries) + " in " +
                               std::to_string(delay.count()) + " ms: " + exc.text());
            return;
        }
        log("error", "task " + m.task + "[" + m.id + "] failed: " + exc.text());
        store(c, make_meta(m, task_state::failure, exc.to_value(), tb));
        ++failed;
        // The chain's pending steps fail with it, or get() on the last one would hang.
        for (auto& sig : m.chain)
            if (!sig.task_id().empty())
                store(c, make_meta(message{.id = sig.task_id(), .parent_id = m.id}, task_state::failure, exc.to_value(), tb));
        if (m.chord) chord_join(c, m, task_state::failure, exc.to_value());
        for (auto& eb : m.errbacks) {
            message n = continuation(feed_of(m, json::value(m.id)), eb, {});
            n.args = json::array{json::value(m.id)};
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

void celery::worker::serve(const erased_step& step) { impl_->steps.insert_or_assign(std::string(step.name()), step); }

void celery::worker::start() {
    impl& w = *impl_;
    std::lock_guard lock(w.threads_m);
    if (std::exchange(w.started, true)) return;
    w.threads.on_stop([&w] {
        { std::lock_guard l(w.work_m); }  // no consumer misses the wake-up between its check and wait
        w.work_cv.notify_all();
        w.room_cv.notify_all();
    });
    const retry_policy reconnect = impl::reconnect;
    const std::string channel = w.opts.global_keyprefix + pidbox_channel(w.broker.db);
    kit::fetch_loop(w.threads, "the revoke listener", w.who, w.opts.log ? w.kit_log : kit::log_fn{}, reconnect, [&w, channel] {
        w.revokes.listen_once(w.broker, w.opts.timeout, channel, w.threads);
        return true;
    });
    kit::fetch_loop(w.threads, "fetching", w.who, w.opts.log ? w.kit_log : kit::log_fn{}, reconnect, [&w] { return w.fetch_once(); });
    for (unsigned i = 0; i < w.opts.concurrency; ++i) w.threads.spawn([&w, i] { w.consume(i); });
    w.flusher = std::thread([&w] { w.flush_deferred(); });
    w.log("info", "worker " + w.hostname + " consuming " + std::to_string(w.opts.queues.size()) + " queue(s) from " +
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
    celery::worker_options o;
    static_cast<celery::options&>(o) = options_from(c);
    if (!s.queues.empty()) o.queues = s.queues;
    if (s.concurrency) o.concurrency = s.concurrency;
    return o;
}

}  // namespace weft
