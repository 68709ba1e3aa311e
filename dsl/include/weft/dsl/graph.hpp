// Composing nodes into graph fragments with `>>` (then) and `,` (alongside).
//
//     step<fetch> >> step<parse> >> (step<index>, step<thumb>) >> step<store>
//
// Each partial expression is an empty object whose type records the nodes, the edges in declaration
// order, and the fragment's heads (where an incoming `>>` attaches) and tails (where an outgoing one
// leaves). Composition only concatenates type lists; every check runs once, in weft::workflow.
#pragma once

#include <weft/dsl/meta.hpp>
#include <weft/dsl/step.hpp>

namespace weft {

template <class From, class To>
struct edge {};

template <class Nodes, class Edges, class Heads, class Tails>
struct flow {
    using nodes = Nodes;
    using edges = Edges;
    using heads = Heads;
    using tails = Tails;
};

namespace detail {

template <class T>
struct as_flow;
template <class T, fixed_string A>
struct as_flow<node<T, A>> {
    using N = node<T, A>;
    using type = flow<meta::tlist<N>, meta::tlist<>, meta::tlist<N>, meta::tlist<N>>;
};
template <>
struct as_flow<invalid_step> {
    using type = flow<meta::tlist<>, meta::tlist<>, meta::tlist<>, meta::tlist<>>;
};
template <class N, class E, class H, class T>
struct as_flow<flow<N, E, H, T>> {
    using type = flow<N, E, H, T>;
};

template <class T>
concept fragment = requires { typename as_flow<std::remove_cvref_t<T>>::type; };

template <class T>
using flow_of = typename as_flow<std::remove_cvref_t<T>>::type;

// Every tail of the left side feeds every head of the right side, tails first: for a join this puts
// its parents in the order they were declared.
template <class Tails, class Heads>
struct cross;
template <class... Ts, class Heads>
struct cross<meta::tlist<Ts...>, Heads> {
    template <class T, class Hs>
    struct row;
    template <class T, class... Hs>
    struct row<T, meta::tlist<Hs...>> {
        using type = meta::tlist<edge<T, Hs>...>;
    };
    using type = meta::concat<meta::tlist<>, typename row<Ts, Heads>::type...>;
};

}  // namespace detail

template <detail::fragment L, detail::fragment R>
constexpr auto operator>>(L, R) {
    using l = detail::flow_of<L>;
    using r = detail::flow_of<R>;
    return flow<meta::concat<typename l::nodes, typename r::nodes>,
                meta::concat<typename l::edges, typename r::edges,
                             typename detail::cross<typename l::tails, typename r::heads>::type>,
                typename l::heads, typename r::tails>{};
}

template <detail::fragment L, detail::fragment R>
constexpr auto operator,(L, R) {
    using l = detail::flow_of<L>;
    using r = detail::flow_of<R>;
    return flow<meta::concat<typename l::nodes, typename r::nodes>, meta::concat<typename l::edges, typename r::edges>,
                meta::concat<typename l::heads, typename r::heads>,
                meta::concat<typename l::tails, typename r::tails>>{};
}

}  // namespace weft
