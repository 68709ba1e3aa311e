#include "chord.hpp"

#include <boost/json/serialize.hpp>

namespace weft::celery_wire {

namespace {

// The Redis backend's chord join, run by every header task: the same Lua scripts as Celery 5.7's
// RedisBackend.on_chord_part_return, so C++ and Python headers of one chord join together. The
// script adds this result to .j once (deduplicated in .d by id:index), counts, and lets exactly
// one worker claim the dispatch (.c); after the body is sent, cleanup deletes the chord's keys
// and leaves .c = "done" so a late duplicate header cannot fire it again.
constexpr const char* part_return_lua = R"lua(
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
constexpr const char* cleanup_lua = R"lua(
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


}  // namespace

std::optional<chord_completion> chord_part_return(redis_connection& results, const std::string& base,
                                                  const message& m, task_state state, const json::value& result,
                                                  std::chrono::seconds expires, const log_fn& log) {
    json::array member{1, json::value(m.id), json::value(to_string(state)), result};
    std::string score = m.group_index ? std::to_string(*m.group_index) : "+inf";
    chord_completion out;
    out.token = new_id();
    auto r = results.command({"EVAL", part_return_lua, "6", base + ".j", base + ".t", base + ".s", base + ".d", base,
                              base + ".c", m.id, boost::json::serialize(member), "1", score,
                              std::to_string(expires.count()), "0", "10", out.token});
    if (r.type != redis_reply::kind::array || r.elements.size() != 4) {
        log("error", "chord join for group " + *m.group + ": unexpected reply from Redis");
        return std::nullopt;
    }
    if (r.elements[0].integer == -1) return std::nullopt;                   // already dispatched
    if (r.elements[2].type != redis_reply::kind::string) return std::nullopt;  // no .s: not a Redis-joined chord
    long long size = std::stoll(r.elements[2].str);
    long long total = r.elements[1].type == redis_reply::kind::string ? std::stoll(r.elements[1].str) : 0;
    if (r.elements[0].integer != size + total || r.elements[3].integer != 1) return std::nullopt;

    auto members = results.command({"ZRANGE", base + ".j", "0", "-1"});
    for (auto& e : members.elements) {
        auto a = json::parse(e.str).as_array();
        auto st = state_from_string(a.at(2).as_string());
        if ((st == task_state::failure || st == task_state::revoked) && !out.error) {
            auto ex = exception_info::from_value(a.at(3));
            // Python's repr of the exception: ValueError('header broke')
            std::string arg;
            if (ex && !ex->message.empty())
                arg = ex->message[0].is_string() ? "'" + std::string(ex->message[0].get_string()) + "'"
                                                 : boost::json::serialize(ex->message[0]);
            out.error = exception_info{"ChordError", "celery.exceptions",
                                       json::array{"Dependency " + std::string(a.at(1).as_string()) + " raised " +
                                                   (ex ? ex->type + "(" + arg + ")" : "failure")}};
        }
        out.values.push_back(a.at(3));
    }
    return out;
}

void chord_dispatched(redis_connection& results, const std::string& base, const std::string& token) {
    results.command({"EVAL", cleanup_lua, "5", base + ".c", base + ".j", base + ".t", base + ".s", base + ".d", token, "300"});
}

void chord_failed(redis_connection& results, const std::string& base) { results.command({"DEL", base + ".s"}); }

}  // namespace weft::celery_wire
