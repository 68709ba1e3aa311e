// Priorities are 0..9 on every backend.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch";
    static constexpr weft::step_policy policy{.priority = 10};
    int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
