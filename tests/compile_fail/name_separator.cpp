// : is reserved: Hatchet action ids are `workflow:step`. Aliases follow the same rule.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch"; int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch, "fetch:again">);
int main() {}
