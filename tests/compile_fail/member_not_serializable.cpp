// The culprit inside a payload is named by its path from the payload type.
#include <weft/dsl.hpp>
struct pixels { unsigned char* data; };
struct blob { std::string mime; std::vector<pixels> data; };
BOOST_DESCRIBE_STRUCT(blob, (), (mime, data))
struct report { std::string title; blob attachment; };
BOOST_DESCRIBE_STRUCT(report, (), (title, attachment))
struct render { static constexpr std::string_view name = "render"; report operator()(int) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<render>);
int main() {}
