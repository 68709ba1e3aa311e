// The program tests/cli/cli.py drives as an operator would: the quickstart's corpus_report, a run that
// waits until it is cancelled, and a step that fails, all behind weft::cli::main. The backend comes
// from --backend or WEFT_BACKEND; every backend this build has is linked in.
#include <weft/cli.hpp>
#include <weft/weft.hpp>
#if WEFT_CLI_CELERY
#include <weft/celery.hpp>
#endif
#if WEFT_CLI_TEMPORAL
#include <weft/temporal.hpp>
#endif
#if WEFT_CLI_HATCHET
#include <weft/hatchet.hpp>
#endif
#if WEFT_CLI_DURABLE
#include <weft/durable.hpp>
#endif
#if WEFT_CLI_ROUTER
#include <weft/router.hpp>
#endif

#include <stdexcept>
#include <thread>

#include "../../examples/corpus_report.hpp"

namespace cli_steps {
// Sleeps until its run is cancelled (or 60 s pass): something to cancel.
struct wait_for_cancel {
    static constexpr std::string_view name = "cli.wait_for_cancel";
    int operator()(int x) const {
        for (int i = 0; i < 6000 && !weft::this_step::stop_requested(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return x;
    }
};
struct after_wait {
    static constexpr std::string_view name = "cli.after_wait";
    int operator()(int x) const { return x + 1; }
};
struct refuse {
    static constexpr std::string_view name = "cli.refuse";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 2, .initial = std::chrono::milliseconds(50)}};
    int operator()(int x) const { throw std::invalid_argument("refusing " + std::to_string(x)); }
};
// What a step reads of the run's metadata (--meta).
struct tenant {
    static constexpr std::string_view name = "cli.tenant";
    std::string operator()(int) const { return std::string(weft::this_step::metadata("tenant").value_or("<none>")); }
};
}  // namespace cli_steps

constexpr auto waiting = weft::workflow<"cli_waiting">(weft::step<cli_steps::wait_for_cancel> >> weft::step<cli_steps::after_wait>);
constexpr auto refusing = weft::workflow<"cli_refusing">(weft::step<cli_steps::refuse>);
constexpr auto tenanted = weft::workflow<"cli_metadata">(weft::step<cli_steps::tenant>);

int main(int argc, char** argv) { return weft::cli::main(argc, argv, corpus::workflow, waiting, refusing, tenanted); }
