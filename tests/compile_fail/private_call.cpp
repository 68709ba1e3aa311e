// The call operator must be public.
#include <weft/dsl.hpp>
class hidden {
    int operator()(int) const;
public:
    static constexpr std::string_view name = "hidden";
};
constexpr auto wf = weft::workflow<"bad">(weft::step<hidden>);
int main() {}
