// A timeout is a duration: 0 means none, a negative one means nothing.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch";
    static constexpr weft::step_policy policy{.timeout = weft::milliseconds{-5}};
    int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch>);
int main() {}
