// Small type-list and compile-time string vocabulary the DSL is built from. Includes only <cstddef>,
// <string_view> and <type_traits>: the DSL must stay cheap to include.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <type_traits>
#include <utility>

namespace weft {

// A string usable as a template argument: workflow<"ingest">, step<download, "mirror">.
template <std::size_t N>
struct fixed_string {
    char data[N]{};
    constexpr fixed_string(const char (&s)[N]) noexcept { std::copy_n(s, N, data); }
    constexpr std::string_view view() const noexcept { return {data, N - 1}; }
    constexpr bool empty() const noexcept { return N <= 1; }
};

namespace meta {

template <class... Ts>
struct tlist {};

template <class... Ls>
struct concat_impl;
template <>
struct concat_impl<> {
    using type = tlist<>;
};
template <class... As>
struct concat_impl<tlist<As...>> {
    using type = tlist<As...>;
};
template <class... As, class... Bs, class... Rest>
struct concat_impl<tlist<As...>, tlist<Bs...>, Rest...> {
    using type = typename concat_impl<tlist<As..., Bs...>, Rest...>::type;
};
template <class... Ls>
using concat = typename concat_impl<Ls...>::type;

template <class L>
struct size_of;
template <class... Ts>
struct size_of<tlist<Ts...>> : std::integral_constant<std::size_t, sizeof...(Ts)> {};

template <std::size_t I, class T>
struct indexed {
    using type = T;
};
template <class Is, class... Ts>
struct indexer;
template <std::size_t... Is, class... Ts>
struct indexer<std::index_sequence<Is...>, Ts...> : indexed<Is, Ts>... {};
template <std::size_t I, class T>
indexed<I, T> select(indexed<I, T>);

template <std::size_t I, class L>
struct at_impl;
template <std::size_t I, class... Ts>
struct at_impl<I, tlist<Ts...>> {
    using type = typename decltype(select<I>(indexer<std::index_sequence_for<Ts...>, Ts...>{}))::type;
};
template <std::size_t I, class L>
using at = typename at_impl<I, L>::type;

// A distinct address per type, comparable in constant expressions: identity checks become value
// comparisons in constexpr loops instead of O(n^2) template instantiations.
template <class T>
inline constexpr char type_tag = 0;
template <class T>
inline constexpr const void* type_id = &type_tag<T>;

template <class...>
inline constexpr bool always_false = false;

}  // namespace meta
}  // namespace weft

// Every diagnostic: first line names the culprit through an undefined ERROR_ template, second line
// says in words what is wrong and how to fix it.
#define WEFT_DIAGNOSE(message, ...)          \
    static_assert(sizeof(__VA_ARGS__) == 0); \
    static_assert(::weft::meta::always_false<__VA_ARGS__>, message)
