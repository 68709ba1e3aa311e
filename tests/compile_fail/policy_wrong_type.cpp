// A step's policy is a weft::step_policy, not a part of one.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch";
    static constexpr weft::retry_policy policy{.max_attempts = 3};
    int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
