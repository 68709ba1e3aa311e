// All first steps receive the run's input.
#include <weft/dsl.hpp>
struct by_id { static constexpr std::string_view name = "by_id"; int operator()(int) const; };
struct by_name { static constexpr std::string_view name = "by_name"; int operator()(std::string) const; };
struct merge { static constexpr std::string_view name = "merge"; int operator()(int, int) const; };
constexpr auto wf = weft::workflow<"bad">((weft::step<by_id>, weft::step<by_name>) >> weft::step<merge>);
int main() {}
