// The durable engine: weft::local's scheduling (a ready queue, a timer for retries and timeouts,
// children released as their parents commit) with every step's output kept as JSON and committed to
// the journal before its children are released. What a run knows lives in the journal; the memory
// here is a cache of it for the runs this process drives.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <weft/durable.hpp>
#include <weft/json.hpp>
#include <weft/kit/step_watcher.hpp>
#include <weft/kit/worker_threads.hpp>

#include "journal.hpp"

namespace weft::durable_detail {

class engine;

// The DAG's fingerprint: names, arity and edges (not policies: a changed retry policy leaves the
// recorded results valid). 16 hex digits.
std::string dag_hash(const graph_view& g);

// A run this process drives.
struct live_run {
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    struct node {
        step_state state = step_state::pending;
        int attempt = 0;       // the attempt running or last run
        int failures = 0;      // attempts that failed, in every process
        std::size_t waiting = 0;  // parents not yet succeeded
        std::string error;
        json::value output;    // succeeded: as committed
        std::chrono::steady_clock::time_point attempt_started{};  // for telemetry's durations (under event_m)
    };

    live_run(const erased_workflow& w, std::string run_id, json::array in, run_options o)
        : wf(w), id(std::move(run_id)), input(std::move(in)), opts(std::move(o)), nodes(w.graph.size()) {}

    const erased_workflow& wf;
    const std::string id;
    const json::array input;
    const run_options opts;
    const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

    mutable std::mutex m;  // guards what follows
    mutable std::condition_variable cv;
    std::vector<node> nodes;
    std::size_t finished = 0;  // nodes in a final state
    bool cancel_requested = false;
    std::size_t first_failure = npos;
    bool closing = false;      // one thread writes the run's end
    bool closed = false;       // the journal has the run closed: `row` says how
    bool detached = false;     // this process no longer drives it (engine stopped, or the journal failed)
    run_row row;               // when closed
    std::exception_ptr error;  // when the journal failed: what waiting on the run gives

    std::mutex event_m;  // on_step calls never overlap

    // Waits until the run closed or this process stopped driving it; false on timeout.
    bool wait_for(std::chrono::milliseconds timeout) const;
    std::vector<step_status> steps() const;
    bool stop_requested(std::size_t node, int attempt) const;
};

class engine {
public:
    explicit engine(durable::options opts);
    ~engine();  // lets running steps finish, then hands the unfinished runs back to the journal
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    const durable::options& options() const noexcept { return opts_; }
    const std::shared_ptr<journal>& journal_ptr() const noexcept { return journal_; }

    std::shared_ptr<live_run> start(const erased_workflow& wf, const void* input, run_options opts);
    // Drives run `row` here from its committed steps if no live process does (null otherwise).
    // Throws config_error when the DAG changed and resume_changed is off.
    std::shared_ptr<live_run> take_over(const erased_workflow& wf, const run_row& row, run_options opts);
    std::shared_ptr<live_run> find(std::string_view id) const;
    void cancel(live_run& r);

    // Whether a run held by `owner` until `lease_until` may be taken over now.
    bool claimable(const std::string& owner, millis lease_until) const;
    // On the first start of a workflow, when options().resume: resume its unfinished runs.
    void resume_once(const erased_workflow& wf);
    // on_step for the runs other processes drive: polled from the journal.
    kit::step_watchers& watchers() noexcept { return watchers_; }

private:
    struct task {
        std::shared_ptr<live_run> run;
        std::size_t node;
        int attempt;
    };
    enum class timer_kind { retry, timeout };
    struct timer {
        std::weak_ptr<live_run> run;
        std::size_t node;
        int attempt;
        timer_kind kind;
    };

    void work();
    void time();
    void heartbeat();
    void post(std::vector<task> tasks);
    void post_after(std::chrono::steady_clock::duration d, const std::shared_ptr<live_run>& r, std::size_t node,
                    int attempt, timer_kind kind);

    void execute(const task& t);
    // tx: a transactional step's transaction, committed with the result (or rolled back).
    void succeeded(const std::shared_ptr<live_run>& r, std::size_t node, int attempt, json::value output,
                   std::unique_ptr<step_transaction> tx);
    void failed(const std::shared_ptr<live_run>& r, std::size_t node, int attempt, std::string error, bool retryable,
                bool timed_out);
    void fail_for_good(const std::shared_ptr<live_run>& r, std::size_t node, int attempt, std::string error);
    // Commits a result of `node` and returns the one that won; nothing when the run closed meanwhile
    // (it is then cancelled here) or the journal failed (the run is abandoned).
    // With `tx`, the result commits in it, with the step's writes; it ends before commit returns.
    std::optional<step_result> commit(live_run& r, std::size_t node, const step_result& result,
                                      std::unique_ptr<step_transaction> tx = nullptr);
    void retry(const std::shared_ptr<live_run>& r, std::size_t node, int attempt);
    // With r.m held: marks the descendants of `node` skipped, adding them to `skipped`.
    void skip_descendants(live_run& r, std::size_t node, std::vector<std::size_t>& skipped);
    // With r.m held: children of `node` it released (their attempts set), to post.
    std::vector<task> release_children(const std::shared_ptr<live_run>& r, std::size_t node);
    void close_if_done(const std::shared_ptr<live_run>& r);
    void abandon(live_run& r, std::exception_ptr e);
    void emit(live_run& r, std::size_t node, step_state s, int attempt, std::string_view error);
    void activate(const std::shared_ptr<live_run>& r);

    durable::options opts_;
    std::shared_ptr<journal> journal_;
    std::string owner_;  // host:pid:nonce, this engine in the journal's runs.owner

    std::mutex qm_;
    std::condition_variable qcv_;
    std::deque<task> ready_;

    std::mutex tm_;
    std::condition_variable tcv_;
    std::multimap<std::chrono::steady_clock::time_point, timer> timers_;

    mutable std::mutex am_;
    std::map<std::string, std::shared_ptr<live_run>, std::less<>> active_;
    std::vector<std::string> resumed_;  // workflows resume_once has seen

    kit::worker_threads threads_;  // stopped and joined before the queues they read go away
    kit::step_watchers watchers_;  // last: their polls hold the journal, not the engine
};

}  // namespace weft::durable_detail
