// The C++ Temporal worker on kit::worker_skeleton: workflow-task fetchers that decide each task as it
// comes (decide.cpp), activity-task fetchers that poll only while a slot is free, `concurrency` step
// threads, and a heartbeat thread that also raises cancellation and start-to-close timeouts, and goes
// on through a graceful stop until every running step has reported.
#include <weft/temporal/worker.hpp>

#include <boost/json/serialize.hpp>
#include <cstdio>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include <weft/kit/worker.hpp>

#include <temporal/api/update/v1/message.pb.h>
#include <temporal/api/workflowservice/v1/service.grpc.pb.h>

#include "codec.hpp"
#include "connection.hpp"
#include "decide.hpp"

namespace weft::temporal_detail {

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

    std::atomic<bool> started{false};

    // In-flight long polls, cancelled by stop().
    std::mutex polls_mutex;
    std::list<grpc::ClientContext*> polls;

    // Running steps the heartbeat thread looks after.
    struct running {
        kit::task_context* ctx;
        std::string token;
        milliseconds heartbeat_every{0};
        clock::time_point next_heartbeat, deadline;
    };
    std::mutex running_mutex;
    std::list<running> running_steps;

    mutable std::mutex stats_mutex;
    counters stats;
    kit::worker_skeleton<wf::PollActivityTaskQueueResponse> skeleton;  // last: its threads use the rest

    explicit impl(worker_options o)
        : opts(std::move(o)), conn(opts), queue(opts.task_queue),
          skeleton({.what = "weft temporal worker",
                    .log = opts.log,
                    .backoff = opts.backoff,
                    .who = {.backend = "temporal", .worker = conn.configuration().identity}}) {
        if (queue.empty())
            throw weft::config_error("weft: a Temporal worker needs a task queue (worker_options::task_queue or the "
                                     "temporal.task_queue setting, WEFT_TEMPORAL_TASK_QUEUE)");
        if (!opts.log)
            opts.log = [this](std::string_view level, std::string_view text) {
                kit::log_message(skeleton.settings().who, level, text);
            };
        skeleton.threads().on_stop([this] {
            std::lock_guard l(polls_mutex);
            for (auto* ctx : polls) ctx->TryCancel();
        });
    }

    void count(std::uint64_t counters::*field) {
        std::lock_guard l(stats_mutex);
        ++(stats.*field);
    }

    static std::string status_name(const grpc::Status& st) {
        static constexpr const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                                "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                                "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                                "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
        int c = st.error_code();
        return c >= 0 && c <= 16 ? names[c] : std::to_string(c);
    }

    // A failed poll, for the skeleton to log and back off.
    [[noreturn]] void poll_failed(const grpc::Status& st) {
        count(&counters::poll_errors);
        throw std::runtime_error(status_name(st) + ": " + st.error_message());
    }

    // One long poll, cancellable by stop(). Returns the status; the response is in `resp`.
    template <class Request, class Response>
    grpc::Status long_poll(grpc::Status (connection::service::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                           const Request& req, Response& resp) {
        grpc::ClientContext ctx;
        connection::set_deadline(ctx, opts.poll_timeout);
        std::list<grpc::ClientContext*>::iterator it;
        {
            std::lock_guard l(polls_mutex);
            if (skeleton.stopping()) return grpc::Status(grpc::StatusCode::CANCELLED, "stopping");
            it = polls.insert(polls.end(), &ctx);
        }
        grpc::Status st = ((conn.stub()).*method)(&ctx, req, &resp);
        std::lock_guard l(polls_mutex);
        polls.erase(it);
        return st;
    }

    // A unary call the server must receive (an outcome, a decision), sent again while the server is
    // away (kit::resend: through a drain too); false if it never got through or the server refused it
    // for good (logged).
    template <class Request, class Response>
    bool respond(const char* rpc, grpc::Status (connection::service::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                 const Request& req) {
        grpc::Status st;
        const kit::resent r = kit::resend(
            skeleton.background(), opts.backoff,
            [&](int) {
                grpc::ClientContext ctx;
                connection::set_deadline(ctx, opts.timeout);
                Response resp;
                st = ((conn.stub()).*method)(&ctx, req, &resp);
                if (st.ok()) return kit::delivery::taken;
                if (st.error_code() != grpc::StatusCode::UNAVAILABLE && st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED)
                    return kit::delivery::refused;
                count(&counters::poll_errors);
                return kit::delivery::away;
            },
            [&](int attempt, std::chrono::milliseconds delay) {
                opts.log("warning", std::string(rpc) + " failed (" + status_name(st) + ": " + st.error_message() +
                                        "), attempt " + std::to_string(attempt) + "; retrying in " +
                                        std::to_string(delay.count()) + " ms");
            });
        if (r.last == kit::delivery::taken) {
            if (r.attempts > 1)
                opts.log("info", std::string(rpc) + ": the server took it at attempt " + std::to_string(r.attempts));
            return true;
        }
        if (st.error_code() == grpc::StatusCode::NOT_FOUND)
            opts.log("info", std::string(rpc) + ": the task is gone (" + st.error_message() +
                                 "); it timed out or its run closed");
        else if (r.last == kit::delivery::refused)
            opts.log("error", std::string(rpc) + " refused (" + status_name(st) + "): " + st.error_message());
        else
            opts.log("error", std::string(rpc) + " failed (" + status_name(st) + ": " + st.error_message() +
                                  "); given up after " + std::to_string(r.attempts) + " attempt(s)");
        return false;
    }

    template <class Request>
    Request poll_request() const {
        Request req;
        req.set_namespace_(opts.namespace_name);
        req.mutable_task_queue()->set_name(queue);
        req.mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
        req.set_identity(conn.configuration().identity);
        return req;
    }

    // ------------------------------------------------------------------------------------------
    // Workflow tasks

    // One workflow-task poll, and the task it brought decided at once.
    bool poll_workflow_task(const wf::PollWorkflowTaskQueueRequest& req) {
        wf::PollWorkflowTaskQueueResponse resp;
        grpc::Status st = long_poll(&connection::service::Stub::PollWorkflowTaskQueue, req, resp);
        if (skeleton.stopping() || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return false;
        if (!st.ok()) poll_failed(st);
        if (resp.task_token().empty()) return true;  // the poll expired
        try {
            workflow_task(resp);
        } catch (const std::exception& e) {
            opts.log("error", "workflow task of '" + resp.workflow_execution().workflow_id() + "': " + e.what());
            fail_workflow_task(resp.task_token(), enums::WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
                               e.what(), "weft.worker_error");
        }
        return true;
    }

    void fail_workflow_task(const std::string& token, enums::WorkflowTaskFailedCause cause, std::string message,
                            std::string type) {
        wf::RespondWorkflowTaskFailedRequest req;
        req.set_task_token(token);
        req.set_cause(cause);
        application_failure(*req.mutable_failure(), std::move(message), std::move(type), false);
        req.set_identity(conn.configuration().identity);
        req.set_namespace_(opts.namespace_name);
        respond("RespondWorkflowTaskFailed", &connection::service::Stub::RespondWorkflowTaskFailed, req);
    }

    // The whole history: the first page came with the task, the rest is paged in.
    void page_in_history(wf::PollWorkflowTaskQueueResponse& task) {
        ::temporal::api::history::v1::History& history = *task.mutable_history();
        std::string page = task.next_page_token();
        while (!page.empty()) {
            wf::GetWorkflowExecutionHistoryRequest req;
            req.set_namespace_(opts.namespace_name);
            *req.mutable_execution() = task.workflow_execution();
            req.set_next_page_token(page);
            auto resp = conn.call("GetWorkflowExecutionHistory", &connection::service::Stub::GetWorkflowExecutionHistory, req);
            count(&counters::history_pages);
            for (auto& e : *resp.mutable_history()->mutable_events()) *history.add_events() = std::move(e);
            page = resp.next_page_token();
        }
    }

    // The server's view of the run's activities in flight, for query answers; none if it cannot be
    // read (the answer then rests on the history alone, which is still an answer).
    std::vector<::temporal::api::workflow::v1::PendingActivityInfo> pending_activities(const wf::PollWorkflowTaskQueueResponse& task) {
        wf::DescribeWorkflowExecutionRequest req;
        req.set_namespace_(opts.namespace_name);
        *req.mutable_execution() = task.workflow_execution();
        try {
            auto resp = conn.call("DescribeWorkflowExecution", &connection::service::Stub::DescribeWorkflowExecution, req);
            return {resp.pending_activities().begin(), resp.pending_activities().end()};
        } catch (const std::exception& e) {
            opts.log("warning", "query on workflow '" + task.workflow_execution().workflow_id() +
                                    "': cannot read its pending activities (" + e.what() + "); answering from its history");
            return {};
        }
    }

    interpreter::query_answer answer(const graph_view& g, const wf::PollWorkflowTaskQueueResponse& task,
                                     const ::temporal::api::query::v1::WorkflowQuery& q,
                                     std::optional<std::vector<::temporal::api::workflow::v1::PendingActivityInfo>>& pending) {
        count(&counters::queries);
        if (!interpreter::answers(q.query_type())) return interpreter::answer_query(g, task.history(), q.query_type());
        if (!pending) pending = pending_activities(task);
        interpreter::query_answer a = interpreter::answer_query(g, task.history(), q.query_type(), *pending);
        codec::encode(opts.codec.get(), a.answer);
        return a;
    }

    // A query task (PollWorkflowTaskQueueResponse.query): answered at once, with no workflow task to
    // complete (the server refuses RespondWorkflowTaskCompleted for it, and the caller would wait).
    void query_task(wf::PollWorkflowTaskQueueResponse& task, const graph_view* g) {
        wf::RespondQueryTaskCompletedRequest req;
        req.set_task_token(task.task_token());
        req.set_namespace_(opts.namespace_name);
        req.set_poller_group_id(task.poller_group_id());
        interpreter::query_answer a;
        if (!g) {
            a.error = "weft: this worker does not serve workflow type '" + task.workflow_type().name() + "'";
        } else {
            page_in_history(task);
            std::optional<std::vector<::temporal::api::workflow::v1::PendingActivityInfo>> pending;
            a = answer(*g, task, task.query(), pending);
        }
        if (a.ok) {
            req.set_completed_type(enums::QUERY_RESULT_TYPE_ANSWERED);
            *req.mutable_query_result() = std::move(a.answer);
        } else {
            req.set_completed_type(enums::QUERY_RESULT_TYPE_FAILED);
            req.set_error_message(a.error);
            application_failure(*req.mutable_failure(), a.error, "weft.unknown_query", true);
        }
        respond("RespondQueryTaskCompleted", &connection::service::Stub::RespondQueryTaskCompleted, req);
    }

    void workflow_task(wf::PollWorkflowTaskQueueResponse& task) {
        auto found = workflows.find(task.workflow_type().name());
        if (task.has_query()) return query_task(task, found == workflows.end() ? nullptr : found->second);
        count(&counters::workflow_tasks);
        if (found == workflows.end()) {
            fail_workflow_task(task.task_token(), enums::WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
                               "weft: this worker does not serve workflow type '" + task.workflow_type().name() + "'",
                               "weft.unknown_workflow");
            return;
        }
        page_in_history(task);
        interpreter::decision d = interpreter::decide(*found->second, task.history(),
                                                      {.default_step_timeout = opts.default_step_timeout,
                                                       .heartbeat_timeout = opts.heartbeat_timeout,
                                                       .codec = opts.codec.get()});
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
        // Queries the server held for this task (a consistent query on a run with a task in flight).
        std::optional<std::vector<::temporal::api::workflow::v1::PendingActivityInfo>> pending;
        for (const auto& [id, q] : task.queries()) {
            interpreter::query_answer a = answer(*found->second, task, q, pending);
            ::temporal::api::query::v1::WorkflowQueryResult& r = (*req.mutable_query_results())[id];
            if (a.ok) {
                r.set_result_type(enums::QUERY_RESULT_TYPE_ANSWERED);
                *r.mutable_answer() = std::move(a.answer);
            } else {
                r.set_result_type(enums::QUERY_RESULT_TYPE_FAILED);
                r.set_error_message(a.error);
                application_failure(*r.mutable_failure(), a.error, "weft.unknown_query", true);
            }
        }
        reject_updates(task, req);
        req.set_identity(conn.configuration().identity);
        req.set_namespace_(opts.namespace_name);
        respond("RespondWorkflowTaskCompleted", &connection::service::Stub::RespondWorkflowTaskCompleted, req);
    }

    // Updates: a weft DAG has no update handlers, so each one is rejected at once, as an SDK worker
    // rejects an update it has no handler for (unanswered, the caller would wait for its timeout).
    void reject_updates(const wf::PollWorkflowTaskQueueResponse& task, wf::RespondWorkflowTaskCompletedRequest& req) {
        namespace update = ::temporal::api::update::v1;
        for (const auto& m : task.messages()) {
            update::Request request;
            if (!m.body().Is<update::Request>() || !m.body().UnpackTo(&request)) continue;
            update::Rejection rejection;
            rejection.set_rejected_request_message_id(m.id());
            if (m.has_event_id()) rejection.set_rejected_request_sequencing_event_id(m.event_id());
            const std::string error = "Update handler for '" + request.input().name() +
                                      "' expected but not found, known updates: [] (weft workflows take no updates)";
            *rejection.mutable_rejected_request() = std::move(request);
            application_failure(*rejection.mutable_failure(), error, "weft.unknown_update", true);
            auto& out = *req.add_messages();
            out.set_id(m.protocol_instance_id() + "/reject");
            out.set_protocol_instance_id(m.protocol_instance_id());
            out.mutable_body()->PackFrom(rejection);
            count(&counters::updates_rejected);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Activity tasks

    // One activity-task poll, taken only when a slot is free: the server starts an activity's
    // timeouts as it hands it over.
    bool poll_activity_task(const wf::PollActivityTaskQueueRequest& req, std::size_t slots) {
        if (!skeleton.reserve(slots)) return false;
        wf::PollActivityTaskQueueResponse resp;
        grpc::Status st = long_poll(&connection::service::Stub::PollActivityTaskQueue, req, resp);
        if (skeleton.stopping() && st.ok() && !resp.task_token().empty()) {
            // Handed over as the worker stops (the slots may be gone): given back at once as stopped
            // by the shutdown, retryable, so the next worker runs it now rather than after a timeout.
            skeleton.unreserve();
            hand_back(resp);
            return false;
        }
        if (skeleton.stopping() || !st.ok() || resp.task_token().empty()) {
            skeleton.unreserve();
            if (skeleton.stopping() || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return false;
            if (!st.ok()) poll_failed(st);
            return true;
        }
        skeleton.push(std::move(resp), true);
        return true;
    }

    void hand_back(const wf::PollActivityTaskQueueResponse& task) {
        kit::step_outcome out;
        kit::task_context ctx;
        const erased_step* step = find(task);
        out.error = "it was handed over as the worker stopped, before it started";
        if (step) kit::stopped_by_shutdown(*step, out);
        opts.log("info", "activity '" + task.activity_id() + "' of '" + task.workflow_execution().workflow_id() +
                             "' arrived as the worker stopped: given back to the server, to be retried");
        report(task, step, out, ctx);
    }

    // The skeleton's hooks for one activity task.
    const erased_step* find(const wf::PollActivityTaskQueueResponse& task) const {
        auto it = steps.find(task.activity_type().name());
        return it == steps.end() ? nullptr : &it->second;
    }

    void begin(const wf::PollActivityTaskQueueResponse& task, const erased_step&, kit::task_context& ctx) {
        ctx.attempt = task.attempt();
        ctx.workflow = task.workflow_type().name();  // the caller's type: a Python workflow may call a weft step
        ctx.run_id = task.workflow_execution().workflow_id();
        if (task.has_header()) {
            ctx.parent = codec::extract_trace(task.header());
            try {  // a header weft did not write: said, and the step sees no metadata
                codec::extract_metadata(task.header(), ctx.run_meta);
            } catch (const std::exception& e) {
                opts.log("warning", "activity '" + task.activity_id() + "' of '" + ctx.run_id + "': " + e.what());
            }
        }
        ctx.who = &skeleton.settings().who;
        ctx.worker = &skeleton.threads();  // a stop asks steps to stop once its drain is over
        running r{.ctx = &ctx, .token = task.task_token()};
        const auto now = clock::now();
        if (task.has_heartbeat_timeout() && to_ms(task.heartbeat_timeout()).count() > 0) {
            r.heartbeat_every = std::max(milliseconds(100), to_ms(task.heartbeat_timeout()) / 3);
            r.next_heartbeat = now + r.heartbeat_every;
        }
        r.deadline = task.has_start_to_close_timeout() && to_ms(task.start_to_close_timeout()).count() > 0
                         ? now + to_ms(task.start_to_close_timeout())
                         : clock::time_point::max();
        std::lock_guard l(running_mutex);
        running_steps.push_back(std::move(r));
    }

    // Arguments: one JSON value per payload, after the codec.
    json::array decode(const wf::PollActivityTaskQueueResponse& task, const erased_step&) const {
        ::temporal::api::common::v1::Payloads input = task.input();
        try {
            codec::decode(opts.codec.get(), input);
        } catch (const std::exception& e) {
            throw json::decode_error("$", "payloads this worker's codec decodes", e.what());
        }
        json::array args;
        for (int i = 0; i < input.payloads_size(); ++i) {
            try {
                args.push_back(json::parse(codec::from_payload(input.payloads(i))));
            } catch (const std::exception& e) {
                throw json::decode_error("$[" + std::to_string(i) + "]", "a json/plain payload", e.what());
            }
        }
        return args;
    }

    void report(const wf::PollActivityTaskQueueResponse& task, const erased_step* step, kit::step_outcome& out,
                kit::task_context& ctx) {
        const std::string& name = task.activity_type().name();
        {
            std::lock_guard l(running_mutex);
            running_steps.remove_if([&](const running& r) { return r.ctx == &ctx; });
        }
        if (ctx.cancelled) {
            count(&counters::steps_cancelled);
            wf::RespondActivityTaskCanceledRequest req;
            req.set_task_token(task.task_token());
            req.set_identity(conn.configuration().identity);
            req.set_namespace_(opts.namespace_name);
            respond("RespondActivityTaskCanceled", &connection::service::Stub::RespondActivityTaskCanceled, req);
            return;
        }
        if (out.ok()) {
            wf::RespondActivityTaskCompletedRequest req;
            req.set_task_token(task.task_token());
            codec::to_payload(boost::json::serialize(out.output), *req.mutable_result()->add_payloads());
            try {
                codec::encode(opts.codec.get(), *req.mutable_result());
            } catch (const std::exception& e) {  // the attempt fails; the worker goes on
                out.what = kit::step_outcome::kind::failed;
                out.error = e.what();
                out.error_type = "weft.codec_error";
            }
            if (out.ok()) {
                count(&counters::steps_succeeded);
                req.set_identity(conn.configuration().identity);
                req.set_namespace_(opts.namespace_name);
                respond("RespondActivityTaskCompleted", &connection::service::Stub::RespondActivityTaskCompleted, req);
                return;
            }
        }
        std::string message = out.error, type = out.error_type;
        if (!step) {
            message = "weft: this worker does not serve step '" + name + "' (task queue '" + queue + "')";
            type = "weft.unknown_step";
        } else if (out.what == kit::step_outcome::kind::bad_payload) {
            message = "weft: step '" + name + "' cannot decode its arguments: " + out.error;
        }
        count(&counters::steps_failed);
        wf::RespondActivityTaskFailedRequest req;
        req.set_task_token(task.task_token());
        application_failure(*req.mutable_failure(), std::move(message), std::move(type), !out.retryable());
        req.set_identity(conn.configuration().identity);
        req.set_namespace_(opts.namespace_name);
        respond("RespondActivityTaskFailed", &connection::service::Stub::RespondActivityTaskFailed, req);
    }

    // On the skeleton's background threads: it goes on while a stop drains the steps.
    void heartbeater() {
        while (skeleton.background().sleep_for(milliseconds(100))) {
            std::vector<std::pair<kit::task_context*, std::string>> due;
            {
                std::lock_guard l(running_mutex);
                const auto now = clock::now();
                for (running& r : running_steps) {
                    if (now >= r.deadline) r.ctx->timed_out = true;
                    if (r.heartbeat_every.count() > 0 && now >= r.next_heartbeat && !r.ctx->cancelled) {
                        r.next_heartbeat = now + r.heartbeat_every;
                        due.emplace_back(r.ctx, r.token);
                    }
                }
            }
            for (auto& [r, token] : due) {
                wf::RecordActivityTaskHeartbeatRequest req;
                req.set_task_token(token);
                req.set_identity(conn.configuration().identity);
                req.set_namespace_(opts.namespace_name);
                grpc::ClientContext ctx;
                connection::set_deadline(ctx, opts.timeout);
                wf::RecordActivityTaskHeartbeatResponse resp;
                grpc::Status st = conn.stub().RecordActivityTaskHeartbeat(&ctx, req, &resp);
                count(&counters::heartbeats);
                bool cancel = (st.ok() && resp.cancel_requested()) || st.error_code() == grpc::StatusCode::NOT_FOUND;
                if (!cancel) continue;
                std::lock_guard l(running_mutex);  // `r` may have finished meanwhile
                for (running& x : running_steps)
                    if (x.ctx == r) x.ctx->cancelled = true;
            }
        }
    }
};

worker::worker(worker_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}
worker::~worker() { stop(); }

void worker::serve_workflow(const graph_view& wf) {
    refuse_transactional_steps(wf, "temporal");
    impl_->workflows.emplace(std::string(wf.name), &wf);
}
void worker::serve(const erased_step& step) { impl_->steps.emplace(std::string(step.name()), step); }

void worker::start() {
    impl& w = *impl_;
    if (w.started.exchange(true)) return;
    w.skeleton.threads().drain_for(w.opts.drain_timeout);
    const unsigned concurrency = std::max(1u, w.opts.concurrency);
    bool serving = false;
    if (w.opts.workflows && !w.workflows.empty()) {
        auto req = w.poll_request<wf::PollWorkflowTaskQueueRequest>();
        for (unsigned i = 0; i < std::max(1u, w.opts.workflow_pollers); ++i)
            w.skeleton.fetcher("PollWorkflowTaskQueue on '" + w.queue + "'", [&w, req] { return w.poll_workflow_task(req); });
        serving = true;
    }
    if (w.opts.activities && !w.steps.empty()) {
        auto req = w.poll_request<wf::PollActivityTaskQueueRequest>();
        for (unsigned i = 0; i < std::max(1u, std::min(w.opts.activity_pollers, concurrency)); ++i)
            w.skeleton.fetcher("PollActivityTaskQueue on '" + w.queue + "'",
                               [&w, req, concurrency] { return w.poll_activity_task(req, concurrency); });
        w.skeleton.slots(concurrency, [&w](wf::PollActivityTaskQueueResponse& task) {
            kit::task_context ctx;
            kit::run_task(w, task, ctx);
        });
        w.skeleton.background().spawn([&w] { w.heartbeater(); });
        serving = true;
    }
    if (!serving)
        throw weft::config_error("weft: the Temporal worker on '" + w.queue + "' serves nothing: call serve() first");
}

void worker::run() {
    start();
    impl_->skeleton.threads().wait_until_stopped();
}

void worker::stop() { impl_->skeleton.stop(); }  // the slots report what they hold, heartbeats go on

worker::counters worker::stats() const {
    std::lock_guard l(impl_->stats_mutex);
    return impl_->stats;
}

worker_options worker_options_from(const config& c, const worker_settings& s) {
    worker_options o;
    static_cast<options&>(o) = options_from(c);
    if (s.queues.size() > 1)
        throw config_error("weft: a Temporal worker polls one task queue, not " + std::to_string(s.queues.size()) +
                           ": start one worker per queue");
    if (!s.queues.empty()) o.task_queue = s.queues[0];
    if (s.concurrency) o.concurrency = s.concurrency;
    if (!s.name.empty()) o.identity = s.name;
    return o;
}

}  // namespace weft::temporal_detail
