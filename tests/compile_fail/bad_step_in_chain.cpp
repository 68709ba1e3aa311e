// One malformed step in a chain is reported once; its neighbours are not reported as cut off.
#include <weft/dsl.hpp>
struct a { static constexpr std::string_view name = "a"; int operator()(int) const; };
struct b { int operator()(int) const; };
struct c { static constexpr std::string_view name = "c"; int operator()(std::string) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<a> >> weft::step<b> >> weft::step<c>);
int main() {}
