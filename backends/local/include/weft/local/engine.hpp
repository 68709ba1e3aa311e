// The type-erased core of the embedded engine: a thread pool, a timer, and the per-run state
// machine. It walks a workflow's graph_view and calls its in-process step hooks (weft/in_process.hpp),
// one small function per node; everything else here is shared by all workflows and compiled once.
#pragma once

#include <atomic>
#include <weft/dsl/detail/chrono.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <weft/dsl/policy.hpp>
#include <weft/erased.hpp>
#include <weft/run.hpp>

namespace weft::local_detail {

class engine;

// Node state and attempt packed in one word, so a timeout and a returning step race on one CAS.
struct node_slot {
    std::atomic<std::uint32_t> word{0};         // (attempt << 8) | step_state
    std::atomic<std::uint32_t> waiting_parents{0};
};

class run_core final : public run_control {
public:
    // input: the workflow's input tuple, copied into the run's storage.
    run_core(engine& eng, const erased_workflow& wf, const void* input, run_options opts);
    ~run_core() override;

    // run_control
    std::string_view workflow() const noexcept override { return graph_.name; }
    std::string id() const override { return id_; }
    run_state state() const override;
    std::vector<step_status> steps() const override;
    void cancel() override;
    void wait() const override;
    bool wait_for(std::chrono::milliseconds timeout) const override;
    const void* result() const override;


    // Whether the step running on this thread should stop: the run was cancelled or the attempt
    // timed out.
    bool stop_requested(std::size_t node, std::uint32_t attempt) const;

    // Posts the run's sources. `here`: the calling thread runs the first source, and the steps it
    // continues into, before it returns (the caller is about to wait for the run anyway).
    void start(std::shared_ptr<run_core> self, bool here = false);

    const graph_view& graph() const noexcept { return graph_; }
    const run_metadata& metadata() const noexcept { return opts_.metadata; }
    std::chrono::system_clock::time_point created() const noexcept { return created_; }
    // When the run closed; nothing while it runs.
    std::optional<std::chrono::system_clock::time_point> finished() const;

private:
    friend class engine;
    void execute(std::size_t node, std::uint32_t attempt);
    // A step has produced its output: true if this attempt still owns the node (it did not time out
    // and the run was not cancelled meanwhile); the step hook then stores the output.
    bool begin_commit(std::size_t node, std::uint32_t attempt);
    std::size_t finish_commit(std::size_t node, std::uint32_t attempt);  // returns the child to run inline
    void on_failure(std::size_t node, std::uint32_t attempt, std::string error, bool timed_out);
    void retry(std::size_t node, std::uint32_t attempt);
    void finish_node();
    void complete();
    void report_end() const;  // the run's last event in weft's log and metrics
    void hold(std::size_t n) noexcept { holds_.fetch_add(n, std::memory_order_relaxed); }
    void release();
    void skip_descendants(std::size_t node);
    // Most runs have no observer: keep that case to one inlined test of a flag.
    void emit(std::size_t node, step_state s, std::uint32_t attempt, std::string_view error) {
        if (observed_) emit_event(node, s, attempt, error);
    }
    void emit_event(std::size_t node, step_state s, std::uint32_t attempt, std::string_view error);
    bool release_child(std::size_t child);
    void post_released(const std::size_t* first, const std::size_t* last);
    void set_error(std::size_t node, std::string error);

    engine& engine_;
    const graph_view& graph_;
    const in_process_steps& steps_;
    void* storage_;  // the run's input and step outputs, laid out by steps_
    run_options opts_;
    bool observed_;  // opts_.on_step is set, or telemetry wants step events
    std::string id_;
    std::chrono::steady_clock::time_point started_;
    std::chrono::system_clock::time_point created_;
    node_slot* nodes_;  // in storage_'s allocation, after the outputs
    std::atomic<std::size_t> finished_{0};
    std::atomic<bool> cancel_requested_{false};
    std::shared_ptr<run_core> self_;  // keeps the run alive while steps or tasks remain
    // One hold while any step is not final, plus one per queued or executing task.
    std::atomic<std::size_t> holds_{1};

    std::atomic<bool> done_flag_{false};  // done_, readable without the lock

    // The outcome, behind a lock. Defined in engine.cpp, so that code declaring and starting runs
    // does not compile <mutex> and <condition_variable>; built in place, not allocated (one malloc
    // per run fewer). engine.cpp checks that it fits.
    struct outcome;
    static constexpr std::size_t outcome_space = 320;
    alignas(16) unsigned char outcome_buffer_[outcome_space];
    outcome* outcome_;
};

// Engine-wide settings.
struct engine_options {
    unsigned threads = 0;  // 0 = one per hardware thread
};

// Destroying the engine cancels the runs still going and waits for them to end.
class engine {
public:
    explicit engine(engine_options opts = {});
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    unsigned threads() const noexcept;

    // Queue work. A task keeps its run alive through the shared_ptr it carries.
    struct task {
        run_core* run;
        std::size_t node;
        std::uint32_t attempt;
    };
    void post(task t);
    void post_many(const task* ts, std::size_t n);
    // Later: retry `node` at `attempt`, or time out `attempt` of it.
    enum class timer_kind { retry, timeout };
    void post_after(std::chrono::steady_clock::duration delay, std::shared_ptr<run_core> run, std::size_t node,
                    std::uint32_t attempt, timer_kind kind);

    // The run with this id while it runs, or after it finished as long as a handle on it remains
    // (among the last runs to finish); null otherwise.
    std::shared_ptr<run_core> find(std::string_view id) const;
    // The runs of `workflow` that find() would return, newest first, at most `limit`.
    std::vector<std::shared_ptr<run_core>> recent(std::string_view workflow, std::size_t limit) const;
    void run_started(run_core* run);
    void run_finished(run_core* run);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace weft::local_detail
