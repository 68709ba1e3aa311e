// A join takes one parameter per parent, in declaration order.
#include <weft/dsl.hpp>
struct load { static constexpr std::string_view name = "load"; int operator()(int) const; };
struct width { static constexpr std::string_view name = "width"; int operator()(int) const; };
struct label { static constexpr std::string_view name = "label"; std::string operator()(int) const; };
struct render { static constexpr std::string_view name = "render"; int operator()(std::string, int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<load> >> (weft::step<width>, weft::step<label>) >> weft::step<render>);
int main() {}
