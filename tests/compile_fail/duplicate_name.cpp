// Two different steps may not share a wire name.
#include <weft/dsl.hpp>
struct fetch_http { static constexpr std::string_view name = "fetch"; int operator()(int) const; };
struct fetch_ftp { static constexpr std::string_view name = "fetch"; int operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<fetch_http> >> weft::step<fetch_ftp>);
int main() {}
