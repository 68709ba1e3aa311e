// A workflow is a DAG.
#include <weft/dsl.hpp>
struct fetch { static constexpr std::string_view name = "fetch"; int operator()(int) const; };
struct parse { static constexpr std::string_view name = "parse"; int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch> >> weft::step<parse> >> weft::step<fetch>);
int main() {}
