// A C-variadic call operator has no parameter types to decode.
#include <weft/dsl.hpp>
struct log_all { static constexpr std::string_view name = "log_all"; int operator()(int, ...) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<log_all>);
int main() {}
