// A step is a type:
//
//     struct parse {
//         static constexpr std::string_view name = "parse";          // stable wire name
//         static constexpr weft::step_policy policy{.retry = {.max_attempts = 3}};  // optional
//         document operator()(const page& p) const;                  // input and output deduced
//     };
//
// `weft::step<parse>` is the node that stands for it in a workflow; `weft::step<parse, "parse_again">`
// is a second, distinct node running the same code under another wire name.
#pragma once

#include <string_view>
#include <tuple>
#include <type_traits>

#include <weft/dsl/meta.hpp>
#include <weft/dsl/policy.hpp>
#include <weft/payload.hpp>

namespace weft {

// Diagnostics name the culprit through these undefined templates (see docs/errors.md).
template <class Step>
struct ERROR_step_needs_a_static_constexpr_string_view_name;
template <class Step>
struct ERROR_step_needs_exactly_one_non_template_call_operator;
template <class Step>
struct ERROR_step_must_return_a_value;
template <class Step, class Type>
struct ERROR_step_payload_is_not_serializable;
template <class Step>
struct ERROR_step_must_be_default_constructible;

namespace detail {

template <class F>
struct call_signature;
#define WEFT_CALL_SIGNATURE(QUALS)                    \
    template <class C, class R, class... A>           \
    struct call_signature<R (C::*)(A...) QUALS> {     \
        using output = R;                             \
        using params = std::tuple<std::remove_cvref_t<A>...>; \
    };
WEFT_CALL_SIGNATURE()
WEFT_CALL_SIGNATURE(const)
WEFT_CALL_SIGNATURE(noexcept)
WEFT_CALL_SIGNATURE(const noexcept)
#undef WEFT_CALL_SIGNATURE

template <class T>
concept has_wire_name = requires {
    { T::name } -> std::convertible_to<std::string_view>;
    requires std::string_view{T::name}.size() > 0;
};

template <class T>
concept has_single_call_operator = requires { &T::operator(); };

template <class T>
concept has_policy = requires {
    { T::policy } -> std::convertible_to<step_policy>;
};

template <class Params>
struct all_payloads;
template <class... Ps>
struct all_payloads<std::tuple<Ps...>> : std::bool_constant<(payload<Ps> && ...)> {};

template <class Step, class Params>
struct first_bad_param;
template <class Step, class P, class... Ps>
struct first_bad_param<Step, std::tuple<P, Ps...>> {
    using type = std::conditional_t<payload<P>, typename first_bad_param<Step, std::tuple<Ps...>>::type, P>;
};
template <class Step>
struct first_bad_param<Step, std::tuple<>> {
    using type = void;
};

}  // namespace detail

// What a well-formed step looks like. Used as a concept by backends and checked with readable
// messages where a step is named (`weft::step<T>`).
template <class T>
concept step_type = std::is_class_v<T> && detail::has_wire_name<T> && detail::has_single_call_operator<T> &&
                    std::is_default_constructible_v<T> &&
                    !std::is_void_v<typename detail::call_signature<decltype(&T::operator())>::output>;

template <class T>
struct step_traits {
    using signature = detail::call_signature<decltype(&T::operator())>;
    using output = std::remove_cvref_t<typename signature::output>;
    using params = typename signature::params;  // decayed, in declaration order
    static constexpr std::size_t arity = std::tuple_size_v<params>;
    static constexpr step_policy policy = [] {
        if constexpr (detail::has_policy<T>) return step_policy{T::policy};
        else return step_policy{};
    }();
};

// The node of a workflow graph that runs step T under a wire name (T::name, or an explicit alias).
template <class T, fixed_string Alias>
struct node {
    using step_type = T;
    static constexpr std::string_view name = Alias.empty() ? std::string_view{T::name} : Alias.view();
};

namespace detail {

template <class T>
consteval bool check_step() {
    if constexpr (!std::is_class_v<T> || !has_wire_name<T>) {
        WEFT_DIAGNOSE("weft: a step needs a wire name: add `static constexpr std::string_view name = \"...\";`",
                      ERROR_step_needs_a_static_constexpr_string_view_name<T>);
        return false;
    } else if constexpr (!has_single_call_operator<T>) {
        WEFT_DIAGNOSE("weft: a step needs exactly one call operator that is not a template: weft deduces the "
                      "step's input and output types from it",
                      ERROR_step_needs_exactly_one_non_template_call_operator<T>);
        return false;
    } else if constexpr (std::is_void_v<typename call_signature<decltype(&T::operator())>::output>) {
        WEFT_DIAGNOSE("weft: a step must return a value: its output is the next step's input and the run's result",
                      ERROR_step_must_return_a_value<T>);
        return false;
    } else if constexpr (!std::is_default_constructible_v<T>) {
        WEFT_DIAGNOSE("weft: a step must be default constructible: workers create it for each invocation",
                      ERROR_step_must_be_default_constructible<T>);
        return false;
    } else if constexpr (!payload<typename step_traits<T>::output>) {
        WEFT_DIAGNOSE("weft: a step's output must be a payload (arithmetic, std::string, described enum or "
                      "struct, vector, array, map with string keys, optional or tuple of payloads): describe it "
                      "with BOOST_DESCRIBE_STRUCT or BOOST_DESCRIBE_ENUM",
                      ERROR_step_payload_is_not_serializable<T, typename step_traits<T>::output>);
        return false;
    } else if constexpr (!all_payloads<typename step_traits<T>::params>::value) {
        WEFT_DIAGNOSE("weft: a step's parameters must be payloads (arithmetic, std::string, described enum or "
            "struct, vector, array, map with string keys, optional or tuple of payloads): describe them "
            "with BOOST_DESCRIBE_STRUCT or BOOST_DESCRIBE_ENUM",
                      ERROR_step_payload_is_not_serializable<T, typename first_bad_param<T, typename step_traits<T>::params>::type>);
        return false;
    } else {
        return true;
    }
}

}  // namespace detail

// What step<T> yields for a malformed T once its diagnostic is out: an inert node that composes
// silently, so the user reads one error, not a cascade.
struct invalid_step {};

namespace detail {
template <class T, fixed_string Alias>
consteval auto make_node() {
    if constexpr (check_step<T>()) return node<T, Alias>{};
    else return invalid_step{};
}
}  // namespace detail

template <class T, fixed_string Alias = "">
inline constexpr auto step = detail::make_node<T, Alias>();

}  // namespace weft
