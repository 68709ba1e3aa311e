#include <weft/temporal/worker.hpp>

#include <condition_variable>

#include <boost/json/serialize.hpp>
#include <cstdio>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <semaphore>
#include <thread>
#include <vector>

#include <weft/kit/backoff.hpp>
#include <weft/kit/step_runner.hpp>

#include <temporal/api/workflowservice/v1/service.grpc.pb.h>

#include "codec.hpp"
#include "connection.hpp"
#include "decide.hpp"

namespace weft::temporal {

namespace wf = ::temporal::api::workflowservice::v1;
namespace enums = ::temporal::api::enums::v1;
namespace failure_v1 = ::temporal::api::failure::v1;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::chrono::milliseconds to_ms(const google::protobuf::Duration& d) {
    return milliseconds(d.seconds() * 1000 + d.nanos() / 1'000'000);
}


void application_failure(failure_v1::Failure& f, std::string message, std::string type, bool non_retryable) {
    f.set_message(std::move(message));
    f.set_source("weft");
    auto& info = *f.mutable_application_failure_info();
    info.set_type(std::move(type));
    info.set_non_retryable(non_retryable);
}

}  // namespace

struct worker::impl {
    worker_options opts;
    connection conn;
    std::string queue;
    std::map<std::string, const graph_view*, std::less<>> workflows;
    std::map<std::string, erased_step, std::less<>> steps;

    std::atomic<bool> stopping{false};
    std::atomic<bool> started{false};
    std::vector<std::thread> threads;
    std::mutex wake_mutex;
    std::condition_variable wake;        // stop(), for sleepers
    std::condition_variable task_ready;  // a new activity task, or stop()

    // In-flight long polls, cancelled by stop().
    std::mutex polls_mutex;
    std::list<grpc::ClientContext*> polls;

    // Activity tasks handed from the pollers to the step threads; free slots bound how many run.
    std::deque<wf::PollActivityTaskQueueResponse> tasks;
    std::unique_ptr<std::counting_semaphore<>> slots;

    // Running steps the heartbeat thread looks after.
    struct running final : step_context {
        std::string token;
        milliseconds heartbeat_every{0};
        clock::time_point next_heartbeat, deadline;
        std::atomic<bool> cancel{false}, timed_out{false};
        bool stop_requested() const override { return cancel || timed_out; }
    };
    std::mutex running_mutex;
    std::list<running*> running_steps;

    mutable std::mutex stats_mutex;
    counters stats;

    explicit impl(worker_options o)
        : opts(std::move(o)), conn(opts.server), queue(opts.task_queue.empty() ? opts.server.task_queue : opts.task_queue) {
        if (queue.empty())
            throw weft::config_error("weft: a Temporal worker needs a task queue (worker_options::task_queue or the "
                                     "temporal.task_queue setting, WEFT_TEMPORAL_TASK_QUEUE)");
        if (!opts.log)
            opts.log = [](std::string_view level, std::string_view text) {
                std::fprintf(stderr, "weft temporal worker [%.*s] %.*s\n", int(level.size()), level.data(), int(text.size()),
                             text.data());
            };
    }

    void count(std::uint64_t counters::*field) {
        std::lock_guard l(stats_mutex);
        ++(stats.*field);
    }

    // Sleeps until `d` passes or stop(); false when stopping.
    bool sleep_for(milliseconds d) {
        std::unique_lock l(wake_mutex);
        return !wake.wait_for(l, d, [&] { return stopping.load(); });
    }

    // The kit's capped, jittered backoff (worker_options::backoff), with one log line per failure
    // while it grows and one per ten at the cap.
    struct backoff {
        impl& w;
        std::string what;
        kit::backoff schedule{w.opts.backoff};

        void failed(const grpc::Status& st) {
            w.count(&counters::poll_errors);
            const auto delay = schedule.failed();
            if (schedule.worth_logging())
                w.opts.log("warning", what + " failed (" + codec_name(st) + ": " + st.error_message() + "), attempt " +
                                          std::to_string(schedule.failures()) + "; retrying in " +
                                          std::to_string(delay.count()) + " ms");
            w.sleep_for(delay);
        }
        void succeeded() {
            if (schedule.failures() > 0)
                w.opts.log("info", what + " works again after " + std::to_string(schedule.failures()) + " failed attempts");
            schedule.succeeded();
        }
        static std::string codec_name(const grpc::Status& st) {
            static constexpr const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                                    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                                    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                                    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
            int c = st.error_code();
            return c >= 0 && c <= 16 ? names[c] : std::to_string(c);
        }
    };

    // One long poll, cancellable by stop(). Returns the status; the response is in `resp`.
    template <class Request, class Response>
    grpc::Status long_poll(grpc::Status (connection::service::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                           const Request& req, Response& resp) {
        grpc::ClientContext ctx;
        connection::set_deadline(ctx, opts.poll_timeout);
        std::list<grpc::ClientContext*>::iterator it;
        {
            std::lock_guard l(polls_mutex);
            if (stopping) return grpc::Status(grpc::StatusCode::CANCELLED, "stopping");
            it = polls.insert(polls.end(), &ctx);
        }
        grpc::Status st = ((conn.stub()).*method)(&ctx, req, &resp);
        std::lock_guard l(polls_mutex);
        polls.erase(it);
        return st;
    }

    // A unary call retried while the server is away (bounded by stop()); false if it never got through
    // or the server refused it for good (logged).
    template <class Request, class Response>
    bool respond(const char* rpc, grpc::Status (connection::service::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                 const Request& req) {
        backoff b{*this, rpc};
        for (int attempt = 0; attempt < 20; ++attempt) {
            grpc::ClientContext ctx;
            connection::set_deadline(ctx, opts.server.rpc_timeout);
            Response resp;
            grpc::Status st = ((conn.stub()).*method)(&ctx, req, &resp);
            if (st.ok()) return true;
            if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
                opts.log("info", std::string(rpc) + ": the task is gone (" + st.error_message() +
                                     "); it timed out or its run closed");
                return false;
            }
            if (st.error_code() != grpc::StatusCode::UNAVAILABLE && st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
                opts.log("error", std::string(rpc) + " refused (" + backoff::codec_name(st) + "): " + st.error_message());
                return false;
            }
            if (stopping) return false;
            b.failed(st);
        }
        return false;
    }

    template <class Request>
    Request poll_request() const {
        Request req;
        req.set_namespace_(opts.server.namespace_name);
        req.mutable_task_queue()->set_name(queue);
        req.mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
        req.set_identity(conn.configuration().identity);
        return req;
    }

    // ------------------------------------------------------------------------------------------
    // Workflow tasks

    void workflow_poller() {
        backoff b{*this, "PollWorkflowTaskQueue on '" + queue + "'"};
        const auto req = poll_request<wf::PollWorkflowTaskQueueRequest>();
        while (!stopping) {
            wf::PollWorkflowTaskQueueResponse resp;
            grpc::Status st = long_poll(&connection::service::Stub::PollWorkflowTaskQueue, req, resp);
            if (stopping) break;
            if (!st.ok()) {
                if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) continue;
                b.failed(st);
                continue;
            }
            b.succeeded();
            if (resp.task_token().empty()) continue;  // the poll expired
            try {
                workflow_task(resp);
            } catch (const std::exception& e) {
                opts.log("error", "workflow task of '" + resp.workflow_execution().workflow_id() + "': " + e.what());
                fail_workflow_task(resp.task_token(), enums::WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
                                   e.what(), "weft.worker_error");
            }
        }
    }

    void fail_workflow_task(const std::string& token, enums::WorkflowTaskFailedCause cause, std::string message,
                            std::string type) {
        wf::RespondWorkflowTaskFailedRequest req;
        req.set_task_token(token);
        req.set_cause(cause);
        application_failure(*req.mutable_failure(), std::move(message), std::move(type), false);
        req.set_identity(conn.configuration().identity);
        req.set_namespace_(opts.server.namespace_name);
        respond("RespondWorkflowTaskFailed", &connection::service::Stub::RespondWorkflowTaskFailed, req);
    }

    void workflow_task(wf::PollWorkflowTaskQueueResponse& task) {
        count(&counters::workflow_tasks);
        auto found = workflows.find(task.workflow_type().name());
        if (found == workflows.end()) {
            fail_workflow_task(task.task_token(), enums::WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
                               "weft: this worker does not serve workflow type '" + task.workflow_type().name() + "'",
                               "weft.unknown_workflow");
            return;
        }
        // The whole history: the first page came with the task, the rest is paged in.
        ::temporal::api::history::v1::History& history = *task.mutable_history();
        std::string page = task.next_page_token();
        while (!page.empty()) {
            wf::GetWorkflowExecutionHistoryRequest req;
            req.set_namespace_(opts.server.namespace_name);
            *req.mutable_execution() = task.workflow_execution();
            req.set_next_page_token(page);
            auto resp = conn.call("GetWorkflowExecutionHistory", &connection::service::Stub::GetWorkflowExecutionHistory, req);
            count(&counters::history_pages);
            for (auto& e : *resp.mutable_history()->mutable_events()) *history.add_events() = std::move(e);
            page = resp.next_page_token();
        }
        interpreter::decision d = interpreter::decide(*found->second, history,
                                                      {.default_step_timeout = opts.default_step_timeout,
                                                       .heartbeat_timeout = opts.heartbeat_timeout});
        if (!d.ok()) {
            count(&counters::nondeterministic);
            opts.log("error", "workflow '" + task.workflow_execution().workflow_id() + "': " + d.nondeterminism);
            fail_workflow_task(task.task_token(), enums::WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR,
                               d.nondeterminism, "weft.nondeterminism");
            return;
        }
        wf::RespondWorkflowTaskCompletedRequest req;
        req.set_task_token(task.task_token());
        for (auto& c : d.commands) *req.add_commands() = std::move(c);
        req.set_identity(conn.configuration().identity);
        req.set_namespace_(opts.server.namespace_name);
        respond("RespondWorkflowTaskCompleted", &connection::service::Stub::RespondWorkflowTaskCompleted, req);
    }

    // ------------------------------------------------------------------------------------------
    // Activity tasks

    void activity_poller() {
        backoff b{*this, "PollActivityTaskQueue on '" + queue + "'"};
        const auto req = poll_request<wf::PollActivityTaskQueueRequest>();
        while (!stopping) {
            if (!slots->try_acquire_for(milliseconds(200))) continue;
            wf::PollActivityTaskQueueResponse resp;
            grpc::Status st = long_poll(&connection::service::Stub::PollActivityTaskQueue, req, resp);
            if (stopping || !st.ok() || resp.task_token().empty()) {
                slots->release();
                if (stopping) break;
                if (!st.ok() && st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) b.failed(st);
                else if (st.ok()) b.succeeded();
                continue;
            }
            b.succeeded();
            {
                std::lock_guard l(wake_mutex);
                tasks.push_back(std::move(resp));
            }
            task_ready.notify_one();  // one step thread is enough; waking all of them costs CPU per task
        }
    }

    void step_runner() {
        for (;;) {
            wf::PollActivityTaskQueueResponse task;
            {
                std::unique_lock l(wake_mutex);
                task_ready.wait(l, [&] { return stopping || !tasks.empty(); });
                if (tasks.empty()) return;  // stopping, nothing left in hand
                task = std::move(tasks.front());
                tasks.pop_front();
            }
            run_step(task);
            slots->release();
        }
    }

    void run_step(const wf::PollActivityTaskQueueResponse& task) {
        const std::string& name = task.activity_type().name();
        running r;
        r.token = task.task_token();
        r.workflow = task.workflow_type().name();
        r.attempt = task.attempt();
        const auto now = clock::now();
        if (task.has_heartbeat_timeout() && to_ms(task.heartbeat_timeout()).count() > 0) {
            r.heartbeat_every = std::max(milliseconds(100), to_ms(task.heartbeat_timeout()) / 3);
            r.next_heartbeat = now + r.heartbeat_every;
        }
        r.deadline = task.has_start_to_close_timeout() && to_ms(task.start_to_close_timeout()).count() > 0
                         ? now + to_ms(task.start_to_close_timeout())
                         : clock::time_point::max();

        auto fail = [&](std::string message, std::string type, bool non_retryable) {
            count(&counters::steps_failed);
            wf::RespondActivityTaskFailedRequest req;
            req.set_task_token(r.token);
            application_failure(*req.mutable_failure(), std::move(message), std::move(type), non_retryable);
            req.set_identity(conn.configuration().identity);
            req.set_namespace_(opts.server.namespace_name);
            respond("RespondActivityTaskFailed", &connection::service::Stub::RespondActivityTaskFailed, req);
        };

        auto step = steps.find(name);
        if (step == steps.end()) {
            fail("weft: this worker does not serve step '" + name + "' (task queue '" + queue + "')", "weft.unknown_step", true);
            return;
        }
        r.step = step->second.name();

        // Arguments: one JSON value per payload.
        json::array args;
        for (int i = 0; i < task.input().payloads_size(); ++i) {
            try {
                args.push_back(json::parse(codec::from_payload(task.input().payloads(i))));
            } catch (const std::exception& e) {
                fail("weft: step '" + name + "' cannot read its argument $[" + std::to_string(i) + "]: " + e.what(),
                     "weft.bad_payload", true);
                return;
            }
        }

        {
            std::lock_guard l(running_mutex);
            running_steps.push_back(&r);
        }
        const kit::step_outcome out = kit::run_step(step->second, args, r);
        const bool ok = out.ok(), bad_input = out.what == kit::step_outcome::kind::bad_payload;
        std::string error = bad_input ? "weft: step '" + name + "' cannot decode its arguments: " + out.error : out.error;
        std::string error_type = out.error_type;
        {
            std::lock_guard l(running_mutex);
            running_steps.remove(&r);
        }

        if (r.cancel) {
            count(&counters::steps_cancelled);
            wf::RespondActivityTaskCanceledRequest req;
            req.set_task_token(r.token);
            req.set_identity(conn.configuration().identity);
            req.set_namespace_(opts.server.namespace_name);
            respond("RespondActivityTaskCanceled", &connection::service::Stub::RespondActivityTaskCanceled, req);
        } else if (ok) {
            count(&counters::steps_succeeded);
            wf::RespondActivityTaskCompletedRequest req;
            req.set_task_token(r.token);
            codec::to_payload(boost::json::serialize(out.output), *req.mutable_result()->add_payloads());
            req.set_identity(conn.configuration().identity);
            req.set_namespace_(opts.server.namespace_name);
            respond("RespondActivityTaskCompleted", &connection::service::Stub::RespondActivityTaskCompleted, req);
        } else {
            fail(std::move(error), std::move(error_type), bad_input);
        }
    }

    void heartbeater() {
        while (sleep_for(milliseconds(100))) {
            std::vector<std::pair<running*, std::string>> due;
            {
                std::lock_guard l(running_mutex);
                const auto now = clock::now();
                for (running* r : running_steps) {
                    if (now >= r->deadline) r->timed_out = true;
                    if (r->heartbeat_every.count() > 0 && now >= r->next_heartbeat && !r->cancel) {
                        r->next_heartbeat = now + r->heartbeat_every;
                        due.emplace_back(r, r->token);
                    }
                }
            }
            for (auto& [r, token] : due) {
                wf::RecordActivityTaskHeartbeatRequest req;
                req.set_task_token(token);
                req.set_identity(conn.configuration().identity);
                req.set_namespace_(opts.server.namespace_name);
                grpc::ClientContext ctx;
                connection::set_deadline(ctx, opts.server.rpc_timeout);
                wf::RecordActivityTaskHeartbeatResponse resp;
                grpc::Status st = conn.stub().RecordActivityTaskHeartbeat(&ctx, req, &resp);
                count(&counters::heartbeats);
                bool cancel = (st.ok() && resp.cancel_requested()) || st.error_code() == grpc::StatusCode::NOT_FOUND;
                if (!cancel) continue;
                std::lock_guard l(running_mutex);  // `r` may have finished meanwhile
                for (running* x : running_steps)
                    if (x == r) x->cancel = true;
            }
        }
    }
};

worker::worker(worker_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}
worker::~worker() { stop(); }

void worker::serve_workflow(const graph_view& wf) { impl_->workflows.emplace(std::string(wf.name), &wf); }
void worker::serve(const erased_step& step) { impl_->steps.emplace(std::string(step.name()), step); }

void worker::start() {
    impl& w = *impl_;
    if (w.started.exchange(true)) return;
    const unsigned concurrency = std::max(1u, w.opts.concurrency);
    w.slots = std::make_unique<std::counting_semaphore<>>(concurrency);
    if (w.opts.workflows && !w.workflows.empty())
        for (unsigned i = 0; i < std::max(1u, w.opts.workflow_pollers); ++i) w.threads.emplace_back([&w] { w.workflow_poller(); });
    if (w.opts.activities && !w.steps.empty()) {
        for (unsigned i = 0; i < std::max(1u, std::min(w.opts.activity_pollers, concurrency)); ++i)
            w.threads.emplace_back([&w] { w.activity_poller(); });
        for (unsigned i = 0; i < concurrency; ++i) w.threads.emplace_back([&w] { w.step_runner(); });
        w.threads.emplace_back([&w] { w.heartbeater(); });
    }
    if (w.threads.empty())
        throw weft::config_error("weft: the Temporal worker on '" + w.queue + "' serves nothing: call serve() first");
}

void worker::run() {
    start();
    std::unique_lock l(impl_->wake_mutex);
    impl_->wake.wait(l, [&] { return impl_->stopping.load(); });
}

void worker::stop() {
    impl& w = *impl_;
    {
        std::lock_guard l(w.wake_mutex);
        w.stopping = true;
    }
    w.wake.notify_all();
    w.task_ready.notify_all();
    {
        std::lock_guard l(w.polls_mutex);
        for (auto* ctx : w.polls) ctx->TryCancel();
    }
    for (auto& t : w.threads)
        if (t.joinable()) t.join();
    w.threads.clear();
}

worker::counters worker::stats() const {
    std::lock_guard l(impl_->stats_mutex);
    return impl_->stats;
}

}  // namespace weft::temporal
