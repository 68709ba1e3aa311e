// A step takes parameters by value or by const&, never by non-const reference.
#include <weft/dsl.hpp>
struct grow { static constexpr std::string_view name = "grow"; int operator()(int& n) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<grow>);
int main() {}
