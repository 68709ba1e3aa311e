// A workflow with its type erased: what a backend receives.
//
// The graph is constant data (graph_view). Three sets of hooks travel with it, each instantiated only
// by the clients that need it:
//   - codec hooks (workflow_codec, <weft/codec.hpp>) turn the run's input and output into JSON values, for backends
//     that send runs to a server;
//   - in-process hooks (<weft/in_process.hpp>) run the steps on typed values, for engines that call
//     steps themselves;
//   - JSON steps (erased_step, <weft/step_table.hpp>) run the steps on JSON values, for engines that
//     call steps themselves and must record every step's output (a journal).
// So client<celery> compiles no step-calling code, and client<local> compiles no JSON.
#pragma once

#include <weft/graph.hpp>
#include <weft/in_process.hpp>

namespace weft {

// Defined in <weft/codec.hpp> and <weft/step_table.hpp>, with the JSON library: a pointer to them
// costs a declaration only.
struct workflow_codec;
struct erased_step;

struct erased_workflow {
    graph_view graph;
    const workflow_codec* codec;    // null when the caller instantiated no codec (client<local>)
    const in_process_steps* steps;  // null when the caller cannot run the workflow in-process
    const erased_step* json_steps = nullptr;  // graph.size() of them, by node index; null when not instantiated
};

// The workflow as an in-process engine sees it: graph and step code, no codec.
namespace detail {
template <class W>
inline constexpr erased_workflow in_process_erasure{graph_of<W>, nullptr, &in_process_of<W>, nullptr};
}
template <workflow_type W>
inline constexpr const erased_workflow& in_process_erasure = detail::in_process_erasure<std::remove_cvref_t<W>>;

}  // namespace weft
