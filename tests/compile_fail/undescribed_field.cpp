// Every field of a payload aggregate is listed in BOOST_DESCRIBE_STRUCT, or it would not travel.
#include <weft/dsl.hpp>
struct order { long id; std::string customer; double total; };
BOOST_DESCRIBE_STRUCT(order, (), (id, customer))
struct place { static constexpr std::string_view name = "place"; order operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<place>);
int main() {}
