// What a worker process needs to serve the steps of a workflow over the wire: for each step, its wire
// name, policy, and a function that decodes its parameters from JSON, calls it, and encodes the result.
//
//     for (const weft::erased_step& s : weft::step_table(corpus::workflow)) worker.serve(s);
//
// Every remote backend's worker adapts its own message shape to `args`: the step's parameters in
// order, one JSON value each (for a join, one per parent in declaration order).
#pragma once

#include <array>
#include <span>
#include <string_view>
#include <tuple>
#include <utility>

#include <weft/dsl/workflow.hpp>
#include <weft/graph.hpp>
#include <weft/json.hpp>
#include <weft/this_step.hpp>

namespace weft {

// One step of a workflow's graph, with the code that runs it on JSON values. Its name and policy are
// read from the graph view, not copied.
struct erased_step {
    const graph_view* graph;
    std::size_t node;
    // Decodes `args` as the step's parameters, calls it and encodes its result; invoke checks the
    // count first. Per step type, not per workflow node: a step's code is the same in every workflow.
    json::value (*call)(const json::array& args);
    // The member names of the step's parameter when it takes one described struct, else empty: a
    // caller that passes arguments by name (Celery's kwargs) can fill those members, and nothing else.
    std::span<const std::string_view> fields{};

    std::string_view workflow() const noexcept { return graph->name; }
    std::string_view name() const noexcept { return graph->names[node]; }
    const step_policy& policy() const noexcept { return graph->policies[node]; }
    std::size_t arity() const noexcept { return graph->arity[node]; }  // parameters the step takes

    // Throws json::decode_error when `args` does not fit the parameters (naming the path, e.g. "$[1].qty"),
    // or whatever the step throws.
    json::value invoke(const json::array& args) const {
        const std::size_t n = arity();
        if (args.size() != n)
            throw json::decode_error("$", "an array of " + std::to_string(n) + (n == 1 ? " argument" : " arguments") +
                                              " for step '" + std::string(name()) + "'",
                                     std::to_string(args.size()) + (args.size() == 1 ? " argument" : " arguments"));
        return call(args);
    }
};

namespace detail {

// Decodes argument `index`, reporting paths from the argument array ("$[1].qty").
template <class T>
T argument(const json::array& args, std::size_t index) {
    try {
        return json::from_value<T>(args[index]);
    } catch (const json::decode_error& e) {
        throw json::decode_error("$[" + std::to_string(index) + "]" + e.path().substr(1), e.expected(), e.got());
    }
}

template <class S, class Params = typename step_traits<S>::params,
          class K = std::make_index_sequence<std::tuple_size_v<Params>>>
struct json_hook;
template <class S, class... Ps, std::size_t... K>
struct json_hook<S, std::tuple<Ps...>, std::index_sequence<K...>> {
    static json::value call(const json::array& args) {
        const std::tuple<Ps...> decoded{argument<Ps>(args, K)...};  // in order: the first bad argument is reported
        S step{};  // a named object, as weft::local calls it, so a &-qualified call operator works
        return json::to_value(std::apply(step, decoded));
    }
};

template <class P>
inline constexpr auto field_names = [] {
    using members = public_members<P>;
    std::array<std::string_view, boost::mp11::mp_size<members>::value> out{};
    std::size_t i = 0;
    boost::mp11::mp_for_each<members>([&](auto d) { out[i++] = d.name; });
    return out;
}();

template <class Params>
constexpr std::span<const std::string_view> fields_of() {
    if constexpr (std::tuple_size_v<Params> == 1) {
        using P = std::remove_cvref_t<std::tuple_element_t<0, Params>>;
        if constexpr (described_struct_v<P>) return field_names<P>;
    }
    return {};
}

// Constant data, so an erased_workflow can point at it (<weft/codec.hpp>'s json_erasure).
template <class W>
inline constexpr auto step_table_of = []<class... Ns, std::size_t... I>(meta::tlist<Ns...>, std::index_sequence<I...>) {
    return std::array<erased_step, W::size>{erased_step{&graph_of<W>, I, &json_hook<typename Ns::step_type>::call,
                                                        fields_of<typename step_traits<typename Ns::step_type>::params>()}...};
}(typename W::nodes{}, std::make_index_sequence<W::size>{});

}  // namespace detail

template <workflow_type W>
std::span<const erased_step> step_table(W) {
    return detail::step_table_of<std::remove_cvref_t<W>>;
}

}  // namespace weft
