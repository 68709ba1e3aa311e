// A step needs a wire name.
#include <weft/dsl.hpp>
struct anonymous { int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<anonymous>);
int main() {}
