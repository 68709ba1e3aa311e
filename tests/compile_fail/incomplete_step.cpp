// A step must be defined where the workflow is declared, not only forward-declared.
#include <weft/dsl.hpp>
struct later;
constexpr auto wf = weft::workflow<"bad">(weft::step<later>);
int main() {}
