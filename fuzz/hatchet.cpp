// What a Hatchet worker reads from the engine, hostile: an assignment's action_payload, turned into
// a step's arguments (the run input for a first step, the parents' outputs otherwise) and the step
// called with them, as the worker does; a task output as the client reads it; an error text. Each
// reads or throws json::decode_error with a path; an error written in hatchet-sdk's form reads back.
#include "fuzz.hpp"

#include <weft/hatchet/lowering.hpp>
#include <weft/step_table.hpp>

#include "../tests/hatchet/workflows.hpp"

namespace wire = weft::hatchet_wire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = weft::fuzz::text(data, size);
    const weft::graph_view& g = weft::graph_of<std::remove_cvref_t<decltype(hx::dag)>>;
    for (const weft::erased_step& s : weft::step_table(hx::dag)) {
        std::vector<std::string> parents;
        for (std::size_t k = g.parent_offset[s.node]; k < g.parent_offset[s.node + 1]; ++k)
            parents.emplace_back(wire::lowercase(g.names[g.parent_list[k]]));
        try {
            (void)s.invoke(wire::action_arguments(parents, text));
        } catch (const weft::json::decode_error&) {
        } catch (const std::exception&) {  // the step's own error: the worker reports it as the step's failure
        }
    }
    try {
        (void)wire::step_value(weft::json::parse(text));
    } catch (const weft::json::decode_error&) {
    }
    (void)wire::task_error_text(text);
    // type \0 message: written as hatchet-sdk writes it, read back as "<type>: <message>".
    if (auto nul = text.find('\0'); nul != std::string_view::npos) {
        const std::string_view type = text.substr(0, nul), message = text.substr(nul + 1);
        if (!type.empty() && type.find_first_of(":\n\\") == std::string_view::npos && message.find('\\') == std::string_view::npos)
            weft::fuzz::require(wire::task_error_text(wire::task_error(type, message, "trace")) ==
                                    std::string(type) + ": " + std::string(message),
                                "an error changed when written for hatchet-sdk and read back");
    }
    return 0;
}
