// Wire names carry no whitespace or control characters.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch page"; int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
