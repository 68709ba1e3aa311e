// Codec hooks: how a workflow's run input and run output cross a process boundary, as JSON values.
//
// A server backend embeds these values in its own envelope (Celery's args, a Temporal json/plain
// payload, Hatchet's input object) and reads the output back out of its own result: the hooks never
// see text, so a backend parses its envelope once and hands the hook the part it needs.
#pragma once

#include <memory>

#include <weft/erased.hpp>
#include <weft/json.hpp>
#include <weft/step_table.hpp>

namespace weft {

struct workflow_codec {
    // The run's input (a pointer to the workflow's input tuple) as a JSON array: one value per
    // parameter of the first steps.
    json::value (*encode_input)(const void* input);
    // The run's output from its JSON value (an array for a workflow with several last steps), as a
    // heap object of the workflow's output type. Throws json::decode_error naming the path.
    std::shared_ptr<const void> (*decode_output)(const json::value& output);
    // A copy of the run's input tuple that outlives the start() call (a router's shadow run starts
    // it later, on another thread).
    std::shared_ptr<const void> (*copy_input)(const void* input);
    // The run's output (a pointer to the workflow's output, as run_control::result() gives it) as
    // JSON: what a router compares between a run and its shadow, whichever backends ran them.
    json::value (*encode_output)(const void* output);
};

namespace detail {
template <workflow_type W>
struct codec_hooks {
    static json::value encode_input(const void* input) {
        return json::to_value(*static_cast<const typename W::input_tuple*>(input));
    }
    static std::shared_ptr<const void> decode_output(const json::value& v) {
        return std::make_shared<const typename W::output>(json::from_value<typename W::output>(v));
    }
    static json::value encode_output(const void* output) {
        return json::to_value(*static_cast<const typename W::output*>(output));
    }
    static std::shared_ptr<const void> copy_input(const void* input) {
        return std::make_shared<const typename W::input_tuple>(*static_cast<const typename W::input_tuple*>(input));
    }
};
template <class W>
inline constexpr workflow_codec codec_of{&codec_hooks<W>::encode_input, &codec_hooks<W>::decode_output,
                                            &codec_hooks<W>::copy_input, &codec_hooks<W>::encode_output};
template <class W>
inline constexpr erased_workflow remote_erasure{graph_of<W>, &codec_of<W>, nullptr, nullptr};
template <class W>
inline constexpr erased_workflow json_erasure{graph_of<W>, &codec_of<W>, nullptr, step_table_of<W>.data()};
template <class W>
inline constexpr erased_workflow full_erasure{graph_of<W>, &codec_of<W>, &in_process_of<W>, step_table_of<W>.data()};
}  // namespace detail

template <workflow_type W>
inline constexpr const workflow_codec& codec_of = detail::codec_of<std::remove_cvref_t<W>>;
// The workflow as a server backend sees it: graph and codec, no step code.
template <workflow_type W>
inline constexpr const erased_workflow& remote_erasure = detail::remote_erasure<std::remove_cvref_t<W>>;
// The workflow as an engine that runs steps on JSON values sees it (a journaling engine): graph, codec
// and the JSON steps, no typed step code.
template <workflow_type W>
inline constexpr const erased_workflow& json_erasure = detail::json_erasure<std::remove_cvref_t<W>>;
// Everything, for a client that may pick an in-process engine at run time (any_client).
template <workflow_type W>
inline constexpr const erased_workflow& full_erasure = detail::full_erasure<std::remove_cvref_t<W>>;

// The workflow as a server backend's worker or a test sees it.
template <workflow_type W>
constexpr const erased_workflow& erase(W) noexcept {
    return remote_erasure<W>;
}

}  // namespace weft
