// Composing nodes into graph fragments with `>>` (then) and `,` (alongside).
//
//     step<fetch> >> step<parse> >> (step<index>, step<thumb>) >> step<store>
//
// Each partial expression is an empty object whose type records the fragment's nodes (types, in the
// order written, repeats allowed) and, as values, its edges, heads (where an incoming `>>`
// attaches) and tails (where an outgoing one leaves), all as positions in that node list.
// Composition only concatenates; every check runs once, in weft::workflow.
//
// Edges are values rather than types on purpose: a type per edge made each `>>` re-instantiate a
// list of O(n) edge types, and made every diagnostic spell all of them out.
#pragma once

#include <array>
#include <cstddef>

#include <weft/dsl/meta.hpp>
#include <weft/dsl/step.hpp>

namespace weft {

struct edge_index {
    std::size_t from;
    std::size_t to;
    constexpr bool operator==(const edge_index&) const = default;
};

// Structural wrappers so the lists can be template arguments. Two index arrays rather than an array
// of edge_index: g++ would spell the type name out for every edge in a diagnostic.
template <std::size_t N>
struct edge_list {
    std::array<std::size_t, N> from{};
    std::array<std::size_t, N> to{};
    static constexpr std::size_t size() { return N; }
    constexpr edge_index operator[](std::size_t i) const { return {from[i], to[i]}; }
    constexpr void set(std::size_t i, edge_index e) {
        from[i] = e.from;
        to[i] = e.to;
    }
};
template <std::size_t N>
struct index_list {
    std::array<std::size_t, N> at{};
    static constexpr std::size_t size() { return N; }
};

template <class Nodes, auto Edges, auto Heads, auto Tails>
struct flow {
    using nodes = Nodes;
    static constexpr auto edges = Edges;
    static constexpr auto heads = Heads;
    static constexpr auto tails = Tails;
};

namespace detail {

template <class T>
struct as_flow;
template <class T, fixed_string... A>
struct as_flow<node<T, A...>> {
    using type = flow<meta::tlist<node<T, A...>>, edge_list<0>{}, index_list<1>{{0}}, index_list<1>{{0}}>;
};
// A malformed step (already reported) stays in the node list as a marker: weft::workflow then
// yields an invalid workflow without further checks, instead of reporting its neighbours as cut off.
template <>
struct as_flow<invalid_step> {
    using type = flow<meta::tlist<invalid_step>, edge_list<0>{}, index_list<0>{}, index_list<0>{}>;
};
template <class N, auto E, auto H, auto T>
struct as_flow<flow<N, E, H, T>> {
    using type = flow<N, E, H, T>;
};

template <class T>
concept fragment = requires { typename as_flow<std::remove_cvref_t<T>>::type; };

template <class T>
using flow_of = typename as_flow<std::remove_cvref_t<T>>::type;

template <std::size_t A, std::size_t B>
constexpr edge_list<A + B> join_edges(const edge_list<A>& a, const edge_list<B>& b, std::size_t shift_b) {
    edge_list<A + B> r{};
    for (std::size_t i = 0; i < A; ++i) r.set(i, a[i]);
    for (std::size_t i = 0; i < B; ++i) r.set(A + i, {b.from[i] + shift_b, b.to[i] + shift_b});
    return r;
}
template <std::size_t A, std::size_t B>
constexpr index_list<A + B> join_indices(const index_list<A>& a, const index_list<B>& b, std::size_t shift_b) {
    index_list<A + B> r{};
    for (std::size_t i = 0; i < A; ++i) r.at[i] = a.at[i];
    for (std::size_t i = 0; i < B; ++i) r.at[A + i] = b.at[i] + shift_b;
    return r;
}
template <std::size_t N>
constexpr index_list<N> shift(const index_list<N>& a, std::size_t by) {
    return join_indices(index_list<0>{}, a, by);
}
// Every tail of the left side feeds every head of the right side, tails first: for a join this puts
// its parents in the order they were declared.
template <std::size_t E, std::size_t T, std::size_t H>
constexpr edge_list<E + T * H> cross(const edge_list<E>& edges, const index_list<T>& tails, const index_list<H>& heads,
                                     std::size_t shift_heads) {
    edge_list<E + T * H> r{};
    for (std::size_t i = 0; i < E; ++i) r.set(i, edges[i]);
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t h = 0; h < H; ++h) r.set(E + t * H + h, {tails.at[t], heads.at[h] + shift_heads});
    return r;
}

}  // namespace detail

template <detail::fragment L, detail::fragment R>
constexpr auto operator>>(L, R) {
    using l = detail::flow_of<L>;
    using r = detail::flow_of<R>;
    constexpr std::size_t n = meta::size_of<typename l::nodes>::value;
    return flow<meta::concat<typename l::nodes, typename r::nodes>,
                detail::cross(detail::join_edges(l::edges, r::edges, n), l::tails, r::heads, n), l::heads,
                detail::shift(r::tails, n)>{};
}

template <detail::fragment L, detail::fragment R>
constexpr auto operator,(L, R) {
    using l = detail::flow_of<L>;
    using r = detail::flow_of<R>;
    constexpr std::size_t n = meta::size_of<typename l::nodes>::value;
    return flow<meta::concat<typename l::nodes, typename r::nodes>, detail::join_edges(l::edges, r::edges, n),
                detail::join_indices(l::heads, r::heads, n), detail::join_indices(l::tails, r::tails, n)>{};
}

}  // namespace weft
