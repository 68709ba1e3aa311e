// A step takes parameters by value or by const&, never by rvalue reference.
#include <weft/dsl.hpp>
struct take { static constexpr std::string_view name = "take"; int operator()(std::string&& s) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<take>);
int main() {}
