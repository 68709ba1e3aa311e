#include "connection.hpp"

#include <weft/kit/grpc_tls.hpp>
#include <weft/telemetry.hpp>

#include <algorithm>
#include <optional>
#include <fstream>
#include <sstream>

namespace weft::hatchet_detail {

namespace {

std::string read_token(const hatchet::options& o) {
    if (!o.token.empty()) return o.token;
    if (o.token_file.empty())
        throw config_error("weft: hatchet: no token: set `token` or `token_file` (WEFT_HATCHET_TOKEN, "
                           "WEFT_HATCHET_TOKEN_FILE)");
    std::ifstream in(o.token_file);
    if (!in) throw config_error("weft: hatchet: cannot read the token file " + o.token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string t = ss.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
    if (t.rfind("ey", 0) != 0) throw config_error("weft: hatchet: the token file " + o.token_file + " does not hold a JWT");
    return t;
}

std::string base64url_decode(std::string_view in) {
    std::string out;
    unsigned bits = 0, value = 0;
    for (char ch : in) {
        int d = ch >= 'A' && ch <= 'Z' ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '-' || ch == '+' ? 62
                : ch == '_' || ch == '/' ? 63
                : ch == '=' ? -2 : -1;
        if (d == -2) break;
        if (d < 0) throw config_error("weft: hatchet: the token is not a JWT: its payload is not base64url");
        value = (value << 6) | static_cast<unsigned>(d);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((value >> bits) & 0xff));
        }
    }
    return out;
}

}  // namespace

token_claims decode_token(std::string_view jwt) {
    const auto a = jwt.find('.'), b = a == std::string_view::npos ? a : jwt.find('.', a + 1);
    if (b == std::string_view::npos)
        throw config_error("weft: hatchet: the token is not a JWT (header.payload.signature): it has " +
                           std::to_string(std::count(jwt.begin(), jwt.end(), '.') + 1) + " part(s)");
    const std::string text = base64url_decode(jwt.substr(a + 1, b - a - 1));
    json::value payload;
    try {
        payload = json::parse(text);
    } catch (const std::exception&) {  // its message would quote the payload
        throw config_error("weft: hatchet: the token is not a JWT: its payload is not JSON");
    }
    if (!payload.is_object()) throw config_error("weft: hatchet: the token is not a JWT: its payload is not an object");
    const auto& o = payload.as_object();
    token_claims c;
    if (auto* s = o.if_contains("sub"); s && s->is_string()) c.tenant = std::string(s->as_string());
    if (auto* s = o.if_contains("server_url"); s && s->is_string()) c.server_url = std::string(s->as_string());
    auto time_of = [&](const char* k) -> std::optional<std::chrono::system_clock::time_point> {
        auto* v = o.if_contains(k);
        if (!v || !v->is_number()) return std::nullopt;
        return std::chrono::system_clock::time_point(std::chrono::seconds(static_cast<std::int64_t>(v->to_number<double>())));
    };
    c.issued = time_of("iat");
    c.expires = time_of("exp");
    return c;
}

std::string_view status_name(grpc::StatusCode c) {
    static constexpr std::string_view names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    auto i = static_cast<std::size_t>(c);
    return i < std::size(names) ? names[i] : "UNKNOWN";
}

connection::connection(const hatchet::options& o) : token_(read_token(o)), timeout_(o.timeout) {
    telemetry::add_secret(token_);  // never in a log line or metric, whoever writes it
    grpc::ChannelArguments args;
    // The engine allows pings every 5 s at the least (else GOAWAY); the Python SDK pings every 10 s.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    // Reconnect soon after an engine restart (gRPC's default backoff grows to 120 s).
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    std::optional<kit::tls_material> tls;
    if (o.tls_strategy == "tls" || o.tls_strategy == "mtls")
        tls = kit::read_tls("hatchet", {o.tls_ca_file, o.tls_cert_file, o.tls_key_file, o.tls_server_name},
                            o.tls_strategy == "mtls");
    else if (o.tls_strategy != "none")
        throw config_error("weft: hatchet: tls_strategy '" + o.tls_strategy + "' is not one of \"none\", \"tls\", \"mtls\"");
    channel_ = grpc::CreateCustomChannel(o.host_port, kit::channel_credentials(tls ? &*tls : nullptr, args), args);
    dispatcher_ = dispatcher::NewStub(channel_);
    admin_ = admin::NewStub(channel_);
}

void connection::prepare(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) const {
    ctx.AddMetadata("authorization", "Bearer " + token_);
    if (timeout.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

std::string connection::redact(std::string text) const {
    if (token_.empty()) return text;
    for (std::size_t at = text.find(token_); at != std::string::npos; at = text.find(token_, at))
        text.replace(at, token_.size(), "<token>");
    return text;
}

void connection::fail(std::string_view rpc, const grpc::Status& st) const {
    throw rpc_error(redact("weft: hatchet: " + std::string(rpc) + ": " + std::string(status_name(st.error_code())) + ": " +
                           st.error_message()),
                    st.error_code());
}

hatchet_wire::workflow_plan plan_for(const hatchet::options& o, const graph_view& wf) {
    auto it = o.limits.find(wf.name);
    return hatchet_wire::lower(wf, it == o.limits.end() ? nullptr : &it->second);
}

bool replaces_definitions(const hatchet::options& o) {
    if (o.replace_definitions == "always") return true;
    if (o.replace_definitions == "never") return false;
    throw config_error("weft: hatchet: replace_definitions '" + o.replace_definitions +
                       "' is not one of \"always\" (register weft's definitions) and \"never\" (keep the engine's)");
}

namespace {
v1::ConcurrencyLimitStrategy strategy_of(hatchet_wire::limit_strategy s) {
    switch (s) {
    case hatchet_wire::limit_strategy::cancel_in_progress: return v1::CANCEL_IN_PROGRESS;
    case hatchet_wire::limit_strategy::cancel_newest: return v1::CANCEL_NEWEST;
    case hatchet_wire::limit_strategy::group_round_robin: break;
    }
    return v1::GROUP_ROUND_ROBIN;
}
}  // namespace

std::pair<std::string, std::string> put_workflow(const connection& c, const hatchet_wire::workflow_plan& plan) {
    v1::CreateWorkflowVersionRequest req;
    req.set_name(plan.name);
    for (const auto& l : plan.concurrency) {
        v1::Concurrency* k = req.add_concurrency_arr();
        k->set_expression(l.expression);
        k->set_max_runs(l.max_runs);
        k->set_limit_strategy(strategy_of(l.strategy));
    }
    for (const auto& t : plan.tasks) {
        v1::CreateTaskOpts* o = req.add_tasks();
        o->set_readable_id(t.readable_id);
        o->set_action(t.action);
        o->set_timeout(t.timeout);
        o->set_inputs("{}");
        for (const auto& p : t.parents) o->add_parents(p);
        o->set_retries(t.retries);
        if (t.backoff_factor > 0) o->set_backoff_factor(static_cast<float>(t.backoff_factor));
        if (t.backoff_max_seconds > 0) o->set_backoff_max_seconds(t.backoff_max_seconds);
        o->set_schedule_timeout(t.schedule_timeout);
        (*o->mutable_slot_requests())["default"] = 1;
        for (const auto& r : t.rate_limits) {
            v1::CreateTaskRateLimit* l = o->add_rate_limits();
            l->set_key(r.key);
            l->set_units(r.units);
        }
    }
    auto resp = c.administer("v1.AdminService/PutWorkflow", &connection::admin::Stub::PutWorkflow, req);
    return {resp.id(), resp.workflow_id()};
}

}  // namespace weft::hatchet_detail
