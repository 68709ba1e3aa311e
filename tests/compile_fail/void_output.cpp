// A step returns its output.
#include <weft/dsl.hpp>
struct notify { static constexpr std::string_view name = "notify"; void operator()(std::string) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<notify>);
int main() {}
