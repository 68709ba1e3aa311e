// Retry delays are not negative.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 3, .initial = weft::milliseconds{-1}}};
    int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
