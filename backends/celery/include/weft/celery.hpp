// weft::celery: workflows on Celery 5 over Redis, wire-compatible with Python Celery workers and
// clients (protocol v2, JSON bodies, the Redis result backend).
//
//     weft::celery::options opts{.broker_url = "redis://:secret@127.0.0.1:6379/0", .queue = "weft"};
//     weft::client<weft::celery> client(opts);
//     auto run = client.start(etl, 2);            // chain/group/chord messages (see celery/lowering.hpp)
//     int n = run.get();                           // waits on the result backend like AsyncResult.get()
//
//     weft::celery::worker worker({opts});         // C++ worker (worker_options: queues, concurrency, ...)
//     worker.serve(etl);
//     worker.run();                                // until stop()
//
// Including this header registers the backend, so WEFT_BACKEND=celery selects it in any_client
// (settings broker_url, result_url, queue, result_expires, timeout_ms, global_keyprefix,
// result_keyprefix).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <weft/backend.hpp>
#include <weft/remote_client.hpp>
#include <weft/celery/lowering.hpp>
#include <weft/step_table.hpp>

namespace weft {

template <class Step>
struct ERROR_celery_cannot_lower_the_workflow_at_step;

struct celery {
    static constexpr std::string_view name = "celery";

    struct options {
        std::string broker_url = "redis://127.0.0.1:6379/0";
        std::string result_url;                             // empty: the broker's Redis
        std::string queue = "weft";                         // for steps whose policy names no queue
        std::map<std::string, std::string, std::less<>> routes;  // step wire name -> queue, over the policy's
        std::chrono::seconds result_expires{86400};         // TTL of result metas (Celery's default: 1 day)
        std::chrono::milliseconds timeout{5000};            // connect and reply timeout
        // Python's broker_transport_options["global_keyprefix"]: kombu prefixes every broker key
        // with it (queue lists, unacked, unacked_index, unacked_mutex, the pidbox channel).
        std::string global_keyprefix;
        // Python's result_backend_transport_options["global_keyprefix"]: prefixes the result
        // backend's keys and channels (celery-task-meta-*, celery-taskset-meta-*).
        std::string result_keyprefix;
        // Runs kept per workflow in the index client.list reads (weft-runs-<workflow>, a sorted set
        // beside the metas, trimmed to this many and expiring with them); 0: no index, list refuses.
        unsigned listed_runs = 1000;
    };

    struct worker_options : options {
        std::vector<std::string> queues;                    // empty: {queue}
        unsigned concurrency = 1;                           // threads, each with its own connections
        // Celery's worker_prefetch_multiplier: the worker holds at most concurrency × this many
        // messages (fetched in batches, kept in kombu's unacked until done; ETA messages not
        // counted, as in Celery). 0: no limit. 1 with concurrency 1: one message at a time.
        unsigned prefetch_multiplier = 4;
        std::chrono::seconds visibility_timeout{3600};      // kombu's default; unacked older than this is restored
        std::chrono::milliseconds restore_interval{std::chrono::seconds(60)};  // how often to sweep unacked
        std::string dead_letter = "weft.dead_letter";       // Redis list for messages that cannot run
        // The node name Celery's tools list the worker under (`celery inspect`, `celery status`,
        // Flower; Celery's -n): %h is the host name, %n its part before the first dot, %d the part
        // after. Without an '@', "weft@" is put before it. Empty: "weft@%h". Give every worker of one
        // host its own, as with Celery: replies are keyed by it.
        std::string hostname;
        // Celery's worker_send_task_events (-E): task-received/started/succeeded/failed/retried/
        // revoked events on the celeryev exchange. The enable_events and disable_events control
        // commands switch them while the worker runs.
        bool task_events = false;
        // worker-online, worker-heartbeat every heartbeat_interval and worker-offline, which
        // `celery events`, Flower and Python workers' gossip use to see the worker; sent, as
        // Celery's are, whether task events are on or not. 0: none (Celery's --without-heartbeat).
        std::chrono::milliseconds heartbeat_interval{2000};
        // How long stop() lets running steps go on before it asks them to stop (this_step::
        // stop_requested), as Celery's warm shutdown waits for running tasks and its soft shutdown
        // bounds that; every outcome is reported. 0: asked at once.
        std::chrono::milliseconds drain_timeout{0};
        // level is "info", "warning" or "error"; messages never contain a password. Default: stderr.
        std::function<void(std::string_view level, std::string_view text)> log;
    };

    class worker;
};

namespace celery_detail {

// The backend behind client<celery> and any_client: lowers an erased workflow and talks to Redis.
class backend_impl final : public backend {
public:
    explicit backend_impl(celery::options opts);
    ~backend_impl() override;
    std::string_view name() const noexcept override { return celery::name; }
    std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) override;
    // id: the run's id(), its first task's id (the other tasks' ids derive from it).
    std::shared_ptr<run_control> attach(const erased_workflow& wf, std::string_view id) override;
    // From the run's record (weft-run-<id>) and its tasks' metas; a task id without a record (a task
    // a Python client sent) is described as a run of that one task, from its meta.
    run_description describe(std::string_view id) override;
    // From the bounded index weft-runs-<workflow> (a sorted set of the latest runs start() sent,
    // with the metas' expiry).
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit) override;
    // The broker and the result backend: reachable, the password, Redis's version, the database;
    // then whether any worker answers a pidbox ping (a warning: runs wait for one, they do not fail).
    std::vector<health_check> doctor() override;
    // Many runs of one workflow, all their messages in one pipeline.
    std::vector<std::shared_ptr<run_control>> start_many(const erased_workflow& wf, std::span<const void* const> inputs);
    // Whether canvas can express W; a workflow it cannot is diagnosed at compile time.
    template <workflow_type W>
    static consteval bool accepts();

    struct state;

private:
    struct batch {  // what starts runs: commands for the result backend, then for the broker
        std::vector<std::vector<std::string>> results, broker;
    };
    std::shared_ptr<run_control> prepare(const erased_workflow& wf, const void* input, batch& commands,
                                         const run_metadata& metadata = {});
    void send(const erased_workflow& wf, batch& commands);
    void watch(const erased_workflow& wf, const run_control& run, run_options opts);
    std::shared_ptr<state> state_;
};

celery::options options_from(const config& c);
std::vector<setting_doc> settings();  // the table behind options_from

inline const bool registered = register_backend<backend_impl>(celery::name, settings(), &options_from);

template <workflow_type W>
consteval bool backend_impl::accepts() {
    constexpr std::size_t culprit = [] {
        auto r = celery_wire::lower_to_stages(W::size, W::topological_order, [](std::size_t i) { return W::parent_count(i); },
                                              [](std::size_t i, std::size_t k) { return W::parent(i, k); });
        return r.ok ? W::size : r.culprit;
    }();
    if constexpr (culprit != W::size) {
        static_assert(sizeof(ERROR_celery_cannot_lower_the_workflow_at_step<typename W::template step<culprit>>) == 0);
        static_assert(culprit == W::size,
                      "weft: the celery backend sends a workflow as Celery canvas (chain, group, chord): a sequence "
                      "of stages, each one step or parallel steps that all follow the whole previous stage. This "
                      "step's parents are not exactly the previous stage (or two parallel stages follow each "
                      "other), which canvas cannot express. Join the branches in one step first, split the "
                      "workflow into several runs, or run it on weft::local");
    }
    return culprit == W::size;
}

}  // namespace celery_detail

// The Celery client: start() sends one message per run and returns a handle that reads the result
// backend (status, each step's state, the typed output).
template <>
class client<celery> : public remote_client<celery_detail::backend_impl> {
public:
    explicit client(celery::options opts) : remote_client(std::move(opts)) {}

    // Many runs at once: every message in one pipelined round trip (a chord's size is set first,
    // as in start()). Faster than start() in a loop when the round trip dominates.
    template <workflow_type W>
    std::vector<run<typename W::output>> start_many(W, std::span<const typename W::input> inputs) {
        std::vector<run<typename W::output>> out;
        if constexpr (accepts<W>()) {
            std::vector<typename W::input_tuple> tuples(inputs.begin(), inputs.end());
            std::vector<const void*> ptrs;
            for (const auto& t : tuples) ptrs.push_back(&t);
            for (auto& c : backend_.start_many(remote_erasure<W>, ptrs)) out.emplace_back(std::move(c));
        }
        return out;
    }
};

// A C++ Celery worker. It consumes its queues, runs the steps it serves, stores results in Celery's
// format, continues chains, and keeps what it cannot run in the dead-letter list.
class celery::worker {
public:
    explicit worker(worker_options opts);
    ~worker();  // stops and joins
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    template <workflow_type W>
    void serve(W wf) {
        if constexpr (no_transactional_steps<W>())
            for (const erased_step& s : step_table(wf)) serve(s);
    }
    void serve(const erased_step& step);
    void serve(const graph_view&, std::span<const erased_step> steps) {
        for (const erased_step& s : steps) serve(s);
    }

    void start();  // spawns the consumer threads and returns
    void run();    // start(), then blocks until stop()
    void stop();   // asks the threads to finish the message in hand, then joins them

    struct counters {
        std::uint64_t succeeded = 0, failed = 0, retried = 0, dead_lettered = 0, restored = 0;
    };
    counters stats() const;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

namespace celery_detail {
// The worker `weft::cli`'s worker command runs: the configuration's options, the command line's
// queues and concurrency.
celery::worker_options worker_options_from(const config& c, const worker_settings& s);
celery::worker_options worker_settings_from(const config& c);  // the worker-only settings (client.cpp's table)
inline const bool registered_worker = register_worker<celery::worker>(celery::name, &worker_options_from);
}  // namespace celery_detail

}  // namespace weft
