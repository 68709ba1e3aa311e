// The C++ Hatchet worker on kit::worker_skeleton: PutWorkflow for what it serves, Dispatcher/Register
// with its actions and slots, a fetcher reading ListenV2 streams for assignments (reopened when one
// ends, as it does when the engine restarts), Heartbeat every few seconds, and `slots` threads that
// run steps and report STARTED then COMPLETED or FAILED through SendStepActionEvent.
#include "connection.hpp"

#include <weft/kit/carrier.hpp>
#include <weft/kit/metadata.hpp>
#include <weft/kit/worker.hpp>

#include <boost/json/serialize.hpp>
#include <google/protobuf/util/time_util.h>

#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace weft {

using namespace hatchet_wire;
using hatchet_detail::connection;
using hatchet_detail::rpc_error;

namespace {

struct served_step {
    erased_step step;
    std::vector<std::string> parents;  // readable ids, in declaration order
};

google::protobuf::Timestamp now() {
    return google::protobuf::util::TimeUtil::GetCurrentTime();
}

}  // namespace

struct hatchet::worker::impl {
    worker_options opts;
    connection conn;
    std::vector<workflow_plan> plans;
    std::map<std::string, served_step, std::less<>> actions;  // action id -> step

    mutable std::mutex m;
    std::map<std::string, kit::task_context*> running;  // task run id -> its attempt's context
    std::string worker_id;
    bool ready = false;       // the last heartbeat was accepted and the stream has not ended since
    bool unknown = false;     // the engine forgot this worker: register again before listening
    bool unsubscribed = false;
    mutable std::condition_variable ready_cv;
    grpc::ClientContext* listen_ctx = nullptr;
    counters stats;
    kit::worker_skeleton<AssignedAction> skeleton;  // last: its threads use everything above

    explicit impl(worker_options o)
        : opts(std::move(o)), conn(opts),
          skeleton({.what = "weft hatchet worker",
                    .log = opts.log,
                    .backoff = opts.backoff,
                    .who = {.backend = "hatchet", .worker = opts.worker_name}}) {
        if (!opts.log)
            opts.log = [this](std::string_view level, std::string_view text) {
                kit::log_message(skeleton.settings().who, level, text);
            };
        if (opts.concurrency < 1) throw config_error("weft: hatchet: worker concurrency (slots) must be at least 1");
        hatchet_detail::replaces_definitions(opts);  // a bad value fails here, not at start()
        skeleton.threads().on_stop([this] {
            std::lock_guard lock(m);
            if (listen_ctx) listen_ctx->TryCancel();
            ready_cv.notify_all();
        });
    }

    void log(std::string_view level, const std::string& text) const { opts.log(level, conn.redact(text)); }

    void register_worker() {
        WorkerRegisterRequest req;
        req.set_worker_name(opts.worker_name);
        for (auto& [action, _] : actions) req.add_actions(action);
        req.add_services("default");
        (*req.mutable_slot_config())["default"] = opts.concurrency;
        for (auto& [k, v] : opts.labels) (*req.mutable_labels())[k].set_str_value(v);
        req.mutable_runtime_info()->set_sdk_version("weft 0.1.0");
        req.mutable_runtime_info()->set_language_version("C++20");
        auto resp = conn.dispatch("Dispatcher/Register", &connection::dispatcher::Stub::Register, req);
        std::lock_guard lock(m);
        worker_id = resp.worker_id();
    }

    std::string id() const {
        std::lock_guard lock(m);
        return worker_id;
    }

    // One ListenV2 stream, read until it ends (as it does when the engine restarts). The skeleton
    // opens the next one: at once after a stream that brought assignments, else after its backoff.
    bool listen_once() {
        bool again;
        {
            std::lock_guard lock(m);
            again = unknown;
        }
        if (again) {
            register_worker();  // throws while the engine is away: the next call tries again
            std::lock_guard lock(m);
            unknown = false;
        }
        if (again) log("info", "registered again as " + id());
        grpc::ClientContext ctx;
        conn.prepare(ctx, std::chrono::milliseconds(0));
        {
            std::lock_guard lock(m);
            if (skeleton.stopping()) return false;
            listen_ctx = &ctx;
        }
        WorkerListenRequest req;
        req.set_worker_id(id());
        auto reader = conn.dispatcher_stub().ListenV2(&ctx, req);
        AssignedAction a;
        bool got = false;
        // A stream's fetch latency is how long it waited for each assignment, as a long poll's is.
        telemetry::stopwatch waited;
        while (reader->Read(&a)) {
            got = true;
            kit::fetched(skeleton.settings().who, "the assignment stream", waited.ms());
            waited = {};
            accept(std::move(a));
            a = AssignedAction();
        }
        grpc::Status st = reader->Finish();
        {
            std::lock_guard lock(m);
            listen_ctx = nullptr;
            ready = false;
            if (skeleton.stopping()) return false;
            ++stats.reconnects;
            // A new database or a pruned worker: the engine no longer knows this id.
            unknown = st.error_code() == grpc::StatusCode::NOT_FOUND;
        }
        const std::string why = "the assignment stream ended (" + std::string(hatchet_detail::status_name(st.error_code())) +
                                "): " + st.error_message();
        if (!got) throw std::runtime_error(why);
        log("info", why + "; reconnecting");
        return true;
    }

    void accept(AssignedAction a) {
        if (a.action_type() == CANCEL_STEP_RUN) {
            std::lock_guard lock(m);
            if (auto it = running.find(a.task_run_external_id()); it != running.end()) it->second->cancelled = true;
            return;
        }
        if (a.action_type() == START_STEP_RUN) skeleton.push(std::move(a));
    }

    // The first beat soon after the stream opens, then every `heartbeat`; every 500 ms while the
    // engine refuses them (no stream yet: FAILED_PRECONDITION; restarting: UNAVAILABLE).
    void heartbeat_loop() {
        bool failing = false;
        std::chrono::milliseconds next{300};
        while (skeleton.background().sleep_for(next)) {  // on through a drain: the engine must see us
            HeartbeatRequest req;
            req.set_worker_id(id());
            *req.mutable_heartbeat_at() = now();
            try {
                conn.dispatch("Dispatcher/Heartbeat", &connection::dispatcher::Stub::Heartbeat, req);
                if (failing) log("info", "heartbeats accepted again");
                failing = false;
                next = opts.heartbeat;
                std::lock_guard lock(m);
                ++stats.heartbeats;
                ready = true;
                ready_cv.notify_all();
            } catch (const std::exception& e) {
                if (!failing) log("warning", e.what());
                failing = true;
                next = std::min(opts.heartbeat, std::chrono::milliseconds(500));
            }
        }
    }

    // Sends one event, retried while the engine is away: an outcome given up on is a run the engine
    // waits on for good (a storm lost one when 8 tries, about 10 s, fell short of an engine restart).
    // kit::resend: twenty tries at the capped backoff, a minute and more, through a drain.
    void send_event(const AssignedAction& a, StepActionEventType type, std::string payload, bool no_retry = false) {
        StepActionEvent ev;
        ev.set_worker_id(id());
        ev.set_job_id(a.job_id());
        ev.set_job_run_id(a.job_run_id());
        ev.set_task_id(a.task_id());
        ev.set_task_run_external_id(a.task_run_external_id());
        ev.set_action_id(a.action_id());
        *ev.mutable_event_timestamp() = now();
        ev.set_event_type(type);
        ev.set_event_payload(std::move(payload));
        ev.set_retry_count(a.retry_count());
        if (no_retry) ev.set_should_not_retry(true);
        std::string last;
        const kit::resent r = kit::resend(
            skeleton.background(), opts.backoff,
            [&](int) {
                try {
                    conn.dispatch("Dispatcher/SendStepActionEvent", &connection::dispatcher::Stub::SendStepActionEvent, ev);
                    return kit::delivery::taken;
                } catch (const rpc_error& e) {
                    last = e.what();
                    const bool away =
                        e.code() == grpc::StatusCode::UNAVAILABLE || e.code() == grpc::StatusCode::DEADLINE_EXCEEDED;
                    return away ? kit::delivery::away : kit::delivery::refused;
                }
            },
            [&](int attempt, std::chrono::milliseconds delay) {
                log("warning", last + " (task run " + a.task_run_external_id() + ", attempt " + std::to_string(attempt) +
                                   "); retrying in " + std::to_string(delay.count()) + " ms");
            });
        if (r.last == kit::delivery::taken) {
            if (r.attempts > 1)
                log("info", "task run " + a.task_run_external_id() + ": the engine took its event at attempt " +
                                std::to_string(r.attempts));
            return;
        }
        log("error", last + " (task run " + a.task_run_external_id() + "); the event is given up after " +
                         std::to_string(r.attempts) + " attempt(s)");
    }

    // "$[1].qty" of the argument array, said in the run's terms.
    static std::string where(const served_step& s, const std::string& path) {
        if (path.rfind("$[", 0) != 0) return "";
        std::size_t k = std::strtoul(path.c_str() + 2, nullptr, 10);
        if (s.parents.empty()) return " (argument " + std::to_string(k) + " is the run's input)";
        if (k < s.parents.size()) return " (argument " + std::to_string(k) + " is the output of step '" + s.parents[k] + "')";
        return "";
    }

    // The skeleton's hooks for one assignment.
    const erased_step* find(const AssignedAction& a) const {
        auto it = actions.find(a.action_id());
        return it == actions.end() ? nullptr : &it->second.step;
    }
    const served_step& served(const AssignedAction& a) const { return actions.find(a.action_id())->second; }

    void begin(const AssignedAction& a, const erased_step& step, kit::task_context& ctx) {
        ctx.attempt = a.retry_count() + 1;
        ctx.run_id = run_id{hatchet::name, step.workflow(), a.workflow_run_id()}.str();  // the id clients show
        // The run's trace context: the key "traceparent" of its metadata (hatchet_sdk's instrumentor).
        if (a.has_additional_metadata()) {
            ctx.parent = kit::context_from_json(a.additional_metadata());
            read_run_metadata(a, ctx);
        }
        ctx.who = &skeleton.settings().who;
        ctx.worker = &skeleton.threads();  // a stop asks steps to stop once its drain is over, on every backend
        {
            std::lock_guard lock(m);
            running[a.task_run_external_id()] = &ctx;
            ++stats.started;
        }
        send_event(a, STEP_EVENT_TYPE_STARTED, "");
    }

    // The rest of the run's metadata is what the step reads (this_step::metadata). The engine keeps
    // it as a JSON object; anything else is logged and the step sees none.
    void read_run_metadata(const AssignedAction& a, kit::task_context& ctx) {
        if (a.additional_metadata().empty()) return;
        try {
            kit::read_metadata(json::parse(a.additional_metadata()), "the run's additional_metadata", ctx.run_meta);
        } catch (const std::exception& e) {
            log("warning", "task run " + a.task_run_external_id() + ": " + e.what() + "; its step sees no metadata");
        }
    }

    json::array decode(const AssignedAction& a, const erased_step&) const {
        return action_arguments(served(a).parents, a.action_payload());
    }

    void report(const AssignedAction& a, const erased_step* step, kit::step_outcome& out, kit::task_context& ctx) {
        if (!step) {
            send_event(a, STEP_EVENT_TYPE_FAILED,
                       task_error("weft.unknown_step", "weft: hatchet: this worker does not serve action '" + a.action_id() + "'",
                                  "    at worker '" + opts.worker_name + "'"),
                       true);
            return;
        }
        const served_step& s = served(a);
        if (out.what == kit::step_outcome::kind::bad_payload)  // say which run value the path is
            out.error = json::decode_error(out.path, out.expected, out.got + where(s, out.path)).what();
        const bool ok = out.ok(), no_retry = !out.ok() && !out.retryable();  // a bad payload fails every attempt
        std::string payload = ok ? boost::json::serialize(task_output(std::move(out.output)))
                                 : "weft: hatchet: step '" + std::string(step->name()) + "' of workflow '" +
                                       std::string(step->workflow()) + "': " + out.error;
        const std::string failure =  // exc_type for hatchet-sdk: the C++ exception's type, as other backends report it
            ok ? std::string()
               : task_error(out.error_type.empty() ? "weft.error" : out.error_type, payload,
                            "    at step '" + std::string(step->name()) + "', attempt " + std::to_string(ctx.attempt) +
                                ", worker '" + opts.worker_name + "'");
        if (ctx.cancelled) {
            // The engine cancelled this attempt (run cancelled, or the step's timeout): it has settled
            // the outcome already, and a late COMPLETED would be taken as the result (observed).
            log("info", "step '" + std::string(step->name()) + "' stopped after the engine cancelled task run " +
                            a.task_run_external_id() + "; its outcome is not reported");
        } else if (ok) {
            send_event(a, STEP_EVENT_TYPE_COMPLETED, std::move(payload));
        } else {
            log("warning", payload + " (task run " + a.task_run_external_id() + ", attempt " +
                               std::to_string(ctx.attempt) + ")");
            send_event(a, STEP_EVENT_TYPE_FAILED, failure, no_retry);
        }
        std::lock_guard lock(m);
        running.erase(a.task_run_external_id());
        ++(ok ? stats.succeeded : stats.failed);
    }

    void execute(AssignedAction& a) {
        kit::task_context ctx;
        kit::run_task(*this, a, ctx);
    }
};

hatchet::worker::worker(worker_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

hatchet::worker::~worker() { stop(); }

void hatchet::worker::serve(const graph_view& wf, std::span<const erased_step> steps) {
    refuse_transactional_steps(wf, hatchet::name);
    workflow_plan plan = hatchet_detail::plan_for(impl_->opts, wf);
    for (const erased_step& st : steps) {
        served_step s{st, {}};
        for (const task_plan& t : plan.tasks)
            if (t.readable_id == st.name()) s.parents = t.parents;
        impl_->actions.insert_or_assign(action_id(wf.name, st.name()), std::move(s));
    }
    impl_->plans.push_back(std::move(plan));
}

void hatchet::worker::start() {
    if (impl_->actions.empty()) throw config_error("weft: hatchet: the worker serves no steps; call serve() first");
    const bool put = hatchet_detail::replaces_definitions(impl_->opts);
    for (const workflow_plan& p : impl_->plans) {
        if (put) {
            hatchet_detail::put_workflow(impl_->conn, p);
        } else {
            impl_->log(p.concurrency.empty() ? "info" : "warning",
                       "not registering workflow '" + p.name + "' (replace_definitions = never): its steps run under the "
                       "definition the engine has" + (p.concurrency.empty() ? std::string() : ", without the limits weft declares for it"));
        }
    }
    impl_->register_worker();
    impl_->log("info", "registered " + std::to_string(impl_->actions.size()) + " actions as worker " + impl_->id() +
                           " with " + std::to_string(impl_->opts.concurrency) + " slots");
    impl_->skeleton.fetcher("the assignment stream", [this] { return impl_->listen_once(); });
    impl_->skeleton.threads().drain_for(impl_->opts.drain_timeout);
    impl_->skeleton.background().spawn([this] { impl_->heartbeat_loop(); });
    impl_->skeleton.slots(static_cast<unsigned>(impl_->opts.concurrency), [this](AssignedAction& a) { impl_->execute(a); });
    if (!wait_ready(std::max(impl_->opts.timeout, std::chrono::milliseconds(5000))))
        impl_->log("warning", "the engine has not accepted a heartbeat yet; assignments wait for it");
}

bool hatchet::worker::wait_ready(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->m);
    return impl_->ready_cv.wait_for(lock, timeout, [&] { return impl_->ready || impl_->skeleton.stopping(); }) &&
           impl_->ready;
}

void hatchet::worker::run() {
    start();
    impl_->skeleton.threads().wait_until_stopped();
}

void hatchet::worker::stop() {
    // Unsubscribe first: the engine then assigns nothing more to this worker (it would, to a closed
    // stream, and the task would wait for its assignment timeout), while the steps in hand drain and
    // report.
    if (!impl_->id().empty() && !std::exchange(impl_->unsubscribed, true)) {
        WorkerUnsubscribeRequest req;
        req.set_worker_id(impl_->id());
        try {
            impl_->conn.dispatch("Dispatcher/Unsubscribe", &connection::dispatcher::Stub::Unsubscribe, req);
        } catch (const std::exception&) {
            // best effort: the engine also drops a worker whose heartbeats stop
        }
    }
    impl_->skeleton.stop();
}

hatchet::worker::counters hatchet::worker::stats() const {
    std::lock_guard lock(impl_->m);
    return impl_->stats;
}

std::string hatchet::worker::id() const { return impl_->id(); }

hatchet::worker_options hatchet_detail::worker_options_from(const config& c, const worker_settings& s) {
    hatchet::worker_options o;
    static_cast<hatchet::options&>(o) = options_from(c);
    if (!s.queues.empty())
        throw config_error("weft: a Hatchet worker takes no queues: the engine assigns it the steps of the workflows "
                           "it serves (leave out --queues)");
    if (s.concurrency) o.concurrency = static_cast<int>(s.concurrency);
    if (!s.name.empty()) o.worker_name = s.name;
    return o;
}

}  // namespace weft
