// A join's parameters follow its parents in declaration order, with exact types: swapped int and
// double parameters are an error, not a silent conversion.
#include <weft/dsl.hpp>
struct load { static constexpr std::string_view name = "load"; int operator()(int) const; };
struct width { static constexpr std::string_view name = "width"; int operator()(int) const; };
struct ratio { static constexpr std::string_view name = "ratio"; double operator()(int) const; };
struct render { static constexpr std::string_view name = "render"; int operator()(double, int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<load> >> (weft::step<width>, weft::step<ratio>) >> weft::step<render>);
int main() {}
