// weft::local, the embedded engine and the default backend: steps run on a thread pool in this
// process, independent steps at the same time, and values pass between steps as typed C++ objects,
// never serialized.
//
//     weft::client<weft::local> client;
//     auto run = client.start(ingest, urls);
//     for (auto& s : run.steps()) std::cout << s.name << ' ' << to_string(s.state) << '\n';
//     report r = run.get();
#pragma once

#include <cstdlib>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include <weft/backend.hpp>
#include <weft/dsl/workflow.hpp>
#include <weft/erased.hpp>
#include <weft/local/engine.hpp>
#include <weft/run.hpp>

namespace weft {

// The backend tag, used as client<local>, and its settings.
struct local {
    static constexpr std::string_view name = "local";
    struct options {
        unsigned threads = 0;  // 0 = one per hardware thread
    };
};

namespace local_detail {
// Starts a run of `wf` on `eng`; wf must carry its in-process steps. input: the workflow's input tuple.
std::shared_ptr<run_control> start(engine& eng, const erased_workflow& wf, const void* input, run_options opts);
// The same, and the calling thread runs the run's first steps before it returns, for a caller that
// waits for the run at once (run_sync).
std::shared_ptr<run_control> run_here(engine& eng, const erased_workflow& wf, const void* input, run_options opts);
// The run with this id on `eng` (while it runs, or while a handle on it remains); throws run_not_found.
std::shared_ptr<run_control> attach(engine& eng, const erased_workflow& wf, std::string_view id);
// The same run as describe() sees it; its output stays a C++ object (output is null).
run_description describe(const engine& eng, std::string_view id);
std::vector<run_summary> list(const engine& eng, std::string_view workflow, std::size_t limit);
}  // namespace local_detail

template <class Backend>
class client;

// The zero-cost client: the backend is fixed at compile time, steps are called directly.
template <>
class client<local> {
public:
    client() : client(local::options{}) {}
    explicit client(local::options opts)
        : engine_(std::make_unique<local_detail::engine>(local_detail::engine_options{opts.threads})) {}

    template <workflow_type W>
    run<typename W::output> start(W, typename W::input input, run_options opts = {}) {
        if constexpr (!no_transactional_steps<W>()) return run<typename W::output>(nullptr);  // diagnosed there
        const typename W::input_tuple in(std::move(input));
        return run<typename W::output>(local_detail::start(*engine_, in_process_erasure<W>, &in, std::move(opts)));
    }
    template <workflow_type W>
        requires(std::tuple_size_v<typename W::input_tuple> == 0)
    run<typename W::output> start(W, run_options opts = {}) {
        if constexpr (!no_transactional_steps<W>()) return run<typename W::output>(nullptr);
        const std::tuple<> in;
        return run<typename W::output>(local_detail::start(*engine_, in_process_erasure<W>, &in, std::move(opts)));
    }

    // The handle of a run this client started, by its id(): while it runs, or while a handle on it
    // remains (runs of the embedded engine live in the process that started them).
    template <workflow_type W>
    run<typename W::output> attach(W, std::string_view id) {
        return run<typename W::output>(local_detail::attach(*engine_, in_process_erasure<W>, id));
    }

    // The run `id` as the engine describes it (steps, states, times; include <weft/run_description.hpp>
    // to read it): its output stays a C++ object, read through attach().get(), so `output` is null.
    run_description describe(std::string_view id) const;  // defined with the engine
    // The runs of `workflow` attach() can find, newest first.
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit = 20) const {
        return local_detail::list(*engine_, workflow, limit);
    }

    // Start, wait, and return the output (or throw step_failed / run_cancelled). The calling thread
    // runs steps too: the first source and every step it continues into (a chain, one branch of a
    // fan-out), so a small run costs no hand-off between threads; the rest go to the engine's threads.
    template <workflow_type W>
    typename W::output run_sync(W, typename W::input input, run_options opts = {}) {
        if constexpr (!no_transactional_steps<W>()) std::abort();  // diagnosed there: never compiled into a program
        const typename W::input_tuple in(std::move(input));
        return run<typename W::output>(local_detail::run_here(*engine_, in_process_erasure<W>, &in, std::move(opts))).get();
    }

    unsigned threads() const noexcept { return engine_->threads(); }
    local_detail::engine& engine() noexcept { return *engine_; }

private:
    std::unique_ptr<local_detail::engine> engine_;
};

}  // namespace weft
