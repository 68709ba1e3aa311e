// Edges take exact types: an int does not become a bool on the way, because remote workers decode the
// parent's JSON as the child's parameter type.
#include <weft/dsl.hpp>
struct count { static constexpr std::string_view name = "count"; int operator()(int) const; };
struct flag { static constexpr std::string_view name = "flag"; int operator()(bool) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<count> >> weft::step<flag>);
int main() {}
