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

private:
    std::unique_ptr<weft::backend> backend_;
};

}  // namespace weft
