// The Celery client: lowering an erased workflow to one message, and a run handle that reads the
// Redis result backend the way AsyncResult does (SUBSCRIBE to the meta key's channel, then GET).
#include <weft/celery.hpp>
#include <weft/kit/backoff.hpp>
#include <weft/kit/metadata.hpp>
#include <weft/kit/remote_run.hpp>
#include <weft/kit/settings.hpp>
#include <weft/kit/step_watcher.hpp>
#include <weft/telemetry.hpp>
#include <weft/trace.hpp>

#include "canvas.hpp"
#include "transport.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <unistd.h>

namespace weft::celery_detail {

using namespace celery_wire;

namespace {

// Attempts so far: the meta's retries + 1 (written by the C++ worker, and by Python with
// result_extended), else 1 once the step has a state.
int attempts_of(const task_meta& m) {
    if (m.state == task_state::pending) return 0;
    return attempt_after(m.retries.value_or(0));
}

step_state step_state_of(task_state s) {
    constexpr step_state by_state[] = {step_state::pending,   step_state::running, step_state::running,
                                       step_state::retrying,  step_state::succeeded, step_state::failed,
                                       step_state::cancelled};
    return by_state[static_cast<int>(s)];
}

}  // namespace

struct backend_impl::state {
    celery::options opts;
    redis_url broker;
    redis_url results;
    std::string origin = "gen" + std::to_string(::getpid()) + "@" + host_name();
    std::mutex m;
    std::unique_ptr<redis_connection> broker_conn;
    std::unique_ptr<redis_connection> result_conn;

    bool same_server = false;  // the broker's Redis is the result backend's: one connection does both
    std::string meta(std::string_view id) const { return opts.result_keyprefix + meta_key(id); }
    // weft's record of a run it started, beside the result metas.
    std::string run_record(std::string_view id) const { return opts.result_keyprefix + "weft-run-" + std::string(id); }
    // weft's index of a workflow's latest runs: a sorted set, run id by start time (ms).
    std::string run_index(std::string_view workflow) const {
        return opts.result_keyprefix + "weft-runs-" + std::string(workflow);
    }
    std::string list_of(std::string_view queue, int priority) const {
        return opts.global_keyprefix + priority_list(queue, priority);
    }

    // Connected on first use, and again after the connection broke (Redis restarted, a reply timed
    // out): that call throws, the next one reconnects.
    redis_connection& broker_connection() {
        if (!broker_conn || broker_conn->broken()) {
            broker_conn.reset();
            broker_conn = std::make_unique<redis_connection>(broker, opts.timeout);
        }
        return *broker_conn;
    }
    redis_connection& result_connection() {
        if (!result_conn || result_conn->broken()) {
            result_conn.reset();
            result_conn = std::make_unique<redis_connection>(results, opts.timeout);
        }
        return *result_conn;
    }

    // The metas of a run's tasks (one per node; PENDING for those not stored yet), in one round trip.
    std::vector<task_meta> metas(const std::vector<std::string>& ids) {
        std::vector<std::vector<std::string>> cmds;
        for (auto& id : ids) cmds.push_back({"GET", meta(id)});
        std::vector<redis_reply> replies;
        {
            std::lock_guard lock(m);
            replies = result_connection().pipeline(cmds);
        }
        std::vector<task_meta> out(ids.size());
        for (std::size_t i = 0; i < replies.size(); ++i) {
            out[i].task_id = ids[i];
            if (replies[i].type == redis_reply::kind::string) out[i] = decode_meta(replies[i].str);
        }
        return out;
    }

    // Whether the message of task `id` still waits in broker list `list` (no worker took it yet):
    // one server-side scan of the list, bounded to its newest 100,000 messages. weft writes
    // "correlation_id":"<id>" into every message it sends (codec.cpp).
    bool in_queue(const std::string& list, std::string_view id) {
        if (list.empty()) return false;  // a record of an older weft: say running, as it did
        static const std::string scan = R"lua(
local n = math.min(redis.call('LLEN', KEYS[1]), 100000)
for i = 0, n - 1, 1000 do
  for _, m in ipairs(redis.call('LRANGE', KEYS[1], i, i + 999)) do
    if string.find(m, ARGV[1], 1, true) then return 1 end
  end
end
return 0)lua";
        std::lock_guard lock(m);
        auto r = broker_connection().command({"EVAL", scan, "1", list, "\"correlation_id\":\"" + std::string(id) + "\""});
        return r.type == redis_reply::kind::integer && r.integer == 1;
    }

    kit::step_watchers watchers;  // last: joined before the connections they read go away
};

namespace {

// What a run's record says (weft-run-<id>, written by start()): enough to read the run's metas and
// describe it without the workflow's type.
struct run_record {
    std::string workflow;
    std::optional<std::chrono::system_clock::time_point> created;
    std::vector<std::string> steps;       // wire names by node index; empty in a record of an older weft
    std::size_t root = 0;                 // the node whose task id is the run id
    std::vector<std::size_t> sinks, order;
    std::string queue_list;               // the broker list the root task's message was pushed to
};

json::array indices(std::span<const std::size_t> v) {
    json::array a;
    for (auto i : v) a.push_back(static_cast<std::uint64_t>(i));
    return a;
}

std::string encode_record(const graph_view& g, std::chrono::system_clock::time_point created, std::string_view queue_list) {
    json::object r;
    r["workflow"] = g.name;
    r["started"] = iso_utc(created);  // when start() sent it (the name predates describe)
    json::array steps;
    for (auto n : g.names) steps.push_back(json::value(n));
    r["steps"] = std::move(steps);
    r["root"] = static_cast<std::uint64_t>(g.sources[0]);
    r["sinks"] = indices(g.sinks);
    r["order"] = indices(g.topological_order);
    r["queue_list"] = queue_list;
    return boost::json::serialize(r);
}

run_record decode_record(std::string_view key, std::string_view text) {
    try {
        const json::object o = json::parse(text).as_object();
        run_record r;
        r.workflow = std::string(o.at("workflow").as_string());
        if (auto* t = o.if_contains("started"); t && t->is_string()) r.created = parse_iso(t->as_string());
        auto index = [&](const json::value& v) {
            const auto i = v.to_number<std::uint64_t>();
            return static_cast<std::size_t>(i);
        };
        if (auto* steps = o.if_contains("steps")) {
            for (auto& n : steps->as_array()) r.steps.emplace_back(n.as_string());
            r.root = index(o.at("root"));
            for (auto& i : o.at("sinks").as_array()) r.sinks.push_back(index(i));
            for (auto& i : o.at("order").as_array()) r.order.push_back(index(i));
            const std::size_t n = r.steps.size();
            if (r.root >= n || r.sinks.empty() || r.order.size() != n ||
                std::any_of(r.sinks.begin(), r.sinks.end(), [&](std::size_t i) { return i >= n; }) ||
                std::any_of(r.order.begin(), r.order.end(), [&](std::size_t i) { return i >= n; }))
                throw std::runtime_error("node indices out of range");
        }
        if (auto* q = o.if_contains("queue_list"); q && q->is_string()) r.queue_list = std::string(q->as_string());
        return r;
    } catch (const std::exception& e) {
        throw wire_error("weft: celery: the run record " + std::string(key) + " is not weft's: " + e.what());
    }
}

// A run's task ids, one per node, from its id (its first source's task id): derived rather than
// drawn, so that any process that knows the run id reads the same metas (attach).
std::vector<std::string> task_ids(std::size_t nodes, std::size_t root, std::string_view run_id) {
    std::vector<std::string> ids(nodes);
    for (std::size_t i = 0; i < nodes; ++i)
        ids[i] = i == root ? std::string(run_id) : std::string(run_id) + "." + std::to_string(i);
    return ids;
}
std::vector<std::string> task_ids(const graph_view& g, std::string_view run_id) {
    return task_ids(g.size(), g.sources[0], run_id);
}

// A run is over once every last step is ready, or any step failed or was revoked.
bool closed(std::span<const std::size_t> sinks, const std::vector<task_meta>& metas) {
    for (auto& m : metas)
        if (m.state == task_state::failure || m.state == task_state::revoked) return true;
    return std::all_of(sinks.begin(), sinks.end(), [&](std::size_t s) { return is_ready(metas[s].state); });
}
bool closed(const graph_view& g, const std::vector<task_meta>& metas) { return closed(g.sinks, metas); }

// The state of a run from its metas; `still_queued` says whether the root task's message is still
// in its broker list (asked only when no task has a meta yet).
run_state run_state_of(std::span<const std::size_t> sinks, const std::vector<task_meta>& metas,
                       const std::function<bool()>& still_queued) {
    for (auto& m : metas)
        if (m.state == task_state::failure || m.state == task_state::revoked)
            return m.state == task_state::failure ? run_state::failed : run_state::cancelled;
    if (closed(sinks, metas)) return run_state::succeeded;
    // A task with no meta may still run (Python writes STARTED only with task_track_started): the run
    // is queued only while its first message is still waiting in the broker's list.
    if (std::all_of(metas.begin(), metas.end(), [](auto& m) { return m.state == task_state::pending; }) && still_queued())
        return run_state::queued;
    return run_state::running;
}

std::vector<step_status> statuses(const graph_view& g, const std::vector<task_meta>& metas) {
    std::vector<step_status> out;
    for (std::size_t i = 0; i < metas.size(); ++i) {
        step_status s;
        s.name = std::string(g.names[i]);
        s.state = step_state_of(metas[i].state);
        s.attempts = attempts_of(metas[i]);
        if (auto e = metas[i].exception(); e && metas[i].state != task_state::success) s.error = e->text();
        out.push_back(std::move(s));
    }
    return out;
}

class celery_run final : public kit::remote_run {
public:
    celery_run(std::shared_ptr<backend_impl::state> st, const erased_workflow& wf, std::vector<std::string> ids,
               std::string queue_list, bool attached = false)
        : remote_run(wf, ids[wf.graph.sources[0]], celery::name, attached), st_(std::move(st)), ids_(std::move(ids)),  // the root task id
          queue_list_(std::move(queue_list)) {}

    std::vector<step_status> steps() const override { return statuses(wf_.graph, st_->metas(ids_)); }
    const std::vector<std::string>& ids() const noexcept { return ids_; }

    // Revoke: every step not yet ready is broadcast as revoked (Python and C++ workers keep it in
    // their revoked set) and stored REVOKED (which C++ workers also check before running a task).
    void cancel() override {
        auto metas = st_->metas(ids_);
        json::array pending;
        for (auto& m : metas)
            if (!is_ready(m.state)) pending.push_back(json::value(m.task_id));
        if (!pending.empty()) {
            // Celery's own revoke: a pidbox broadcast every worker keeps in its revoked set, so
            // Python workers skip these tasks too.
            std::lock_guard lock(st_->m);
            st_->broker_connection().command(
                {"PUBLISH", st_->opts.global_keyprefix + pidbox_channel(st_->broker.db), revoke_broadcast(pending)});
        }
        for (std::size_t i = 0; i < metas.size(); ++i) {
            if (is_ready(metas[i].state)) continue;
            task_meta m{.task_id = ids_[i], .state = task_state::revoked, .result = task_revoked("revoked"),
                        .date_done = iso_utc(std::chrono::system_clock::now())};
            if (wf_.graph.parent_count(i) > 0) m.parent_id = ids_[wf_.graph.parent(i, 0)];
            auto text = encode_meta(m);
            std::lock_guard lock(st_->m);
            st_->result_connection().pipeline(
                {{"SETEX", st_->meta(ids_[i]), std::to_string(st_->opts.result_expires.count()), text},
                 {"PUBLISH", st_->meta(ids_[i]), text}});
        }
    }

private:
    run_state live_state() const override {
        return run_state_of(wf_.graph.sinks, st_->metas(ids_), [&] { return st_->in_queue(queue_list_, id()); });
    }

    // SUBSCRIBE to every sink's channel first, then GET, then rely on PUBLISH (as Python's
    // ResultConsumer does); a GET every second covers a lost connection.
    // While Redis is unreachable (restarting) the wait goes on, subscribed again with backoff, until
    // `timeout`: a start() already proved the URL and password.
    std::optional<outcome> await(std::chrono::milliseconds timeout) const override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        kit::backoff away;
        const std::string run_id = id();
        for (;;) {
            try {
                return watch(deadline);
            } catch (const redis_error& e) {
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
                if (left.count() <= 0) return std::nullopt;
                const auto delay = away.failed();
                if (away.worth_logging())
                    telemetry::emit({.level = telemetry::severity::warning, .event = "fetch.failed", .backend = "celery",
                                     .run_id = run_id, .error = e.what(),
                                     .message = "waiting for the run's result: Redis is unreachable; trying again"});
                std::this_thread::sleep_for(std::min(delay, left));
            }
        }
    }

    std::optional<outcome> watch(std::chrono::steady_clock::time_point deadline) const {
        redis_connection sub(st_->results, st_->opts.timeout);
        std::vector<std::string> cmd{"SUBSCRIBE"};
        for (auto s : wf_.graph.sinks) cmd.push_back(st_->meta(ids_[s]));
        sub.send(cmd);
        for (;;) {
            if (auto metas = st_->metas(ids_); closed(wf_.graph, metas)) return outcome_of(metas);
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            // Drain pushes until a second has passed, then GET again.
            auto until = std::chrono::steady_clock::now() + std::min(left, std::chrono::milliseconds(1000));
            for (;;) {
                auto l = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
                if (l.count() <= 0) break;
                auto r = sub.read(l);
                if (!r) break;
                if (r->type == redis_reply::kind::array && r->elements.size() == 3 && r->elements[0].str == "message")
                    break;  // a meta was published: re-read
            }
        }
    }

    // The first failed or revoked step, in topological order, decides the error.
    outcome outcome_of(const std::vector<task_meta>& metas) const {
        for (auto i : wf_.graph.topological_order) {
            if (metas[i].state == task_state::failure) {
                auto e = metas[i].exception();
                return {run_state::failed, {},
                        std::make_exception_ptr(step_failed(std::string(wf_.graph.names[i]),
                                                            e ? e->text() : std::string("failed"), attempts_of(metas[i])))};
            }
            if (metas[i].state == task_state::revoked) return cancelled();
        }
        return {run_state::succeeded, sinks_output([&](std::size_t s) { return metas[s].result; }), {}};
    }

    std::shared_ptr<backend_impl::state> st_;
    std::vector<std::string> ids_;  // task id per node
    std::string queue_list_;        // where the root task's message waits until a worker takes it
};

}  // namespace

backend_impl::backend_impl(celery::options opts) : state_(std::make_shared<state>()) {
    state_->broker = redis_url::parse(opts.broker_url);
    state_->results = redis_url::parse(opts.result_url.empty() ? opts.broker_url : opts.result_url);
    state_->same_server = state_->broker.same_as(state_->results);
    state_->opts = std::move(opts);
}

backend_impl::~backend_impl() = default;

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    refuse_transactional_steps(wf.graph, name());
    check_metadata(opts.metadata);
    batch commands;
    auto run = prepare(wf, input, commands, opts.metadata);
    send(wf, commands);
    watch(wf, *run, std::move(opts));
    return run;
}

// Celery cannot tell an unknown task id from a pending one (AsyncResult of any id is PENDING), so
// start() leaves a record of the run beside the result metas, with the same expiry: attach and
// describe read it to know the run, its workflow and its nodes.
namespace {

std::optional<run_record> record_of(backend_impl::state& st, std::string_view id) {
    redis_reply r;
    {
        std::lock_guard lock(st.m);
        r = st.result_connection().command({"GET", st.run_record(id)});
    }
    if (r.type != redis_reply::kind::string) return std::nullopt;
    return decode_record(st.run_record(id), r.str);
}

std::string no_record(const backend_impl::state& st, std::string_view id) {
    return "the result backend (" + st.results.redacted() + ") has no record '" + st.run_record(id) +
           "' of it: not started through weft, or older than result_expires (" +
           std::to_string(st.opts.result_expires.count()) + " s)";
}

}  // namespace

std::shared_ptr<run_control> backend_impl::attach(const erased_workflow& wf, std::string_view id) {
    auto record = record_of(*state_, id);
    if (!record) throw run_not_found("celery", wf.graph.name, id, no_record(*state_, id));
    if (record->workflow != wf.graph.name)
        throw config_error("weft: celery run '" + std::string(id) + "' is a run of workflow '" + record->workflow +
                           "', not '" + std::string(wf.graph.name) + "'");
    return std::make_shared<celery_run>(state_, wf, task_ids(wf.graph, id), std::move(record->queue_list), true);
}

namespace {

std::optional<std::chrono::system_clock::time_point> done_at(const task_meta& m) {
    return m.date_done ? parse_iso(*m.date_done) : std::nullopt;
}

step_description described(std::string name, const task_meta& m) {
    step_description s{std::move(name), step_state_of(m.state), attempts_of(m), {}, {}, {}};
    if (auto e = m.exception(); e && m.state != task_state::success) s.error = e->text();
    if (is_ready(m.state)) s.finished = done_at(m);
    return s;
}

}  // namespace

// Celery's metas carry when a task ended (date_done), not when it began: steps and the run have
// finished times, no started ones; created is when start() sent the run.
run_description backend_impl::describe(std::string_view id) {
    run_description d;
    d.backend = celery::name;
    d.id = std::string(id);
    auto record = record_of(*state_, id);
    if (!record || record->steps.empty()) {
        // A task weft did not send (or a record without nodes): the one task its meta describes.
        auto metas = state_->metas({std::string(id)});
        if (metas[0].state == task_state::pending && !record) throw run_not_found("celery", {}, id, no_record(*state_, id) + ", and no task meta");
        if (record) {
            d.workflow = record->workflow;
            d.created = record->created;
        }
        const task_meta& m = metas[0];
        d.steps.push_back(described(d.workflow.empty() ? std::string(id) : d.workflow, m));
        d.state = m.state == task_state::success   ? run_state::succeeded
                  : m.state == task_state::failure ? run_state::failed
                  : m.state == task_state::revoked ? run_state::cancelled
                                                   : run_state::running;
        if (d.state == run_state::succeeded) d.output = m.result;
        if (d.state == run_state::failed) d.error = d.steps[0].error;
        if (is_final(d.state)) d.finished = d.steps[0].finished;
        return d;
    }
    d.workflow = record->workflow;
    d.created = record->created;
    const auto ids = task_ids(record->steps.size(), record->root, id);
    const auto metas = state_->metas(ids);
    d.state = run_state_of(record->sinks, metas, [&] { return state_->in_queue(record->queue_list, id); });
    for (std::size_t i = 0; i < metas.size(); ++i) d.steps.push_back(described(record->steps[i], metas[i]));
    if (d.state == run_state::succeeded) {
        if (record->sinks.size() == 1) d.output = metas[record->sinks[0]].result;
        else {
            json::array a;
            for (auto s : record->sinks) a.push_back(metas[s].result);
            d.output = std::move(a);
        }
    }
    if (d.state == run_state::failed || d.state == run_state::cancelled)
        for (auto i : record->order)
            if (metas[i].state == task_state::failure || metas[i].state == task_state::revoked) {
                if (metas[i].state == task_state::failure) d.failed_step = record->steps[i];
                d.error = d.steps[i].error;
                break;
            }
    if (is_final(d.state))
        for (auto& s : d.steps)
            if (s.finished && (!d.finished || *s.finished > *d.finished)) d.finished = s.finished;
    return d;
}

std::vector<run_summary> backend_impl::list(std::string_view workflow, std::size_t limit) {
    if (state_->opts.listed_runs == 0)
        throw config_error("weft: celery keeps no index of runs (celery.listed_runs = 0), so it cannot list the runs of '" +
                           std::string(workflow) + "'; set listed_runs (WEFT_CELERY_LISTED_RUNS) to keep one");
    std::vector<run_summary> out;
    if (limit == 0) return out;
    redis_reply ids;
    {
        std::lock_guard lock(state_->m);
        ids = state_->result_connection().command(
            {"ZREVRANGE", state_->run_index(workflow), "0", std::to_string(limit - 1), "WITHSCORES"});
    }
    for (std::size_t i = 0; i + 1 < ids.elements.size(); i += 2) {
        const std::string& id = ids.elements[i].str;
        run_summary s{id, std::string(workflow), run_state::running, {}, {}};
        s.created = std::chrono::system_clock::time_point(std::chrono::milliseconds(std::stoll(ids.elements[i + 1].str)));
        try {
            s.state = describe(id).state;  // the record and the metas: two round trips a run
        } catch (const run_not_found&) {
            continue;  // its record expired before the index was trimmed
        }
        out.push_back(std::move(s));
    }
    return out;
}

namespace {

// kombu 5.7 restores unacked messages with ZRANGE ... BYSCORE REV, which Redis has since 6.2.
constexpr int min_redis_major = 6, min_redis_minor = 2;

// The checks of one Redis server (`role`: "broker" or "results"), each step on its own so that the
// first failure says which: connect, AUTH, INFO server, SELECT.
void check_redis(std::vector<health_check>& out, const std::string& role, const redis_url& url,
                 const std::string& setting, std::chrono::milliseconds timeout) {
    const std::string at = url.redacted();
    redis_url bare = url;  // connected without AUTH or SELECT, so each is checked by itself
    bare.username.clear();
    bare.password.clear();
    bare.db = 0;
    std::unique_ptr<redis_connection> c;
    try {
        c = std::make_unique<redis_connection>(bare, timeout);
        out.push_back({"celery." + role + ".reachable", true, "Redis answers at " + at, {}});
    } catch (const std::exception& e) {
        out.push_back({"celery." + role + ".reachable", false, e.what(),
                       "start Redis there, or fix " + setting + " (host and port)"});
        return;
    }
    if (!url.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!url.username.empty()) auth.push_back(url.username);
        auth.push_back(url.password);
        const redis_reply r = c->pipeline({auth}).front();
        if (r.type == redis_reply::kind::error) {
            const bool no_password_set = r.str.find("without any password") != std::string::npos ||
                                         r.str.find("no password is set") != std::string::npos;
            out.push_back({"celery." + role + ".auth", false,
                           no_password_set ? "Redis at " + at + " has no password, but " + setting + " gives one"
                                           : "Redis at " + at + " refused the password in " + setting + ": " + redact(r.str),
                           no_password_set ? "remove the password from " + setting
                                           : "put the server's password (requirepass) in " + setting +
                                                 " as redis://:PASSWORD@host:port/db"});
            return;
        }
        out.push_back({"celery." + role + ".auth", true, "the password is accepted", {}});
    }
    const redis_reply info = c->pipeline({{"INFO", "server"}}).front();
    if (info.type == redis_reply::kind::error) {
        const bool noauth = info.str.rfind("NOAUTH", 0) == 0;
        out.push_back({"celery." + role + ".auth", false,
                       noauth ? "Redis at " + at + " requires a password and " + setting + " gives none"
                              : "Redis at " + at + " refused INFO: " + redact(info.str),
                       noauth ? "put the server's password in " + setting + " as redis://:PASSWORD@host:port/db"
                              : "let this user run INFO (Redis ACL)"});
        return;
    }
    const std::string& text = info.str;
    const auto v = text.find("redis_version:");
    std::string version = v == std::string::npos ? "" : text.substr(v + 14, text.find_first_of("\r\n", v) - v - 14);
    int major = 0, minor = 0;
    if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) {
        out.push_back({"celery." + role + ".version", false, "INFO server names no redis_version",
                       "use Redis " + std::to_string(min_redis_major) + "." + std::to_string(min_redis_minor) + " or later"});
    } else {
        const bool new_enough = major > min_redis_major || (major == min_redis_major && minor >= min_redis_minor);
        const std::string minimum = std::to_string(min_redis_major) + "." + std::to_string(min_redis_minor);
        out.push_back({"celery." + role + ".version", new_enough,
                       "Redis " + version + (new_enough ? " (>= " : " (kombu 5.7 needs >= ") + minimum +
                           ", for ZRANGE BYSCORE REV)",
                       new_enough ? "" : "upgrade Redis to " + minimum + " or later"});
    }
    if (url.db != 0) {
        const redis_reply sel = c->pipeline({{"SELECT", std::to_string(url.db)}}).front();
        if (sel.type == redis_reply::kind::error) {
            out.push_back({"celery." + role + ".database", false,
                           "Redis at " + at + " has no database " + std::to_string(url.db) + ": " + redact(sel.str),
                           "use a database below the server's `databases` setting in " + setting});
            return;
        }
    }
    out.push_back({"celery." + role + ".database", true, "database " + std::to_string(url.db) + " is selectable", {}});
}

}  // namespace

std::vector<health_check> backend_impl::doctor() {
    std::vector<health_check> out;
    const auto& o = state_->opts;
    check_redis(out, "broker", state_->broker, "broker_url (WEFT_CELERY_BROKER_URL)", o.timeout);
    if (!state_->same_server)
        check_redis(out, "results", state_->results, "result_url (WEFT_CELERY_RESULT_URL)", o.timeout);
    for (auto& c : out)
        if (!c.ok) return out;  // the ping needs a broker that lets us in
    // app.control.ping(): a reply queue bound to reply.celery.pidbox, the broadcast, a second of replies.
    health_check ping{"celery.workers", true, {}, {}};
    try {
        redis_connection c(state_->broker, o.timeout);
        const std::string oid = new_id(), ticket = new_id(), queue = oid + ".reply.celery.pidbox";
        const std::string binding = o.global_keyprefix + "_kombu.binding.reply.celery.pidbox";
        const std::string member = oid + "\x06\x16\x06\x16" + queue;
        c.command({"SADD", binding, member});
        c.command({"PUBLISH", o.global_keyprefix + pidbox_channel(state_->broker.db), ping_broadcast(ticket, oid)});
        std::vector<std::string> nodes;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        while (std::chrono::steady_clock::now() < until) {
            const redis_reply r = c.command({"BRPOP", o.global_keyprefix + queue, "0.2"});
            if (r.type == redis_reply::kind::array && r.elements.size() == 2)
                for (auto& n : reply_nodes(r.elements[1].str)) nodes.push_back(n);
        }
        c.pipeline({{"SREM", binding, member}, {"DEL", o.global_keyprefix + queue}});
        if (nodes.empty()) {
            ping.detail = "warning: no worker answered a ping on the pidbox within 1 s; runs wait until one consumes queue '" +
                          o.queue + "'";
        } else {
            std::sort(nodes.begin(), nodes.end());
            std::string names;
            for (auto& n : nodes) names += (names.empty() ? "" : ", ") + n;
            ping.detail = std::to_string(nodes.size()) + " worker(s) answered a ping: " + names;
        }
    } catch (const std::exception& e) {
        ping.detail = std::string("warning: the ping could not be sent: ") + e.what();
    }
    out.push_back(std::move(ping));
    return out;
}

// on_step: polled from the result backend, so a state held for less than one poll interval
// (running, for a fast step) may not be seen; every settled state is.
void backend_impl::watch(const erased_workflow& wf, const run_control& run, run_options opts) {
    if (!opts.on_step) return;
    state_->watchers.watch(wf.graph, std::move(opts.on_step),
                           [st = state_.get(), &g = wf.graph, ids = static_cast<const celery_run&>(run).ids()](
                               std::vector<step_status>& steps, std::stop_token) {
                               auto metas = st->metas(ids);
                               steps = statuses(g, metas);
                               return closed(g, metas);
                           },
                           std::chrono::milliseconds(100));
}

std::vector<std::shared_ptr<run_control>> backend_impl::start_many(const erased_workflow& wf,
                                                                   std::span<const void* const> inputs) {
    batch commands;
    std::vector<std::shared_ptr<run_control>> runs;
    runs.reserve(inputs.size());
    for (const void* input : inputs) runs.push_back(prepare(wf, input, commands));
    send(wf, commands);
    return runs;
}

// What starts one run, appended to `commands`: its record and its chords' sizes for the result
// backend, its messages for the broker.
std::shared_ptr<run_control> backend_impl::prepare(const erased_workflow& wf, const void* input, batch& commands,
                                                   const run_metadata& metadata) {
    const graph_view& g = wf.graph;
    auto plan = lower_to_stages(g.size(), g.topological_order, [&](std::size_t i) { return g.parent_count(i); },
                                [&](std::size_t i, std::size_t k) { return g.parent(i, k); });
    if (!plan.ok)
        throw config_error("weft: the celery backend cannot send workflow '" + std::string(wf.graph.name) +
                           "' as Celery canvas: the parents of step '" + std::string(wf.graph.names[plan.culprit]) +
                           "' are not exactly the previous stage (see weft/celery/lowering.hpp)");
    auto& stages = plan.stages;
    // The run id names the backend and the workflow (run_id); the other tasks' ids derive from it.
    std::vector<std::string> ids = task_ids(g, run_id{celery::name, g.name, new_id()}.str());
    feed from{ids[stages[0][0]], std::nullopt, state_->opts.queue, wf.codec->encode_input(input).as_array()};
    // The run's metadata rides on every signature too: a Python worker sends the next step from its
    // signature's options, and headers there become the message's headers.
    json::object headers;
    if (!metadata.empty()) {
        from.metadata = kit::metadata_object(metadata);
        headers["weft_metadata"] = from.metadata;
    }
    // A parallel stage's members in the order its join declares its parents (= group_index order).
    for (std::size_t s = 0; s + 1 < stages.size(); ++s)
        for (std::size_t k = 0, join = stages[s + 1][0]; k < wf.graph.parent_count(join); ++k) stages[s][k] = wf.graph.parent(join, k);
    auto elements = canvas(stages, [&](std::size_t i) {
        signature s;
        s.task = std::string(wf.graph.names[i]);
        s.options["task_id"] = ids[i];
        auto r = state_->opts.routes.find(wf.graph.names[i]);
        s.options["queue"] = r != state_->opts.routes.end() ? r->second
                             : wf.graph.policies[i].queue.empty() ? state_->opts.queue
                                                            : std::string(wf.graph.policies[i].queue);
        if (wf.graph.policies[i].priority) s.options["priority"] = wf.graph.policies[i].priority;
        if (wf.graph.policies[i].timeout.count() > 0)
            s.options["time_limit"] = std::chrono::duration<double>(wf.graph.policies[i].timeout).count();
        if (!headers.empty()) s.options["headers"] = headers;
        return s;
    });
    // The client applies the first element itself, as Python's apply_async does; the rest rides in
    // its chain (next step last).
    auto out = apply(from, elements.front(), {elements.rbegin(), elements.rend() - 1});
    const std::string expires = std::to_string(state_->opts.result_expires.count());
    const std::string& root = ids[g.sources[0]];
    std::string queue_list;
    for (auto& m : out.messages)
        if (m.id == root || queue_list.empty()) queue_list = state_->list_of(m.queue, m.priority);
    const auto now = std::chrono::system_clock::now();
    commands.results.push_back({"SET", state_->run_record(root), encode_record(g, now, queue_list), "EX", expires});
    if (state_->opts.listed_runs > 0) {  // the index list() reads; send() trims it once per batch
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
        commands.results.push_back({"ZADD", state_->run_index(g.name), std::to_string(ms), root});
    }
    for (auto& [gid, size] : out.chord_sizes)
        commands.results.push_back(
            {"SET", state_->opts.result_keyprefix + taskset_key(gid) + ".s", std::to_string(size), "EX", expires});
    // The run's span; its context rides in every first message's headers, where Python's
    // instrumentation looks (and the C++ worker too).
    telemetry::span span = telemetry::run_span(celery::name, g.name, root);
    if (span.active()) span.set("messaging.system", std::string("celery"));
    for (auto& m : out.messages) {
        m.origin = state_->origin;
        if (span.active()) {
            m.traceparent = telemetry::format_traceparent(*span.context());
            if (!span.context()->tracestate.empty()) m.tracestate = span.context()->tracestate;
        }
        commands.broker.push_back({"LPUSH", state_->list_of(m.queue, m.priority), encode_envelope(m)});
    }
    return std::make_shared<celery_run>(state_, wf, std::move(ids), std::move(queue_list));
}

// The result backend's commands first (a chord's size before its header runs), then the broker's:
// one pipeline, one round trip, when both are the same Redis.
void backend_impl::send(const erased_workflow& wf, batch& commands) {
    auto check = [&](const std::vector<redis_reply>& replies, const redis_url& to) {
        for (auto& r : replies)
            if (r.type == redis_reply::kind::error)
                throw redis_error("weft: Redis at " + to.redacted() + " refused to start workflow '" +
                                  std::string(wf.graph.name) + "': " + redact(r.str));
    };
    if (const unsigned keep = state_->opts.listed_runs) {
        // The index without the runs older than the metas' expiry, trimmed to the newest `keep`,
        // expiring with the metas.
        const std::string index = state_->run_index(wf.graph.name);
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
        const auto expires = state_->opts.result_expires;
        commands.results.push_back({"ZREMRANGEBYSCORE", index, "-inf",
                                    "(" + std::to_string(now.count() - std::chrono::milliseconds(expires).count())});
        commands.results.push_back({"ZREMRANGEBYRANK", index, "0", std::to_string(-static_cast<long long>(keep) - 1)});
        commands.results.push_back({"EXPIRE", index, std::to_string(expires.count())});
    }
    std::lock_guard lock(state_->m);
    if (state_->same_server) {
        commands.results.insert(commands.results.end(), std::make_move_iterator(commands.broker.begin()),
                                std::make_move_iterator(commands.broker.end()));
        check(state_->broker_connection().pipeline(commands.results), state_->broker);
        return;
    }
    check(state_->result_connection().pipeline(commands.results), state_->results);
    check(state_->broker_connection().pipeline(commands.broker), state_->broker);
}

namespace {
// A function's static: the registry reads it during static initialization.
const kit::settings_table<celery::options>& table() {
    using o = celery::options;
    static const kit::settings_table<o> t{
        "celery",
        {
            {"broker_url", &o::broker_url, "the broker's Redis, redis[s]://[[user]:password@]host:port/db[?ssl_cert_reqs=required&...]",
             0, {}, "CELERY_BROKER_URL"},
            {"result_url", &o::result_url, "the result backend's Redis; empty: the broker's", 0, {}, "CELERY_RESULT_BACKEND"},
            {"queue", &o::queue, "queue of steps whose policy names none"},
            {"result_expires", &o::result_expires, "TTL of result metas (Celery's result_expires)"},
            {"timeout_ms", &o::timeout, "connect and reply timeout"},
            {"global_keyprefix", &o::global_keyprefix, "kombu's broker_transport_options global_keyprefix"},
            {"result_keyprefix", &o::result_keyprefix, "the result backend's global_keyprefix"},
            {"listed_runs", &o::listed_runs, "runs kept per workflow in the index list() reads; 0: no index", 1000000},
        }};
    return t;
}

// A worker's own settings, beside the shared ones: what Python sets in broker_transport_options and
// worker_prefetch_multiplier, so `weft worker` can be tuned as `celery worker` is.
const kit::settings_table<celery::worker_options>& worker_table() {
    using o = celery::worker_options;
    static const kit::settings_table<o> t{
        "celery",
        {
            {"visibility_timeout", &o::visibility_timeout,
             "a message held this long by a worker that died is delivered again (kombu's visibility_timeout)"},
            {"restore_interval_ms", &o::restore_interval, "how often a worker sweeps unacked for such messages"},
            {"prefetch_multiplier", &o::prefetch_multiplier,
             "a worker holds at most concurrency x this many messages; 0: no limit", 100000},
            {"dead_letter", &o::dead_letter, "the Redis list for messages that cannot run"},
        }};
    return t;
}
}  // namespace

celery::options options_from(const config& c) { return table().read(c); }
std::vector<setting_doc> settings() {
    auto docs = table().docs();
    for (auto& d : worker_table().docs()) docs.push_back(std::move(d));
    return docs;
}
celery::worker_options worker_settings_from(const config& c) { return worker_table().read(c); }

}  // namespace weft::celery_detail
