// Payloads must be serializable: this struct is not described.
#include <weft/dsl.hpp>
struct raw_image { unsigned char* pixels; };
struct decode { static constexpr std::string_view name = "decode"; raw_image operator()(std::string) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<decode>);
int main() {}
