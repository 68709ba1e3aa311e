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
struct ERROR_step_output_does_not_convert_to_next_step_input;
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

namespace detail {

inline constexpr std::size_t npos = static_cast<std::size_t>(-1);

// ---- Step 1: the raw lists may repeat nodes (the same node in two fragments) and edges. ----------

template <class Nodes>
struct unique_nodes;
template <class... Ns>
struct unique_nodes<meta::tlist<Ns...>> {
    static constexpr std::size_t raw = sizeof...(Ns);
    static constexpr std::array<const void*, raw> ids{meta::type_id<Ns>...};
    static constexpr auto keep = [] {
        std::array<bool, raw> k{};
        for (std::size_t i = 0; i < raw; ++i) {
            k[i] = true;
            for (std::size_t j = 0; j < i; ++j)
                if (ids[j] == ids[i]) k[i] = false;
        }
        return k;
    }();
    static constexpr std::size_t count = [] {
        std::size_t n = 0;
        for (bool b : keep) n += b;
        return n;
    }();
    static constexpr auto positions = [] {
        std::array<std::size_t, count> p{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < raw; ++i)
            if (keep[i]) p[n++] = i;
        return p;
    }();
    template <std::size_t... I>
    static auto pick(std::index_sequence<I...>) -> meta::tlist<meta::at<positions[I], meta::tlist<Ns...>>...>;
    using type = decltype(pick(std::make_index_sequence<count>{}));
};

struct edge_index {
    std::size_t from;
    std::size_t to;
    constexpr bool operator==(const edge_index&) const = default;
};

template <class N, std::size_t Size>
constexpr std::size_t index_in(const std::array<const void*, Size>& ids) {
    for (std::size_t i = 0; i < Size; ++i)
        if (ids[i] == meta::type_id<N>) return i;
    return npos;
}

template <class Nodes, class Edges>
struct graph_facts;

template <class... Ns, class... Fs, class... Ts>
struct graph_facts<meta::tlist<Ns...>, meta::tlist<edge<Fs, Ts>...>> {
    static constexpr std::size_t size = sizeof...(Ns);
    static constexpr std::array<const void*, size> ids{meta::type_id<Ns>...};
    static constexpr std::array<std::string_view, size> names{Ns::name...};
    static constexpr std::array<std::size_t, size> arity{step_traits<typename Ns::step_type>::arity...};

    static constexpr std::size_t raw_edges = sizeof...(Fs);
    static constexpr std::array<edge_index, raw_edges> raw{edge_index{index_in<Fs>(ids), index_in<Ts>(ids)}...};

    static constexpr std::size_t edge_count = [] {
        std::size_t n = 0;
        for (std::size_t i = 0; i < raw_edges; ++i) {
            bool seen = false;
            for (std::size_t j = 0; j < i; ++j) seen = seen || raw[j] == raw[i];
            n += !seen;
        }
        return n;
    }();
    // Edges without repeats, in declaration order.
    static constexpr auto edges = [] {
        std::array<edge_index, edge_count> e{};
        std::size_t n = 0;
        for (std::size_t i = 0; i < raw_edges; ++i) {
            bool seen = false;
            for (std::size_t j = 0; j < i; ++j) seen = seen || raw[j] == raw[i];
            if (!seen) e[n++] = raw[i];
        }
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
        std::array<bool, size> done{};
        for (;;) {
            std::size_t next = npos;
            for (std::size_t i = 0; i < size && next == npos; ++i)
                if (!done[i] && deg[i] == 0) next = i;
            if (next == npos) break;
            done[next] = true;
            r.order[r.ordered++] = next;
            for (std::size_t c = child_offset[next]; c < child_offset[next + 1]; ++c) --deg[child_list[c]];
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

    static constexpr std::pair<std::size_t, std::size_t> duplicate_name = [] {
        for (std::size_t i = 0; i < size; ++i)
            for (std::size_t j = i + 1; j < size; ++j)
                if (names[i] == names[j]) return std::pair{i, j};
        return std::pair{npos, npos};
    }();

    template <class N>
    using step_of = typename N::step_type;
    template <std::size_t I>
    using node_at = meta::at<I, meta::tlist<Ns...>>;
    template <std::size_t I>
    using output_at = typename step_traits<step_of<node_at<I>>>::output;
    template <std::size_t I>
    using params_at = typename step_traits<step_of<node_at<I>>>::params;

    // Edge typing: parent k of node `to` feeds parameter k.
    template <std::size_t I, std::size_t... K>
    static constexpr bool slots_convert(std::index_sequence<K...>) {
        return (std::is_convertible_v<output_at<parent_list[parent_offset[I] + K]>,
                                      std::tuple_element_t<K, params_at<I>>> && ...);
    }
    template <std::size_t I>
    static constexpr bool inputs_fit() {
        if constexpr (in_degree[I] == 0) return true;
        else if constexpr (in_degree[I] != arity[I]) return false;
        else return slots_convert<I>(std::make_index_sequence<in_degree[I]>{});
    }
    template <std::size_t... I>
    static constexpr std::array<bool, size> all_inputs_fit(std::index_sequence<I...>) {
        return {inputs_fit<I>()...};
    }
    static constexpr std::size_t badly_fed = [] {
        constexpr std::array<bool, size> ok = all_inputs_fit(std::make_index_sequence<size>{});
        for (std::size_t i = 0; i < size; ++i)
            if (!ok[i]) return i;
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
};

// Validate in a fixed order and stop at the first failure, so the user sees one error.
template <class Facts>
consteval bool validate() {
    if constexpr (Facts::duplicate_name.first != npos) {
        using a = typename Facts::template node_at<Facts::duplicate_name.first>::step_type;
        using b = typename Facts::template node_at<Facts::duplicate_name.second>::step_type;
        WEFT_DIAGNOSE("weft: two different steps share a wire name; wire names identify steps to workers "
                      "and must be unique in a workflow: rename one, or give it an alias with step<T, \"alias\">",
                      ERROR_two_steps_share_a_wire_name<a, b>);
        return false;
    } else if constexpr (!Facts::acyclic) {
        using c = typename Facts::template node_at<Facts::cycle_node>::step_type;
        WEFT_DIAGNOSE("weft: the workflow has a cycle; a workflow is a DAG. If you meant to run the same step "
                      "twice, give the second use an alias: step<T, \"again\">",
                      ERROR_workflow_has_a_cycle_through_step<c>);
        return false;
    } else if constexpr (Facts::badly_fed != npos) {
        constexpr std::size_t i = Facts::badly_fed;
        using join = typename Facts::template node_at<i>::step_type;
        using params = typename Facts::template params_at<i>;
        if constexpr (Facts::in_degree[i] == 1 && Facts::arity[i] == 1) {
            using from = typename Facts::template node_at<Facts::parent_list[Facts::parent_offset[i]]>::step_type;
            WEFT_DIAGNOSE("weft: a step's output does not convert to the input of the step after it",
                      ERROR_step_output_does_not_convert_to_next_step_input<
                                 from, join, typename step_traits<from>::output, std::tuple_element_t<0, params>>);
        } else {
            using parents = decltype(Facts::template parent_outputs<i>(std::make_index_sequence<Facts::in_degree[i]>{}));
            WEFT_DIAGNOSE("weft: a step with several parents takes one parameter per parent, in the order the "
                          "parents were declared, and each parent's output must convert to its parameter",
                      ERROR_join_parameters_do_not_match_its_parents_outputs<
                                 join, parents, typename Facts::template as_list<params>::type>);
        }
        return false;
    } else if constexpr (Facts::source_conflict.first != npos) {
        using a = typename Facts::template node_at<Facts::source_conflict.first>::step_type;
        using b = typename Facts::template node_at<Facts::source_conflict.second>::step_type;
        WEFT_DIAGNOSE("weft: every first step of a workflow receives the run's input, so they must all take "
                      "the same parameter types (or none)",
                      ERROR_source_steps_take_different_inputs<a, b>);
        return false;
    } else {
        return true;
    }
}

template <class T>
struct sink_outputs;

}  // namespace detail

// A validated workflow. All members are static and constexpr; the object itself is empty.
template <fixed_string Name, class Nodes, class Edges>
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

private:
    template <std::size_t... I>
    static constexpr std::array<step_policy, size> policies_of(std::index_sequence<I...>) {
        return {step_traits<step<I>>::policy...};
    }

public:
    static constexpr std::array<step_policy, size> policies = policies_of(std::make_index_sequence<size>{});
};

template <class T>
inline constexpr bool is_workflow_v = false;
template <fixed_string N, class Ns, class Es>
inline constexpr bool is_workflow_v<workflow_t<N, Ns, Es>> = true;
template <class T>
concept workflow_type = is_workflow_v<std::remove_cvref_t<T>>;

// What weft::workflow yields once its diagnostic is out, so nothing else is reported.
struct invalid_workflow {};

template <fixed_string Name, class... Fragments>
constexpr auto workflow(Fragments...) {
    static_assert(!Name.empty(), "weft: a workflow needs a name: weft::workflow<\"name\">(...)");
    static_assert(sizeof...(Fragments) > 0, "weft: a workflow needs at least one step");
    static_assert((detail::fragment<Fragments> && ...),
                  "weft: weft::workflow takes steps (weft::step<T>) and fragments built from them with >> and ,");
    using nodes = typename detail::unique_nodes<meta::concat<typename detail::flow_of<Fragments>::nodes...>>::type;
    using edges = meta::concat<typename detail::flow_of<Fragments>::edges...>;
    using facts = detail::graph_facts<nodes, edges>;
    if constexpr (meta::size_of<nodes>::value == 0) {
        return invalid_workflow{};  // every step was malformed and has been reported
    } else if constexpr (detail::validate<facts>()) {
        // Edge lists with repeats are normalised inside graph_facts; the type keeps the raw list.
        return workflow_t<Name, nodes, edges>{};
    } else {
        return invalid_workflow{};
    }
}

}  // namespace weft
