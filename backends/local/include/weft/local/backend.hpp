// weft::local in the backend registry, so that configuration can choose it (WEFT_BACKEND=local, the
// default; setting `threads`). <weft/any_client.hpp> includes this header.
#pragma once

#include <memory>

#include <weft/backend.hpp>
#include <weft/local.hpp>

namespace weft::local_detail {

class local_backend final : public backend {
public:
    explicit local_backend(local::options opts);
    ~local_backend() override;
    std::string_view name() const noexcept override { return local::name; }
    bool keeps_runs() const noexcept override { return false; }  // they live in this process's memory
    // Throws config_error when wf carries no in-process steps (it came from a server backend's client).
    std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) override;
    std::shared_ptr<run_control> attach(const erased_workflow& wf, std::string_view id) override;
    run_description describe(std::string_view id) override;
    // The runs this process's engine still holds (running, or finished with a handle left).
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit) override;

private:
    std::unique_ptr<engine> engine_;
};

local::options options_from(const config& c);
std::vector<setting_doc> settings();

inline const bool registered = register_backend<local_backend>(local::name, settings(), &options_from);

}  // namespace weft::local_detail
