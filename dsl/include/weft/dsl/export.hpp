// Text renderings of a workflow's graph for documentation and debugging: Graphviz DOT and Mermaid.
#pragma once

#include <string>

#include <weft/dsl/workflow.hpp>

namespace weft {

template <workflow_type W>
std::string to_dot(W) {
    std::string out = "digraph \"";
    out += W::name;
    out += "\" {\n  rankdir=LR;\n";
    for (std::size_t i : W::topological_order) {
        out += "  \"";
        out += W::names[i];
        out += "\";\n";
    }
    for (auto e : W::edges) {
        out += "  \"";
        out += W::names[e.from];
        out += "\" -> \"";
        out += W::names[e.to];
        out += "\";\n";
    }
    out += "}\n";
    return out;
}

template <workflow_type W>
std::string to_mermaid(W) {
    // Mermaid node ids must be identifiers; wire names may hold dots or dashes, so number the nodes
    // and show the wire name as the label.
    std::string out = "flowchart LR\n";
    for (std::size_t i : W::topological_order) {
        out += "  n" + std::to_string(i) + "[\"";
        out += W::names[i];
        out += "\"]\n";
    }
    for (auto e : W::edges) out += "  n" + std::to_string(e.from) + " --> n" + std::to_string(e.to) + "\n";
    return out;
}

}  // namespace weft
