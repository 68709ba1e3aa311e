// max_attempts counts every attempt: 0 would mean never running the step.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 0}};
    int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
