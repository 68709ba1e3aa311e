// Engines call a step on a named object, so a &&-qualified call operator cannot be used.
#include <weft/dsl.hpp>
struct once { static constexpr std::string_view name = "once"; int operator()(int) &&; };
constexpr auto wf = weft::workflow<"bad">(weft::step<once>);
int main() {}
