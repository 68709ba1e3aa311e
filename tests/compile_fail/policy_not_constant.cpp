// A step's policy must be readable at compile time.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch";
    static const weft::step_policy policy;
    int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
