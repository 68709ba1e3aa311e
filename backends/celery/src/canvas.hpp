// Celery canvas, written once for the client and the worker: a lowered workflow as canvas elements
// (plain signatures, celery.group, celery.chord), and what sending one element means, as Python's
// signature.apply_async does: a task, a group's members, or a chord's headers after its size.
#pragma once

#include "codec.hpp"

#include <functional>
#include <utility>

namespace weft::celery_wire {

// The canvas of a workflow's stages (weft/celery/lowering.hpp), in chain order: a single step, a
// chord (a parallel stage and the join after it), or a final group. A parallel stage lists its
// members in its join's parent order (the group_index order); `step(i)` is node i's signature.
std::vector<signature> canvas(const std::vector<std::vector<std::size_t>>& stages,
                              const std::function<signature(std::size_t)>& step);

// What a sent element continues from.
struct feed {
    std::string root_id;
    std::optional<std::string> parent_id;  // the task that sends it; none from a client
    std::string queue;                     // for a signature that names none
    json::array args;                      // put before a mutable signature's args: [retval], or a run's input
    json::value metadata;                  // the run's (headers.weft_metadata), for a signature that has none
};

// The message for one plain signature; `rest`: the chain after it, next step last. Its
// headers.weft_metadata is the signature's options.headers.weft_metadata (where weft's client puts
// it, and Python's canvas sends it from), else the feed's: a run's metadata reaches every step.
message continuation(const feed& from, const signature& sig, std::vector<signature> rest);

// Sending one element: the messages to push, after the chord sizes (group id, header count) are
// stored. Throws wire_error on a canvas weft does not run (or a malformed one).
struct dispatch {
    std::vector<std::pair<std::string, std::size_t>> chord_sizes;
    std::vector<message> messages;
};
dispatch apply(const feed& from, const signature& sig, std::vector<signature> rest);

}  // namespace weft::celery_wire
