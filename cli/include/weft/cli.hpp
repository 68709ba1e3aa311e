// A command line in every program that declares workflows:
//
//     int main(int argc, char** argv) { return weft::cli::main(argc, argv, corpus::workflow, other::workflow); }
//
// gives the program the subcommands worker, run, status, steps, result, cancel, list, describe,
// register and doctor (docs/cli.md), on whichever backend the configuration (or --backend) picks.
// The backends the program links and includes are the ones it can pick.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include <weft/backend.hpp>
#include <weft/codec.hpp>
#include <weft/json.hpp>
#include <weft/local/backend.hpp>  // the embedded engine is always one the program can pick
#include <weft/step_table.hpp>

namespace weft::cli {

// One workflow as the command line handles it: erased, with its input read from JSON and its output
// written as JSON by the workflow's own types.
struct workflow_entry {
    const erased_workflow* wf;
    std::span<const erased_step> steps;
    std::size_t inputs;  // parameters the run's input has: 0, 1, or a tuple's size
    std::shared_ptr<run_control> (*start)(backend& b, const json::value& input, run_options opts);
    json::value (*output)(const run_control& run);  // after wait(): throws what the run's result throws
    json::value (*schema)();                         // JSON Schemas of the input, the output and each step's types
};

namespace detail {

template <class T>
json::value schema_of();

template <class Tuple, std::size_t... I>
json::value tuple_schema(std::index_sequence<I...>) {
    json::object o{{"type", "array"}, {"minItems", sizeof...(I)}, {"maxItems", sizeof...(I)}};
    o["prefixItems"] = json::array{schema_of<std::tuple_element_t<I, Tuple>>()...};
    return o;
}

// The JSON Schema of a payload type, as weft's codec writes it.
template <class T>
json::value schema_of() {
    using namespace weft::json::detail;
    if constexpr (std::is_same_v<T, bool>) return json::object{{"type", "boolean"}};
    else if constexpr (std::is_integral_v<T>) return json::object{{"type", "integer"}};
    else if constexpr (std::is_floating_point_v<T>) return json::object{{"type", "number"}};
    else if constexpr (std::is_same_v<T, std::string>) return json::object{{"type", "string"}};
    else if constexpr (is_optional<T>::value) {
        json::object o = schema_of<typename T::value_type>().as_object();
        return json::object{{"anyOf", json::array{o, json::object{{"type", "null"}}}}};
    } else if constexpr (is_vector<T>::value) return json::object{{"type", "array"}, {"items", schema_of<typename T::value_type>()}};
    else if constexpr (is_std_array<T>::value)
        return json::object{{"type", "array"}, {"items", schema_of<typename T::value_type>()},
                            {"minItems", std::tuple_size_v<T>}, {"maxItems", std::tuple_size_v<T>}};
    else if constexpr (is_string_map<T>::value)
        return json::object{{"type", "object"}, {"additionalProperties", schema_of<typename T::mapped_type>()}};
    else if constexpr (is_tuple<T>::value) return tuple_schema<T>(std::make_index_sequence<std::tuple_size_v<T>>{});
    else if constexpr (described_enum<T>) {
        json::array names;
        boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto e) { names.push_back(boost::json::string(e.name)); });
        return json::object{{"type", "string"}, {"enum", names}};
    } else if constexpr (described_struct<T>) {
        json::object props;
        json::array required;
        boost::mp11::mp_for_each<boost::describe::describe_members<T, boost::describe::mod_any_access>>([&](auto m) {
            using M = std::remove_cvref_t<decltype(std::declval<T&>().*m.pointer)>;
            props[m.name] = schema_of<M>();
            if constexpr (!is_optional<M>::value) required.push_back(boost::json::string(m.name));
        });
        return json::object{{"type", "object"}, {"properties", props}, {"required", required}};
    } else {
        return json::object{{"description", "a payload weft's codec encodes"}};
    }
}

template <class T>
json::value schema_of_params() {
    return tuple_schema<T>(std::make_index_sequence<std::tuple_size_v<T>>{});
}

template <class W>
struct hooks {
    static std::shared_ptr<run_control> start(backend& b, const json::value& input, run_options opts) {
        using tuple = typename W::input_tuple;
        tuple in;
        if constexpr (std::tuple_size_v<tuple> == 1) std::get<0>(in) = json::from_value<typename W::input>(input);
        else if constexpr (std::tuple_size_v<tuple> > 1) in = json::from_value<tuple>(input);
        return b.start(full_erasure<W>, &in, std::move(opts));
    }
    static json::value output(const run_control& run) {
        return json::to_value(*static_cast<const typename W::output*>(run.result()));
    }
    static json::value schema() {
        json::object steps;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((steps[W::names[I]] = json::object{
                  {"parameters", schema_of_params<typename step_traits<typename W::template step<I>>::params>()},
                  {"output", schema_of<typename step_traits<typename W::template step<I>>::output>()}}),
             ...);
        }(std::make_index_sequence<W::size>{});
        json::value in = std::tuple_size_v<typename W::input_tuple> == 1 ? schema_of<typename W::input>()
                                                                          : schema_of<typename W::input_tuple>();
        return json::object{{"input", in}, {"output", schema_of<typename W::output>()}, {"steps", steps}};
    }
};

}  // namespace detail

template <workflow_type W>
workflow_entry entry_of(W w) {
    return {&full_erasure<W>,
            step_table(w),
            std::tuple_size_v<typename W::input_tuple>,
            &detail::hooks<W>::start,
            &detail::hooks<W>::output,
            &detail::hooks<W>::schema};
}

// Runs the command line over `workflows`; returns the process's exit code (docs/cli.md).
int main(int argc, char** argv, std::span<const workflow_entry> workflows);

template <workflow_type... W>
int main(int argc, char** argv, W... wfs) {
    const workflow_entry entries[] = {entry_of(wfs)...};
    return main(argc, argv, std::span<const workflow_entry>(entries));
}

}  // namespace weft::cli
