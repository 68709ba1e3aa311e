// Program two of durable.interop: an operator's tool built on weft::cli, serving the same workflow
// beside one of its own, with the backend chosen by configuration (WEFT_BACKEND=durable).
#include <weft/cli.hpp>
#include <weft/durable.hpp>

#include "workflow.hpp"

namespace {
struct shout {
    static constexpr std::string_view name = "shout";
    std::string operator()(std::string s) const { return s + "!"; }
};
constexpr auto loud = weft::workflow<"interop_loud">(weft::step<shout>);
}  // namespace

int main(int argc, char** argv) { return weft::cli::main(argc, argv, loud, interop::ingest); }
