// Retry delays never shrink: the multiplier is at least 1.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 3, .multiplier = 0.5}};
    int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
