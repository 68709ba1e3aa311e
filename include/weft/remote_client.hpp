// The typed client of a backend that talks to a server: what client<celery>, client<hatchet> and
// client<temporal> share. start() packs the input into the workflow's input tuple and hands it, with
// the workflow's graph and codec (no step code), to the backend, which lowers it and sends it.
//
// A backend that cannot run every workflow declares `template <workflow_type W> static consteval bool
// accepts()` on its implementation; it diagnoses a workflow it refuses (one static_assert), and
// start() then returns an empty handle instead of cascading errors.
#pragma once

#include <tuple>
#include <utility>

#include <weft/backend.hpp>
#include <weft/codec.hpp>
#include <weft/run.hpp>

namespace weft {

template <class Backend>
class client;

template <class Impl>
class remote_client {
public:
    template <class... Args>
    explicit remote_client(Args&&... args) : backend_(std::forward<Args>(args)...) {}

    template <workflow_type W>
    run<typename W::output> start(W, typename W::input input, run_options opts = {}) {
        if constexpr (!accepts<W>()) {
            return run<typename W::output>(nullptr);  // diagnosed once, in Impl::accepts
        } else {
            const typename W::input_tuple in(std::move(input));
            return run<typename W::output>(backend_.start(remote_erasure<W>, &in, std::move(opts)));
        }
    }
    template <workflow_type W>
        requires(std::tuple_size_v<typename W::input_tuple> == 0)
    run<typename W::output> start(W, run_options opts = {}) {
        if constexpr (!accepts<W>()) {
            return run<typename W::output>(nullptr);
        } else {
            const std::tuple<> in;
            return run<typename W::output>(backend_.start(remote_erasure<W>, &in, std::move(opts)));
        }
    }

    // The handle of a run started elsewhere (another process, an earlier request), by its id():
    // the same typed handle start() gives.
    template <workflow_type W>
    run<typename W::output> attach(W, std::string_view id) {
        if constexpr (!accepts<W>()) {
            return run<typename W::output>(nullptr);
        } else {
            return run<typename W::output>(backend_.attach(remote_erasure<W>, id));
        }
    }

    // The run `id` as the backend's records describe it: no workflow type needed (weft/run_description.hpp).
    run_description describe(std::string_view id) { return backend_.describe(id); }
    // Recent runs of the workflow named `workflow`, newest first (config_error where the backend cannot list).
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit = 20) { return backend_.list(workflow, limit); }

protected:
    template <workflow_type W>
    static consteval bool accepts() {
        if constexpr (!no_transactional_steps<W>()) return false;
        else if constexpr (requires { Impl::template accepts<W>(); }) return Impl::template accepts<W>();
        else return true;
    }

    Impl backend_;
};

}  // namespace weft
