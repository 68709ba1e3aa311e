// Lowering a workflow graph to Celery canvas.
//
// A workflow is sent as a sequence of stages. A stage is one step, or several steps that run in
// parallel; every step of a stage takes exactly the steps of the stage before it as its parents.
// Parallel steps are followed by one step (their join) or end the workflow. In canvas terms:
//
//     a >> b                 chain: one message, b rides in embed.chain
//     a >> (b, c) >> d       chain(a, chord(group(b, c), d)): d is the chord body, joined in Redis
//     (a, b) >> c            chord(group(a, b), c), started by the client (it sets the .s key)
//     a >> (b, c)            chain(a, group(b, c)): the run's output is (b, c)
//
// Anything else (a step fed by only some branches, a non-series-parallel mesh, two parallel stages
// in a row) has no canvas form this backend emits, and weft::client<celery> rejects it at compile
// time. The same check runs on an erased_workflow for any_client, so both paths agree.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace weft::celery_wire {

struct lowering {
    bool ok = true;
    std::size_t culprit = static_cast<std::size_t>(-1);  // the first step that breaks the stage shape
    std::vector<std::vector<std::size_t>> stages;         // node indices, by stage, in node order
};

// order: a topological order; parent_count(i), parent(i, k): the graph.
template <class Order, class ParentCount, class Parent>
constexpr lowering lower_to_stages(std::size_t size, const Order& order, ParentCount parent_count, Parent parent) {
    lowering out;
    std::vector<std::size_t> level(size, 0);
    std::size_t levels = 0;
    for (std::size_t n = 0; n < size; ++n) {
        std::size_t i = order[n];
        for (std::size_t k = 0; k < parent_count(i); ++k) level[i] = std::max(level[i], level[parent(i, k)] + 1);
        levels = std::max(levels, level[i] + 1);
    }
    out.stages.resize(levels);
    for (std::size_t i = 0; i < size; ++i) out.stages[level[i]].push_back(i);
    for (std::size_t s = 1; s < out.stages.size(); ++s) {
        const auto& prev = out.stages[s - 1];
        for (std::size_t i : out.stages[s]) {
            bool same = parent_count(i) == prev.size();
            for (std::size_t k = 0; same && k < parent_count(i); ++k)
                same = std::find(prev.begin(), prev.end(), parent(i, k)) != prev.end();
            if (!same || (prev.size() > 1 && out.stages[s].size() > 1)) {
                out.ok = false;
                out.culprit = i;
                return out;
            }
        }
    }
    return out;
}

}  // namespace weft::celery_wire
