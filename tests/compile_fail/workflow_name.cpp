// Workflow names follow the wire-name rules too.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch"; int operator()(int) const; };
constexpr auto wf = weft::workflow<"nightly\tingest">(weft::step<fetch>);
int main() {}
