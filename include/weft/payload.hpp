// What may travel between steps: the payload concept.
//
// Deliberately light: it includes Boost.Describe's traits and the standard headers it names, never a
// JSON library, so a translation unit that only declares workflows stays cheap to compile. The codec
// that turns payloads into bytes lives in <weft/json.hpp> and accepts exactly the types admitted here.
#pragma once

#include <array>
#include <boost/describe/class.hpp>  // BOOST_DESCRIBE_STRUCT, for users describing payloads
#include <boost/describe/enum.hpp>   // BOOST_DESCRIBE_ENUM
#include <boost/describe/enumerators.hpp>
#include <boost/describe/members.hpp>
#include <boost/describe/modifiers.hpp>
#include <boost/mp11/algorithm.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace weft {

namespace detail {

template <class T, class = void>
struct is_payload : std::false_type {};

template <class T>
inline constexpr bool is_payload_v = is_payload<std::remove_cv_t<T>>::value;

// Scalars. char is excluded on purpose: JSON has no character type, and a char that silently
// becomes a number is the kind of surprise a wire format must not have.
template <class T>
    requires(std::is_arithmetic_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, wchar_t> &&
             !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>)
struct is_payload<T> : std::true_type {};

template <>
struct is_payload<std::string> : std::true_type {};

// Enums travel by name, so they must be described (BOOST_DESCRIBE_ENUM).
template <class T>
    requires(std::is_enum_v<T> && boost::describe::has_describe_enumerators<T>::value)
struct is_payload<T> : std::true_type {};

template <class T, class A>
struct is_payload<std::vector<T, A>> : std::bool_constant<is_payload_v<T>> {};

template <class T, std::size_t N>
struct is_payload<std::array<T, N>> : std::bool_constant<is_payload_v<T>> {};

template <class T, class C, class A>
struct is_payload<std::map<std::string, T, C, A>> : std::bool_constant<is_payload_v<T>> {};

template <class T>
struct is_payload<std::optional<T>> : std::bool_constant<is_payload_v<T>> {};

template <class... Ts>
struct is_payload<std::tuple<Ts...>> : std::bool_constant<(is_payload_v<Ts> && ...)> {};

// Structs: every public member described with BOOST_DESCRIBE_STRUCT is itself a payload, and
// nothing is hidden (a class with private described members would not round-trip).
template <class T>
using public_members = boost::describe::describe_members<T, boost::describe::mod_public | boost::describe::mod_inherited>;

template <class T, class D>
using member_t = std::remove_cvref_t<decltype(std::declval<T&>().*D::pointer)>;

template <class T>
struct member_is_payload {
    template <class D>
    using fn = std::bool_constant<is_payload_v<member_t<T, D>>>;
};

template <class T>
    requires(std::is_class_v<T> && boost::describe::has_describe_members<T>::value)
struct is_payload<T>
    : std::bool_constant<boost::mp11::mp_all_of_q<public_members<T>, member_is_payload<T>>::value &&
                         boost::mp11::mp_empty<boost::describe::describe_members<
                             T, boost::describe::mod_private | boost::describe::mod_protected>>::value> {};

}  // namespace detail

// A type weft can carry between steps and across processes: arithmetic (not char), std::string,
// described enums, std::vector, std::array, std::map with string keys, std::optional, std::tuple, and
// structs described with BOOST_DESCRIBE_STRUCT whose members are payloads, nested freely.
template <class T>
concept payload = detail::is_payload_v<std::remove_cvref_t<T>>;

}  // namespace weft
