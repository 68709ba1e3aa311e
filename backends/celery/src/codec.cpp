#include "codec.hpp"

#include <boost/json/serialize.hpp>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <mutex>
#include <tuple>
#include <unistd.h>

namespace weft::celery_wire {

const json::value* member(const json::object& o, std::string_view key) {
    auto it = o.find(key);
    return it == o.end() ? nullptr : &it->value();
}

json::object parse_object(std::string_view text, const std::string& what) {
    json::value v;
    try {
        v = json::parse(text);
    } catch (const std::exception& e) {
        throw wire_error(what + " is not JSON: " + e.what());
    }
    if (!v.is_object()) throw wire_error(what + " is not a JSON object");
    return std::move(v.get_object());
}

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

namespace {

std::optional<std::string> opt_string(const json::object& o, std::string_view key, const char* where) {
    auto v = member(o, key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) throw wire_error(std::string(where) + "." + std::string(key) + " is not a string or null");
    return std::string(v->get_string());
}

// A Python int has no bound: one beyond int64 (which Boost.JSON reads as a uint64, or a double past
// 2^64) saturates, rather than wrap to a negative.
std::optional<std::int64_t> opt_int(const json::object& o, std::string_view key, const char* where) {
    constexpr auto most = std::numeric_limits<std::int64_t>::max();
    auto v = member(o, key);
    if (!v || v->is_null()) return std::nullopt;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) return v->get_uint64() > static_cast<std::uint64_t>(most) ? most : static_cast<std::int64_t>(v->get_uint64());
    if (v->is_double() && v->get_double() == std::trunc(v->get_double()) && std::fabs(v->get_double()) >= 0x1p63)
        return v->get_double() > 0 ? most : std::numeric_limits<std::int64_t>::min();
    throw wire_error(std::string(where) + "." + std::string(key) + " is not an integer or null");
}

// headers.timelimit [hard, soft] in seconds, each a number or null; a missing or null header is
// [null, null]. 0 is no limit, as in Python (`time_limit or task.time_limit`), and so is a limit too
// large for a deadline (the worker saturates it). A negative one has passed before the task starts
// (Python kills the task at its first check): refused, as is anything not a number. JSON has no
// infinity or NaN, and json::parse refuses 1e400.
std::pair<std::optional<double>, std::optional<double>> read_time_limits(const json::object& headers) {
    auto tl = member(headers, "timelimit");
    if (!tl || tl->is_null()) return {};
    auto a = tl->if_array();
    if (!a || a->size() != 2) throw wire_error("headers.timelimit is not [hard, soft] (seconds or null)");
    auto limit = [&](std::size_t k) -> std::optional<double> {
        const json::value& v = (*a)[k];
        std::string what = "headers.timelimit[" + std::to_string(k) + "] (the " + (k ? "soft" : "hard") + " time limit)";
        if (v.is_null()) return std::nullopt;
        if (!v.is_number()) throw wire_error(what + " is not a number or null");
        double d = v.to_number<double>();
        if (d < 0) throw wire_error(what + " is negative: " + boost::json::serialize(v));
        if (d == 0) return std::nullopt;
        return d;
    };
    return {limit(0), limit(1)};
}

json::value or_null(const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(nullptr); }

json::value sig_list(const std::vector<signature>& v) {
    if (v.empty()) return nullptr;
    json::array a;
    for (auto& s : v) a.push_back(s.to_value());
    return a;
}

std::vector<signature> read_sig_list(const json::object& embed, std::string_view key) {
    std::vector<signature> out;
    auto v = member(embed, key);
    if (!v || v->is_null()) return out;
    if (!v->is_array()) throw wire_error("embed." + std::string(key) + " is not a list or null");
    for (auto& s : v->get_array()) out.push_back(signature::from_value(s));
    return out;
}

}  // namespace

// Python's repr of an args list, for argsrepr (monitoring only): a tuple.
std::string py_repr_args(const json::array& args) {
    std::string s = "(";
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (i) s += ", ";
        s += py_repr(args[i]);
    }
    if (args.size() == 1) s += ",";
    return s + ")";
}

std::string envelope_text(std::string_view body, json::object headers, json::object properties) {
    json::object env;
    env["body"] = base64_encode(body);
    env["content-encoding"] = "utf-8";
    env["content-type"] = "application/json";
    env["headers"] = std::move(headers);
    env["properties"] = std::move(properties);
    return boost::json::serialize(env);
}

// ---- Python's repr ----------------------------------------------------------------------------------

std::string py_repr(const json::value& v) {
    switch (v.kind()) {
    case boost::json::kind::null: return "None";
    case boost::json::kind::bool_: return v.get_bool() ? "True" : "False";
    case boost::json::kind::string: {
        // str.__repr__: single quotes unless the text has a ' and no ", escapes for the rest.
        std::string_view t = v.get_string();
        const char q = t.find('\'') != std::string_view::npos && t.find('"') == std::string_view::npos ? '"' : '\'';
        std::string out(1, q);
        for (unsigned char c : t) {
            if (c == static_cast<unsigned char>(q) || c == '\\') out += '\\', out += static_cast<char>(c);
            else if (c == '\n') out += "\\n";
            else if (c == '\r') out += "\\r";
            else if (c == '\t') out += "\\t";
            else if (c < 0x20 || c == 0x7f) {
                char buf[5];
                std::snprintf(buf, sizeof buf, "\\x%02x", c);
                out += buf;
            } else out += static_cast<char>(c);  // UTF-8 passes through, as Python prints printable text
        }
        return out + q;
    }
    case boost::json::kind::array: {
        std::string out = "[";
        bool first = true;
        for (auto& x : v.get_array()) {
            if (!first) out += ", ";
            first = false;
            out += py_repr(x);
        }
        return out + "]";
    }
    case boost::json::kind::object: {
        std::string out = "{";
        bool first = true;
        for (auto& kv : v.get_object()) {
            if (!first) out += ", ";
            first = false;
            out += py_repr(json::value(kv.key())) + ": " + py_repr(kv.value());
        }
        return out + "}";
    }
    case boost::json::kind::double_: {
        // float.__repr__: the shortest round-trip digits, fixed for exponents -4..15, else 1e+16.
        const double d = v.get_double();
        char buf[64];
        auto sci = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
        std::string_view text(buf, static_cast<std::size_t>(sci.ptr - buf));
        auto e = text.find('e');
        int exp = e == std::string_view::npos ? 0 : std::atoi(std::string(text.substr(e + 1)).c_str());
        if (exp < -4 || exp >= 16) return std::string(text);
        auto fixed = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
        std::string out(buf, fixed.ptr);
        if (out.find('.') == std::string::npos) out += ".0";
        return out;
    }
    default: return boost::json::serialize(v);  // integers print alike
    }
}

std::string py_repr_exception(const exception_info& e) {
    std::string out = e.type + "(";
    for (std::size_t i = 0; i < e.message.size(); ++i) out += (i ? ", " : "") + py_repr(e.message[i]);
    return out + ")";
}

// ---- signature -----------------------------------------------------------------------------------

std::string signature::task_id() const {
    auto v = member(options, "task_id");
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}
std::string signature::queue() const {
    auto v = member(options, "queue");
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

json::value signature::to_value() const {
    return json::object{{"task", task}, {"args", args}, {"kwargs", kwargs}, {"options", options},
                        {"subtask_type", or_null(subtask_type)}, {"immutable", immutable}};
}

signature signature::from_value(const json::value& v) {
    auto o = v.if_object();
    if (!o) throw wire_error("a signature is not an object");
    signature s;
    auto t = member(*o, "task");
    if (!t || !t->is_string()) throw wire_error("a signature has no task name");
    s.task = t->get_string();
    if (auto a = member(*o, "args"); a && !a->is_null()) {
        if (!a->is_array()) throw wire_error("signature " + s.task + ": args is not a list");
        s.args = a->get_array();
    }
    if (auto k = member(*o, "kwargs"); k && !k->is_null()) {
        if (!k->is_object()) throw wire_error("signature " + s.task + ": kwargs is not an object");
        s.kwargs = k->get_object();
    }
    if (auto op = member(*o, "options"); op && !op->is_null()) {
        if (!op->is_object()) throw wire_error("signature " + s.task + ": options is not an object");
        s.options = op->get_object();
    }
    s.subtask_type = opt_string(*o, "subtask_type", "signature");
    if (auto im = member(*o, "immutable"); im && im->is_bool()) s.immutable = im->get_bool();
    return s;
}

// ---- body and envelope ---------------------------------------------------------------------------

std::string encode_body(const message& m) {
    json::object embed;
    embed["callbacks"] = sig_list(m.callbacks);
    embed["errbacks"] = sig_list(m.errbacks);
    embed["chain"] = sig_list(m.chain);
    embed["chord"] = m.chord ? m.chord->to_value() : json::value(nullptr);
    json::array body{json::value(m.args), json::value(m.kwargs), json::value(std::move(embed))};
    return boost::json::serialize(body);
}

void decode_body(std::string_view text, message& m) {
    json::value v;
    try {
        v = json::parse(text);
    } catch (const std::exception& e) {
        throw wire_error(std::string("the body is not JSON: ") + e.what(), m.id, m.task);
    }
    auto a = v.if_array();
    if (!a || a->size() != 3)
        throw wire_error("the body is not a JSON array [args, kwargs, embed]", m.id, m.task);
    try {
        if (!(*a)[0].is_array()) throw wire_error("body args is not a list");
        if (!(*a)[1].is_object()) throw wire_error("body kwargs is not an object");
        m.args = (*a)[0].get_array();
        m.kwargs = (*a)[1].get_object();
        if (!(*a)[2].is_null()) {
            auto embed = (*a)[2].if_object();
            if (!embed) throw wire_error("body embed is not an object or null");
            m.callbacks = read_sig_list(*embed, "callbacks");
            m.errbacks = read_sig_list(*embed, "errbacks");
            m.chain = read_sig_list(*embed, "chain");
            if (auto c = member(*embed, "chord"); c && !c->is_null()) m.chord = signature::from_value(*c);
        }
    } catch (const wire_error& e) {
        throw wire_error(e.reason(), m.id, m.task);
    }
}

std::string encode_envelope(const message& m) {
    auto number_or_null = [](const auto& o) { return o ? json::value(*o) : json::value(nullptr); };
    json::object headers{{"lang", "cpp"}, {"task", m.task}, {"id", m.id}, {"shadow", nullptr},
                         {"eta", or_null(m.eta)}, {"expires", or_null(m.expires)}, {"group", or_null(m.group)},
                         {"group_index", number_or_null(m.group_index)}, {"retries", m.retries},
                         {"timelimit", json::array{number_or_null(m.hard_time_limit), number_or_null(m.soft_time_limit)}},
                         {"root_id", m.root_id.empty() ? m.id : m.root_id}, {"parent_id", or_null(m.parent_id)},
                         {"argsrepr", py_repr_args(m.args)}, {"kwargsrepr", "{}"}, {"origin", m.origin},
                         {"ignore_result", m.ignore_result}, {"replaced_task_nesting", 0},
                         {"stamped_headers", nullptr}, {"stamps", json::object{}}};
    if (m.traceparent) headers["traceparent"] = *m.traceparent;
    if (m.tracestate) headers["tracestate"] = *m.tracestate;
    if (m.metadata.is_object()) headers["weft_metadata"] = m.metadata;
    json::object delivery_info{{"exchange", m.exchange}, {"routing_key", m.queue}};
    if (m.redelivered) headers["redelivered"] = delivery_info["redelivered"] = true;
    json::object properties{{"correlation_id", m.id}, {"reply_to", m.reply_to}, {"delivery_mode", 2},
                            {"delivery_info", std::move(delivery_info)}, {"priority", m.priority},
                            {"body_encoding", "base64"},
                            {"delivery_tag", m.delivery_tag.empty() ? new_id() : m.delivery_tag}};

    return envelope_text(encode_body(m), std::move(headers), std::move(properties));
}

void decode_envelope(std::string_view text, message& m) {
    // The envelope's DOM is scaffolding (m takes copies): one arena, dropped in one go.
    unsigned char buffer[4096];
    boost::json::monotonic_resource arena(buffer, sizeof buffer);
    json::value v(&arena);
    try {
        v = json::parse(text, &arena);
    } catch (const std::exception& e) {
        throw wire_error(std::string("the envelope is not JSON: ") + e.what());
    }
    auto env = v.if_object();
    if (!env) throw wire_error("the envelope is not a JSON object");
    auto string_at = [](const json::value* o, std::string_view key, std::string& out) {
        if (auto s = o && o->is_object() ? member(o->get_object(), key) : nullptr; s && s->is_string()) out = s->get_string();
    };
    // The delivery keys first, as far as they can be read, so even a message that fails below is acked.
    auto p = member(*env, "properties");
    string_at(p, "delivery_tag", m.delivery_tag);
    if (auto di = p && p->is_object() ? member(p->get_object(), "delivery_info") : nullptr) {
        string_at(di, "exchange", m.exchange);
        string_at(di, "routing_key", m.queue);
    }
    auto h = member(*env, "headers");
    if (!h || !h->is_object()) throw wire_error("the envelope has no headers object");
    const auto& headers = h->get_object();
    // Then the id and task, so every later error can name them.
    string_at(h, "id", m.id);
    string_at(h, "task", m.task);
    try {
        if (m.task.empty()) throw wire_error("headers.task is missing (not a protocol v2 message)");
        if (m.id.empty()) throw wire_error("headers.id is missing");
        m.root_id = opt_string(headers, "root_id", "headers").value_or(m.id);
        m.parent_id = opt_string(headers, "parent_id", "headers");
        m.group = opt_string(headers, "group", "headers");
        m.group_index = opt_int(headers, "group_index", "headers");
        m.retries = opt_int(headers, "retries", "headers").value_or(0);
        // Celery counts up from 0 (Task.retry sends request.retries + 1). A Python worker would take
        // -1 at its word and allow one retry more than max_retries; weft refuses it instead.
        if (m.retries < 0) throw wire_error("headers.retries is negative: " + std::to_string(m.retries));
        m.eta = opt_string(headers, "eta", "headers");
        m.expires = opt_string(headers, "expires", "headers");
        for (auto [key, time] : {std::pair{"eta", &m.eta}, std::pair{"expires", &m.expires}})
            if (*time && !parse_iso(**time))
                throw wire_error(std::string("headers.") + key + " is not an ISO 8601 time: " + json::detail::quoted(**time, 64));
        std::tie(m.hard_time_limit, m.soft_time_limit) = read_time_limits(headers);
        if (auto ir = member(headers, "ignore_result"); ir && ir->is_bool()) m.ignore_result = ir->get_bool();
        m.origin = opt_string(headers, "origin", "headers").value_or("");
        if (auto rd = member(headers, "redelivered"); rd && rd->is_bool()) m.redelivered = rd->get_bool();
        // Lenient: a trace header that is not a string is someone else's business, not a bad task.
        if (auto tp = member(headers, "traceparent"); tp && tp->is_string()) m.traceparent = std::string(tp->get_string());
        if (auto ts = member(headers, "tracestate"); ts && ts->is_string()) m.tracestate = std::string(ts->get_string());
        // Strict: weft's own header, which the steps read.
        if (auto md = member(headers, "weft_metadata"); md && !md->is_null()) {
            if (!md->is_object())
                throw wire_error("headers.weft_metadata is " + json::detail::describe(*md) +
                                 ", not an object of strings (set it as headers={\"weft_metadata\": {\"key\": \"value\"}})");
            m.metadata = json::value(*md, boost::json::storage_ptr());  // out of the arena
        }

        if (!p || !p->is_object()) throw wire_error("the envelope has no properties object");
        const auto& props = p->get_object();
        auto di = member(props, "delivery_info");
        if (!di || !di->is_object()) throw wire_error("properties.delivery_info is missing");
        m.exchange = opt_string(di->get_object(), "exchange", "delivery_info").value_or("");
        m.queue = opt_string(di->get_object(), "routing_key", "delivery_info").value_or("");
        // kombu clamps it to 0..9 as well (_get_message_priority).
        m.priority = static_cast<int>(std::clamp<std::int64_t>(opt_int(props, "priority", "properties").value_or(0), 0, 9));
        m.delivery_tag = opt_string(props, "delivery_tag", "properties").value_or("");
        m.reply_to = opt_string(props, "reply_to", "properties").value_or("");

        auto ct = opt_string(*env, "content-type", "envelope").value_or("application/json");
        if (ct != "application/json") throw wire_error("content-type " + ct + " is not accepted (JSON only)");
        if (member(headers, "compression")) throw wire_error("compressed bodies are not supported");
        auto b = member(*env, "body");
        if (!b || !b->is_string()) throw wire_error("the envelope has no body string");
        auto enc = opt_string(props, "body_encoding", "properties").value_or("base64");
        std::string body = enc == "base64" ? base64_decode(b->get_string()) : std::string(b->get_string());
        decode_body(body, m);
    } catch (const wire_error& e) {
        throw wire_error(e.reason(), m.id, m.task);
    }
}

// ---- result meta ---------------------------------------------------------------------------------

namespace {
constexpr std::array<std::string_view, 7> state_names{"PENDING", "RECEIVED", "STARTED", "RETRY",
                                                      "SUCCESS", "FAILURE", "REVOKED"};
}

std::string_view to_string(task_state s) noexcept { return state_names[static_cast<int>(s)]; }

task_state state_from_string(std::string_view s) {
    for (std::size_t i = 0; i < state_names.size(); ++i)
        if (state_names[i] == s) return static_cast<task_state>(i);
    return task_state::pending;
}

json::value exception_info::to_value() const {
    json::object o;
    o["exc_type"] = type;
    o["exc_message"] = message;
    o["exc_module"] = module;
    return o;
}

std::optional<exception_info> exception_info::from_value(const json::value& v) {
    auto o = v.if_object();
    if (!o) return std::nullopt;
    auto t = member(*o, "exc_type");
    if (!t || !t->is_string()) return std::nullopt;
    exception_info e;
    e.type = t->get_string();
    if (auto mod = member(*o, "exc_module"); mod && mod->is_string()) e.module = mod->get_string();
    if (auto msg = member(*o, "exc_message")) {
        if (msg->is_array()) e.message = msg->get_array();
        else if (!msg->is_null()) e.message.push_back(*msg);
    }
    return e;
}

std::string exception_info::text() const {
    std::string s = type;
    if (!message.empty()) {
        s += ": ";
        for (std::size_t i = 0; i < message.size(); ++i) {
            if (i) s += ", ";
            s += message[i].is_string() ? std::string(message[i].get_string()) : boost::json::serialize(message[i]);
        }
    }
    return s;
}

std::string encode_meta(const task_meta& m) {
    unsigned char buffer[2048];
    boost::json::monotonic_resource arena(buffer, sizeof buffer);
    json::object o(&arena);
    o["status"] = to_string(m.state);
    o["result"] = m.result;
    o["traceback"] = or_null(m.traceback);
    o["children"] = m.children;
    o["date_done"] = or_null(m.date_done);
    if (m.parent_id) o["parent_id"] = *m.parent_id;
    if (m.group_id) o["group_id"] = *m.group_id;
    if (m.retries) o["retries"] = *m.retries;
    o["task_id"] = m.task_id;
    return boost::json::serialize(o);
}

task_meta decode_meta(std::string_view text) {
    const json::object meta = parse_object(text, "the result meta");
    const json::object* o = &meta;
    task_meta m;
    auto st = opt_string(*o, "status", "meta");
    if (!st) throw wire_error("the result meta has no status");
    m.state = state_from_string(*st);
    m.task_id = opt_string(*o, "task_id", "meta").value_or("");
    if (auto r = member(*o, "result")) m.result = *r;
    m.traceback = opt_string(*o, "traceback", "meta");
    m.date_done = opt_string(*o, "date_done", "meta");
    m.parent_id = opt_string(*o, "parent_id", "meta");
    m.group_id = opt_string(*o, "group_id", "meta");
    if (auto c = member(*o, "children"); c && c->is_array()) m.children = c->get_array();
    if (auto r = member(*o, "retries"); r && r->is_int64()) m.retries = r->get_int64();
    return m;
}

// ---- remote control ------------------------------------------------------------------------------

std::string pidbox_channel(int db) { return "/" + std::to_string(db) + ".celery.pidbox"; }

std::string revoke_broadcast(const json::array& task_ids) {
    json::object body{{"method", "revoke"},
                      {"arguments", json::object{{"task_id", task_ids}, {"terminate", false}, {"signal", "SIGTERM"}}},
                      {"destination", nullptr}, {"pattern", nullptr}, {"matcher", nullptr}};
    auto expires = unix_now() + 60;
    json::object headers{{"clock", 1}, {"expires", expires}};
    json::object props{{"delivery_mode", 2}, {"delivery_info", json::object{{"exchange", "celery.pidbox"}, {"routing_key", ""}}},
                       {"priority", 0}, {"body_encoding", "base64"}, {"delivery_tag", new_id()}};
    return envelope_text(boost::json::serialize(body), std::move(headers), std::move(props));
}

std::string ping_broadcast(const std::string& ticket, const std::string& oid) {
    json::object body{{"method", "ping"}, {"arguments", json::object{}}, {"destination", nullptr}, {"pattern", nullptr},
                      {"matcher", nullptr}, {"ticket", ticket},
                      {"reply_to", json::object{{"exchange", "reply.celery.pidbox"}, {"routing_key", oid}}}};
    json::object headers{{"clock", 1}, {"expires", unix_now() + 60}};
    json::object props{{"delivery_mode", 2}, {"delivery_info", json::object{{"exchange", "celery.pidbox"}, {"routing_key", ""}}},
                       {"priority", 0}, {"body_encoding", "base64"}, {"delivery_tag", new_id()}};
    return envelope_text(boost::json::serialize(body), std::move(headers), std::move(props));
}

std::vector<std::string> reply_nodes(std::string_view envelope) {
    std::vector<std::string> out;
    try {
        json::object e = parse_object(envelope, "a reply");
        const json::value* b = member(e, "body");
        if (!b || !b->is_string()) return out;
        const json::value* props = member(e, "properties");
        const json::value* enc = props && props->is_object() ? member(props->as_object(), "body_encoding") : nullptr;
        std::string text(b->as_string());
        if (enc && enc->is_string() && enc->as_string() == "base64") text = base64_decode(text);
        for (auto& kv : parse_object(text, "a reply's body")) out.emplace_back(kv.key());
    } catch (const wire_error&) {
    }
    return out;
}

// ---- queues, ids, times, base64 ------------------------------------------------------------------

std::string priority_list(std::string_view queue, int priority) {
    int step = priority >= 9 ? 9 : priority >= 6 ? 6 : priority >= 3 ? 3 : 0;
    if (step == 0) return std::string(queue);
    return std::string(queue) + "\x06\x16" + std::to_string(step);
}

std::string queue_of_list(std::string_view list) {
    auto p = list.find("\x06\x16");
    return std::string(p == std::string_view::npos ? list : list.substr(0, p));
}

std::string host_name() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return host;
}

std::string new_id() {
    static std::mutex m;
    static boost::uuids::random_generator gen;
    std::lock_guard lock(m);
    return boost::uuids::to_string(gen());
}

std::string iso_utc(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(us / 1000000);
    long frac = static_cast<long>(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return buf;
}

std::optional<std::chrono::system_clock::time_point> parse_iso(std::string_view s) {
    using namespace std::chrono;
    std::size_t i = 0;
    // Exactly n digits at i (sscanf's %d would take signs and spaces too).
    auto digits = [&](std::size_t n, int& out) {
        if (s.size() - i < n) return false;
        out = 0;
        for (std::size_t end = i + n; i < end; ++i) {
            if (s[i] < '0' || s[i] > '9') return false;
            out = out * 10 + (s[i] - '0');
        }
        return true;
    };
    auto skip = [&](char c) {
        if (i == s.size() || s[i] != c) return false;
        ++i;
        return true;
    };
    int Y, M, D, h, m, sec;
    if (!digits(4, Y) || !skip('-') || !digits(2, M) || !skip('-') || !digits(2, D) || !(skip('T') || skip(' ')) ||
        !digits(2, h) || !skip(':') || !digits(2, m) || !skip(':') || !digits(2, sec))
        return std::nullopt;
    const year_month_day date{year{Y}, month{static_cast<unsigned>(M)}, day{static_cast<unsigned>(D)}};
    // Python's datetime has no year 0 and no leap second.
    if (Y < 1 || !date.ok() || h > 23 || m > 59 || sec > 59) return std::nullopt;
    std::int64_t micros = 0;
    if (skip('.')) {
        std::size_t n = 0;
        for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++n)
            if (n < 6) micros = micros * 10 + (s[i] - '0');
        if (n == 0) return std::nullopt;
        for (; n < 6; ++n) micros *= 10;
    }
    std::int64_t offset = 0;  // seconds east of UTC; naive times are UTC (Celery's default timezone)
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
        if (!digits(2, oh)) return std::nullopt;
        if (i < s.size()) {  // +hh, +hh:mm or +hhmm
            skip(':');
            if (!digits(2, om)) return std::nullopt;
        }
        if (oh > 23 || om > 59) return std::nullopt;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        skip('Z');
    }
    if (i != s.size()) return std::nullopt;
    // In seconds first: system_clock counts nanoseconds in 64 bits (1677 to 2262), and a time beyond
    // that would overflow it. Such a time saturates: an eta in 9999 is never due, an expires in 2300
    // never passes.
    std::int64_t secs = std::int64_t{sys_days(date).time_since_epoch().count()} * 86400 + h * 3600 + m * 60 + sec - offset;
    constexpr std::int64_t most = duration_cast<seconds>(system_clock::duration::max()).count();
    if (secs >= most) return system_clock::time_point::max();
    if (secs <= -most) return system_clock::time_point::min();
    return system_clock::time_point(duration_cast<system_clock::duration>(seconds(secs) + microseconds(micros)));
}

namespace {
constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    unsigned acc = 0;  // only its low 14 bits matter
    int bits = 0;
    for (unsigned char c : in) {
        acc = (acc << 8) | c;
        for (bits += 8; bits >= 6;) out += b64[(acc >> (bits -= 6)) & 63];
    }
    if (bits > 0) out += b64[(acc << (6 - bits)) & 63];
    while (out.size() % 4) out += '=';
    return out;
}

std::string base64_decode(std::string_view in) {
    static const auto table = [] {
        std::array<signed char, 256> t{};
        t.fill(-1);
        for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(b64[i])] = static_cast<signed char>(i);
        return t;
    }();
    std::string out;
    out.reserve(in.size() / 4 * 3);
    unsigned acc = 0;
    int bits = 0;
    std::size_t pad = 0;
    for (char c : in) {
        if (c == '=') {
            ++pad;
            continue;
        }
        if (c == '\n' || c == '\r') continue;
        int d = table[static_cast<unsigned char>(c)];
        if (d < 0 || pad) throw wire_error("the body is not valid base64");
        acc = (acc << 6) | static_cast<unsigned>(d);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    if (pad > 2 || bits >= 6) throw wire_error("the body is not valid base64 (truncated)");
    return out;
}

}  // namespace weft::celery_wire
