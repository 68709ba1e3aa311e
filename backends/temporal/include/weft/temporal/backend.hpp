// Temporal as a weft backend: a run of a weft DAG is a Temporal workflow run, served by
// weft::temporal::worker processes (the workflow type is the DAG's name).
//
//     weft::client<weft::temporal::backend> client({.address = "127.0.0.1:7233", .task_queue = "orders"});
//     auto run = client.start(orders::workflow, order{...});   // workflow id "<name>-<uuid>"
//     receipt r = run.get();                                    // a failed step throws weft::step_failed
//
// Including this header registers the backend, so WEFT_BACKEND=temporal selects it in any_client
// (settings address, namespace, task_queue: WEFT_TEMPORAL_ADDRESS, ...).
#pragma once

#include <memory>
#include <string_view>

#include <weft/backend.hpp>
#include <weft/remote_client.hpp>
#include <weft/temporal/client.hpp>

namespace weft::temporal {

// The tag of weft::client<weft::temporal::backend>.
struct backend {
    static constexpr std::string_view name = "temporal";
};

// The weft::backend behind client<temporal::backend> and any_client.
class dag_backend final : public weft::backend {
public:
    explicit dag_backend(settings s);
    ~dag_backend() override;
    std::string_view name() const noexcept override { return temporal::backend::name; }
    // Starts the workflow type wf.name on the settings' task queue with one json/plain payload per input
    // value; the handle's id() is the workflow id.
    std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) override;

    struct state;

private:
    std::shared_ptr<state> state_;
};

std::vector<setting_doc> settings_docs();  // the table behind settings::from_config

inline const bool registered = weft::register_backend<dag_backend>(temporal::backend::name, settings_docs(),
                                                                   &settings::from_config);

}  // namespace weft::temporal

namespace weft {

template <>
class client<temporal::backend> : public remote_client<temporal::dag_backend> {
public:
    explicit client(temporal::settings s) : remote_client(std::move(s)) {}
};

}  // namespace weft
