#include "pidbox.hpp"

#include <boost/json/serialize.hpp>

#include <cmath>
#include <ctime>
#include <fnmatch.h>
#include <regex>
#include <sys/resource.h>
#include <unistd.h>

namespace weft::celery_wire {

namespace {

std::string string_field(const json::object& o, std::string_view key) {
    auto v = member(o, key);
    if (!v || v->is_null()) return {};
    if (!v->is_string()) throw wire_error("the control message's " + std::string(key) + " is not a string");
    return std::string(v->get_string());
}

// Celery's utcoffset(): hours *west* of UTC (time.timezone / 3600), as a float.
double utc_offset_hours() {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    ::localtime_r(&now, &local);
    const double west = -static_cast<double>(local.tm_gmtoff) / 3600.0;
    return west == 0 ? 0.0 : west;  // never -0.0
}

}  // namespace

control_request decode_control(std::string_view envelope) {
    const json::object env = parse_object(envelope, "the control message");
    const json::object* eo = &env;
    auto b = member(*eo, "body");
    if (!b || !b->is_string()) throw wire_error("the control message has no body string");
    const json::object body = parse_object(base64_decode(b->get_string()), "the control message's body");
    const json::object* bo = &body;
    control_request r;
    r.method = string_field(*bo, "method");
    if (r.method.empty()) throw wire_error("the control message names no method");
    if (auto a = member(*bo, "arguments"); a && !a->is_null()) {
        if (!a->is_object()) throw wire_error("the arguments of '" + r.method + "' are not an object");
        r.arguments = a->get_object();
    }
    if (auto d = member(*bo, "destination"); d && !d->is_null()) {
        std::vector<std::string> names;
        if (d->is_string()) names.emplace_back(d->get_string());
        else if (auto da = d->if_array())
            for (auto& n : *da) {
                if (!n.is_string()) throw wire_error("the destination of '" + r.method + "' has a name that is not a string");
                names.emplace_back(n.get_string());
            }
        else throw wire_error("the destination of '" + r.method + "' is not a list of node names");
        r.destination = std::move(names);
    }
    r.pattern = string_field(*bo, "pattern");
    r.matcher = string_field(*bo, "matcher");
    if (auto t = member(*bo, "ticket"); t && t->is_string()) r.ticket = t->get_string();
    if (auto rt = member(*bo, "reply_to"); rt && !rt->is_null()) {
        auto ro = rt->if_object();
        if (!ro) throw wire_error("the reply_to of '" + r.method + "' is not an object");
        r.reply_exchange = string_field(*ro, "exchange");
        r.reply_routing_key = string_field(*ro, "routing_key");
    }
    if (auto h = member(*eo, "headers"); h && h->is_object())
        if (auto c = member(h->get_object(), "clock"); c && c->is_int64() && c->get_int64() > 0)
            r.clock = static_cast<std::uint64_t>(c->get_int64());
    return r;
}

revoke_request revoke_arguments(const json::object& args) {
    revoke_request r;
    if (auto t = member(args, "terminate"); t && !t->is_null()) {
        if (!t->is_bool()) throw wire_error("revoke's terminate is not a boolean");
        r.terminate = t->get_bool();
    }
    auto id = member(args, "task_id");
    if (!id || id->is_null()) return r;
    if (id->is_string()) r.ids.emplace_back(id->get_string());
    else if (auto a = id->if_array())
        for (auto& x : *a) {
            if (!x.is_string()) throw wire_error("revoke's task_id list holds something that is not a string");
            r.ids.emplace_back(x.get_string());
        }
    else throw wire_error("revoke's task_id is not an id or a list of ids");
    return r;
}

std::optional<revoke_request> read_revoke(std::string_view envelope) {
    try {
        auto r = decode_control(envelope);
        if (r.method != "revoke") return std::nullopt;
        return revoke_arguments(r.arguments);
    } catch (const wire_error&) {
        return std::nullopt;
    }
}

bool addressed_to(const control_request& r, std::string_view nodename) {
    if (r.destination && !r.destination->empty())
        return std::find(r.destination->begin(), r.destination->end(), nodename) != r.destination->end();
    if (!r.pattern.empty() && !r.matcher.empty()) {
        const std::string node(nodename);
        if (r.matcher == "glob") return ::fnmatch(r.pattern.c_str(), node.c_str(), 0) == 0;
        if (r.matcher == "pcre") {
            try {  // Python's re.match: anchored at the start only
                return std::regex_search(node, std::regex(r.pattern), std::regex_constants::match_continuous);
            } catch (const std::regex_error&) {
                return false;
            }
        }
        return false;  // kombu raises for an unknown matcher: nobody answers
    }
    return true;
}

std::string control_reply(const control_request& r, const std::string& nodename, json::value reply, std::uint64_t clock) {
    json::object body;
    body[nodename] = std::move(reply);
    json::object headers{{"ticket", r.ticket}, {"clock", clock}};
    json::object props{{"delivery_mode", 1},
                       {"delivery_info", json::object{{"exchange", r.reply_exchange}, {"routing_key", r.reply_routing_key}}},
                       {"priority", 0}, {"body_encoding", "base64"}, {"delivery_tag", new_id()}};
    return envelope_text(boost::json::serialize(body), std::move(headers), std::move(props));
}

unsigned send_reply(redis_connection& c, const std::string& keyprefix, const control_request& r, const std::string& envelope) {
    static const std::string sep = "\x06\x16";
    auto table = c.command({"SMEMBERS", keyprefix + "_kombu.binding." + r.reply_exchange});
    std::vector<std::vector<std::string>> pushes;
    for (auto& m : table.elements) {
        // routing_key \x06\x16 pattern \x06\x16 queue
        auto a = m.str.find(sep);
        auto b = a == std::string::npos ? std::string::npos : m.str.find(sep, a + sep.size());
        if (b == std::string::npos || m.str.compare(0, a, r.reply_routing_key) != 0 || a != r.reply_routing_key.size()) continue;
        std::string queue = m.str.substr(b + sep.size());
        if (!queue.empty()) pushes.push_back({"LPUSH", keyprefix + queue, envelope});
    }
    if (!pushes.empty()) c.pipeline(pushes);
    return static_cast<unsigned>(pushes.size());
}

std::vector<std::string> event_command(const std::string& keyprefix, int db, std::string_view type, json::object fields,
                                       const std::string& nodename, std::uint64_t clock) {
    std::string routing_key(type);
    std::replace(routing_key.begin(), routing_key.end(), '-', '.');
    json::object event{{"hostname", nodename}, {"utcoffset", utc_offset_hours()}, {"pid", static_cast<std::int64_t>(::getpid())},
                       {"clock", clock}};
    for (auto& kv : fields) event[kv.key()] = std::move(kv.value());
    event["timestamp"] = unix_now();
    event["type"] = type;
    json::object headers{{"hostname", nodename}};
    json::object props{{"delivery_mode", 1},
                       {"delivery_info", json::object{{"exchange", "celeryev"}, {"routing_key", routing_key}}},
                       {"priority", 0}, {"body_encoding", "base64"}, {"delivery_tag", new_id()}};
    return {"PUBLISH", keyprefix + "/" + std::to_string(db) + ".celeryev/" + routing_key,
            envelope_text(boost::json::serialize(event), std::move(headers), std::move(props))};
}

void listen_once(const redis_url& broker, std::chrono::milliseconds timeout, const std::string& channel,
                 const kit::worker_threads& threads, const std::function<void(const std::string&)>& on_message) {
    redis_connection sub(broker, timeout);
    sub.send({"SUBSCRIBE", channel});
    while (!threads.stopping()) {
        auto r = sub.read(std::chrono::milliseconds(500));
        if (!r || r->type != redis_reply::kind::array || r->elements.size() != 3 || r->elements[0].str != "message")
            continue;
        on_message(r->elements[2].str);
    }
}

json::object rusage_info() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return {{"utime", secs(u.ru_utime)},   {"stime", secs(u.ru_stime)},     {"maxrss", u.ru_maxrss},
            {"ixrss", u.ru_ixrss},         {"idrss", u.ru_idrss},           {"isrss", u.ru_isrss},
            {"minflt", u.ru_minflt},       {"majflt", u.ru_majflt},         {"nswap", u.ru_nswap},
            {"inblock", u.ru_inblock},     {"oublock", u.ru_oublock},       {"msgsnd", u.ru_msgsnd},
            {"msgrcv", u.ru_msgrcv},       {"nsignals", u.ru_nsignals},     {"nvcsw", u.ru_nvcsw},
            {"nivcsw", u.ru_nivcsw}};
}

json::array load_average() {
    double l[3] = {0, 0, 0};
    if (::getloadavg(l, 3) != 3) return {0.0, 0.0, 0.0};
    json::array out;
    for (double x : l) out.push_back(std::ceil(x * 1e2) / 1e2);
    return out;
}

json::object queue_info(const std::string& queue) {
    // Celery's automatic queue: a direct exchange of the same name, the name as routing key.
    json::object exchange{{"name", queue},          {"type", "direct"}, {"arguments", nullptr}, {"durable", true},
                          {"passive", false},       {"auto_delete", false}, {"delivery_mode", nullptr},
                          {"no_declare", false}};
    return {{"name", queue},
            {"exchange", std::move(exchange)},
            {"routing_key", queue},
            {"queue_arguments", nullptr},
            {"binding_arguments", nullptr},
            {"consumer_arguments", nullptr},
            {"durable", true},
            {"exclusive", false},
            {"auto_delete", false},
            {"no_ack", false},
            {"alias", nullptr},
            {"bindings", json::array{}},
            {"no_declare", nullptr},
            {"expires", nullptr},
            {"message_ttl", nullptr},
            {"max_length", nullptr},
            {"max_length_bytes", nullptr},
            {"max_priority", nullptr}};
}

json::object broker_info(const redis_url& broker, std::chrono::milliseconds timeout, const std::string& keyprefix) {
    json::object transport_options;
    if (!keyprefix.empty()) transport_options["global_keyprefix"] = keyprefix;
    return {{"hostname", broker.host},
            {"userid", broker.username.empty() ? json::value(nullptr) : json::value(broker.username)},
            {"virtual_host", std::to_string(broker.db)},
            {"port", broker.port},
            {"insist", false},
            {"ssl", false},
            {"transport", "redis"},
            {"connect_timeout", std::chrono::duration<double>(timeout).count()},
            {"transport_options", std::move(transport_options)},
            {"login_method", nullptr},
            {"uri_prefix", nullptr},
            {"heartbeat", nullptr},
            {"failover_strategy", "round-robin"},
            {"alternates", json::array{}}};
}

}  // namespace weft::celery_wire
