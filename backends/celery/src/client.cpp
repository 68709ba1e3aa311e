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
    return m.retries ? static_cast<int>(*m.retries) + 1 : 1;
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

    std::string meta(std::string_view id) const { return opts.result_keyprefix + meta_key(id); }
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
    state_->opts = std::move(opts);
}

backend_impl::~backend_impl() = default;

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    std::vector<std::vector<std::string>> commands;
    auto run = prepare(wf, input, commands);
    send(wf, commands);
    // on_step: polled from the result backend, so a state held for less than one poll interval
    // (running, for a fast step) may not be seen; every settled state is.
    if (opts.on_step)
        state_->watchers.watch(wf.graph, std::move(opts.on_step),
                               [st = state_.get(), &g = wf.graph, ids = static_cast<const celery_run&>(*run).ids()](std::vector<step_status>& steps,
                                                                                      std::stop_token) {
                                   auto metas = st->metas(ids);
                                   steps = statuses(g, metas);
                                   return closed(g, metas);
                               },
                               std::chrono::milliseconds(100));
    return run;
}

std::vector<std::shared_ptr<run_control>> backend_impl::start_many(const erased_workflow& wf,
                                                                   std::span<const void* const> inputs) {
    std::vector<std::vector<std::string>> commands;
    std::vector<std::shared_ptr<run_control>> runs;
    runs.reserve(inputs.size());
    for (const void* input : inputs) runs.push_back(prepare(wf, input, commands));
    send(wf, commands);
    return runs;
}

// The messages that start one run, appended to `commands` (a chord's size is stored at once).
std::shared_ptr<run_control> backend_impl::prepare(const erased_workflow& wf, const void* input,
                                                   std::vector<std::vector<std::string>>& commands) {
    const graph_view& g = wf.graph;
    auto plan = lower_to_stages(g.size(), g.topological_order, [&](std::size_t i) { return g.parent_count(i); },
                                [&](std::size_t i, std::size_t k) { return g.parent(i, k); });
    if (!plan.ok)
        throw config_error("weft: the celery backend cannot send workflow '" + std::string(wf.graph.name) +
                           "' as Celery canvas: the parents of step '" + std::string(wf.graph.names[plan.culprit]) +
                           "' are not exactly the previous stage (see weft/celery/lowering.hpp)");
    auto& stages = plan.stages;
    std::vector<std::string> ids(wf.graph.names.size());
    for (auto& id : ids) id = new_id();
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
    for (auto& [gid, size] : out.chord_sizes) {
        std::lock_guard lock(state_->m);
        state_->result_connection().command({"SET", state_->opts.result_keyprefix + taskset_key(gid) + ".s",
                                             std::to_string(size), "EX", std::to_string(state_->opts.result_expires.count())});
    }
    for (auto& m : out.messages) {
        m.origin = state_->origin;
        commands.push_back({"LPUSH", state_->list_of(m.queue, m.priority), encode_envelope(m)});
    }
    return std::make_shared<celery_run>(state_, wf, std::move(ids));
}

// One pipeline, one round trip.
void backend_impl::send(const erased_workflow& wf, const std::vector<std::vector<std::string>>& commands) {
    std::lock_guard lock(state_->m);
    auto replies = state_->broker_connection().pipeline(commands);
    for (auto& r : replies)
        if (r.type == redis_reply::kind::error)
            throw redis_error("weft: Redis at " + state_->broker.redacted() + " refused to start workflow '" +
                              std::string(wf.graph.name) + "': " + redact(r.str));
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
