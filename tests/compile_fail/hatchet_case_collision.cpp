// Hatchet lowercases action ids, so step names that differ only in case would collide there.
#include <weft/hatchet/lowering.hpp>
struct fetch { static constexpr std::string_view name = "Fetch"; int operator()(int) const; };
struct refetch { static constexpr std::string_view name = "fetch"; int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch> >> weft::step<refetch>);
constexpr bool accepted = weft::hatchet_wire::step_names_distinct_once_lowercased<decltype(wf)>();
int main() {}
