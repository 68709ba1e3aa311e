// weft::local, the embedded engine and the default backend: steps run on a thread pool in this
// process, independent steps at the same time, and values pass between steps as typed C++ objects,
// never serialized.
//
//     weft::client<weft::local> client;
//     auto run = client.start(ingest, urls);
//     for (auto& s : run.steps()) std::cout << s.name << ' ' << to_string(s.state) << '\n';
//     report r = run.get();
#pragma once

#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include <weft/dsl/workflow.hpp>
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

// Each step's output in its own slot. A flat set of bases, not a std::tuple: libstdc++'s tuple nests
// one base per element, which makes every access cost compile time in proportion to the step count.
template <std::size_t I, class T>
struct slot {
    std::optional<T> value;
};
template <std::size_t I, class T>
std::optional<T>& slot_at(slot<I, T>& s) noexcept {
    return s.value;
}
template <std::size_t I, class T>
const std::optional<T>& slot_at(const slot<I, T>& s) noexcept {
    return s.value;
}

template <class W, class Is = std::make_index_sequence<W::size>>
struct outputs_of;
template <class W, std::size_t... I>
struct outputs_of<W, std::index_sequence<I...>> {
    struct type : slot<I, typename step_traits<typename W::template step<I>>::output>... {};
};

template <workflow_type W>
class typed_run final : public run_core {
public:
    typed_run(engine& eng, const workflow_desc& desc, run_options opts, typename W::input_tuple in)
        : run_core(eng, desc, std::move(opts)), input(std::move(in)) {}

    typename W::input_tuple input;
    typename outputs_of<W>::type outputs;

private:
    const void* output() const override {
        if constexpr (W::sinks.size() == 1) {
            return &*slot_at<W::sinks[0]>(outputs);
        } else {
            if (!combined_)
                combined_.emplace([this]<std::size_t... S>(std::index_sequence<S...>) {
                    return typename W::output{*slot_at<W::sinks[S]>(outputs)...};
                }(std::make_index_sequence<W::sinks.size()>{}));
            return &*combined_;
        }
    }
    mutable std::optional<typename W::output> combined_;  // several sinks: built once, under the run's lock
};

template <workflow_type W>
struct glue {
    using run_type = typed_run<W>;
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    template <std::size_t I, std::size_t... K>
    static decltype(auto) call(run_type& run, std::index_sequence<K...>) {
        using S = typename W::template step<I>;
        S step{};
        if constexpr (W::parent_count(I) == 0) {
            if constexpr (step_traits<S>::arity == 0) return step();
            else return std::apply(step, std::as_const(run.input));
        } else {
            return step(*slot_at<W::parent(I, K)>(std::as_const(run.outputs))...);
        }
    }

    template <std::size_t I>
    static std::size_t invoke_one(run_core& core, std::size_t node, std::uint32_t attempt) {
        auto& run = static_cast<run_type&>(core);
        auto out = call<I>(run, std::make_index_sequence<W::parent_count(I)>{});
        if (!core.begin_commit(node, attempt)) return npos;  // timed out or cancelled meanwhile
        slot_at<I>(run.outputs).emplace(std::move(out));
        return core.finish_commit(node, attempt);
    }

    using invoke_fn = std::size_t (*)(run_core&, std::size_t, std::uint32_t);
    static constexpr auto table = []<std::size_t... I>(std::index_sequence<I...>) {
        return std::array<invoke_fn, W::size>{&invoke_one<I>...};
    }(std::make_index_sequence<W::size>{});

    static std::size_t invoke(run_core& core, std::size_t node, std::uint32_t attempt) {
        return table[node](core, node, attempt);
    }

    static constexpr workflow_desc desc{
        W::name,
        W::size,
        W::names.data(),
        W::policies.data(),
        W::facts::in_degree.data(),
        W::facts::child_offset.data(),
        W::facts::child_list.data(),
        W::sources.data(),
        W::sources.size(),
        &invoke,
    };

    static std::shared_ptr<run_control> start(engine& eng, typename W::input_tuple input, run_options opts) {
        auto r = std::make_shared<run_type>(eng, desc, std::move(opts), std::move(input));
        r->start(r);
        return r;
    }
};

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
        return run<typename W::output>(
            local_detail::glue<W>::start(*engine_, typename W::input_tuple(std::move(input)), std::move(opts)));
    }
    template <workflow_type W>
        requires(std::tuple_size_v<typename W::input_tuple> == 0)
    run<typename W::output> start(W, run_options opts = {}) {
        return run<typename W::output>(local_detail::glue<W>::start(*engine_, {}, std::move(opts)));
    }

    // Start, wait, and return the output (or throw step_failed / run_cancelled).
    template <workflow_type W>
    typename W::output run_sync(W wf, typename W::input input, run_options opts = {}) {
        return start(wf, std::move(input), std::move(opts)).get();
    }

    unsigned threads() const noexcept { return engine_->threads(); }
    local_detail::engine& engine() noexcept { return *engine_; }

private:
    std::unique_ptr<local_detail::engine> engine_;
};

}  // namespace weft
