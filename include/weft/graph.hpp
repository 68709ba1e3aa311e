// The one erased view of a workflow's graph: what every backend reads, whichever way it runs the
// workflow. The embedded engine walks it, the step table indexes it, the server backends lower it to
// their own plans (Celery canvas, a Hatchet registration, Temporal's interpreter).
//
// It is plain constant data: graph_of<W> names the arrays the DSL computed at compile time, so
// taking it instantiates no function and costs no code.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include <weft/dsl/policy.hpp>
#include <weft/dsl/workflow.hpp>

namespace weft {

struct graph_view {
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    std::string_view name;                   // the workflow's name
    std::span<const std::string_view> names;  // wire names, by node index
    std::span<const step_policy> policies;    // by node index
    std::span<const std::size_t> arity;       // parameters each step takes
    // Parents of node i: parent_list[parent_offset[i] .. parent_offset[i + 1]), in declaration order
    // (parent k feeds parameter k). Children likewise, in declaration order of the edges.
    std::span<const std::size_t> parent_offset;
    std::span<const std::size_t> parent_list;
    std::span<const std::size_t> child_offset;
    std::span<const std::size_t> child_list;
    std::span<const std::size_t> topological_order;  // the same on every compiler (lowest ready index first)
    std::span<const std::size_t> sources;            // nodes without parents: they take the run's input
    std::span<const std::size_t> sinks;              // nodes without children: their outputs are the run's

    constexpr std::size_t size() const noexcept { return names.size(); }
    constexpr std::size_t parent_count(std::size_t i) const noexcept { return parent_offset[i + 1] - parent_offset[i]; }
    constexpr std::size_t parent(std::size_t i, std::size_t k) const noexcept { return parent_list[parent_offset[i] + k]; }
    constexpr std::span<const std::size_t> parents(std::size_t i) const noexcept {
        return parent_list.subspan(parent_offset[i], parent_count(i));
    }
    constexpr std::span<const std::size_t> children(std::size_t i) const noexcept {
        return child_list.subspan(child_offset[i], child_offset[i + 1] - child_offset[i]);
    }
    // The node with wire name `step`, or npos.
    constexpr std::size_t index_of(std::string_view step) const noexcept {
        for (std::size_t i = 0; i < names.size(); ++i)
            if (names[i] == step) return i;
        return npos;
    }
};

namespace detail {
template <class W>
inline constexpr graph_view graph_of{
    W::name,
    W::names,
    W::policies,
    W::facts::arity,
    W::facts::parent_offset,
    W::facts::parent_list,
    W::facts::child_offset,
    W::facts::child_list,
    W::topological_order,
    W::sources,
    W::sinks,
};
}  // namespace detail

// One object per workflow type, whatever its cv-qualifiers (decltype of a constexpr workflow is const).
template <workflow_type W>
inline constexpr const graph_view& graph_of = detail::graph_of<std::remove_cvref_t<W>>;

}  // namespace weft
