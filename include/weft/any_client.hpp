// The configurable client: the backend is chosen at run time, by configuration, with no code change.
//
//     auto client = weft::any_client::from_env();   // WEFT_BACKEND=local|celery|temporal|hatchet
//     auto run = client.start(ingest, urls);
//     report r = run.get();
//
// The same workflow declaration runs on every backend linked into the program; `weft::client<B>` is
// the zero-cost alternative when the backend is fixed at compile time. This umbrella includes the
// embedded engine's registration so that `local` is always selectable; it defines nothing of any
// backend.
#pragma once

#include <memory>
#include <string>

#include <weft/backend.hpp>
#include <weft/codec.hpp>
#include <weft/config.hpp>
#include <weft/local/backend.hpp>

namespace weft {

class any_client {
public:
    explicit any_client(const config& c) : backend_(backend_registry::instance().make(c)) {}

    // WEFT_CONFIG / WEFT_BACKEND / WEFT_<BACKEND>_<KEY>; with nothing set, the embedded engine.
    static any_client from_env() { return any_client(config::from_env()); }

    std::string_view backend() const noexcept { return backend_->name(); }

    template <workflow_type W>
    run<typename W::output> start(W, typename W::input input, run_options opts = {}) {
        const typename W::input_tuple in(std::move(input));
        return run<typename W::output>(backend_->start(full_erasure<W>, &in, std::move(opts)));
    }
    template <workflow_type W>
        requires(std::tuple_size_v<typename W::input_tuple> == 0)
    run<typename W::output> start(W, run_options opts = {}) {
        const std::tuple<> in;
        return run<typename W::output>(backend_->start(full_erasure<W>, &in, std::move(opts)));
    }

    // The handle of a run started elsewhere (another process, an earlier request), by its id().
    template <workflow_type W>
    run<typename W::output> attach(W, std::string_view id) {
        return run<typename W::output>(backend_->attach(full_erasure<W>, id));
    }

    // The run `id` as the backend's records describe it, without the workflow's type.
    run_description describe(std::string_view id) { return backend_->describe(id); }
    // Recent runs of the workflow named `workflow`, newest first (config_error where the backend cannot list).
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit = 20) { return backend_->list(workflow, limit); }

private:
    std::unique_ptr<weft::backend> backend_;
};

}  // namespace weft
