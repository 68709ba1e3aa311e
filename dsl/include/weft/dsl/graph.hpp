// Composing nodes into graph fragments with `>>` (then) and `,` (alongside).
//
//     step<fetch> >> step<parse> >> (step<index>, step<thumb>) >> step<store>
//
// Each operator yields an empty object of type then<L, R> or alongside<L, R>: the expression tree,
// one small type per operator whatever the size of its operands, so a chain of n steps costs n
// instantiations of constant size. weft::workflow flattens the tree once (detail::flatten below)
// into the nodes in the order written and a postfix program, and computes the edges from the
// program in one constexpr loop. Every check runs there too.
//
// Edges are values rather than types on purpose: a type per edge made every diagnostic spell all of
// them out.
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

// A structural wrapper so the list can be a template argument. Two index arrays rather than an array
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

// `l >> r`: every tail of l feeds every head of r. `(l, r)`: l and r side by side.
template <class L, class R>
struct then {};
template <class L, class R>
struct alongside {};

// `a >> b >> c` over plain nodes: one flat list rather than then<then<a, b>, c>. g++ mangles each
// operator>> it instantiates, and a chain of n steps instantiates n - 1 of them, each named after its
// left operand: nested, that name holds three names per step (then<>, node<>, the step) that the
// mangler's substitution search each compares with all those before, so the chain cost n^3; as a
// list, one name per step (a node without alias is listed as its step type). The list sits in a
// tlist so that it never matches the Op<L, R> patterns below.
template <class Elements>
struct chain {};

namespace detail {

// A node, a malformed step (already reported; it stays in the node list as a marker, so that
// weft::workflow yields an invalid workflow without reporting its neighbours), or a tree of them.
// A trait class rather than a variable template: g++ gives each variable template specialization
// a mangled name, which for a fragment of n steps costs time in proportion to n squared, and there
// is one per operator.
template <class T>
struct is_fragment : std::false_type {};
template <class T, fixed_string... A>
struct is_fragment<node<T, A...>> : std::true_type {};
template <>
struct is_fragment<invalid_step> : std::true_type {};
template <class L, class R>
struct is_fragment<then<L, R>> : std::true_type {};
template <class L, class R>
struct is_fragment<alongside<L, R>> : std::true_type {};
template <class... Es>
struct is_fragment<chain<meta::tlist<Es...>>> : std::true_type {};

// A chain's element for a node, and the node for an element.
template <class N>
struct chain_element {
    using type = N;  // a node with an alias
};
template <class T>
struct chain_element<node<T>> {
    using type = T;
};
template <class E>
struct chain_node {
    using type = node<E>;
};
template <class T, fixed_string... A>
struct chain_node<node<T, A...>> {
    using type = node<T, A...>;
};

template <class T>
concept fragment = is_fragment<std::remove_cvref_t<T>>::value;

// ---- Flattening, once per workflow ---------------------------------------------------------------

// Fragments as the nodes in the order written (repeats kept) and their expression in postfix: 'n'
// takes the next node, '>' and ',' combine the last two entries.
template <class Nodes, char... Code>
struct flat_form {
    using nodes = Nodes;
    static constexpr std::array<char, sizeof...(Code)> code{Code...};
};

template <template <class, class> class Op>
inline constexpr char op_code = 0;
template <>
inline constexpr char op_code<then> = '>';
template <>
inline constexpr char op_code<alongside> = ',';

template <class Node, class Flat>
struct with_node;
template <class Node, class... Ns, char... C>
struct with_node<Node, flat_form<meta::tlist<Ns...>, C...>> {
    using type = flat_form<meta::tlist<Node, Ns...>, 'n', C...>;
};
template <char Op, class Flat>
struct with_op;
template <char Op, class Ns, char... C>
struct with_op<Op, flat_form<Ns, C...>> {
    using type = flat_form<Ns, Op, C...>;
};

// prepend<F, Flat>: F's nodes and program in front of Flat's. The walk goes down the left operands
// (a chain of n steps nests n deep on the left) eight operators at a time: the eight right operands
// are flattened on their own (they are small: a step, a fan-out) and spliced in front of Flat in
// one instantiation. So a chain stays far from the compilers' instantiation-depth limits, and the
// node list, which grows by eight at each instantiation, is copied n / 8 times rather than n.
template <class F, class Flat>
struct prepend {
    using type = typename with_node<F, Flat>::type;
};
template <template <class, class> class Op, class L, class R, class Flat>
struct prepend<Op<L, R>, Flat> {
    using type = typename prepend<L, typename prepend<R, typename with_op<op_code<Op>, Flat>::type>::type>::type;
};

template <class F>
using flat_of = typename prepend<F, flat_form<meta::tlist<>>>::type;

// A chain's program: a b > c > ...
constexpr char chain_code(std::size_t i) { return i % 2 == 1 || i == 0 ? 'n' : '>'; }
template <class Is, class Flat, class... Ns>
struct splice_chain;
template <std::size_t... I, class... Fs, char... C, class... Ns>
struct splice_chain<std::index_sequence<I...>, flat_form<meta::tlist<Fs...>, C...>, Ns...> {
    using type = flat_form<meta::tlist<Ns..., Fs...>, chain_code(I)..., C...>;
};
template <class... Es, class Flat>
struct prepend<chain<meta::tlist<Es...>>, Flat> {
    using type = typename splice_chain<std::make_index_sequence<2 * sizeof...(Es) - 1>, Flat,
                                       typename chain_node<Es>::type...>::type;
};

// Each operand's nodes, then each operand's program followed by its operator.
template <char O1, char O2, char O3, char O4, char O5, char O6, char O7, char O8, class F1, class F2, class F3,
          class F4, class F5, class F6, class F7, class F8, class Flat>
struct splice8;
template <char O1, char O2, char O3, char O4, char O5, char O6, char O7, char O8, class... N1, char... C1,
          class... N2, char... C2, class... N3, char... C3, class... N4, char... C4, class... N5, char... C5,
          class... N6, char... C6, class... N7, char... C7, class... N8, char... C8, class... Ns, char... C>
struct splice8<O1, O2, O3, O4, O5, O6, O7, O8, flat_form<meta::tlist<N1...>, C1...>, flat_form<meta::tlist<N2...>, C2...>,
               flat_form<meta::tlist<N3...>, C3...>, flat_form<meta::tlist<N4...>, C4...>,
               flat_form<meta::tlist<N5...>, C5...>, flat_form<meta::tlist<N6...>, C6...>,
               flat_form<meta::tlist<N7...>, C7...>, flat_form<meta::tlist<N8...>, C8...>, flat_form<meta::tlist<Ns...>, C...>> {
    using type = flat_form<meta::tlist<N1..., N2..., N3..., N4..., N5..., N6..., N7..., N8..., Ns...>, C1..., O1, C2...,
                           O2, C3..., O3, C4..., O4, C5..., O5, C6..., O6, C7..., O7, C8..., O8, C...>;
};

template <template <class, class> class O1, template <class, class> class O2, template <class, class> class O3,
          template <class, class> class O4, template <class, class> class O5, template <class, class> class O6,
          template <class, class> class O7, template <class, class> class O8, class L, class R1, class R2, class R3,
          class R4, class R5, class R6, class R7, class R8, class Flat>
struct prepend<O8<O7<O6<O5<O4<O3<O2<O1<L, R1>, R2>, R3>, R4>, R5>, R6>, R7>, R8>, Flat> {
    using type = typename prepend<
        L, typename splice8<op_code<O1>, op_code<O2>, op_code<O3>, op_code<O4>, op_code<O5>, op_code<O6>, op_code<O7>,
                            op_code<O8>, flat_of<R1>, flat_of<R2>, flat_of<R3>, flat_of<R4>, flat_of<R5>, flat_of<R6>,
                            flat_of<R7>, flat_of<R8>, Flat>::type>::type;
};

template <class... Fragments>
struct flatten {
    using type = flat_form<meta::tlist<>>;
};
template <class F, class... Rest>
struct flatten<F, Rest...> {
    using type = typename prepend<F, typename flatten<Rest...>::type>::type;
};

// Runs a postfix program over nodes 0..N-1 and calls edge(from, to) for each edge, in the order the
// operators were applied: the left operand's edges, the right operand's, then the new ones (tails
// first, so a join's parents come in declaration order). A fragment's heads are where an incoming
// `>>` attaches, its tails where an outgoing one leaves; on the stack they sit in order, so that
// `,` only merges two adjacent ranges.
template <std::size_t N, std::size_t P, class Edge>
constexpr void run_program(const std::array<char, P>& code, Edge edge) {
    struct entry {
        std::size_t heads, tails;  // where its ranges start in heads[] and tails[]
    };
    std::array<entry, N + 1> stack{};
    std::array<std::size_t, N + 1> heads{}, tails{};
    std::size_t depth = 0, nh = 0, nt = 0, next = 0;
    for (char c : code) {
        if (c == 'n') {
            stack[depth++] = {nh, nt};
            heads[nh++] = next;
            tails[nt++] = next++;
            continue;
        }
        const entry r = stack[--depth];
        if (c == '>') {
            const entry l = stack[depth - 1];
            for (std::size_t t = l.tails; t < r.tails; ++t)
                for (std::size_t h = r.heads; h < nh; ++h) edge(tails[t], heads[h]);
            nh = r.heads;  // the left side's heads; the right side's tails replace the left side's
            std::size_t k = l.tails;
            for (std::size_t t = r.tails; t < nt; ++t) tails[k++] = tails[t];
            nt = k;
        }
    }
}

}  // namespace detail

template <detail::fragment L, detail::fragment R>
constexpr then<L, R> operator>>(L, R) {
    return {};
}
template <class T, fixed_string... A, class U, fixed_string... B>
constexpr chain<meta::tlist<typename detail::chain_element<node<T, A...>>::type, typename detail::chain_element<node<U, B...>>::type>>
operator>>(node<T, A...>, node<U, B...>) {
    return {};
}
template <class... Es, class U, fixed_string... B>
constexpr chain<meta::tlist<Es..., typename detail::chain_element<node<U, B...>>::type>> operator>>(chain<meta::tlist<Es...>>,
                                                                                                  node<U, B...>) {
    return {};
}

template <detail::fragment L, detail::fragment R>
constexpr alongside<L, R> operator,(L, R) {
    return {};
}

}  // namespace weft
