// An empty wire name gets its own message.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = ""; int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
