// The Celery client: lowering an erased workflow to one message, and a run handle that reads the
// Redis result backend the way AsyncResult does (SUBSCRIBE to the meta key's channel, then GET).
#include <weft/celery.hpp>
#include <weft/kit/remote_run.hpp>
#include <weft/kit/settings.hpp>
#include <weft/kit/step_watcher.hpp>

#include "canvas.hpp"
#include "transport.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <mutex>
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
    std::string list_of(std::string_view queue, int priority) const {
        return opts.global_keyprefix + priority_list(queue, priority);
    }

    redis_connection& broker_connection() {
        if (!broker_conn) broker_conn = std::make_unique<redis_connection>(broker, opts.timeout);
        return *broker_conn;
    }
    redis_connection& result_connection() {
        if (!result_conn) result_conn = std::make_unique<redis_connection>(results, opts.timeout);
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

    kit::step_watchers watchers;  // last: joined before the connections they read go away
};

namespace {

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

// A run is over once every last step is ready, or any step failed or was revoked.
bool closed(const graph_view& g, const std::vector<task_meta>& metas) {
    for (auto& m : metas)
        if (m.state == task_state::failure || m.state == task_state::revoked) return true;
    return std::all_of(g.sinks.begin(), g.sinks.end(), [&](std::size_t s) { return is_ready(metas[s].state); });
}

// A run's task ids, one per node, from its id (its first source's task id): derived rather than
// drawn, so that any process that knows the run id reads the same metas (attach).
std::vector<std::string> task_ids(const graph_view& g, std::string_view run_id) {
    std::vector<std::string> ids(g.size());
    for (std::size_t i = 0; i < g.size(); ++i)
        ids[i] = i == g.sources[0] ? std::string(run_id) : std::string(run_id) + "." + std::to_string(i);
    return ids;
}

class celery_run final : public kit::remote_run {
public:
    celery_run(std::shared_ptr<backend_impl::state> st, const erased_workflow& wf, std::vector<std::string> ids)
        : remote_run(wf, ids[wf.graph.sources[0]]), st_(std::move(st)), ids_(std::move(ids)) {}  // the root task id

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
        auto metas = st_->metas(ids_);
        for (auto& m : metas)
            if (m.state == task_state::failure || m.state == task_state::revoked)
                return m.state == task_state::failure ? run_state::failed : run_state::cancelled;
        return closed(wf_.graph, metas) ? run_state::succeeded : run_state::running;
    }

    // SUBSCRIBE to every sink's channel first, then GET, then rely on PUBLISH (as Python's
    // ResultConsumer does); a GET every second covers a lost connection.
    std::optional<outcome> await(std::chrono::milliseconds timeout) const override {
        auto deadline = std::chrono::steady_clock::now() + timeout;
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
    batch commands;
    auto run = prepare(wf, input, commands);
    send(wf, commands);
    watch(wf, *run, std::move(opts));
    return run;
}

// Celery cannot tell an unknown task id from a pending one (AsyncResult of any id is PENDING), so
// start() leaves a record of the run beside the result metas, with the same expiry: attach reads it
// to know the run and its workflow.
std::shared_ptr<run_control> backend_impl::attach(const erased_workflow& wf, std::string_view id) {
    redis_reply r;
    {
        std::lock_guard lock(state_->m);
        r = state_->result_connection().command({"GET", state_->run_record(id)});
    }
    if (r.type != redis_reply::kind::string)
        throw run_not_found("celery", wf.graph.name, id,
                            "the result backend (" + state_->results.redacted() + ") has no record '" +
                                state_->run_record(id) + "' of it: not started through weft, or older than result_expires (" +
                                std::to_string(state_->opts.result_expires.count()) + " s)");
    std::string workflow;
    try {
        workflow = std::string(json::parse(r.str).as_object().at("workflow").as_string());
    } catch (const std::exception& e) {
        throw wire_error("weft: celery: the run record " + state_->run_record(id) + " is not weft's: " + e.what());
    }
    if (workflow != wf.graph.name)
        throw config_error("weft: celery run '" + std::string(id) + "' is a run of workflow '" + workflow + "', not '" +
                           std::string(wf.graph.name) + "'");
    return std::make_shared<celery_run>(state_, wf, task_ids(wf.graph, id));
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
std::shared_ptr<run_control> backend_impl::prepare(const erased_workflow& wf, const void* input, batch& commands) {
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
        return s;
    });
    // The client applies the first element itself, as Python's apply_async does; the rest rides in
    // its chain (next step last).
    auto out = apply(from, elements.front(), {elements.rbegin(), elements.rend() - 1});
    const std::string expires = std::to_string(state_->opts.result_expires.count());
    json::object record;
    record["workflow"] = wf.graph.name;
    record["started"] = iso_utc(std::chrono::system_clock::now());
    commands.results.push_back({"SET", state_->run_record(ids[g.sources[0]]), boost::json::serialize(record), "EX", expires});
    for (auto& [gid, size] : out.chord_sizes)
        commands.results.push_back(
            {"SET", state_->opts.result_keyprefix + taskset_key(gid) + ".s", std::to_string(size), "EX", expires});
    for (auto& m : out.messages) {
        m.origin = state_->origin;
        commands.broker.push_back({"LPUSH", state_->list_of(m.queue, m.priority), encode_envelope(m)});
    }
    return std::make_shared<celery_run>(state_, wf, std::move(ids));
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
            {"broker_url", &o::broker_url, "the broker's Redis, redis://[:password@]host:port/db"},
            {"result_url", &o::result_url, "the result backend's Redis; empty: the broker's"},
            {"queue", &o::queue, "queue of steps whose policy names none"},
            {"result_expires", &o::result_expires, "TTL of result metas (Celery's result_expires)"},
            {"timeout_ms", &o::timeout, "connect and reply timeout"},
            {"global_keyprefix", &o::global_keyprefix, "kombu's broker_transport_options global_keyprefix"},
            {"result_keyprefix", &o::result_keyprefix, "the result backend's global_keyprefix"},
        }};
    return t;
}
}  // namespace

celery::options options_from(const config& c) { return table().read(c); }
std::vector<setting_doc> settings() { return table().docs(); }

}  // namespace weft::celery_detail
