#include "kombu.hpp"

#include <boost/json/serialize.hpp>

#include <cstdio>
#include <optional>

namespace weft::celery_wire {

namespace {

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
// escape; the worker checks what was recorded against its own decoding (kombu::check).
// Returns, per message, [list, envelope, tag, exchange, routing_key, id, meta], each nil when
// not found; a message it cannot read is popped all the same (the worker dead-letters it) but
// not recorded, as kombu could not restore it either.
constexpr const char* fetch_lua = R"lua(
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

std::string unix_score(double seconds_ago = 0) {
    char s[64];
    std::snprintf(s, sizeof s, "%.6f",
                  std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() - seconds_ago);
    return s;
}

// Recording in unacked as kombu's QoS.append does, the hash value [envelope, exchange, routing_key]
// with the envelope inside as JSON (the fetch script writes the same). Only an envelope that parsed
// has a tag to record it under.
void record(std::vector<std::vector<std::string>>& cmds, const std::string& index, const std::string& hash,
            const delivery& d, const std::string& routing_key, const std::string& score = unix_score()) {
    auto quoted = [](const std::string& v) { return boost::json::serialize(json::value(v)); };
    cmds.push_back({"ZADD", index, score, d.m.delivery_tag});
    cmds.push_back(
        {"HSET", hash, d.m.delivery_tag, "[" + d.raw + ", " + quoted(d.m.exchange) + ", " + quoted(routing_key) + "]"});
}

void decode(delivery& d) {
    try {
        decode_envelope(d.raw, d.m);
    } catch (const wire_error& e) {
        d.error = e;
    }
}

}  // namespace

kombu::kombu(const std::string& global_keyprefix, const std::vector<std::string>& queues, std::string meta_prefix)
    : prefix_(global_keyprefix), meta_prefix_(std::move(meta_prefix)), unacked_(prefix_ + "unacked"),
      unacked_index_(prefix_ + "unacked_index"), unacked_mutex_(prefix_ + "unacked_mutex") {
    for (const char* suffix : {"", "\x06\x16" "3", "\x06\x16" "6", "\x06\x16" "9"})
        for (auto& q : queues) keys_.push_back(prefix_ + q + suffix);
}

std::string kombu::queue_of(std::string_view list) const {
    if (list.substr(0, prefix_.size()) == prefix_) list.remove_prefix(prefix_.size());
    return queue_of_list(list);
}

std::string kombu::load_script(redis_connection& c) const { return c.command({"SCRIPT", "LOAD", fetch_lua}).str; }

// `sha`: fetch_lua's SHA1 from this connection's SCRIPT LOAD; null: send the script (EVAL).
std::vector<std::string> kombu::fetch_command(unsigned n, const std::string* sha, const std::string& score) const {
    std::vector<std::string> cmd{sha ? "EVALSHA" : "EVAL", sha ? *sha : fetch_lua, std::to_string(keys_.size() + 2),
                                 unacked_, unacked_index_};
    cmd.insert(cmd.end(), keys_.begin(), keys_.end());
    cmd.push_back(std::to_string(n));
    cmd.push_back(score);
    cmd.push_back(meta_prefix_);
    return cmd;
}

void kombu::take(redis_connection& c, redis_reply& r, std::vector<delivery>& out, const log_fn& log) const {
    if (r.type == redis_reply::kind::error)
        throw redis_error("weft: fetching messages failed (the worker needs Redis 6.2 or later, with Lua scripting): " +
                          r.str);
    auto str = [](redis_reply& e) { return e.type == redis_reply::kind::string ? std::move(e.str) : std::string(); };
    for (std::size_t i = 0; i + 6 < r.elements.size(); i += 7) {
        delivery d{str(r.elements[i]), str(r.elements[i + 1])};
        d.tag = str(r.elements[i + 2]);
        d.meta_read = !meta_prefix_.empty();
        if (r.elements[i + 6].type == redis_reply::kind::string) d.meta = r.elements[i + 6].str;
        decode(d);
        check(c, d, str(r.elements[i + 3]), str(r.elements[i + 4]), str(r.elements[i + 5]), log);
        out.push_back(std::move(d));
    }
}

// The script finds the tag, exchange, routing key and id by their keys; should a producer's
// envelope fool that, the decoded envelope wins: the unacked entry is rewritten under the right
// tag, and the meta read again.
void kombu::check(redis_connection& c, delivery& d, const std::string& exchange, const std::string& routing_key,
                  const std::string& meta_id, const log_fn& log) const {
    if (d.error) return;
    const message& m = d.m;
    if (meta_id != m.id) {
        d.meta.reset();
        d.meta_read = false;
    }
    if (d.tag == m.delivery_tag && exchange == m.exchange && routing_key == m.queue) return;
    log("warning", "message " + m.id + ": the fetch recorded it under tag '" + d.tag + "'; re-recording it");
    std::vector<std::vector<std::string>> cmds;
    if (!d.tag.empty()) cmds = ack_commands({d.tag});
    if (!m.delivery_tag.empty()) record(cmds, unacked_index_, unacked_, d, m.queue);
    if (!cmds.empty()) c.pipeline(cmds);
    d.tag = m.delivery_tag;
}

std::vector<delivery> kombu::fetch(redis_connection& c, const std::string& sha, unsigned n, bool block,
                                   const log_fn& log, std::string& score) const {
    std::vector<delivery> out;
    score = unix_score();  // every message this fetch records has it: reclaim() finds them by it
    auto r = c.pipeline({fetch_command(n, &sha, score)}).front();
    if (r.type == redis_reply::kind::error && r.str.rfind("NOSCRIPT", 0) == 0)
        r = c.pipeline({fetch_command(n, nullptr, score)}).front();  // a restarted Redis: EVAL caches it again
    take(c, r, out, log);
    if (out.empty() && block) {
        std::vector<std::string> cmd{"BRPOP"};
        cmd.insert(cmd.end(), keys_.begin(), keys_.end());
        cmd.push_back("1");
        auto b = c.command(cmd);
        if (b.type != redis_reply::kind::array || b.elements.size() != 2) return out;
        // kombu's own window: popped by BRPOP, then recorded. A crash in between loses it (as in kombu).
        delivery d{b.elements[0].str, b.elements[1].str};
        decode(d);
        const message& m = d.m;
        std::vector<std::vector<std::string>> cmds;
        if (!m.delivery_tag.empty()) {
            d.tag = m.delivery_tag;
            record(cmds, unacked_index_, unacked_, d, m.queue.empty() ? queue_of(d.list) : m.queue, score);
        }
        bool read_meta = !meta_prefix_.empty() && !m.id.empty();
        if (read_meta) cmds.push_back({"GET", meta_prefix_ + m.id});
        if (n > 1) cmds.push_back(fetch_command(n - 1, &sha, score));
        std::vector<redis_reply> replies;
        if (!cmds.empty()) replies = c.pipeline(cmds);
        std::size_t at = d.tag.empty() ? 0 : 2;
        if (read_meta) {
            d.meta_read = true;
            if (replies[at].type == redis_reply::kind::string) d.meta = replies[at].str;
            ++at;
        }
        out.push_back(std::move(d));
        if (n > 1 && replies[at].type != redis_reply::kind::error) take(c, replies[at], out, log);
    }
    return out;
}

std::string kombu::readable_id(std::string_view raw) {
    for (std::size_t at = raw.find("\"id\""); at != std::string_view::npos; at = raw.find("\"id\"", at + 1)) {
        std::size_t c = at + 4;
        while (c < raw.size() && raw[c] == ' ') ++c;
        if (c >= raw.size() || raw[c] != ':') continue;
        ++c;
        while (c < raw.size() && raw[c] == ' ') ++c;
        if (c >= raw.size() || raw[c] != '"') continue;
        std::size_t end = raw.find('"', c + 1);
        if (end == std::string_view::npos) return {};
        std::string_view v = raw.substr(c + 1, end - c - 1);
        if (v.find('\\') != std::string_view::npos || v.empty()) continue;
        return std::string(v);
    }
    return {};
}

std::vector<std::vector<std::string>> kombu::ack_commands(const std::vector<std::string>& tags) const {
    std::vector<std::vector<std::string>> cmds{{"ZREM", unacked_index_}, {"HDEL", unacked_}};
    for (auto& t : tags) {
        cmds[0].push_back(t);
        cmds[1].push_back(t);
    }
    return cmds;
}

namespace {

// Moves an unacked entry back to its list, only if this sweep still owns it (another worker's sweep,
// or the worker acking it, may have taken it since it was read).
constexpr const char* restore_lua = R"lua(
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if KEYS[3] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[2]) end
return 1
)lua";

struct unacked_entry {
    std::string envelope;  // as it goes back on the list
    std::string routing_key;
    int priority = 0;
};

// An unacked entry is [envelope, exchange, routing_key] (kombu's and weft's), normally JSON; an
// envelope that is not JSON (the fetch records a message whose tag it could read) still has its
// exchange and routing key at the end, where this finds them, so it goes back all the same and the
// worker that takes it dead-letters it with a FAILURE meta for its id.
std::optional<unacked_entry> read_entry(const std::string& text) {
    try {
        auto entry = json::parse(text).as_array();
        unacked_entry out{{}, std::string(entry.at(2).as_string())};
        if (auto* o = entry[0].if_object()) {
            if (auto p = o->find("properties"); p != o->end() && p->value().is_object()) {
                auto& props = p->value().get_object();
                if (auto pr = props.find("priority"); pr != props.end() && pr->value().is_int64())
                    out.priority = static_cast<int>(pr->value().get_int64());
                if (auto di = props.find("delivery_info"); di != props.end() && di->value().is_object())
                    di->value().get_object()["redelivered"] = true;
            }
            if (auto h = o->find("headers"); h != o->end() && h->value().is_object())
                h->value().get_object()["redelivered"] = true;
        }
        out.envelope = entry[0].is_string() ? std::string(entry[0].get_string()) : boost::json::serialize(entry[0]);
        return out;
    } catch (const std::exception&) {
    }
    if (text.size() < 2 || text.front() != '[' || text.back() != ']') return std::nullopt;
    // The last two `, "` separators: [<envelope>, "<exchange>", "<routing_key>"].
    std::size_t last = text.rfind(", \"");
    std::size_t before = last == std::string::npos || last == 0 ? std::string::npos : text.rfind(", \"", last - 1);
    if (before == std::string::npos) return std::nullopt;
    try {
        auto tail = json::parse("[" + text.substr(before + 2)).as_array();
        if (tail.size() != 2 || !tail[1].is_string()) return std::nullopt;
        return unacked_entry{text.substr(1, before - 1), std::string(tail[1].get_string())};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace

// Under the unacked_mutex lock, put back every message unacked for longer than the visibility
// timeout (a worker that died holding it), at the consuming end, flagged redelivered as kombu
// flags it. An entry is read before it is removed, and removed only with the move back (one
// script): nothing leaves unacked without going somewhere. One that cannot be read at all goes to
// `unreadable` (the worker dead-letters it) before it is removed.
unsigned kombu::restore_visible(redis_connection& c, std::chrono::seconds visibility_timeout, const log_fn& log,
                                const std::function<void(const std::string& entry, const std::string& reason)>& unreadable) const {
    auto token = new_id();
    auto got = c.command({"SET", unacked_mutex_, token, "NX", "PX", "300000"});
    if (got.type != redis_reply::kind::status) return 0;  // another worker is sweeping
    unsigned restored = 0;
    auto due = c.command({"ZRANGEBYSCORE", unacked_index_, "0", unix_score(static_cast<double>(visibility_timeout.count()))});
    for (auto& t : due.elements) {
        auto r = c.command({"HGET", unacked_, t.str});
        if (r.type != redis_reply::kind::string) {  // acked meanwhile, or an index entry without its message
            c.command({"EVAL", restore_lua, "3", unacked_index_, unacked_, "", t.str, ""});
            continue;
        }
        auto entry = read_entry(r.str);
        if (!entry) {
            unreadable(r.str, "unacked entry " + t.str + " is not [envelope, exchange, routing_key]");
            c.command({"EVAL", restore_lua, "3", unacked_index_, unacked_, "", t.str, ""});
            log("error", "dead-lettered unacked message " + t.str + ": its entry cannot be read");
            continue;
        }
        auto moved = c.command({"EVAL", restore_lua, "3", unacked_index_, unacked_, list_of(entry->routing_key, entry->priority),
                                t.str, entry->envelope});
        if (moved.integer != 1) continue;  // someone else took it
        ++restored;
        log("warning", "restored unacked message " + t.str + " to queue " + entry->routing_key +
                           " (its worker held it past the visibility timeout)");
    }
    // Release the lock only if it is still ours.
    auto cur = c.command({"GET", unacked_mutex_});
    if (cur.str == token) c.command({"DEL", unacked_mutex_});
    return restored;
}

// A fetch whose reply was lost (the connection broke after the script ran) recorded its messages
// in unacked with its own score, and nobody holds them: they go back to their lists now rather
// than after the visibility timeout.
unsigned kombu::reclaim(redis_connection& c, const std::string& score, const log_fn& log) const {
    unsigned back = 0;
    auto tags = c.command({"ZRANGEBYSCORE", unacked_index_, score, score});
    for (auto& t : tags.elements) {
        auto r = c.command({"HGET", unacked_, t.str});
        if (r.type != redis_reply::kind::string) continue;
        auto entry = read_entry(r.str);
        if (!entry) continue;  // restore_visible dead-letters it in time
        auto moved = c.command({"EVAL", restore_lua, "3", unacked_index_, unacked_, list_of(entry->routing_key, entry->priority),
                                t.str, entry->envelope});
        back += moved.integer == 1;
    }
    if (back) log("warning", "put back " + std::to_string(back) + " message(s) a fetch took while the connection broke");
    return back;
}

// As kombu's restore_unacked at shutdown: back at the consuming end, out of unacked, atomically.
void kombu::restore(redis_connection& c, const delivery& d) const {
    std::vector<std::vector<std::string>> cmds{{"MULTI"}};
    if (!d.tag.empty())
        for (auto& cmd : ack_commands({d.tag})) cmds.push_back(std::move(cmd));
    cmds.push_back({"RPUSH", d.list, d.raw});
    cmds.push_back({"EXEC"});
    c.pipeline(cmds);
}

}  // namespace weft::celery_wire
