// What may travel between steps: the payload concept.
//
// Deliberately light: it includes Boost.Describe's traits and the standard headers it names, never a
// JSON library, so a translation unit that only declares workflows stays cheap to compile. The codec
// that turns payloads into bytes lives in <weft/json.hpp> and accepts exactly the types admitted here.
#pragma once

#include <array>
#include <boost/describe/bases.hpp>
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
#include <utility>
#include <vector>

#include <weft/dsl/meta.hpp>

namespace weft {

namespace detail {

// payload_check<T, Seen...>: Seen are the described structs whose check is under way, so a struct
// that holds a vector of itself is judged on its other members instead of recursing forever.
template <class T, class... Seen>
struct payload_check : std::false_type {};

template <class T, class... Seen>
inline constexpr bool payload_v = payload_check<std::remove_cv_t<T>, Seen...>::value;

template <class T>
inline constexpr bool is_payload_v = payload_v<T>;

// Scalars. char is excluded on purpose: JSON has no character type, and a char that silently
// becomes a number is the kind of surprise a wire format must not have.
template <class T>
inline constexpr bool payload_scalar =
    std::is_arithmetic_v<T> && !std::is_same_v<T, char> && !std::is_same_v<T, wchar_t> &&
    !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>;

template <class T, class... Seen>
    requires payload_scalar<T>
struct payload_check<T, Seen...> : std::true_type {};

template <class... Seen>
struct payload_check<std::string, Seen...> : std::true_type {};

// Enums travel by name, so they must be described (BOOST_DESCRIBE_ENUM).
template <class T, class... Seen>
    requires(std::is_enum_v<T> && boost::describe::has_describe_enumerators<T>::value)
struct payload_check<T, Seen...> : std::true_type {};

template <class T, class A, class... Seen>
struct payload_check<std::vector<T, A>, Seen...> : std::bool_constant<payload_v<T, Seen...>> {};

template <class T, std::size_t N, class... Seen>
struct payload_check<std::array<T, N>, Seen...> : std::bool_constant<payload_v<T, Seen...>> {};

template <class T, class C, class A, class... Seen>
struct payload_check<std::map<std::string, T, C, A>, Seen...> : std::bool_constant<payload_v<T, Seen...>> {};

template <class T, class... Seen>
struct payload_check<std::optional<T>, Seen...> : std::bool_constant<payload_v<T, Seen...>> {};

template <class... Ts, class... Seen>
struct payload_check<std::tuple<Ts...>, Seen...> : std::bool_constant<(payload_v<Ts, Seen...> && ...)> {};

// Structs: every public member described with BOOST_DESCRIBE_STRUCT is itself a payload, nothing
// is hidden (a class with private described members would not round-trip), and no field of an
// aggregate is left out of the description (it would silently not travel).
template <class T>
using public_members = boost::describe::describe_members<T, boost::describe::mod_public | boost::describe::mod_inherited>;

template <class T, class D>
using member_t = std::remove_cvref_t<decltype(std::declval<T&>().*D::pointer)>;

template <class T>
inline constexpr bool described_struct_v = std::is_class_v<T> && boost::describe::has_describe_members<T>::value;

template <class T>
inline constexpr bool has_hidden_members = !boost::mp11::mp_empty<
    boost::describe::describe_members<T, boost::describe::mod_private | boost::describe::mod_protected>>::value;

// Converts to any field type, so `T{field<0>{}, ..., field<N-1>{}}` compiles exactly when the
// aggregate T has at least N fields (a conversion to the field's type is preferred to brace elision).
struct any_field {
    // Never called, but defined: clang instantiates constexpr constructors the probe names (such as
    // std::optional<U>'s from U&&), which odr-uses the conversion, and a declaration alone is then a
    // hard error for a U with internal linkage (a type in an anonymous namespace).
    template <class U>
    operator U() const noexcept {
        __builtin_unreachable();
    }
};
template <std::size_t>
using field = any_field;
template <class T, std::size_t N>
inline constexpr bool takes_fields = []<std::size_t... I>(std::index_sequence<I...>) {
    return requires { T{field<I>{}...}; };
}(std::make_index_sequence<N>{});

// Only aggregates without described bases are counted: a base takes one initializer of its own,
// and a field the probe cannot initialise (a C array, a reference) makes the count unknowable.
template <class T>
inline constexpr bool has_undescribed_fields = [] {
    if constexpr (!std::is_aggregate_v<T> ||
                  !boost::mp11::mp_empty<boost::describe::describe_bases<T, boost::describe::mod_any_access>>::value) {
        return false;
    } else {
        constexpr std::size_t described =
            boost::mp11::mp_size<boost::describe::describe_members<T, boost::describe::mod_public>>::value;
        return takes_fields<T, described> && takes_fields<T, described + 1>;
    }
}();

template <class T, class... Seen>
struct member_is_payload {
    template <class D>
    using fn = std::bool_constant<payload_v<member_t<T, D>, T, Seen...>>;
};
template <class... Seen>
struct is_payload_q {
    template <class T>
    using fn = std::bool_constant<payload_v<T, Seen...>>;
};

template <class T, class... Seen>
struct described_struct_check
    : std::bool_constant<boost::mp11::mp_all_of_q<public_members<T>, member_is_payload<T, Seen...>>::value &&
                         !has_hidden_members<T> && !has_undescribed_fields<T>> {};

// conditional_t names the member check without instantiating it when T is already under way.
template <class T, class... Seen>
    requires described_struct_v<T>
struct payload_check<T, Seen...>
    : std::conditional_t<(std::is_same_v<T, Seen> || ...), std::true_type, described_struct_check<T, Seen...>> {};

// ---- Why a type is not a payload, and where: only instantiated once a check has failed. --------

enum class payload_fault_kind { not_serializable, hidden_members, undescribed_fields };

template <std::size_t N>
consteval auto member_name(const char* s) {
    fixed_string<N + 2> r{};
    r.data[0] = '.';
    for (std::size_t i = 0; i < N; ++i) r.data[i + 1] = s[i];
    return r;
}
consteval std::size_t length(const char* s) {
    std::size_t n = 0;
    while (s[n] != '\0') ++n;
    return n;
}

// The culprit inside T: `leaf` is the offending type, `path` leads to it from T (".blob.data",
// "[]" for a container's element, "[1]" for a tuple's second element).
template <class T, class... Seen>
struct payload_fault {
    using leaf = T;
    static constexpr payload_fault_kind kind = payload_fault_kind::not_serializable;
    static constexpr fixed_string path = "";
};

template <class Inner, fixed_string Step, class... Seen>
struct payload_fault_through {
    using inner = payload_fault<std::remove_cv_t<Inner>, Seen...>;
    using leaf = typename inner::leaf;
    static constexpr payload_fault_kind kind = inner::kind;
    static constexpr auto path = Step + inner::path;
};

template <class T, class A, class... Seen>
struct payload_fault<std::vector<T, A>, Seen...> : payload_fault_through<T, "[]", Seen...> {};
template <class T, std::size_t N, class... Seen>
struct payload_fault<std::array<T, N>, Seen...> : payload_fault_through<T, "[]", Seen...> {};
template <class T, class C, class A, class... Seen>
struct payload_fault<std::map<std::string, T, C, A>, Seen...> : payload_fault_through<T, "[]", Seen...> {};
template <class T, class... Seen>
struct payload_fault<std::optional<T>, Seen...> : payload_fault_through<T, "", Seen...> {};

template <std::size_t K>
consteval auto index_step() {
    if constexpr (K < 10) return fixed_string<4>{{'[', char('0' + K), ']', '\0'}};
    else return fixed_string<5>{{'[', char('0' + K / 10), char('0' + K % 10), ']', '\0'}};
}
template <class... Ts, class... Seen>
struct payload_fault<std::tuple<Ts...>, Seen...>
    : payload_fault_through<
          std::tuple_element_t<boost::mp11::mp_find_if_q<boost::mp11::mp_list<Ts...>,
                                                         boost::mp11::mp_not_fn_q<is_payload_q<Seen...>>>::value,
                               std::tuple<Ts...>>,
          index_step<boost::mp11::mp_find_if_q<boost::mp11::mp_list<Ts...>,
                                               boost::mp11::mp_not_fn_q<is_payload_q<Seen...>>>::value>(),
          Seen...> {};

template <class T, payload_fault_kind Kind>
struct payload_fault_here {
    using leaf = T;
    static constexpr payload_fault_kind kind = Kind;
    static constexpr fixed_string path = "";
};

template <class T, class... Seen>
    requires described_struct_v<T>
struct payload_fault<T, Seen...> {
    using members = public_members<T>;
    static constexpr std::size_t bad = boost::mp11::mp_find_if_q<
        members, boost::mp11::mp_not_fn_q<member_is_payload<T, Seen...>>>::value;
    static constexpr auto pick() {
        if constexpr (bad < boost::mp11::mp_size<members>::value) {
            using D = boost::mp11::mp_at_c<members, bad>;
            return payload_fault_through<member_t<T, D>, member_name<length(D::name)>(D::name), T, Seen...>{};
        } else {
            return payload_fault_here<T, has_hidden_members<T> ? payload_fault_kind::hidden_members
                                                               : payload_fault_kind::undescribed_fields>{};
        }
    }
    using found = decltype(pick());
    using leaf = typename found::leaf;
    static constexpr payload_fault_kind kind = found::kind;
    static constexpr auto path = found::path;
};

}  // namespace detail

// A type weft can carry between steps and across processes: arithmetic (not char), std::string,
// described enums, std::vector, std::array, std::map with string keys, std::optional, std::tuple, and
// structs described with BOOST_DESCRIBE_STRUCT whose members are payloads, nested freely (a struct
// may hold a vector or optional of itself).
template <class T>
concept payload = detail::payload_v<std::remove_cvref_t<T>>;

}  // namespace weft
