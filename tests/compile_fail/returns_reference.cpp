// A step returns its result by value; a reference would dangle once the step object is gone.
#include <weft/dsl.hpp>
struct label { static constexpr std::string_view name = "label"; std::string text; const std::string& operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<label>);
int main() {}
