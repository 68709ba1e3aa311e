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

// ---- Step 1: the raw lists may repeat nodes (the same node in two fragments) and edges. ----------

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

template <class Nodes>
struct unique_nodes;
template <class... Ns>
struct unique_nodes<meta::tlist<Ns...>> {
    static constexpr std::size_t raw = sizeof...(Ns);
    static constexpr std::array<const void*, raw> ids{meta::type_id<Ns>...};
    static constexpr std::array<std::string_view, raw> names{Ns::name...};
    // first[i]: the earliest position holding the same node as position i.
    static constexpr auto first = [] {
        std::array<std::size_t, raw> f{};
        const auto order = by_name(names);
        for (std::size_t k = 0; k < raw;) {
            std::size_t end = k;
            while (end < raw && names[order[end]] == names[order[k]]) ++end;
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
    }();
    static constexpr std::size_t count = [] {
        std::size_t n = 0;
        for (std::size_t i = 0; i < raw; ++i) n += first[i] == i;
        return n;
    }();
    // map[i]: position i's index among the nodes kept, in order of first appearance.
    static constexpr auto map = [] {
        std::array<std::size_t, raw> m{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < raw; ++i) m[i] = first[i] == i ? n++ : m[first[i]];
        return m;
    }();
    static constexpr auto positions = [] {
        std::array<std::size_t, count> p{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < raw; ++i)
            if (first[i] == i) p[n++] = i;
        return p;
    }();
    template <std::size_t... I>
    static auto pick(std::index_sequence<I...>) -> meta::tlist<meta::at<positions[I], meta::tlist<Ns...>>...>;
    // Without repeats (every chain) the list is kept as it is, skipping n lookups by index (each
    // costs in proportion to n): only the branch taken is instantiated.
    static auto distinct() {
        if constexpr (count == raw) return meta::tlist<Ns...>{};
        else return decltype(pick(std::make_index_sequence<count>{})){};
    }
    using type = decltype(distinct());
};

template <class Tuple>
struct type_ids;
template <class... Ps>
struct type_ids<std::tuple<Ps...>> {
    static constexpr std::array<const void*, sizeof...(Ps)> value{meta::type_id<Ps>...};
};

// Nodes: the distinct nodes; Raw: an edge_list over their indices, in declaration order, with repeats.
template <class Nodes, auto Raw>
struct graph_facts;

template <class... Ns, auto Raw>
struct graph_facts<meta::tlist<Ns...>, Raw> {
    static constexpr std::size_t size = sizeof...(Ns);
    static constexpr std::array<const void*, size> ids{meta::type_id<Ns>...};
    static constexpr std::array<std::string_view, size> names{Ns::name...};
    static constexpr std::array<std::size_t, size> arity{step_traits<typename Ns::step_type>::arity...};

    static constexpr std::size_t raw_edges = Raw.size();
    static constexpr auto raw = [] {
        std::array<edge_index, raw_edges> r{};
        for (std::size_t i = 0; i < raw_edges; ++i) r[i] = Raw[i];
        return r;
    }();

    // repeated[i]: raw edge i repeats an earlier one.
    static constexpr auto repeated = [] {
        std::array<std::size_t, raw_edges> o{};
        for (std::size_t i = 0; i < raw_edges; ++i) o[i] = i;
        std::sort(o.begin(), o.end(), [](std::size_t a, std::size_t b) {
            if (raw[a].from != raw[b].from) return raw[a].from < raw[b].from;
            if (raw[a].to != raw[b].to) return raw[a].to < raw[b].to;
            return a < b;
        });
        std::array<bool, raw_edges> r{};
        for (std::size_t k = 1; k < raw_edges; ++k) r[o[k]] = raw[o[k]] == raw[o[k - 1]];
        return r;
    }();
    static constexpr std::size_t edge_count = [] {
        std::size_t n = 0;
        for (bool r : repeated) n += !r;
        return n;
    }();
    // Edges without repeats, in declaration order.
    static constexpr auto edges = [] {
        std::array<edge_index, edge_count> e{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < raw_edges; ++i)
            if (!repeated[i]) e[n++] = raw[i];
        return e;
    }();

    static constexpr auto in_degree = [] {
        std::array<std::size_t, size> d{};
        for (auto e : edges) ++d[e.to];
        return d;
    }();
    static constexpr auto out_degree = [] {
        std::array<std::size_t, size> d{};
        for (auto e : edges) ++d[e.from];
        return d;
    }();

    // Parents of node i are parent_list[parent_offset[i] .. parent_offset[i+1]), in declaration order.
    static constexpr auto parent_offset = [] {
        std::array<std::size_t, size + 1> o{};
        for (std::size_t i = 0; i < size; ++i) o[i + 1] = o[i] + in_degree[i];
        return o;
    }();
    static constexpr auto parent_list = [] {
        std::array<std::size_t, edge_count> p{};
        std::array<std::size_t, size> fill{};
        for (auto e : edges) p[parent_offset[e.to] + fill[e.to]++] = e.from;
        return p;
    }();
    // Children likewise, in declaration order of the edges.
    static constexpr auto child_offset = [] {
        std::array<std::size_t, size + 1> o{};
        for (std::size_t i = 0; i < size; ++i) o[i + 1] = o[i] + out_degree[i];
        return o;
    }();
    static constexpr auto child_list = [] {
        std::array<std::size_t, edge_count> c{};
        std::array<std::size_t, size> fill{};
        for (auto e : edges) c[child_offset[e.from] + fill[e.from]++] = e.to;
        return c;
    }();

    // Kahn's algorithm, always taking the lowest ready index: the same graph gives the same order on
    // every compiler, which the Temporal interpreter's determinism relies on.
    struct kahn_result {
        std::array<std::size_t, size> order{};
        std::size_t ordered = 0;
    };
    static constexpr kahn_result kahn = [] {
        kahn_result r{};
        std::array<std::size_t, size> deg = in_degree;
        std::array<std::size_t, size> ready{};  // a min-heap of the nodes whose parents are all done
        std::size_t n = 0;
        const auto later = [](std::size_t a, std::size_t b) { return a > b; };
        for (std::size_t i = 0; i < size; ++i)
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
    }();
    static constexpr bool acyclic = kahn.ordered == size;

    // A node on a cycle: walk unordered parents from any unordered node until one repeats.
    static constexpr std::size_t cycle_node = [] {
        if (acyclic) return npos;
        std::array<bool, size> ordered{};
        for (std::size_t i = 0; i < kahn.ordered; ++i) ordered[kahn.order[i]] = true;
        std::size_t cur = 0;
        while (ordered[cur]) ++cur;
        std::array<bool, size> visited{};
        while (!visited[cur]) {
            visited[cur] = true;
            for (std::size_t p = parent_offset[cur]; p < parent_offset[cur + 1]; ++p)
                if (!ordered[parent_list[p]]) {
                    cur = parent_list[p];
                    break;
                }
        }
        return cur;
    }();

    // The first pair (by the first index, then the second) of distinct nodes sharing a wire name.
    static constexpr std::pair<std::size_t, std::size_t> duplicate_name = [] {
        std::pair<std::size_t, std::size_t> best{npos, npos};
        const auto order = by_name(names);
        for (std::size_t k = 1; k < size; ++k)
            if (names[order[k]] == names[order[k - 1]] && (k < 2 || names[order[k - 2]] != names[order[k]]) &&
                order[k - 1] < best.first)
                best = {order[k - 1], order[k]};
        return best;
    }();

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
    // trait per edge.
    static constexpr std::array<const void*, size> output_id{
        meta::type_id<typename step_traits<typename Ns::step_type>::output>...};
    static constexpr auto param_offset = [] {
        std::array<std::size_t, size + 1> o{};
        for (std::size_t i = 0; i < size; ++i) o[i + 1] = o[i] + arity[i];
        return o;
    }();
    static constexpr auto param_id = [] {
        std::array<const void*, param_offset[size]> r{};
        // An array and a loop rather than a fold: clang limits a fold to 256 operands.
        constexpr std::array<const void* const*, size> of_node{
            type_ids<typename step_traits<typename Ns::step_type>::params>::value.data()...};
        for (std::size_t i = 0; i < size; ++i)
            for (std::size_t k = 0; k < arity[i]; ++k) r[param_offset[i] + k] = of_node[i][k];
        return r;
    }();
    static constexpr std::size_t badly_fed = [] {
        for (std::size_t i = 0; i < size; ++i) {
            if (in_degree[i] == 0) continue;
            if (in_degree[i] != arity[i]) return i;
            for (std::size_t k = 0; k < in_degree[i]; ++k)
                if (output_id[parent_list[parent_offset[i] + k]] != param_id[param_offset[i] + k]) return i;
        }
        return npos;
    }();

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
    static constexpr auto is_source = [] {
        std::array<bool, size> r{};
        for (std::size_t i = 0; i < size; ++i) r[i] = in_degree[i] == 0;
        return r;
    }();
    static constexpr auto is_sink = [] {
        std::array<bool, size> r{};
        for (std::size_t i = 0; i < size; ++i) r[i] = out_degree[i] == 0;
        return r;
    }();
    static constexpr std::array<const void*, size> input_id{[] {
        using P = typename step_traits<step_of<Ns>>::params;
        if constexpr (std::tuple_size_v<P> == 0) return static_cast<const void*>(nullptr);
        else return meta::type_id<P>;
    }()...};
    static constexpr std::pair<std::size_t, std::size_t> source_conflict = [] {
        std::size_t first = npos;
        for (std::size_t i = 0; i < size; ++i) {
            if (!is_source[i] || input_id[i] == nullptr) continue;
            if (first == npos) first = i;
            else if (input_id[i] != input_id[first]) return std::pair{first, i};
        }
        return std::pair{npos, npos};
    }();
    static constexpr std::size_t input_source = [] {
        for (std::size_t i = 0; i < size; ++i)
            if (is_source[i] && input_id[i] != nullptr) return i;
        return npos;
    }();

    static constexpr std::size_t count_if(const std::array<bool, size>& a) {
        std::size_t n = 0;
        for (bool b : a) n += b;
        return n;
    }
    template <std::size_t Count>
    static constexpr std::array<std::size_t, Count> indices_of(const std::array<bool, size>& a) {
        std::array<std::size_t, Count> r{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < size; ++i)
            if (a[i]) r[n++] = i;
        return r;
    }
    static constexpr auto sources = indices_of<count_if(is_source)>(is_source);
    static constexpr auto sinks = indices_of<count_if(is_sink)>(is_sink);
    static constexpr std::array<step_policy, size> policies{step_traits<typename Ns::step_type>::policy...};
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
    using input_tuple = decltype([] {
        if constexpr (facts::input_source == detail::npos) return std::tuple<>{};
        else return typename facts::template params_at<facts::input_source>{};
    }());
    // What a caller passes to start a run: the single parameter itself, or a tuple of several.
    using input = std::conditional_t<std::tuple_size_v<input_tuple> == 1,
                                     std::tuple_element_t<0, std::conditional_t<std::tuple_size_v<input_tuple> == 1,
                                                                                input_tuple, std::tuple<void>>>,
                                     input_tuple>;
    // The run's output: the last step's output, or a tuple of the last steps' outputs in node order.
    using output = decltype([]<std::size_t... S>(std::index_sequence<S...>) {
        if constexpr (sizeof...(S) == 1) return typename facts::template output_at<sinks[0]>{};
        else return std::tuple<typename facts::template output_at<sinks[S]>...>{};
    }(std::make_index_sequence<sinks.size()>{}));

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
template <class... Ns>
inline constexpr bool has_invalid_step<meta::tlist<Ns...>> = [] {
    constexpr bool invalid[] = {std::is_same_v<Ns, invalid_step>..., false};  // not a fold: clang allows 256 operands
    return std::find(std::begin(invalid), std::end(invalid), true) != std::end(invalid);
}();

template <class... Fragments>
consteval std::size_t first_non_fragment() {
    constexpr bool ok[] = {fragment<Fragments>..., false};
    std::size_t i = 0;
    while (ok[i]) ++i;
    return i;
}

// The edges of the flattened fragments, over the distinct nodes, in declaration order with repeats.
template <class Unique, class Flat>
consteval auto merged_edges() {
    constexpr std::size_t count = [] {
        std::size_t n = 0;
        run_program<Unique::raw>(Flat::code, [&](std::size_t, std::size_t) { ++n; });
        return n;
    }();
    edge_list<count> r{};
    std::size_t n = 0;
    run_program<Unique::raw>(Flat::code, [&](std::size_t from, std::size_t to) {
        r.set(n++, {Unique::map[from], Unique::map[to]});
    });
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
        constexpr auto edges = merged_edges<unique, flat>();
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
