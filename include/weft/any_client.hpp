// The configurable client: the backend is chosen at run time, by configuration, with no code change.
//
//     auto client = weft::any_client::from_env();   // WEFT_BACKEND=local|celery|temporal|hatchet
//     auto run = client.start(ingest, urls);
//     report r = run.get();
//
// The same workflow declaration runs on every backend; `weft::client<weft::local>` is the zero-cost
// alternative when the backend is fixed at compile time.
#pragma once

#include <memory>
#include <string>

#include <weft/backend.hpp>
#include <weft/config.hpp>
#include <weft/json.hpp>
#include <weft/local.hpp>

namespace weft {

namespace detail {

template <workflow_type W>
struct erasure {
    using input_tuple = typename W::input_tuple;
    using output = typename W::output;

    static std::shared_ptr<run_control> start_in_process(local_detail::engine& eng, const void* input, run_options opts) {
        return local_detail::glue<W>::start(eng, *static_cast<const input_tuple*>(input), std::move(opts));
    }
    static std::string encode_input(const void* input) { return json::encode(*static_cast<const input_tuple*>(input)); }
    static std::shared_ptr<const void> decode_output(std::string_view text) {
        return std::make_shared<const output>(json::decode<output>(text));
    }

    static inline const erased_workflow value{
        W::name,
        std::span<const std::string_view>(W::names),
        std::span<const step_policy>(W::policies),
        std::span<const std::size_t>(W::topological_order),
        std::span<const std::size_t>(W::sources),
        std::span<const std::size_t>(W::sinks),
        &W::parent_count,
        &W::parent,
        &start_in_process,
        &encode_input,
        &decode_output,
    };
};

}  // namespace detail

namespace local_detail {

class local_backend final : public backend {
public:
    explicit local_backend(engine_options opts) : engine_(opts) {}
    std::string_view name() const noexcept override { return local::name; }
    std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) override {
        return wf.start_in_process(engine_, input, std::move(opts));
    }

private:
    engine engine_;
};

inline bool register_local() {
    static const bool done = backend_registry::instance().add({
        std::string(local::name),
        {"threads"},
        [](const config& c) -> std::unique_ptr<backend> {
            return std::make_unique<local_backend>(
                engine_options{static_cast<unsigned>(c.get_unsigned("local.threads", 0, 4096))});
        },
    });
    return done;
}

}  // namespace local_detail

class any_client {
public:
    explicit any_client(const config& c) : backend_((local_detail::register_local(), backend_registry::instance().make(c))) {}

    // WEFT_CONFIG / WEFT_BACKEND / WEFT_<BACKEND>_<KEY>; with nothing set, the embedded engine.
    static any_client from_env() { return any_client(config::from_env()); }

    std::string_view backend() const noexcept { return backend_->name(); }

    template <workflow_type W>
    run<typename W::output> start(W, typename W::input input, run_options opts = {}) {
        const typename W::input_tuple in(std::move(input));
        return run<typename W::output>(backend_->start(detail::erasure<W>::value, &in, std::move(opts)));
    }
    template <workflow_type W>
        requires(std::tuple_size_v<typename W::input_tuple> == 0)
    run<typename W::output> start(W, run_options opts = {}) {
        const std::tuple<> in;
        return run<typename W::output>(backend_->start(detail::erasure<W>::value, &in, std::move(opts)));
    }

private:
    std::unique_ptr<weft::backend> backend_;
};

}  // namespace weft
