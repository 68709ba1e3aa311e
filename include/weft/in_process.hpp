// How to run a workflow's steps on typed values inside this process, for the engines that call steps
// themselves rather than sending them to a server.
//
// An engine allocates one block of `storage_size` bytes per run, constructs it from the run's input,
// and calls `steps[i]` when node i is ready: the step reads its parents' outputs from the block and,
// if the engine's commit callback agrees (the attempt still owns the node), stores its own. Values
// stay typed C++ objects from step to step; nothing is serialized. The per-workflow code is one
// small function per node; everything else belongs to the engine and is compiled once.
#pragma once

#include <array>
#include <cstddef>
#include <new>
#include <optional>
#include <span>
#include <tuple>
#include <utility>

#include <weft/dsl/workflow.hpp>

namespace weft {

struct in_process_steps {
    // Calls step `node` and, when commit(ctx) returns true, stores its output in the run's block.
    // Returns what commit returned. Throws what the step throws (nothing is stored then).
    using invoke_fn = bool (*)(void* storage, std::size_t node, bool (*commit)(void* ctx), void* ctx);

    std::size_t storage_size;
    std::size_t storage_align;
    void (*construct)(void* storage, const void* input);  // input: the workflow's input tuple, copied in
    void (*destroy)(void* storage) noexcept;
    std::span<const invoke_fn> steps;                      // by node index
    // Once every last step has stored its output: the run's typed output (W::output).
    const void* (*output)(void* storage);
};

namespace detail {

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

template <class W, class Is = std::make_index_sequence<W::size>>
struct outputs_of;
template <class W, std::size_t... I>
struct outputs_of<W, std::index_sequence<I...>> {
    struct type : slot<I, typename step_traits<typename W::template step<I>>::output>... {};
};

template <workflow_type W>
struct in_process_hooks {
    struct storage {
        typename W::input_tuple input;
        typename outputs_of<W>::type outputs;
        std::optional<typename W::output> combined;  // several last steps: their outputs as one tuple
    };

    template <std::size_t I, std::size_t... K>
    static auto call(storage& s, std::index_sequence<K...>) {
        using S = typename W::template step<I>;
        S step{};
        if constexpr (W::parent_count(I) == 0) {
            if constexpr (step_traits<S>::arity == 0) return step();
            else return std::apply(step, std::as_const(s.input));
        } else {
            return step(std::as_const(*slot_at<W::parent(I, K)>(s.outputs))...);
        }
    }

    template <std::size_t I>
    static bool invoke(void* p, std::size_t, bool (*commit)(void*), void* ctx) {
        auto& s = *static_cast<storage*>(p);
        auto out = call<I>(s, std::make_index_sequence<W::parent_count(I)>{});
        if (!commit(ctx)) return false;
        slot_at<I>(s.outputs).emplace(std::move(out));
        return true;
    }

    static void construct(void* p, const void* input) {
        ::new (p) storage{*static_cast<const typename W::input_tuple*>(input), {}, {}};
    }
    static void destroy(void* p) noexcept { static_cast<storage*>(p)->~storage(); }

    static const void* output(void* p) {
        auto& s = *static_cast<storage*>(p);
        if constexpr (W::sinks.size() == 1) {
            return &*slot_at<W::sinks[0]>(s.outputs);
        } else {
            if (!s.combined)
                s.combined.emplace([&]<std::size_t... K>(std::index_sequence<K...>) {
                    return typename W::output{*slot_at<W::sinks[K]>(s.outputs)...};
                }(std::make_index_sequence<W::sinks.size()>{}));
            return &*s.combined;
        }
    }

    static constexpr auto table = []<std::size_t... I>(std::index_sequence<I...>) {
        return std::array<in_process_steps::invoke_fn, W::size>{&invoke<I>...};
    }(std::make_index_sequence<W::size>{});
};

}  // namespace detail

namespace detail {
template <class W>
inline constexpr in_process_steps in_process_of{
    sizeof(typename in_process_hooks<W>::storage),
    alignof(typename in_process_hooks<W>::storage),
    &in_process_hooks<W>::construct,
    &in_process_hooks<W>::destroy,
    in_process_hooks<W>::table,
    &in_process_hooks<W>::output,
};
}  // namespace detail

template <workflow_type W>
inline constexpr const in_process_steps& in_process_of = detail::in_process_of<std::remove_cvref_t<W>>;

}  // namespace weft
