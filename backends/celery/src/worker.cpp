// The C++ Celery worker: BRPOP over the priority lists of its queues, kombu's late-ack bookkeeping
// (unacked hash + unacked_index sorted set), steps run through the step table, results stored in
// Celery's format with PUBLISH, chains continued, and everything it cannot run dead-lettered.
#include <weft/celery.hpp>
#include "canvas.hpp"
#include "transport.hpp"

#include <boost/json/serialize.hpp>

#include <cmath>
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <unistd.h>

namespace weft {

using namespace celery_wire;

namespace {


double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return host;
}

class time_limit_exceeded : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::string json_number(double d) { return boost::json::serialize(json::value(d)); }

// A step's exception as Celery stores it. Python re-raises builtins by name, so map the common
// standard exceptions onto them; json::decode_error (arguments that do not fit) is a TypeError.
exception_info to_exception(const std::exception& e) {
    std::string type = "RuntimeError";
    if (dynamic_cast<const time_limit_exceeded*>(&e))
        return {"TimeLimitExceeded", "billiard.exceptions", json::array{e.what()}};
    if (dynamic_cast<const json::decode_error*>(&e)) type = "TypeError";
    else if (dynamic_cast<const std::invalid_argument*>(&e) || dynamic_cast<const std::domain_error*>(&e))
        type = "ValueError";
    else if (dynamic_cast<const std::out_of_range*>(&e)) type = "IndexError";
    return {type, "builtins", json::array{e.what()}};
}

}  // namespace

struct celery::worker::impl {
    worker_options opts;
    redis_url broker, results;
    bool same_server = false;
    std::map<std::string, erased_step, std::less<>> steps;
    std::string hostname = "weft@" + host_name();
    std::vector<std::string> keys;  // BRPOP order: priority step first, then queue
    // kombu's key names, with its global_keyprefix (broker) and the result backend's.
    std::string unacked_key, unacked_index_key, unacked_mutex_key;
    std::string list_of(std::string_view queue, int priority) const {
        return opts.global_keyprefix + priority_list(queue, priority);
    }
    std::string queue_of(std::string_view list) const {
        const auto& prefix = opts.global_keyprefix;
        if (list.substr(0, prefix.size()) == prefix) list.remove_prefix(prefix.size());
        return queue_of_list(list);
    }
    std::string meta_of(std::string_view id) const { return opts.result_keyprefix + meta_key(id); }
    std::string taskset_of(std::string_view gid) const { return opts.result_keyprefix + taskset_key(gid); }
    std::vector<std::thread> threads;
    std::mutex threads_m;
    std::atomic<bool> stopping{false};
    std::mutex sleep_m;
    std::condition_variable sleep_cv;
    std::atomic<std::uint64_t> succeeded{0}, failed{0}, retried{0}, dead_lettered{0}, restored{0};
    // Task ids revoked by a pidbox broadcast (Python's AsyncResult.revoke(), weft's cancel()).
    std::mutex revoked_m;
    std::unordered_set<std::string> revoked;

    struct delivery_keys {
        std::string tag, exchange, routing_key;
    };
    // Prefetched messages (popped and recorded in unacked by a fetch) wait in `ready` for a step
    // thread; ETA messages wait on a timer heap, still unacked, without holding a thread.
    struct delivery {
        std::string list, raw;
        std::optional<std::string> meta;  // the task's meta, when the fetch read it
        bool meta_read = false;           // the fetch looked for the meta (none stored if `meta` is empty)
        bool fetched = false;             // by fetch_lua, which says what it recorded:
        delivery_keys recorded;           // the unacked entry it wrote (tag empty: none)
        std::string meta_id;              // the id whose meta it read
    };
    struct scheduled {
        std::chrono::steady_clock::time_point due;
        std::uint64_t seq;
        delivery d;
        message m;
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
    unsigned prefetch = 0;  // prefetch_multiplier × concurrency; 0: no limit

    // Result stores and acks that need no answer; the flusher sends them in pipelines.
    std::mutex defer_m;
    std::condition_variable defer_cv;
    std::vector<std::vector<std::string>> deferred_results;  // SETEX + PUBLISH of final results
    std::vector<std::string> deferred_acks;                  // delivery tags
    bool flusher_stop = false;
    std::thread flusher;

    // Tasks running now, for revoke(terminate=True): their steps see stop_requested().
    std::unordered_map<std::string, std::atomic<bool>*> running;
    struct running_scope {
        impl& w;
        std::string id;
        running_scope(impl& w_, std::string id_, std::atomic<bool>& flag) : w(w_), id(std::move(id_)) {
            std::lock_guard lock(w.revoked_m);
            w.running[id] = &flag;
        }
        ~running_scope() {
            std::lock_guard lock(w.revoked_m);
            w.running.erase(id);
        }
    };

    bool is_revoked(const std::string& id) {
        std::lock_guard lock(revoked_m);
        return revoked.count(id) != 0;
    }

    // Listens to kombu's pidbox fanout for revokes, as a Python worker's remote control does.
    void listen_revokes() {
        while (!stopping) {
            try {
                redis_connection sub(broker, opts.timeout);
                sub.send({"SUBSCRIBE", opts.global_keyprefix + pidbox_channel(broker.db)});
                while (!stopping) {
                    auto r = sub.read(std::chrono::milliseconds(500));
                    if (!r || r->type != redis_reply::kind::array || r->elements.size() != 3 ||
                        r->elements[0].str != "message")
                        continue;
                    auto ids = revoked_ids(r->elements[2].str);
                    if (ids.empty()) continue;
                    bool terminate = revoke_terminates(r->elements[2].str);
                    std::lock_guard lock(revoked_m);
                    if (terminate)
                        for (auto& id : ids)
                            if (auto t = running.find(id); t != running.end()) t->second->store(true);
                    if (revoked.size() > 100000) revoked.clear();  // Celery keeps a bounded set too
                    for (auto& id : ids) revoked.insert(id);
                }
            } catch (const std::exception& e) {
                log("error", std::string("revoke listener: ") + e.what());
                sleep_for(std::chrono::milliseconds(500));
            }
        }
    }

    void log(std::string_view level, const std::string& text) {
        auto safe = redact(text);
        if (opts.log) opts.log(level, safe);
        else std::fprintf(stderr, "[weft.celery %s] %s\n", std::string(level).c_str(), safe.c_str());
    }

    // Sleeps up to `d`, waking early on stop(). Returns false when stopping.
    bool sleep_for(std::chrono::milliseconds d) {
        std::unique_lock lock(sleep_m);
        return !sleep_cv.wait_for(lock, d, [&] { return stopping.load(); });
    }

    // A consumer thread's connections for what must happen before it goes on (continuations, chord
    // joins, failures); one connection when the broker and the result backend are the same Redis.
    struct connections {
        std::unique_ptr<redis_connection> broker_conn;
        std::unique_ptr<redis_connection> results_conn;  // null: the broker's
        std::string fetch_sha;                           // fetch_lua loaded on broker_conn
        redis_connection& broker() { return *broker_conn; }
        redis_connection& results() { return results_conn ? *results_conn : *broker_conn; }
        bool shared() const { return !results_conn; }
    };

    // ---- result backend --------------------------------------------------------------------------

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
        task_meta m;
        m.task_id = msg.id;
        m.state = s;
        m.result = std::move(result);
        m.traceback = std::move(tb);
        if (s != task_state::retry) m.date_done = iso_utc(std::chrono::system_clock::now());
        m.parent_id = msg.parent_id;
        m.group_id = msg.group;
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

    // ---- sending ---------------------------------------------------------------------------------

    void publish(connections& c, message& m) {
        if (m.delivery_tag.empty()) m.delivery_tag = new_id();
        m.origin = hostname;
        c.broker().command({"LPUSH", list_of(m.queue, m.priority), encode_envelope(m)});
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

    // ---- dead letters ----------------------------------------------------------------------------

    void dead_letter(connections& c, std::string_view list, const std::string& raw, const std::string& reason) {
        json::object o;
        o["reason"] = reason;
        o["queue"] = queue_of(list);
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
        c.broker().command({"LPUSH", opts.global_keyprefix + opts.dead_letter, text});
        ++dead_lettered;
    }

    // ---- acks ------------------------------------------------------------------------------------

    // kombu's `unacked` hash value: [envelope, exchange, routing_key], with the envelope as a JSON
    // object inside the array, not a string (kept as a string only if it does not parse).
    static std::string unacked_entry(const std::string& raw, const std::string& exchange, const std::string& routing_key) {
        json::array entry{json::value(raw), json::value(exchange), json::value(routing_key)};
        try {
            entry[0] = json::parse(raw);
        } catch (const std::exception&) {
        }
        return boost::json::serialize(entry);
    }
    static std::string unacked_score() {
        char score[64];
        std::snprintf(score, sizeof score, "%.6f", unix_now());
        return score;
    }

    // The delivery tag, exchange and routing key of a raw envelope, as far as they can be read.
    delivery_keys keys_of(const std::string& raw, std::string_view list) const {
        delivery_keys k{{}, {}, queue_of(list)};
        try {
            auto v = json::parse(raw);
            auto& props = v.as_object().at("properties").as_object();
            k.tag = std::string(props.at("delivery_tag").as_string());
            auto& di = props.at("delivery_info").as_object();
            k.exchange = std::string(di.at("exchange").as_string());
            k.routing_key = std::string(di.at("routing_key").as_string());
        } catch (const std::exception&) {
        }
        return k;
    }

    std::vector<std::vector<std::string>> ack_commands(const std::string& tag) const {
        return {{"ZREM", unacked_index_key, tag}, {"HDEL", unacked_key, tag}};
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
            if (!tags.empty()) {
                acks.push_back({"ZREM", unacked_index_key});
                acks.push_back({"HDEL", unacked_key});
                for (auto& t : tags) {
                    acks[0].push_back(t);
                    acks[1].push_back(t);
                }
            }
            for (int attempt = 0; attempt < 2; ++attempt) {
                try {
                    if (!bc) bc = std::make_unique<redis_connection>(broker, opts.timeout);
                    if (!same_server && !rc) rc = std::make_unique<redis_connection>(results, opts.timeout);
                    std::vector<redis_reply> replies;
                    if (same_server) {
                        stores.insert(stores.end(), acks.begin(), acks.end());
                        acks.clear();
                        replies = bc->pipeline(stores);
                    } else {
                        replies = rc->pipeline(stores);
                        auto more = bc->pipeline(acks);
                        replies.insert(replies.end(), more.begin(), more.end());
                    }
                    for (auto& r : replies)
                        if (r.type == redis_reply::kind::error) log("error", "storing a result or an ack: " + r.str);
                    break;
                } catch (const std::exception& e) {
                    // What was lost is still unacked: the visibility timeout brings it back.
                    log("error", std::string("flusher: ") + e.what());
                    bc.reset();
                    rc.reset();
                }
            }
        }
    }

    // kombu's restore_visible: under the unacked_mutex lock, put back every message unacked for
    // longer than the visibility timeout (a worker that died holding it), at the consuming end,
    // flagged redelivered as kombu flags it.
    void restore_visible(redis_connection& c) {
        auto token = new_id();
        auto got = c.command({"SET", unacked_mutex_key, token, "NX", "PX", "300000"});
        if (got.type != redis_reply::kind::status) return;  // another worker is sweeping
        char ceiling[64];
        std::snprintf(ceiling, sizeof ceiling, "%.6f", unix_now() - static_cast<double>(opts.visibility_timeout.count()));
        auto due = c.command({"ZRANGEBYSCORE", unacked_index_key, "0", ceiling});
        for (auto& t : due.elements) {
            auto r = c.pipeline({{"HGET", unacked_key, t.str}, {"ZREM", unacked_index_key, t.str},
                                 {"HDEL", unacked_key, t.str}});
            if (r[0].type != redis_reply::kind::string || r[1].integer == 0) continue;  // someone else took it
            try {
                auto entry = json::parse(r[0].str).as_array();
                std::string rk(entry.at(2).as_string());
                int priority = 0;
                if (auto* o = entry[0].if_object()) {
                    if (auto p = o->find("properties"); p != o->end() && p->value().is_object()) {
                        auto& props = p->value().get_object();
                        if (auto pr = props.find("priority"); pr != props.end() && pr->value().is_int64())
                            priority = static_cast<int>(pr->value().get_int64());
                        if (auto di = props.find("delivery_info"); di != props.end() && di->value().is_object())
                            di->value().get_object()["redelivered"] = true;
                    }
                    if (auto h = o->find("headers"); h != o->end() && h->value().is_object())
                        h->value().get_object()["redelivered"] = true;
                }
                std::string env = entry[0].is_string() ? std::string(entry[0].get_string())
                                                       : boost::json::serialize(entry[0]);
                c.command({"RPUSH", list_of(rk, priority), env});
                ++restored;
                log("warning", "restored unacked message " + t.str + " to queue " + rk +
                                   " (its worker held it past the visibility timeout)");
            } catch (const std::exception& e) {
                log("error", "cannot restore unacked message " + t.str + ": " + e.what());
            }
        }
        // Release the lock only if it is still ours.
        auto cur = c.command({"GET", unacked_mutex_key});
        if (cur.str == token) c.command({"DEL", unacked_mutex_key});
    }

    // ---- fetching --------------------------------------------------------------------------------

    // Pops up to ARGV[1] messages from the lists in KEYS[3..] (priority order, the order of BRPOP's
    // keys) and records each in kombu's unacked hash and index in the same atomic step, exactly as
    // kombu's QoS.append writes them: ZADD unacked_index <now> <tag>, HSET unacked <tag>
    // [<envelope>, "<exchange>", "<routing_key>"]. A worker killed at any point leaves every message
    // it popped in unacked, for restore_visible. With ARGV[3] (the result backend is this Redis) it
    // also reads the tasks' metas, so a redelivered or revoked task is seen without another round
    // trip. The server's time is the limit, so the script makes one call per batch for each of RPOP
    // (with a count), ZADD, HSET and MGET; and decoding a whole envelope in Lua would cost more than
    // the rest of a task, so the four strings are found by their keys (as Python's and Boost.JSON's
    // serializers write them), cjson decoding only an envelope where that fails or a value with an
    // escape; the worker checks what was recorded against its own decoding (check_fetched).
    // Returns, per message, [list, envelope, tag, exchange, routing_key, id, meta], each nil when
    // not found; a message it cannot read is popped all the same (the worker dead-letters it) but
    // not recorded, as kombu could not restore it either.
    static constexpr const char* fetch_lua = R"lua(
local n, now, meta_prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local find, sub, byte = string.find, string.sub, string.byte
-- The string value of the first `"<key>": "` or `"<key>":"` (key given with its closing quote).
local function field(raw, key)
    local from = 1
    while true do
        local s, e = find(raw, key, from, true)
        if not s then return nil end
        if byte(raw, s - 1) == 34 then
            local c = e + 1
            if byte(raw, c) ~= 58 then return nil end
            c = c + 1
            if byte(raw, c) == 32 then c = c + 1 end
            if byte(raw, c) ~= 34 then return nil end
            local q = find(raw, '"', c + 1, true)
            if not q then return nil end
            local v = sub(raw, c + 1, q - 1)
            if find(v, '\\', 1, true) then return nil end
            return v
        end
        from = e + 1
    end
end
local out, zadd, hset, mget, mslot = {}, {}, {}, {}, {}
local got = 0
for i = 3, #KEYS do
    if got >= n then break end
    local popped = redis.call('RPOP', KEYS[i], n - got)
    if popped then
        for _, raw in ipairs(popped) do
            got = got + 1
            local tag = field(raw, 'delivery_tag"')
            local ex = field(raw, 'exchange"')
            local rk = field(raw, 'routing_key"')
            local id = field(raw, 'id"')
            local quoted = true
            if not (tag and ex and rk and id) then
                tag, ex, rk, id, quoted = nil, nil, nil, nil, false
                local ok, env = pcall(cjson.decode, raw)
                if ok and type(env) == 'table' then
                    local p, h = env['properties'], env['headers']
                    if type(p) == 'table' and type(p['delivery_info']) == 'table' then
                        tag, ex, rk = p['delivery_tag'], p['delivery_info']['exchange'], p['delivery_info']['routing_key']
                    end
                    if type(h) == 'table' then id = h['id'] end
                end
                if type(tag) ~= 'string' then tag = nil end
                if type(ex) ~= 'string' then ex = nil end
                if type(rk) ~= 'string' then rk = nil end
                if type(id) ~= 'string' then id = nil end
            end
            if tag and tag ~= '' and ex and rk then
                zadd[#zadd + 1] = now
                zadd[#zadd + 1] = tag
                hset[#hset + 1] = tag
                if quoted then
                    hset[#hset + 1] = '[' .. raw .. ', "' .. ex .. '", "' .. rk .. '"]'
                else
                    hset[#hset + 1] = '[' .. raw .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']'
                end
            else
                tag = nil
            end
            local base = #out
            out[base + 1] = KEYS[i]
            out[base + 2] = raw
            out[base + 3] = tag or false
            out[base + 4] = ex or false
            out[base + 5] = rk or false
            out[base + 6] = id or false
            out[base + 7] = false
            if meta_prefix ~= '' and id then
                mget[#mget + 1] = meta_prefix .. id
                mslot[#mslot + 1] = base + 7
            end
        end
    end
end
if #zadd > 0 then
    redis.call('ZADD', KEYS[2], unpack(zadd))
    redis.call('HSET', KEYS[1], unpack(hset))
end
if #mget > 0 then
    local metas = redis.call('MGET', unpack(mget))
    for j = 1, #mslot do out[mslot[j]] = metas[j] end
end
return out
)lua";

    // `sha`: fetch_lua's SHA1 from this connection's SCRIPT LOAD; null: send the script (EVAL).
    std::vector<std::string> fetch_command(unsigned n, const std::string* sha) const {
        std::vector<std::string> cmd{sha ? "EVALSHA" : "EVAL", sha ? *sha : fetch_lua,
                                     std::to_string(keys.size() + 2), unacked_key, unacked_index_key};
        cmd.insert(cmd.end(), keys.begin(), keys.end());
        cmd.push_back(std::to_string(n));
        cmd.push_back(unacked_score());
        cmd.push_back(same_server ? meta_of("") : "");
        return cmd;
    }

    void take_fetched(redis_reply& r, std::vector<delivery>& out) {
        if (r.type == redis_reply::kind::error)
            throw redis_error("weft: fetching messages failed (the worker needs Redis 6.2 or later, with Lua scripting): " +
                              r.str);
        auto str = [](redis_reply& e) { return e.type == redis_reply::kind::string ? std::move(e.str) : std::string(); };
        for (std::size_t i = 0; i + 6 < r.elements.size(); i += 7) {
            delivery d{str(r.elements[i]), str(r.elements[i + 1]), std::nullopt, same_server};
            d.recorded = {str(r.elements[i + 2]), str(r.elements[i + 3]), str(r.elements[i + 4])};
            d.meta_id = str(r.elements[i + 5]);
            if (r.elements[i + 6].type == redis_reply::kind::string) d.meta = r.elements[i + 6].str;
            d.fetched = true;
            out.push_back(std::move(d));
        }
    }

    // The script finds the tag, exchange, routing key and id by their keys; should a producer's
    // envelope fool that, the worker's own decoding wins: the unacked entry is rewritten under the
    // right tag, and the meta read again.
    void check_fetched(connections& c, delivery& d, const message& m) {
        if (!d.fetched) return;
        if (d.meta_id != m.id) {
            d.meta.reset();
            d.meta_read = false;
        }
        const auto& k = d.recorded;
        if (k.tag == m.delivery_tag && k.exchange == m.exchange && k.routing_key == m.queue) return;
        log("warning", "message " + m.id + ": the fetch recorded it under tag '" + k.tag + "'; re-recording it");
        std::vector<std::vector<std::string>> cmds;
        if (!k.tag.empty()) cmds = ack_commands(k.tag);
        if (!m.delivery_tag.empty()) {
            cmds.push_back({"ZADD", unacked_index_key, unacked_score(), m.delivery_tag});
            cmds.push_back({"HSET", unacked_key, m.delivery_tag, unacked_entry(d.raw, m.exchange, m.queue)});
        }
        if (!cmds.empty()) c.broker().pipeline(cmds);
    }

    // Up to `n` messages in one round trip. With `block`, and only when the queues are empty, it
    // waits in BRPOP (1 s), then takes the rest of a burst in the same round trip as the first
    // message's bookkeeping.
    std::vector<delivery> fetch(redis_connection& c, const std::string& sha, unsigned n, bool block) {
        std::vector<delivery> out;
        auto r = c.pipeline({fetch_command(n, &sha)}).front();
        if (r.type == redis_reply::kind::error && r.str.rfind("NOSCRIPT", 0) == 0)
            r = c.pipeline({fetch_command(n, nullptr)}).front();  // a restarted Redis: EVAL caches it again
        take_fetched(r, out);
        if (!out.empty() || !block) return out;
        std::vector<std::string> cmd{"BRPOP"};
        cmd.insert(cmd.end(), keys.begin(), keys.end());
        cmd.push_back("1");
        auto b = c.command(cmd);
        if (b.type != redis_reply::kind::array || b.elements.size() != 2) return out;
        // kombu's own window: popped by BRPOP, then recorded. A crash in between loses it (as in kombu).
        delivery d{b.elements[0].str, b.elements[1].str, std::nullopt, false};
        auto k = keys_of(d.raw, d.list);
        std::vector<std::vector<std::string>> cmds;
        if (!k.tag.empty()) {
            cmds.push_back({"ZADD", unacked_index_key, unacked_score(), k.tag});
            cmds.push_back({"HSET", unacked_key, k.tag, unacked_entry(d.raw, k.exchange, k.routing_key)});
        }
        std::string id = same_server ? id_of(d.raw) : std::string();
        if (!id.empty()) cmds.push_back({"GET", meta_of(id)});
        if (n > 1) cmds.push_back(fetch_command(n - 1, &sha));
        if (cmds.empty()) {
            out.push_back(std::move(d));
            return out;
        }
        auto replies = c.pipeline(cmds);
        std::size_t at = k.tag.empty() ? 0 : 2;
        if (!id.empty()) {
            d.meta_read = true;
            if (replies[at].type == redis_reply::kind::string) d.meta = replies[at].str;
            ++at;
        }
        out.push_back(std::move(d));
        if (n > 1 && replies[at].type != redis_reply::kind::error) take_fetched(replies[at], out);
        return out;
    }

    static std::string id_of(const std::string& raw) {
        try {
            auto v = json::parse(raw);
            return std::string(v.as_object().at("headers").as_object().at("id").as_string());
        } catch (const std::exception&) {
            return {};
        }
    }

    // The fetcher thread: keeps up to `prefetch` messages in hand (Celery's prefetch multiplier ×
    // concurrency), fetched in batches; restores visible messages every restore_interval.
    void fetch_loop() {
        std::unique_ptr<redis_connection> c;
        std::string sha;
        auto last_sweep = std::chrono::steady_clock::now() - opts.restore_interval;
        while (!stopping) {
            try {
                if (!c) {
                    c = std::make_unique<redis_connection>(broker, opts.timeout);
                    c->set_timeout(opts.timeout + std::chrono::seconds(1));  // above BRPOP's 1 s
                    sha = c->command({"SCRIPT", "LOAD", fetch_lua}).str;
                }
                if (std::chrono::steady_clock::now() - last_sweep >= opts.restore_interval) {
                    last_sweep = std::chrono::steady_clock::now();
                    restore_visible(*c);
                }
                unsigned room;
                {
                    std::unique_lock lock(work_m);
                    // Refill as soon as there is room: a fetch's round trip overlaps the steps
                    // in hand, and the rate stays near prefetch / round trip even for tiny steps.
                    auto low = [&] { return prefetch == 0 || held < prefetch; };
                    room_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping.load() || low(); });
                    if (stopping) break;
                    if (!low()) continue;
                    room = this->room();
                    held += room;  // reserved while the lock is released
                }
                std::vector<delivery> got;
                try {
                    got = fetch(*c, sha, room, true);
                } catch (...) {
                    std::lock_guard lock(work_m);
                    held -= room;
                    throw;
                }
                {
                    std::lock_guard lock(work_m);
                    held -= room - static_cast<unsigned>(got.size());
                    for (auto& d : got) ready.push_back(std::move(d));
                }
                if (got.empty()) continue;
                if (got.size() == 1) work_cv.notify_one();
                else work_cv.notify_all();
            } catch (const std::exception& e) {
                // A lost connection or a Redis error: log, reconnect after a pause, never die.
                log("error", std::string("fetching: ") + e.what());
                c.reset();
                sleep_for(std::chrono::milliseconds(500));
            }
        }
    }

    // ---- one message -----------------------------------------------------------------------------

    void handle(connections& c, delivery& d) {
        message m;
        try {
            m = decode_envelope(d.raw);
        } catch (const wire_error& e) {
            auto k = keys_of(d.raw, d.list);
            log("error", "dropping a malformed message from " + k.routing_key + ": " + e.reason() +
                             (e.id().empty() ? "" : " (task id " + e.id() + ")"));
            if (!e.id().empty()) {
                message stub;
                stub.id = e.id();
                store(c, make_meta(stub, task_state::failure,
                                   exception_info{"ValueError", "builtins",
                                                  json::array{"weft: malformed Celery message: " + e.reason()}}
                                       .to_value()));
            }
            dead_letter(c, d.list, d.raw, e.reason());
            ack(c, k.tag);
            return;
        }
        check_fetched(c, d, m);
        if (m.queue.empty()) m.queue = queue_of(d.list);
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
        if (!process(c, d, m, std::move(existing))) ack(c, m.delivery_tag);
    }

    // Returns true when the message was acked with its result, or waits for its ETA.
    bool process(connections& c, delivery& d, message& m, std::optional<task_meta> existing) {
        auto step = steps.find(m.task);
        if (step == steps.end()) {
            log("error", "Received unregistered task of type '" + m.task + "' (id " + m.id + ")");
            store(c, make_meta(m, task_state::failure,
                               exception_info{"NotRegistered", "celery.exceptions", json::array{m.task}}.to_value()));
            dead_letter(c, d.list, d.raw, "NotRegistered: " + m.task);
            return false;
        }
        auto now = std::chrono::system_clock::now();
        if (m.expires && *parse_iso(*m.expires) < now) {
            log("info", "task " + m.task + "[" + m.id + "] expired");
            store(c, make_meta(m, task_state::revoked,
                               exception_info{"TaskRevokedError", "celery.exceptions", json::array{"expired"}}.to_value()));
            return false;
        }
        // An ETA message waits on the timer heap, unacked, as Python holds it; no thread waits for it.
        if (m.eta) {
            auto due = *parse_iso(*m.eta);
            if (due > now) {
                {
                    std::lock_guard lock(work_m);
                    auto at = std::chrono::steady_clock::now() + (due - now);
                    timers.push_back({at, ++timer_seq, std::move(d), std::move(m)});
                    std::push_heap(timers.begin(), timers.end(), std::greater<>{});
                }
                work_cv.notify_all();  // an earlier deadline for whoever waits
                return true;
            }
        }
        return run(c, d.list, d.raw, m, std::move(existing), m.delivery_tag);
    }

    // An ETA message that fell due: its meta again (a cancel may have come meanwhile), then run.
    void run_due(connections& c, scheduled& t) {
        auto existing = t.m.id.empty() ? std::nullopt : read_meta(c, t.m.id);
        if (!run(c, t.d.list, t.d.raw, t.m, std::move(existing), t.m.delivery_tag)) ack(c, t.m.delivery_tag);
    }

    // Runs a task that is due: revokes first, then the step, its result and its continuation.
    // Returns true when it acked the message itself (together with the result).
    bool run(connections& c, const std::string& list, const std::string& raw, message& m,
             std::optional<task_meta> existing, const std::string& tag) {
        auto step = steps.find(m.task);
        if (is_revoked(m.id)) {
            log("info", "discarding revoked task " + m.task + "[" + m.id + "]");
            store(c, make_meta(m, task_state::revoked,
                               exception_info{"TaskRevokedError", "celery.exceptions", json::array{"revoked"}}.to_value()));
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
            // Celery's time limits, the weft way: a thread cannot be killed, so the step sees
            // this_step::stop_requested() turn true at the soft (else hard) limit, and a result that
            // comes after the hard limit is discarded and stored as TimeLimitExceeded.
            struct context final : step_context {
                std::chrono::steady_clock::time_point soft_deadline = std::chrono::steady_clock::time_point::max();
                const std::atomic<bool>* stopping = nullptr;
                std::atomic<bool> terminated{false};  // revoke(terminate=True)
                bool stop_requested() const override {
                    return stopping->load(std::memory_order_relaxed) || terminated.load(std::memory_order_relaxed) ||
                           std::chrono::steady_clock::now() >= soft_deadline;
                }
            } ctx;
            const auto& st = step->second;
            auto started = std::chrono::steady_clock::now();
            std::optional<double> hard = m.hard_time_limit;
            if (!hard && st.policy.timeout.count() > 0) hard = std::chrono::duration<double>(st.policy.timeout).count();
            if (auto soft = m.soft_time_limit ? m.soft_time_limit : hard)
                ctx.soft_deadline = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                  std::chrono::duration<double>(*soft));
            ctx.stopping = &stopping;
            ctx.workflow = st.workflow;
            ctx.step = st.name;
            ctx.attempt = static_cast<int>(m.retries) + 1;
            running_scope registered(*this, m.id, ctx.terminated);
            try {
                detail::step_scope scope(&ctx);
                json::array args = m.args;
                const auto& s = st;
                // A chord body receives [[r0, r1, ...]]; a weft join takes one parameter per parent.
                if (s.arity >= 2 && args.size() == 1 && args[0].is_array() && args[0].get_array().size() == s.arity)
                    args = json::array(args[0].get_array());
                retval = s.invoke(args);
                if (hard && std::chrono::steady_clock::now() - started > std::chrono::duration<double>(*hard))
                    throw time_limit_exceeded("TimeLimitExceeded(" + json_number(*hard) + ")");
            } catch (const std::exception& e) {
                if (!ctx.terminated) {
                    fail(c, m, step->second, e);
                    return false;
                }
            } catch (...) {
                if (!ctx.terminated) {
                    fail(c, m, step->second, std::runtime_error("the step threw something that is not a std::exception"));
                    return false;
                }
            }
            if (ctx.terminated) {
                // A thread cannot be killed: the step was asked to stop (stop_requested()), and
                // whatever it returned is discarded, as Python's terminated task leaves nothing.
                log("info", "task " + m.task + "[" + m.id + "] terminated by a revoke");
                revoke_rest(c, m);
                return store(c, make_meta(m, task_state::revoked,
                                          exception_info{"TaskRevokedError", "celery.exceptions", json::array{"terminated"}}
                                              .to_value()),
                             &tag);
            }
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
            dead_letter(c, list, raw, "continuation: " + e.reason());
        }
        if (m.chord) chord_join(c, m, task_state::success, retval);
        return false;
    }

    void fail(connections& c, message& m, const erased_step& s, const std::exception& e) {
        auto exc = to_exception(e);
        std::string tb = "weft C++ step '" + std::string(s.name) + "' (workflow '" + std::string(s.workflow) +
                         "') threw " + exc.type + ": " + e.what() + "\n";
        int attempt = static_cast<int>(m.retries) + 1;
        if (attempt < s.policy.retry.max_attempts) {
            // Celery's retry: the same task id again, retries + 1, due after the backoff.
            auto delay = s.policy.retry.delay_before(attempt + 1);
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
        for (auto& sig : m.chain) {
            if (sig.task_id().empty()) continue;
            message stub;
            stub.id = sig.task_id();
            stub.parent_id = m.id;
            store(c, make_meta(stub, task_state::failure, exc.to_value(), tb));
        }
        if (m.chord) chord_join(c, m, task_state::failure, exc.to_value());
        for (auto& eb : m.errbacks) {
            message n = continuation(feed_of(m, json::value(m.id)), eb, {});
            n.args = json::array{json::value(m.id)};
            publish(c, n);
        }
    }

    void revoke_rest(connections& c, const message& m) {
        for (auto& sig : m.chain) {
            if (sig.task_id().empty()) continue;
            message stub;
            stub.id = sig.task_id();
            store(c, make_meta(stub, task_state::revoked,
                               exception_info{"TaskRevokedError", "celery.exceptions", json::array{"revoked"}}.to_value()));
        }
    }

    // The Redis backend's chord join, run by every header task: the same Lua scripts as Celery 5.7's
    // RedisBackend.on_chord_part_return, so C++ and Python headers of one chord join together. The
    // script adds this result to .j once (deduplicated in .d by id:index), counts, and lets exactly
    // one worker claim the dispatch (.c); after the body is sent, cleanup deletes the chord's keys
    // and leaves .c = "done" so a late duplicate header cannot fire it again.
    static constexpr const char* part_return_lua = R"lua(
local jkey, tkey, skey, dkey, gkey, ckey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local tid, value, ordered, score = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expires, group_expires = tonumber(ARGV[5]), tonumber(ARGV[6])
local claim_expires = tonumber(ARGV[7])
local claim_token = ARGV[8]
local done_marker = redis.call('GET', ckey)
if done_marker == 'done' then
    return {-1, 0, 0, 0}
end
local member = tid .. ':' .. score
if redis.call('SISMEMBER', dkey, member) == 0 then
    if ordered == '1' then
        redis.call('ZADD', jkey, score, value)
    else
        redis.call('RPUSH', jkey, value)
    end
    redis.call('SADD', dkey, member)
end
local readycount
if ordered == '1' then
    readycount = redis.call('ZCOUNT', jkey, '-inf', '+inf')
else
    readycount = redis.call('LLEN', jkey)
end
if expires > 0 then
    for _, key in ipairs({jkey, tkey, skey, dkey}) do
        redis.call('EXPIRE', key, expires)
    end
    if group_expires > 0 then
        redis.call('EXPIRE', gkey, group_expires)
    end
end
local totaldiff = redis.call('GET', tkey)
local size = redis.call('GET', skey)
local claimed = 0
if size and readycount == tonumber(size) + tonumber(totaldiff or 0) then
    if redis.call('SET', ckey, claim_token, 'NX', 'EX', claim_expires) then
        claimed = 1
    end
end
return {readycount, totaldiff, size, claimed}
)lua";
    static constexpr const char* cleanup_lua = R"lua(
local ckey = KEYS[1]
local jkey = KEYS[2]
local tkey = KEYS[3]
local skey = KEYS[4]
local dkey = KEYS[5]
local token = ARGV[1]
local done_expires = tonumber(ARGV[2])
if redis.call('GET', ckey) == token then
    redis.call('DEL', jkey, tkey, skey, dkey)
    if done_expires and done_expires > 0 then
        redis.call('SET', ckey, 'done', 'EX', done_expires)
    end
    return 1
end
return 0
)lua";

    void chord_join(connections& c, const message& m, task_state state, const json::value& result) {
        if (!m.group) {
            log("error", "task " + m.id + " carries a chord but no group id; the chord cannot be joined");
            return;
        }
        auto base = taskset_of(*m.group);
        auto j = base + ".j", s = base + ".s", t = base + ".t", d = base + ".d", ck = base + ".c";
        json::array member{1, json::value(m.id), json::value(to_string(state)), result};
        std::string score = m.group_index ? std::to_string(*m.group_index) : "+inf";
        auto token = new_id();
        auto r = c.results().command({"EVAL", part_return_lua, "6", j, t, s, d, base, ck, m.id,
                                    boost::json::serialize(member), "1", score,
                                    std::to_string(opts.result_expires.count()), "0", "10", token});
        if (r.type != redis_reply::kind::array || r.elements.size() != 4) {
            log("error", "chord join for group " + *m.group + ": unexpected reply from Redis");
            return;
        }
        if (r.elements[0].integer == -1) return;                   // already dispatched
        if (r.elements[2].type != redis_reply::kind::string) return;  // no .s: not a Redis-joined chord
        long long size = std::stoll(r.elements[2].str);
        long long total = r.elements[1].type == redis_reply::kind::string ? std::stoll(r.elements[1].str) : 0;
        if (r.elements[0].integer != size + total || r.elements[3].integer != 1) return;

        auto members = c.results().command({"ZRANGE", j, "0", "-1"});
        json::array values;
        std::optional<std::string> failed_id;
        std::string failed_repr;
        for (auto& e : members.elements) {
            auto a = json::parse(e.str).as_array();
            auto st = state_from_string(a.at(2).as_string());
            if ((st == task_state::failure || st == task_state::revoked) && !failed_id) {
                failed_id = std::string(a.at(1).as_string());
                auto ex = exception_info::from_value(a.at(3));
                // Python's repr of the exception: ValueError('header broke')
                std::string arg;
                if (ex && !ex->message.empty())
                    arg = ex->message[0].is_string() ? "'" + std::string(ex->message[0].get_string()) + "'"
                                                     : boost::json::serialize(ex->message[0]);
                failed_repr = ex ? ex->type + "(" + arg + ")" : "failure";
            }
            values.push_back(a.at(3));
        }
        const signature& body = *m.chord;
        if (failed_id) {
            message stub;
            stub.id = body.task_id();
            store(c, make_meta(stub, task_state::failure,
                               exception_info{"ChordError", "celery.exceptions",
                                              json::array{"Dependency " + *failed_id + " raised " + failed_repr}}
                                   .to_value()));
            // As Python: drop the size so a late copy of a header does not fail the chord again.
            c.results().command({"DEL", s});
            return;
        } else {
            auto n = continuation(feed_of(m, values), body, {});
            n.group.reset();
            n.group_index.reset();
            n.chord.reset();
            if (auto g = body.options.find("group_id"); g != body.options.end() && g->value().is_string())
                n.group = std::string(g->value().get_string());
            publish(c, n);
        }
        c.results().command({"EVAL", cleanup_lua, "5", ck, j, t, s, d, token, "300"});
    }

    // ---- threads ---------------------------------------------------------------------------------

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
                    if (stopping) return;
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
                        std::vector<delivery> got;
                        try {
                            got = fetch(*c.broker_conn, c.fetch_sha, n, false);
                        } catch (const std::exception& e) {
                            log("error", "worker thread " + std::to_string(index) + ": " + e.what());
                            c.broker_conn.reset();
                            c.results_conn.reset();
                        }
                        lock.lock();
                        held -= n - static_cast<unsigned>(got.size());
                        for (auto& g : got) ready.push_back(std::move(g));
                        if (got.size() > 1) work_cv.notify_all();
                        tried = got.empty();
                        continue;
                    }
                    if (timers.empty()) work_cv.wait(lock);
                    else work_cv.wait_until(lock, timers.front().due);
                    tried = false;
                }
            }
            try {
                if (!c.broker_conn) {
                    c.broker_conn = std::make_unique<redis_connection>(broker, opts.timeout);
                    if (!same_server) c.results_conn = std::make_unique<redis_connection>(results, opts.timeout);
                    c.fetch_sha = c.broker_conn->command({"SCRIPT", "LOAD", fetch_lua}).str;
                }
                if (due) run_due(c, *due);
                else handle(c, *d);
            } catch (const std::exception& e) {
                // A lost connection or a Redis error: the message stays unacked (the visibility
                // timeout brings it back); reconnect after a pause, never die.
                log("error", "worker thread " + std::to_string(index) + ": " + e.what());
                c.broker_conn.reset();
                c.results_conn.reset();
                sleep_for(std::chrono::milliseconds(500));
            }
            if (d) {
                bool low;
                {
                    std::lock_guard lock(work_m);
                    --held;
                    low = held < prefetch;
                }
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
                auto k = keys_of(d.raw, d.list);
                std::vector<std::vector<std::string>> cmds{{"MULTI"}};
                if (!k.tag.empty())
                    for (auto& cmd : ack_commands(k.tag)) cmds.push_back(std::move(cmd));
                cmds.push_back({"RPUSH", d.list, d.raw});
                cmds.push_back({"EXEC"});
                c.pipeline(cmds);
                ++restored;
            }
            log("info", "put " + std::to_string(left.size()) + " prefetched message(s) back on their queues");
        } catch (const std::exception& e) {
            log("error", "cannot put prefetched messages back (the visibility timeout will): " + std::string(e.what()));
        }
    }
};

celery::worker::worker(worker_options opts) : impl_(std::make_unique<impl>()) {
    impl_->broker = redis_url::parse(opts.broker_url);
    impl_->results = redis_url::parse(opts.result_url.empty() ? opts.broker_url : opts.result_url);
    impl_->same_server = impl_->broker.redacted() == impl_->results.redacted() && impl_->broker.password == impl_->results.password;
    if (opts.queues.empty()) opts.queues.push_back(opts.queue);
    if (opts.concurrency == 0) opts.concurrency = 1;
    impl_->prefetch = opts.prefetch_multiplier * opts.concurrency;
    for (const char* suffix : {"", "\x06\x16" "3", "\x06\x16" "6", "\x06\x16" "9"})
        for (auto& q : opts.queues) impl_->keys.push_back(opts.global_keyprefix + q + suffix);
    impl_->unacked_key = opts.global_keyprefix + "unacked";
    impl_->unacked_index_key = opts.global_keyprefix + "unacked_index";
    impl_->unacked_mutex_key = opts.global_keyprefix + "unacked_mutex";
    impl_->opts = std::move(opts);
}

celery::worker::~worker() { stop(); }

void celery::worker::serve(const erased_step& step) { impl_->steps.insert_or_assign(std::string(step.name), step); }

void celery::worker::start() {
    std::lock_guard lock(impl_->threads_m);
    if (!impl_->threads.empty()) return;
    impl_->stopping = false;
    impl_->flusher_stop = false;
    impl_->threads.emplace_back([this] { impl_->listen_revokes(); });
    impl_->threads.emplace_back([this] { impl_->fetch_loop(); });
    for (unsigned i = 0; i < impl_->opts.concurrency; ++i) impl_->threads.emplace_back([this, i] { impl_->consume(i); });
    impl_->flusher = std::thread([this] { impl_->flush_deferred(); });
    impl_->log("info", "worker " + impl_->hostname + " consuming " + std::to_string(impl_->opts.queues.size()) +
                           " queue(s) from " + impl_->broker.redacted() + " with " +
                           std::to_string(impl_->opts.concurrency) + " thread(s), prefetch " +
                           (impl_->prefetch ? std::to_string(impl_->prefetch) : std::string("unlimited")));
}

void celery::worker::run() {
    start();
    {
        std::unique_lock lock(impl_->sleep_m);
        impl_->sleep_cv.wait(lock, [&] { return impl_->stopping.load(); });
    }
    stop();
}

void celery::worker::stop() {
    {
        std::lock_guard lock(impl_->sleep_m);
        impl_->stopping = true;
    }
    impl_->sleep_cv.notify_all();
    {
        std::lock_guard lock(impl_->work_m);  // no consumer misses the wake-up between its check and wait
    }
    impl_->work_cv.notify_all();
    impl_->room_cv.notify_all();
    std::lock_guard lock(impl_->threads_m);
    if (impl_->threads.empty()) return;
    for (auto& t : impl_->threads)
        if (t.joinable()) t.join();
    impl_->threads.clear();
    {
        std::lock_guard dl(impl_->defer_m);
        impl_->flusher_stop = true;
    }
    impl_->defer_cv.notify_all();
    if (impl_->flusher.joinable()) impl_->flusher.join();
    impl_->restore_held();
}

celery::worker::counters celery::worker::stats() const {
    return {impl_->succeeded.load(), impl_->failed.load(), impl_->retried.load(), impl_->dead_lettered.load(),
            impl_->restored.load()};
}

}  // namespace weft
