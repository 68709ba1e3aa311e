// A step's input and output are deduced from its one call operator.
#include <weft/dsl.hpp>
struct convert {
    static constexpr std::string_view name = "convert";
    int operator()(int) const;
    int operator()(std::string) const;
};
constexpr auto wf = weft::workflow<"bad">(weft::step<convert>);
int main() {}
