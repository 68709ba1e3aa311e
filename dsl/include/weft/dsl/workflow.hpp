// The one validation point: weft::workflow<"name">(fragments...).
//
//     constexpr auto ingest = weft::workflow<"ingest">(
//         step<fetch> >> step<parse> >> (step<index>, step<thumb>) >> step<store>);
//
// Several fragments are merged on their common nodes, which expresses any DAG, including those that
// are not series-parallel:
//
//     weft::workflow<"mesh">(step<a> >> step<c>, step<a> >> step<d>, step<b> >> step<d>);
//
// The result is an empty object whose type carries the whole graph: nodes, edges, a topological
// order, sources and sinks, each node's parents in declaration order, the run's input and output
// types. Backends lower it from there.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <weft/dsl/graph.hpp>
#include <weft/dsl/meta.hpp>
#include <weft/dsl/step.hpp>

namespace weft {

template <class From, class To, class FromOutput, class ToInput>
struct ERROR_step_output_type_is_not_the_next_step_input_type;
template <class Join, class ParentOutputs, class JoinParameters>
struct ERROR_join_parameters_do_not_match_its_parents_outputs;
template <class Step, class OtherStep>
struct ERROR_two_steps_share_a_wire_name;
template <class Step>
struct ERROR_workflow_has_a_cycle_through_step;
template <class Source, class OtherSource>
struct ERROR_source_steps_take_different_inputs;
template <class Fragment>
struct ERROR_workflow_argument_is_not_a_step_or_fragment;
template <class Name>
struct ERROR_workflow_name_is_empty;
template <class Name>
struct ERROR_workflow_name_has_a_character_backends_cannot_carry;
template <class Name>
struct ERROR_workflow_has_no_steps;

namespace detail {

inline constexpr std::size_t npos = static_cast<std::size_t>(-1);

// ---- The graph's facts as values -----------------------------------------------------------------
//
// Every algorithm below is a function of arrays, templated on sizes only, rather than a lambda in
// the class templates that hold its result (unique_nodes, graph_facts). g++ gives each function it
// instantiates a mangled name, whether or not it emits code for it: a lambda in graph_facts, and each
// std::sort helper instantiated for it, is named after graph_facts's arguments, which spell every node
// and every edge, and the mangler's substitution search makes such a name cost the square of its
// length. There were about 500 of them (one per node for input_id alone): at 200 steps 1.7 G of a
// workflow's 8.5 G instructions, growing 15x for 4x the steps. Named by sizes, the same functions
// cost a few short names per workflow.

// Sorting by wire name puts repeats of a node (and steps that share a name) next to each other, so
// these passes cost n log n comparisons rather than n^2 (the cost showed at a few hundred steps).
template <std::size_t N>
constexpr std::array<std::size_t, N> by_name(const std::array<std::string_view, N>& names) {
    std::array<std::size_t, N> o{};
    for (std::size_t i = 0; i < N; ++i) o[i] = i;
    std::sort(o.begin(), o.end(), [&](std::size_t a, std::size_t b) {
        return names[a] < names[b] || (names[a] == names[b] && a < b);
    });
    return o;
}

// first[i]: the earliest position holding the same node (same type id) as position i.
template <std::size_t N>
constexpr std::array<std::size_t, N> first_positions(const std::array<const void*, N>& ids,
                                                     const std::array<std::string_view, N>& names) {
    std::array<std::size_t, N> f{};
    const auto order = by_name(names);
    for (std::size_t k = 0; k < N;) {
        std::size_t end = k;
        while (end < N && names[order[end]] == names[order[k]]) ++end;
        for (std::size_t x = k; x < end; ++x) {
            f[order[x]] = order[x];
            for (std::size_t y = k; y < x; ++y)
                if (ids[order[y]] == ids[order[x]]) {
                    f[order[x]] = f[order[y]];
                    break;
                }
        }
        k = end;
    }
    return f;
}
template <std::size_t N>
constexpr std::size_t count_firsts(const std::array<std::size_t, N>& first) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < N; ++i) n += first[i] == i;
    return n;
}
// map[i]: position i's index among the positions kept, in order of first appearance.
template <std::size_t N>
constexpr std::array<std::size_t, N> kept_index(const std::array<std::size_t, N>& first) {
    std::array<std::size_t, N> m{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < N; ++i) m[i] = first[i] == i ? n++ : m[first[i]];
    return m;
}
template <std::size_t Count, std::size_t N>
constexpr std::array<std::size_t, Count> kept_positions(const std::array<std::size_t, N>& first) {
    std::array<std::size_t, Count> p{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < N; ++i)
        if (first[i] == i) p[n++] = i;
    return p;
}

template <std::size_t E>
constexpr std::array<edge_index, E> edges_of(const edge_list<E>& raw) {
    std::array<edge_index, E> r{};
    for (std::size_t i = 0; i < E; ++i) r[i] = raw[i];
    return r;
}
// repeated[i]: edge i repeats an earlier one.
template <std::size_t E>
constexpr std::array<bool, E> repeated_edges(const std::array<edge_index, E>& raw) {
    std::array<std::size_t, E> o{};
    for (std::size_t i = 0; i < E; ++i) o[i] = i;
    std::sort(o.begin(), o.end(), [&](std::size_t a, std::size_t b) {
        if (raw[a].from != raw[b].from) return raw[a].from < raw[b].from;
        if (raw[a].to != raw[b].to) return raw[a].to < raw[b].to;
        return a < b;
    });
    std::array<bool, E> r{};
    for (std::size_t k = 1; k < E; ++k) r[o[k]] = raw[o[k]] == raw[o[k - 1]];
    return r;
}
template <std::size_t N>
constexpr std::size_t count_true(const std::array<bool, N>& a) {
    std::size_t n = 0;
    for (bool b : a) n += b;
    return n;
}
template <std::size_t M, std::size_t E>
constexpr std::array<edge_index, M> kept_edges(const std::array<edge_index, E>& raw, const std::array<bool, E>& repeated) {
    std::array<edge_index, M> e{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < E; ++i)
        if (!repeated[i]) e[n++] = raw[i];
    return e;
}
// Edges into each node (Into) or out of each node.
template <bool Into, std::size_t N, std::size_t M>
constexpr std::array<std::size_t, N> degrees(const std::array<edge_index, M>& edges) {
    std::array<std::size_t, N> d{};
    for (auto e : edges) ++d[Into ? e.to : e.from];
    return d;
}
template <std::size_t N>
constexpr std::array<std::size_t, N + 1> offsets(const std::array<std::size_t, N>& count) {
    std::array<std::size_t, N + 1> o{};
    for (std::size_t i = 0; i < N; ++i) o[i + 1] = o[i] + count[i];
    return o;
}
// Parents (Into) or children of each node, in declaration order of the edges, from `offset`.
template <bool Into, std::size_t N, std::size_t M>
constexpr std::array<std::size_t, M> adjacency(const std::array<edge_index, M>& edges,
                                               const std::array<std::size_t, N + 1>& offset) {
    std::array<std::size_t, M> r{};
    std::array<std::size_t, N> fill{};
    for (auto e : edges) {
        const std::size_t at = Into ? e.to : e.from;
        r[offset[at] + fill[at]++] = Into ? e.from : e.to;
    }
    return r;
}

template <std::size_t N>
struct kahn_result {
    std::array<std::size_t, N> order{};
    std::size_t ordered = 0;
};
// Kahn's algorithm, always taking the lowest ready index: the same graph gives the same order on
// every compiler, which the Temporal interpreter's determinism relies on.
template <std::size_t N, std::size_t M>
constexpr kahn_result<N> kahn_order(const std::array<std::size_t, N>& in_degree,
                                    const std::array<std::size_t, N + 1>& child_offset,
                                    const std::array<std::size_t, M>& child_list) {
    kahn_result<N> r{};
    std::array<std::size_t, N> deg = in_degree;
    std::array<std::size_t, N> ready{};  // a min-heap of the nodes whose parents are all done
    std::size_t n = 0;
    const auto later = [](std::size_t a, std::size_t b) { return a > b; };
    for (std::size_t i = 0; i < N; ++i)
        if (deg[i] == 0) ready[n++] = i;
    std::make_heap(ready.begin(), ready.begin() + n, later);
    while (n > 0) {
        std::pop_heap(ready.begin(), ready.begin() + n, later);
        const std::size_t next = ready[--n];
        r.order[r.ordered++] = next;
        for (std::size_t c = child_offset[next]; c < child_offset[next + 1]; ++c)
            if (--deg[child_list[c]] == 0) {
                ready[n++] = child_list[c];
                std::push_heap(ready.begin(), ready.begin() + n, later);
            }
    }
    return r;
}

// A node on a cycle: walk unordered parents from any unordered node until one repeats.
template <std::size_t N, std::size_t M>
constexpr std::size_t node_on_a_cycle(const kahn_result<N>& kahn, const std::array<std::size_t, N + 1>& parent_offset,
                                      const std::array<std::size_t, M>& parent_list) {
    if (kahn.ordered == N) return npos;
    std::array<bool, N> ordered{};
    for (std::size_t i = 0; i < kahn.ordered; ++i) ordered[kahn.order[i]] = true;
    std::size_t cur = 0;
    while (ordered[cur]) ++cur;
    std::array<bool, N> visited{};
    while (!visited[cur]) {
        visited[cur] = true;
        for (std::size_t p = parent_offset[cur]; p < parent_offset[cur + 1]; ++p)
            if (!ordered[parent_list[p]]) {
                cur = parent_list[p];
                break;
            }
    }
    return cur;
}

// The first pair (by the first index, then the second) of distinct nodes sharing a wire name.
template <std::size_t N>
constexpr std::pair<std::size_t, std::size_t> first_shared_name(const std::array<std::string_view, N>& names) {
    std::pair<std::size_t, std::size_t> best{npos, npos};
    const auto order = by_name(names);
    for (std::size_t k = 1; k < N; ++k)
        if (names[order[k]] == names[order[k - 1]] && (k < 2 || names[order[k - 2]] != names[order[k]]) &&
            order[k - 1] < best.first)
            best = {order[k - 1], order[k]};
    return best;
}

// Each node's parameter type ids, one after the other (node i's from param_offset[i]).
template <std::size_t P, std::size_t N>
constexpr std::array<const void*, P> parameter_ids(const std::array<const void* const*, N>& of_node,
                                                   const std::array<std::size_t, N>& arity,
                                                   const std::array<std::size_t, N + 1>& param_offset) {
    std::array<const void*, P> r{};
    for (std::size_t i = 0; i < N; ++i)
        for (std::size_t k = 0; k < arity[i]; ++k) r[param_offset[i] + k] = of_node[i][k];
    return r;
}
// The first node with parents whose parameters are not exactly its parents' outputs, in order.
template <std::size_t N, std::size_t M, std::size_t P>
constexpr std::size_t first_badly_fed(const std::array<std::size_t, N>& in_degree, const std::array<std::size_t, N>& arity,
                                      const std::array<const void*, N>& output_id,
                                      const std::array<std::size_t, N + 1>& parent_offset,
                                      const std::array<std::size_t, M>& parent_list,
                                      const std::array<std::size_t, N + 1>& param_offset,
                                      const std::array<const void*, P>& param_id) {
    for (std::size_t i = 0; i < N; ++i) {
        if (in_degree[i] == 0) continue;
        if (in_degree[i] != arity[i]) return i;
        for (std::size_t k = 0; k < in_degree[i]; ++k)
            if (output_id[parent_list[parent_offset[i] + k]] != param_id[param_offset[i] + k]) return i;
    }
    return npos;
}

template <std::size_t N>
constexpr std::array<bool, N> is_zero(const std::array<std::size_t, N>& a) {
    std::array<bool, N> r{};
    for (std::size_t i = 0; i < N; ++i) r[i] = a[i] == 0;
    return r;
}
// Two sources that take different inputs (a null id: no parameter, which any input satisfies).
template <std::size_t N>
constexpr std::pair<std::size_t, std::size_t> conflicting_sources(const std::array<bool, N>& is_source,
                                                                  const std::array<const void*, N>& input_id) {
    std::size_t first = npos;
    for (std::size_t i = 0; i < N; ++i) {
        if (!is_source[i] || input_id[i] == nullptr) continue;
        if (first == npos) first = i;
        else if (input_id[i] != input_id[first]) return std::pair{first, i};
    }
    return std::pair{npos, npos};
}
template <std::size_t N>
constexpr std::size_t first_source_with_input(const std::array<bool, N>& is_source, const std::array<const void*, N>& input_id) {
    for (std::size_t i = 0; i < N; ++i)
        if (is_source[i] && input_id[i] != nullptr) return i;
    return npos;
}
template <std::size_t Count, std::size_t N>
constexpr std::array<std::size_t, Count> indices_of(const std::array<bool, N>& a) {
    std::array<std::size_t, Count> r{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < N; ++i)
        if (a[i]) r[n++] = i;
    return r;
}

// ---- The same facts, held by types ---------------------------------------------------------------

// The raw node list may repeat nodes (the same node in two fragments); the edges may repeat too.
template <class Nodes>
struct unique_nodes;
template <class... Ns>
struct unique_nodes<meta::tlist<Ns...>> {
    static constexpr std::size_t raw = sizeof...(Ns);
    static constexpr std::array<std::size_t, raw> first =
        first_positions(std::array<const void*, raw>{meta::type_id<Ns>...}, std::array<std::string_view, raw>{Ns::name...});
    static constexpr std::size_t count = count_firsts(first);
    static constexpr std::array<std::size_t, raw> map = kept_index(first);
    static constexpr std::array<std::size_t, count> positions = kept_positions<count>(first);
    template <std::size_t... I>
    static auto pick(std::index_sequence<I...>) -> meta::tlist<meta::at<positions[I], meta::tlist<Ns...>>...>;
    // Without repeats (every chain) the list is kept as it is, skipping n lookups by index (each
    // costs in proportion to n): only the branch taken is instantiated.
    template <bool All, class = void>
    struct distinct {
        using type = meta::tlist<Ns...>;
    };
    template <class V>
    struct distinct<false, V> {
        using type = decltype(pick(std::make_index_sequence<count>{}));
    };
    using type = typename distinct<count == raw>::type;
};

template <class Tuple>
struct type_ids;
template <class... Ps>
struct type_ids<std::tuple<Ps...>> {
    static constexpr std::array<const void*, sizeof...(Ps)> value{meta::type_id<Ps>...};
};

// The run's input as a source sees it: its parameters' type id, or null when it takes none.
template <class Params>
struct input_id_of {
    static constexpr const void* value = meta::type_id<Params>;
};
template <>
struct input_id_of<std::tuple<>> {
    static constexpr const void* value = nullptr;
};

// The facts that depend on the edges alone: N nodes, Raw an edge_list over their indices, in
// declaration order, with repeats. Apart from graph_facts, which spells the node types, so that the
// arrays backends take (graph_of) are named by sizes and indices only.
template <std::size_t N, auto Raw>
struct graph_shape {
    static constexpr std::size_t raw_edges = Raw.size();
    static constexpr std::array<edge_index, raw_edges> raw = edges_of(Raw);
    static constexpr std::array<bool, raw_edges> repeated = repeated_edges(raw);
    static constexpr std::size_t edge_count = raw_edges - count_true(repeated);
    // Edges without repeats, in declaration order.
    static constexpr std::array<edge_index, edge_count> edges = kept_edges<edge_count>(raw, repeated);

    static constexpr std::array<std::size_t, N> in_degree = degrees<true, N>(edges);
    static constexpr std::array<std::size_t, N> out_degree = degrees<false, N>(edges);
    // Parents of node i are parent_list[parent_offset[i] .. parent_offset[i+1]), in declaration order.
    static constexpr std::array<std::size_t, N + 1> parent_offset = offsets(in_degree);
    static constexpr std::array<std::size_t, edge_count> parent_list = adjacency<true, N>(edges, parent_offset);
    // Children likewise, in declaration order of the edges.
    static constexpr std::array<std::size_t, N + 1> child_offset = offsets(out_degree);
    static constexpr std::array<std::size_t, edge_count> child_list = adjacency<false, N>(edges, child_offset);

    static constexpr kahn_result<N> kahn = kahn_order(in_degree, child_offset, child_list);
    static constexpr bool acyclic = kahn.ordered == N;
    static constexpr std::size_t cycle_node = node_on_a_cycle(kahn, parent_offset, parent_list);

    static constexpr std::array<bool, N> is_source = is_zero(in_degree);
    static constexpr std::array<bool, N> is_sink = is_zero(out_degree);
    static constexpr std::array<std::size_t, count_true(is_source)> sources = indices_of<count_true(is_source)>(is_source);
    static constexpr std::array<std::size_t, count_true(is_sink)> sinks = indices_of<count_true(is_sink)>(is_sink);
};

// Nodes: the distinct nodes; Raw: an edge_list over their indices, in declaration order, with repeats.
// Few members of their own: g++ names each one that is used after all the nodes and edges.
template <class Nodes, auto Raw>
struct graph_facts;

template <class... Ns, auto Raw>
struct graph_facts<meta::tlist<Ns...>, Raw> : graph_shape<sizeof...(Ns), Raw> {
    using shape = graph_shape<sizeof...(Ns), Raw>;
    using shape::in_degree;
    using shape::parent_offset;
    using shape::parent_list;

    static constexpr std::size_t size = sizeof...(Ns);
    static constexpr std::array<std::string_view, size> names{Ns::name...};
    static constexpr std::array<std::size_t, size> arity{step_traits<typename Ns::step_type>::arity...};
    static constexpr std::array<step_policy, size> policies{step_traits<typename Ns::step_type>::policy...};

    static constexpr std::pair<std::size_t, std::size_t> duplicate_name = first_shared_name(names);

    template <class N>
    using step_of = typename N::step_type;
    template <std::size_t I>
    using node_at = meta::at<I, meta::tlist<Ns...>>;
    template <std::size_t I>
    using output_at = typename step_traits<step_of<node_at<I>>>::output;
    template <std::size_t I>
    using params_at = typename step_traits<step_of<node_at<I>>>::params;

    // Edge typing: parent k of node `to` feeds parameter k, and the types must be the same after
    // remove_cvref (docs/design.md, "Edges"). Compared as type ids in one loop rather than with a
    // trait per edge; the ids are temporaries, which need no name.
    static constexpr std::size_t param_count = offsets(arity)[size];
    static constexpr std::size_t badly_fed = first_badly_fed(
        in_degree, arity, std::array<const void*, size>{meta::type_id<typename step_traits<typename Ns::step_type>::output>...},
        parent_offset, parent_list, offsets(arity),
        // An array and a loop rather than a fold: clang limits a fold to 256 operands.
        parameter_ids<param_count>(
            std::array<const void* const*, size>{type_ids<typename step_traits<typename Ns::step_type>::params>::value.data()...},
            arity, offsets(arity)));

    template <std::size_t I, std::size_t... K>
    static auto parent_outputs(std::index_sequence<K...>) -> meta::tlist<output_at<parent_list[parent_offset[I] + K]>...>;
    template <std::size_t I, std::size_t... K>
    static auto parent_nodes(std::index_sequence<K...>) -> meta::tlist<step_of<node_at<parent_list[parent_offset[I] + K]>>...>;
    template <class Tuple>
    struct as_list;
    template <class... Ps>
    struct as_list<std::tuple<Ps...>> {
        using type = meta::tlist<Ps...>;
    };

    // Sources take the run's input; all of them that take a parameter must take the same one.
    static constexpr std::pair<std::size_t, std::size_t> source_conflict = conflicting_sources(
        shape::is_source, std::array<const void*, size>{input_id_of<typename step_traits<typename Ns::step_type>::params>::value...});
    static constexpr std::size_t input_source = first_source_with_input(
        shape::is_source, std::array<const void*, size>{input_id_of<typename step_traits<typename Ns::step_type>::params>::value...});
};

// The run's input and output types (workflow_t::input_tuple, ::output), chosen by class templates
// rather than by the return type of a lambda, which g++ would name after the whole workflow.
template <class Facts, bool Any = Facts::input_source != npos>
struct input_tuple_of {
    using type = std::tuple<>;
};
template <class Facts>
struct input_tuple_of<Facts, true> {
    using type = typename Facts::template params_at<Facts::input_source>;
};
template <class Facts, class S = std::make_index_sequence<Facts::sinks.size()>>
struct output_of;
template <class Facts, std::size_t S>
struct output_of<Facts, std::index_sequence<S>> {
    using type = typename Facts::template output_at<Facts::sinks[0]>;
};
template <class Facts, std::size_t... S>
struct output_of<Facts, std::index_sequence<S...>> {
    using type = std::tuple<typename Facts::template output_at<Facts::sinks[S]>...>;
};

template <class T>
struct sink_outputs;

}  // namespace detail

// A validated workflow. All members are static and constexpr; the object itself is empty.
template <fixed_string Name, class Nodes, auto Edges>
struct workflow_t {
    using facts = detail::graph_facts<Nodes, Edges>;
    using nodes = Nodes;
    static constexpr std::string_view name = Name.view();
    static constexpr std::size_t size = facts::size;
    static constexpr const auto& edges = facts::edges;
    static constexpr const auto& topological_order = facts::kahn.order;
    static constexpr const auto& sources = facts::sources;
    static constexpr const auto& sinks = facts::sinks;
    static constexpr const auto& names = facts::names;

    template <std::size_t I>
    using node = typename facts::template node_at<I>;
    template <std::size_t I>
    using step = typename node<I>::step_type;

    static constexpr std::size_t parent_count(std::size_t i) { return facts::in_degree[i]; }
    static constexpr std::size_t parent(std::size_t i, std::size_t k) { return facts::parent_list[facts::parent_offset[i] + k]; }
    static constexpr std::size_t child_count(std::size_t i) { return facts::out_degree[i]; }
    static constexpr std::size_t child(std::size_t i, std::size_t k) { return facts::child_list[facts::child_offset[i] + k]; }
    static constexpr step_policy policy(std::size_t i) { return policies[i]; }
    static constexpr std::size_t index_of(std::string_view step_name) {
        for (std::size_t i = 0; i < size; ++i)
            if (names[i] == step_name) return i;
        return detail::npos;
    }

    // The run's input: the parameters of the first steps (std::tuple<> when they take none).
    using input_tuple = typename detail::input_tuple_of<facts>::type;
    // What a caller passes to start a run: the single parameter itself, or a tuple of several.
    using input = std::conditional_t<std::tuple_size_v<input_tuple> == 1,
                                     std::tuple_element_t<0, std::conditional_t<std::tuple_size_v<input_tuple> == 1,
                                                                                input_tuple, std::tuple<void>>>,
                                     input_tuple>;
    // The run's output: the last step's output, or a tuple of the last steps' outputs in node order.
    using output = typename detail::output_of<facts>::type;

    static constexpr const auto& policies = facts::policies;
};

template <class T>
inline constexpr bool is_workflow_v = false;
template <fixed_string N, class Ns, auto Es>
inline constexpr bool is_workflow_v<workflow_t<N, Ns, Es>> = true;
template <class T>
concept workflow_type = is_workflow_v<std::remove_cvref_t<T>>;

// What weft::workflow yields once its diagnostic is out, so nothing else is reported.
struct invalid_workflow {};

namespace detail {

template <class L>
inline constexpr bool has_invalid_step = false;
// An array and a count rather than a fold (clang allows 256 operands), and no lambda (see "The graph's
// facts as values").
template <class... Ns>
inline constexpr bool has_invalid_step<meta::tlist<Ns...>> =
    count_true(std::array<bool, sizeof...(Ns)>{std::is_same_v<Ns, invalid_step>...}) != 0;

template <class... Fragments>
consteval std::size_t first_non_fragment() {
    constexpr bool ok[] = {fragment<Fragments>..., false};
    std::size_t i = 0;
    while (ok[i]) ++i;
    return i;
}

// The edges of the flattened fragments' program over N raw nodes, mapped to the distinct nodes, in
// declaration order with repeats. Functions of the program rather than of the fragments' types, for
// short mangled names (see "The graph's facts as values").
template <std::size_t N, std::size_t P>
constexpr std::size_t program_edge_count(const std::array<char, P>& code) {
    std::size_t n = 0;
    run_program<N>(code, [&](std::size_t, std::size_t) { ++n; });
    return n;
}
template <std::size_t Count, std::size_t N, std::size_t P>
constexpr edge_list<Count> program_edges(const std::array<char, P>& code, const std::array<std::size_t, N>& map) {
    edge_list<Count> r{};
    std::size_t n = 0;
    run_program<N>(code, [&](std::size_t from, std::size_t to) { r.set(n++, {map[from], map[to]}); });
    return r;
}

// Checks in a fixed order and stops at the first failure, so the user sees one error. The checks
// are written here rather than in a function of the graph's facts, to keep one frame listing every
// node out of the compilers' "required from" notes.
template <fixed_string Name, class... Fragments>
constexpr auto make_workflow() {
    using flat = typename flatten<Fragments...>::type;
    using raw_nodes = typename flat::nodes;
    if constexpr (has_invalid_step<raw_nodes>) {
        return invalid_workflow{};  // a malformed step has been reported where it was named
    } else {
        using unique = unique_nodes<raw_nodes>;
        using nodes = typename unique::type;
        constexpr auto edges = program_edges<program_edge_count<unique::raw>(flat::code)>(flat::code, unique::map);
        using facts = graph_facts<nodes, edges>;
            if constexpr (facts::duplicate_name.first != npos) {
                using a = typename facts::template node_at<facts::duplicate_name.first>::step_type;
                using b = typename facts::template node_at<facts::duplicate_name.second>::step_type;
                WEFT_DIAGNOSE("weft: two different steps share a wire name; wire names identify steps to workers "
                              "and must be unique in a workflow: rename one, or give it an alias with step<T, \"alias\">",
                              ERROR_two_steps_share_a_wire_name<a, b>);
                return invalid_workflow{};
            } else if constexpr (!facts::acyclic) {
                using c = typename facts::template node_at<facts::cycle_node>::step_type;
                WEFT_DIAGNOSE("weft: the workflow has a cycle; a workflow is a DAG. If you meant to run the same step "
                              "twice, give the second use an alias: step<T, \"again\">",
                              ERROR_workflow_has_a_cycle_through_step<c>);
                return invalid_workflow{};
            } else if constexpr (facts::badly_fed != npos) {
                constexpr std::size_t i = facts::badly_fed;
                using join = typename facts::template node_at<i>::step_type;
                using params = typename facts::template params_at<i>;
                if constexpr (facts::in_degree[i] == 1 && facts::arity[i] == 1) {
                    using from = typename facts::template node_at<facts::parent_list[facts::parent_offset[i]]>::step_type;
                    WEFT_DIAGNOSE("weft: a step's output type must be exactly the next step's parameter type (const and & "
                                  "aside): remote workers decode the parent's result as that type and do not convert: make "
                                  "the types match, or add a step that converts",
                                  ERROR_step_output_type_is_not_the_next_step_input_type<
                                      from, join, typename step_traits<from>::output, std::tuple_element_t<0, params>>);
                } else {
                    using parents = decltype(facts::template parent_outputs<i>(std::make_index_sequence<facts::in_degree[i]>{}));
                    WEFT_DIAGNOSE("weft: a step with several parents takes one parameter per parent, in the order the "
                                  "parents were declared, each of exactly its parent's output type (const and & aside): "
                                  "make the types match, or add a step that converts",
                              ERROR_join_parameters_do_not_match_its_parents_outputs<
                                         join, parents, typename facts::template as_list<params>::type>);
                }
                return invalid_workflow{};
            } else if constexpr (facts::source_conflict.first != npos) {
                using a = typename facts::template node_at<facts::source_conflict.first>::step_type;
                using b = typename facts::template node_at<facts::source_conflict.second>::step_type;
                WEFT_DIAGNOSE("weft: every first step of a workflow receives the run's input, so they must all take "
                              "the same parameter types (or none)",
                              ERROR_source_steps_take_different_inputs<a, b>);
                return invalid_workflow{};
            } else {
                // Edge lists with repeats are normalised inside graph_facts; the type keeps the raw list.
                return workflow_t<Name, nodes, edges>{};
            }
    }
}

}  // namespace detail

template <fixed_string Name, class... Fragments>
constexpr auto workflow(Fragments...) {
    if constexpr (Name.empty()) {
        WEFT_DIAGNOSE("weft: a workflow needs a name: weft::workflow<\"name\">(...)", ERROR_workflow_name_is_empty<meta::text_of<Name>>);
        return invalid_workflow{};
    } else if constexpr (!detail::wire_name_ok(Name.view())) {
        WEFT_DIAGNOSE("weft: a workflow's name may not hold whitespace, control characters or ':' (Hatchet joins "
                      "`workflow:step` with it): use letters, digits and . _ - /",
                      ERROR_workflow_name_has_a_character_backends_cannot_carry<meta::text_of<Name>>);
        return invalid_workflow{};
    } else if constexpr (sizeof...(Fragments) == 0) {
        WEFT_DIAGNOSE("weft: a workflow needs at least one step", ERROR_workflow_has_no_steps<meta::text_of<Name>>);
        return invalid_workflow{};
    } else if constexpr (detail::first_non_fragment<Fragments...>() < sizeof...(Fragments)) {
        WEFT_DIAGNOSE("weft: weft::workflow takes steps (weft::step<T>) and fragments built from them with >> and ,",
                      ERROR_workflow_argument_is_not_a_step_or_fragment<
                          meta::at<detail::first_non_fragment<Fragments...>(), meta::tlist<Fragments...>>>);
        return invalid_workflow{};
    } else {
        return detail::make_workflow<Name, Fragments...>();
    }
}

}  // namespace weft
