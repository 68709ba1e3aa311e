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
    constexpr fixed_string() = default;
    constexpr fixed_string(const char (&s)[N]) noexcept { std::copy_n(s, N, data); }
    constexpr std::string_view view() const noexcept { return {data, N - 1}; }
    constexpr bool empty() const noexcept { return N <= 1; }
};

template <std::size_t A, std::size_t B>
constexpr fixed_string<A + B - 1> operator+(const fixed_string<A>& a, const fixed_string<B>& b) noexcept {
    fixed_string<A + B - 1> r{};
    std::copy_n(a.data, A - 1, r.data);
    std::copy_n(b.data, B, r.data + A - 1);
    return r;
}

// A string_view constant as a fixed_string, so diagnostics can show it as a template argument.
template <std::size_t N>
consteval fixed_string<N + 1> to_fixed(std::string_view s) {
    fixed_string<N + 1> r{};
    std::copy_n(s.data(), N, r.data);
    return r;
}

namespace meta {

// A string as a pack of characters, for diagnostics: both compilers print `text<'a', ':', 'b'>`,
// where clang would print a fixed_string argument as numbers.
template <char... C>
struct text {};
template <fixed_string S, class Is = std::make_index_sequence<sizeof(S.data) - 1>>
struct text_of_impl;
template <fixed_string S, std::size_t... I>
struct text_of_impl<S, std::index_sequence<I...>> {
    using type = text<S.data[I]...>;
};
template <fixed_string S>
using text_of = typename text_of_impl<S>::type;

template <class... Ts>
struct tlist {};

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

// Every diagnostic: one static_assert, so each compiler prints one error. Its message says in words
// what is wrong and how to fix it; the culprit is named through an undefined ERROR_ template in the
// condition, which clang prints on the error line and g++ in the note under it
// ("'always_false<ERROR_...>' evaluates to false").
#define WEFT_DIAGNOSE(message, ...) static_assert(::weft::meta::always_false<__VA_ARGS__>, message)
