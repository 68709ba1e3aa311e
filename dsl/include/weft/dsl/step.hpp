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
//
// The rules a step must follow (docs/design.md, "Steps"): one public, non-template, non-variadic call
// operator callable on a named object (unqualified, const, & or const&; not && or const&&);
// parameters by value or by const&; the result by value; every parameter and the result a payload; default
// constructible; a wire name of printable characters without ':'; a policy, if any, that is a
// `static constexpr weft::step_policy` with values every backend can honour.
#pragma once

#include <string_view>
#include <tuple>
#include <type_traits>

#include <weft/dsl/meta.hpp>
#include <weft/dsl/payload.hpp>
#include <weft/dsl/policy.hpp>

namespace weft {

// Diagnostics name the culprit through these undefined templates (see docs/errors.md).
template <class Step>
struct ERROR_step_type_is_incomplete;
template <class Step>
struct ERROR_step_needs_a_static_constexpr_string_view_name;
template <class Step>
struct ERROR_step_wire_name_is_empty;
template <class Step, class Name>
struct ERROR_step_wire_name_has_a_character_backends_cannot_carry;
template <class Step>
struct ERROR_step_needs_exactly_one_non_template_call_operator;
template <class Step>
struct ERROR_step_call_operator_is_not_accessible;
template <class Step>
struct ERROR_step_call_operator_is_c_variadic;
template <class Step>
struct ERROR_step_call_operator_must_work_on_a_named_object;
template <class Step, class Parameter>
struct ERROR_step_parameter_must_be_taken_by_value_or_const_reference;
template <class Step>
struct ERROR_step_must_return_a_value;
template <class Step, class Returned>
struct ERROR_step_must_return_by_value;
template <class Step>
struct ERROR_step_must_be_default_constructible;
template <class Step, class Type>
struct ERROR_step_payload_is_not_serializable;
template <class Step, class Type, class Path, class Member>
struct ERROR_payload_member_is_not_serializable;
template <class Step, class Type, class Path, class Struct>
struct ERROR_payload_struct_has_fields_missing_from_its_description;
template <class Step, class Type, class Path, class Struct>
struct ERROR_payload_struct_has_non_public_described_members;
template <class Step, class PolicyType>
struct ERROR_step_policy_must_be_a_weft_step_policy;
template <class Step>
struct ERROR_step_policy_is_not_a_constant_expression;
template <class Step, int MaxAttempts>
struct ERROR_step_policy_max_attempts_is_less_than_one;
template <class Step>
struct ERROR_step_policy_timeout_is_negative;
template <class Step>
struct ERROR_step_policy_retry_delay_is_negative;
template <class Step>
struct ERROR_step_policy_retry_multiplier_is_less_than_one;
template <class Step, int Priority>
struct ERROR_step_policy_priority_is_out_of_range;

namespace detail {

// Every engine calls a step on a named object (weft::local and the step table alike), so the call
// operator may be unqualified, const, & or const&, but not && or const&&.
template <class F>
struct call_signature {
    static constexpr bool known = false;
};
#define WEFT_CALL_SIGNATURE_ONE(PARAMS, QUALS, NAMED, VARIADIC)    \
    template <class C, class R, class... A>                        \
    struct call_signature<R (C::*) PARAMS QUALS> {                 \
        static constexpr bool known = true;                        \
        static constexpr bool on_named_object = NAMED;             \
        static constexpr bool variadic = VARIADIC;                 \
        using output = R;                                          \
        using declared = meta::tlist<A...>;                        \
        using params = std::tuple<std::remove_cvref_t<A>...>;      \
    };
#define WEFT_CALL_SIGNATURE(QUALS, NAMED)                          \
    WEFT_CALL_SIGNATURE_ONE((A...), QUALS, NAMED, false)           \
    WEFT_CALL_SIGNATURE_ONE((A...), QUALS noexcept, NAMED, false)  \
    WEFT_CALL_SIGNATURE_ONE((A..., ...), QUALS, NAMED, true)       \
    WEFT_CALL_SIGNATURE_ONE((A..., ...), QUALS noexcept, NAMED, true)
WEFT_CALL_SIGNATURE(, true)
WEFT_CALL_SIGNATURE(const, true)
WEFT_CALL_SIGNATURE(const&, true)
WEFT_CALL_SIGNATURE(&, true)
WEFT_CALL_SIGNATURE(&&, false)
WEFT_CALL_SIGNATURE(const&&, false)
#undef WEFT_CALL_SIGNATURE
#undef WEFT_CALL_SIGNATURE_ONE

template <class T>
concept complete = requires { sizeof(T); };

template <class T>
concept has_name_member = requires {
    { T::name } -> std::convertible_to<std::string_view>;
    typename std::bool_constant<(std::string_view{T::name}, true)>;  // a constant, not a run-time value
};

template <class T>
concept has_single_call_operator = requires { &T::operator(); };

// Whether T declares any operator(), accessible or not: the lookup through a class deriving from T
// and from a class with its own operator() is ambiguous exactly when T has one.
struct call_probe_base {
    void operator()();
};
template <class T>
struct call_probe : T, call_probe_base {};
template <class T>
concept declares_call_operator = std::is_final_v<T> || !requires { &call_probe<T>::operator(); };

// Callable from outside with some arguments: a template or an overload set is, a private operator
// is not. `{}` picks among same-arity overloads (int and std::string, say) that any_field cannot.
template <class T>
concept callable_from_outside =
    requires(T t, any_field a) { t(); } || requires(T t, any_field a) { t(a); } ||
    requires(T t, any_field a) { t(a, a); } || requires(T t, any_field a) { t(a, a, a); } ||
    requires(T t, any_field a) { t(a, a, a, a); } || requires(T t) { t({}); } || requires(T t) { t({}, {}); } ||
    requires(T t) { t({}, {}, {}); };

template <class T>
using signature_of = call_signature<decltype(&T::operator())>;

// A conjunction in a concept stops at the first failure, so signature_of is never formed for an
// overload set.
template <class T>
concept known_call_signature = has_single_call_operator<T> && signature_of<T>::known;

template <class P>
inline constexpr bool passed_by_value_or_const_ref =
    !std::is_rvalue_reference_v<P> && (!std::is_lvalue_reference_v<P> || std::is_const_v<std::remove_reference_t<P>>);

template <class L>
struct first_mutable_param;
template <class... Ps>
struct first_mutable_param<meta::tlist<Ps...>> {
    static constexpr std::size_t index = [] {
        constexpr bool ok[] = {passed_by_value_or_const_ref<Ps>..., false};
        std::size_t i = 0;
        while (ok[i]) ++i;
        return i;
    }();
    using type = meta::at<index, meta::tlist<Ps..., void>>;
};

// What std::is_default_constructible_v means for a class, without its completeness assertion, which
// instantiates a handful of traits per step.
template <class T>
concept default_constructible = requires { T(); };

template <class T>
concept has_policy_member = requires { T::policy; };
template <class T>
concept policy_is_step_policy = std::is_same_v<std::remove_cvref_t<decltype(T::policy)>, step_policy>;
template <class T>
concept policy_is_constant = requires { typename std::bool_constant<(T::policy == T::policy)>; };

}  // namespace detail

// What a well-formed step looks like. Used as a concept by backends; weft::step<T> reports which
// rule a malformed T breaks.
template <class T>
concept step_type = detail::complete<T> && std::is_class_v<T> && detail::has_name_member<T> &&
                    detail::has_single_call_operator<T> && detail::signature_of<T>::known &&
                    detail::default_constructible<T> && !std::is_void_v<typename detail::signature_of<T>::output>;

template <class T>
struct step_traits {
    using signature = detail::signature_of<T>;
    using output = std::remove_cvref_t<typename signature::output>;
    using params = typename signature::params;  // decayed, in declaration order
    static constexpr std::size_t arity = std::tuple_size_v<params>;
    static constexpr step_policy policy = [] {
        if constexpr (detail::has_policy_member<T>) return step_policy{T::policy};
        else return step_policy{};
    }();
};

// The node of a workflow graph that runs step T under a wire name: T::name, or an explicit alias.
// The alias is a pack so that the common node prints as `node<T>` in diagnostics.
template <class T, fixed_string... Alias>
struct node {
    static_assert(sizeof...(Alias) <= 1);
    using step_type = T;
    static constexpr std::string_view name = [] {
        if constexpr (sizeof...(Alias) == 0) return std::string_view{T::name};
        else return (Alias.view(), ...);
    }();
};

namespace detail {

// Wire names travel as Celery task names, Hatchet action ids (`workflow:step`) and Temporal activity
// types: printable, no whitespace or control characters, and no ':' (Hatchet's separator).
constexpr bool wire_name_char_ok(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f && c != ':';
}
constexpr bool wire_name_ok(std::string_view s) noexcept {
    for (char c : s)
        if (!wire_name_char_ok(c)) return false;
    return true;
}

template <class T, class P>
consteval bool check_payload() {
    if constexpr (payload<P>) {
        return true;
    } else {
        using fault = payload_fault<std::remove_cv_t<P>>;
        if constexpr (fault::path.empty() && fault::kind == payload_fault_kind::not_serializable) {
            WEFT_DIAGNOSE("weft: a step's parameters and output must be payloads (arithmetic, std::string, described "
                          "enum or struct, vector, array, map with string keys, optional or tuple of payloads): "
                          "describe it with BOOST_DESCRIBE_STRUCT or BOOST_DESCRIBE_ENUM",
                          ERROR_step_payload_is_not_serializable<T, P>);
        } else if constexpr (fault::kind == payload_fault_kind::not_serializable) {
            WEFT_DIAGNOSE("weft: a member of a step's payload is not serializable (the path leads from the payload "
                          "type to it): describe it with BOOST_DESCRIBE_STRUCT or BOOST_DESCRIBE_ENUM, or use a "
                          "payload type (arithmetic, std::string, vector, array, map with string keys, optional, tuple)",
                          ERROR_payload_member_is_not_serializable<T, P, meta::text_of<fault::path>, typename fault::leaf>);
        } else if constexpr (fault::kind == payload_fault_kind::undescribed_fields) {
            WEFT_DIAGNOSE("weft: a payload struct has more fields than its BOOST_DESCRIBE_STRUCT lists; the missing "
                          "ones would silently not travel: list every field",
                          ERROR_payload_struct_has_fields_missing_from_its_description<T, P, meta::text_of<fault::path>,
                                                                                       typename fault::leaf>);
        } else {
            WEFT_DIAGNOSE("weft: a payload struct describes private or protected members, which cannot be read "
                          "back from the wire: make them public",
                          ERROR_payload_struct_has_non_public_described_members<T, P, meta::text_of<fault::path>,
                                                                                typename fault::leaf>);
        }
        return false;
    }
}

template <class T, class Params>
struct params_are_payloads;
template <class T, class... Ps>
struct params_are_payloads<T, std::tuple<Ps...>> {
    // Stops at the first bad parameter, so only one is reported.
    static constexpr bool value = (check_payload<T, Ps>() && ...);
};

template <class T>
consteval bool check_policy() {
    if constexpr (!has_policy_member<T>) {
        return true;
    } else if constexpr (!policy_is_step_policy<T>) {
        WEFT_DIAGNOSE("weft: a step's `policy` member must be a weft::step_policy: "
                      "`static constexpr weft::step_policy policy{...};`",
                      ERROR_step_policy_must_be_a_weft_step_policy<T, decltype(T::policy)>);
        return false;
    } else if constexpr (!policy_is_constant<T>) {
        WEFT_DIAGNOSE("weft: a step's policy must be usable at compile time, where backends read it: declare it "
                      "`static constexpr weft::step_policy policy{...};`",
                      ERROR_step_policy_is_not_a_constant_expression<T>);
        return false;
    } else if constexpr (T::policy.retry.max_attempts < 1) {
        WEFT_DIAGNOSE("weft: retry.max_attempts counts every attempt, the first one included: use 1 for no retry",
                      ERROR_step_policy_max_attempts_is_less_than_one<T, T::policy.retry.max_attempts>);
        return false;
    } else if constexpr (T::policy.timeout.count() < 0) {
        WEFT_DIAGNOSE("weft: a step's timeout must not be negative: use 0 for no limit",
                      ERROR_step_policy_timeout_is_negative<T>);
        return false;
    } else if constexpr (T::policy.retry.initial.count() < 0 || T::policy.retry.maximum.count() < 0) {
        WEFT_DIAGNOSE("weft: retry delays (retry.initial, retry.maximum) must not be negative",
                      ERROR_step_policy_retry_delay_is_negative<T>);
        return false;
    } else if constexpr (!(T::policy.retry.multiplier >= 1.0)) {
        WEFT_DIAGNOSE("weft: retry.multiplier must be at least 1 (1 = a constant delay): delays never shrink",
                      ERROR_step_policy_retry_multiplier_is_less_than_one<T>);
        return false;
    } else if constexpr (T::policy.priority < step_policy::min_priority ||
                         T::policy.priority > step_policy::max_priority) {
        WEFT_DIAGNOSE("weft: a step's priority is 0..9 (0 = the backend's default; docs/design.md says how each backend maps it)",
                      ERROR_step_policy_priority_is_out_of_range<T, T::policy.priority>);
        return false;
    } else {
        return true;
    }
}

template <class T>
consteval bool check_step() {
    if constexpr (!complete<T>) {
        WEFT_DIAGNOSE("weft: a step's type must be complete where the workflow is declared: include the "
                      "header that defines it, not only a forward declaration",
                      ERROR_step_type_is_incomplete<T>);
        return false;
    } else if constexpr (!std::is_class_v<T> || !has_name_member<T>) {
        WEFT_DIAGNOSE("weft: a step needs a wire name: add `static constexpr std::string_view name = \"...\";`",
                      ERROR_step_needs_a_static_constexpr_string_view_name<T>);
        return false;
    } else if constexpr (!has_single_call_operator<T> && declares_call_operator<T> && !callable_from_outside<T>) {
        WEFT_DIAGNOSE("weft: a step's call operator must be public: engines and workers call it from outside. (Two "
                      "overloads taking the same number of class-type parameters look the same to weft: keep one.)",
                      ERROR_step_call_operator_is_not_accessible<T>);
        return false;
    } else if constexpr (!known_call_signature<T>) {
        WEFT_DIAGNOSE("weft: a step needs exactly one call operator that is not a template: weft deduces the "
                      "step's input and output types from it",
                      ERROR_step_needs_exactly_one_non_template_call_operator<T>);
        return false;
    } else if constexpr (signature_of<T>::variadic) {
        WEFT_DIAGNOSE("weft: a step's call operator cannot be C-variadic (`...`): declare each parameter, since "
                      "each one is decoded from the wire by its type",
                      ERROR_step_call_operator_is_c_variadic<T>);
        return false;
    } else if constexpr (!signature_of<T>::on_named_object) {
        WEFT_DIAGNOSE("weft: engines call a step on a named object: drop the `&&` qualifier of its call operator "
                      "(unqualified, const, & and const& are fine)",
                      ERROR_step_call_operator_must_work_on_a_named_object<T>);
        return false;
    } else if constexpr (std::is_void_v<typename signature_of<T>::output>) {
        WEFT_DIAGNOSE("weft: a step must return a value: its output is the next step's input and the run's result",
                      ERROR_step_must_return_a_value<T>);
        return false;
    } else if constexpr (std::is_reference_v<typename signature_of<T>::output>) {
        WEFT_DIAGNOSE("weft: a step must return its result by value: the engine keeps it after the step object is "
                      "gone, so a reference would dangle",
                      ERROR_step_must_return_by_value<T, typename signature_of<T>::output>);
        return false;
    } else if constexpr (first_mutable_param<typename signature_of<T>::declared>::index <
                         meta::size_of<typename signature_of<T>::declared>::value) {
        WEFT_DIAGNOSE("weft: a step takes its parameters by value or by const&: it receives its parents' outputs, "
                      "which other steps may read too, and cannot hand anything back through a parameter",
                      ERROR_step_parameter_must_be_taken_by_value_or_const_reference<
                          T, typename first_mutable_param<typename signature_of<T>::declared>::type>);
        return false;
    } else if constexpr (!default_constructible<T>) {
        WEFT_DIAGNOSE("weft: a step must be default constructible: workers create it for each invocation",
                      ERROR_step_must_be_default_constructible<T>);
        return false;
    } else if constexpr (!check_policy<T>()) {
        return false;
    } else if constexpr (!check_payload<T, std::remove_cvref_t<typename signature_of<T>::output>>()) {
        return false;
    } else {
        return params_are_payloads<T, typename signature_of<T>::params>::value;
    }
}

template <class T, fixed_string Alias>
consteval bool check_wire_name() {
    constexpr std::string_view name = Alias.empty() ? std::string_view{T::name} : Alias.view();
    if constexpr (name.empty()) {
        WEFT_DIAGNOSE("weft: a step's wire name is empty: workers find steps by name, so give it one",
                      ERROR_step_wire_name_is_empty<T>);
        return false;
    } else if constexpr (!wire_name_ok(name)) {
        WEFT_DIAGNOSE("weft: a step's wire name may not hold whitespace, control characters or ':' (Hatchet "
                      "joins `workflow:step` with it): use letters, digits and . _ - /",
                      ERROR_step_wire_name_has_a_character_backends_cannot_carry<T, meta::text_of<to_fixed<name.size()>(name)>>);
        return false;
    } else {
        return true;
    }
}

}  // namespace detail

// What step<T> yields for a malformed T once its diagnostic is out: an inert node that makes the
// workflow it appears in invalid silently, so the user reads one error, not a cascade.
struct invalid_step {};

namespace detail {
template <class T, fixed_string Alias>
consteval auto make_node() {
    if constexpr (!check_step<T>()) return invalid_step{};
    else if constexpr (!check_wire_name<T, Alias>()) return invalid_step{};
    else if constexpr (Alias.empty()) return node<T>{};
    else return node<T, Alias>{};
}
}  // namespace detail

template <class T, fixed_string Alias = "">
inline constexpr auto step = detail::make_node<T, Alias>();

}  // namespace weft
