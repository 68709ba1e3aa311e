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
#include <type_traits>
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

// The run's block: the input tuple at offset 0, then each node's output, then (several last steps)
// their outputs as one tuple, then one flag byte per node (and one for that tuple) saying whether the
// value was stored. Laid out here by offsets rather than as a struct of the workflow's types, so
// that a node's hook is named by its step and a few offsets only: its code and symbol stay the same
// size whatever the size of the workflow, and no hook looks anything up in the workflow's node list.
template <std::size_t N>
struct block_layout {
    std::array<std::size_t, N> slot{};  // offset of node i's output
    std::size_t combined = 0;
    std::size_t flags = 0;  // N + 1 bytes
    std::size_t size = 0;
    std::size_t align = 1;
};

template <std::size_t N>
constexpr block_layout<N> lay_out(std::size_t input_size, std::size_t input_align, const std::array<std::size_t, N>& size,
                                  const std::array<std::size_t, N>& align, std::size_t combined_size,
                                  std::size_t combined_align) {
    block_layout<N> b{};
    std::size_t end = input_size;
    const auto place = [&](std::size_t n, std::size_t a) {
        end = (end + a - 1) / a * a;
        b.align = a > b.align ? a : b.align;
        const std::size_t at = end;
        end += n;
        return at;
    };
    b.align = input_align;
    for (std::size_t i = 0; i < N; ++i) b.slot[i] = place(size[i], align[i]);
    b.combined = place(combined_size, combined_align);
    b.flags = place(N + 1, 1);
    b.size = end;
    return b;
}

template <class T>
T& value_at(void* block, std::size_t offset) noexcept {
    return *std::launder(reinterpret_cast<T*>(static_cast<unsigned char*>(block) + offset));
}
inline unsigned char& flag_at(void* block, std::size_t offset) noexcept {
    return static_cast<unsigned char*>(block)[offset];
}
template <class T>
void destroy_value(void* p) noexcept {
    std::launder(static_cast<T*>(p))->~T();
}

// One per output type, shared by the nodes: the offsets are arguments.
template <class T>
bool store_output(void* block, std::size_t out, std::size_t flag, bool (*commit)(void*), void* ctx, T& value) {
    if (!commit(ctx)) return false;
    ::new (static_cast<unsigned char*>(block) + out) T(std::move(value));
    flag_at(block, flag) = 1;
    return true;
}

// A node's hook: calls S on its inputs and, if the engine's commit agrees, stores the output at
// offset Out and sets its flag. A source that takes parameters reads the run's input tuple; any
// other node reads its parents' outputs at the offsets Parents..., which have its parameters' types
// (edges are exact).
template <class S, class Input, std::size_t Flags, std::size_t Out>
struct source_hook {
    static bool invoke(void* block, std::size_t node, bool (*commit)(void*), void* ctx) {
        S step{};
        auto out = std::apply(step, std::as_const(value_at<Input>(block, 0)));
        return detail::store_output(block, Out, Flags + node, commit, ctx, out);
    }
};
template <class S, class Params, std::size_t Flags, std::size_t Out, std::size_t... Parents>
struct child_hook;
template <class S, class... Ps, std::size_t Flags, std::size_t Out, std::size_t... Parents>
struct child_hook<S, std::tuple<Ps...>, Flags, Out, Parents...> {
    static bool invoke(void* block, std::size_t node, bool (*commit)(void*), void* ctx) {
        S step{};
        auto out = step(std::as_const(value_at<Ps>(block, Parents))...);
        return detail::store_output(block, Out, Flags + node, commit, ctx, out);
    }
};

template <class W, class Nodes = typename W::nodes>
struct in_process_hooks;
template <class W, class... Ns>
struct in_process_hooks<W, meta::tlist<Ns...>> {
    using input = typename W::input_tuple;
    using combined = std::conditional_t<(W::sinks.size() > 1), typename W::output, unsigned char>;
    template <class N>
    using output_of = typename step_traits<typename N::step_type>::output;

    static constexpr auto block =
        lay_out<W::size>(sizeof(input), alignof(input), {sizeof(output_of<Ns>)...}, {alignof(output_of<Ns>)...},
                         sizeof(combined), alignof(combined));
    static constexpr std::size_t combined_flag = block.flags + W::size;
    // Trivially destructible outputs need no destructor call (and no function).
    static constexpr std::array<void (*)(void*) noexcept, W::size> destructors{
        (std::is_trivially_destructible_v<output_of<Ns>> ? nullptr : &destroy_value<output_of<Ns>>)...};

    template <class S, std::size_t I, class K = std::make_index_sequence<W::parent_count(I)>>
    struct hook_of;
    template <class S, std::size_t I, std::size_t... K>
    struct hook_of<S, I, std::index_sequence<K...>> {
        using type = std::conditional_t<(sizeof...(K) == 0 && step_traits<S>::arity > 0),
                                        source_hook<S, input, block.flags, block.slot[I]>,
                                        // a node with parents, or a source without parameters
                                        child_hook<S, typename step_traits<S>::params, block.flags, block.slot[I],
                                                   block.slot[W::parent(I, K)]...>>;
    };
    // Chosen by class templates rather than constexpr functions: g++ gives every function
    // instantiation a mangled name, and here each would spell the whole workflow type.
    static constexpr auto table = []<std::size_t... I>(std::index_sequence<I...>) {
        return std::array<in_process_steps::invoke_fn, W::size>{&hook_of<typename Ns::step_type, I>::type::invoke...};
    }(std::make_index_sequence<W::size>{});

    static void construct(void* p, const void* in) {
        ::new (p) input(*static_cast<const input*>(in));
        for (std::size_t i = 0; i <= W::size; ++i) flag_at(p, block.flags + i) = 0;
    }
    static void destroy(void* p) noexcept {
        for (std::size_t i = 0; i < W::size; ++i)
            if (destructors[i] && flag_at(p, block.flags + i)) destructors[i](static_cast<unsigned char*>(p) + block.slot[i]);
        if (flag_at(p, combined_flag)) destroy_value<combined>(static_cast<unsigned char*>(p) + block.combined);
        destroy_value<input>(p);
    }

    template <class... Os, std::size_t... K>
    static void combine(void* p, std::tuple<Os...>*, std::index_sequence<K...>) {
        ::new (static_cast<unsigned char*>(p) + block.combined) combined{value_at<Os>(p, block.slot[W::sinks[K]])...};
    }
    static const void* output(void* p) {
        if constexpr (W::sinks.size() == 1) {
            return static_cast<unsigned char*>(p) + block.slot[W::sinks[0]];
        } else {
            if (!flag_at(p, combined_flag)) {
                combine(p, static_cast<combined*>(nullptr), std::make_index_sequence<W::sinks.size()>{});
                flag_at(p, combined_flag) = 1;
            }
            return static_cast<unsigned char*>(p) + block.combined;
        }
    }
};

}  // namespace detail

namespace detail {
template <class W>
inline constexpr in_process_steps in_process_of{
    in_process_hooks<W>::block.size,
    in_process_hooks<W>::block.align,
    &in_process_hooks<W>::construct,
    &in_process_hooks<W>::destroy,
    in_process_hooks<W>::table,
    &in_process_hooks<W>::output,
};
}  // namespace detail

template <workflow_type W>
inline constexpr const in_process_steps& in_process_of = detail::in_process_of<std::remove_cvref_t<W>>;

}  // namespace weft
