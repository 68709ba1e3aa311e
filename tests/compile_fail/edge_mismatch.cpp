// A step's output must convert to the next step's input.
#include <weft/dsl.hpp>
struct summarize { static constexpr std::string_view name = "summarize"; std::string operator()(int) const; };
struct count_words { static constexpr std::string_view name = "count_words"; int operator()(std::vector<int>) const; };
constexpr auto wf = weft::workflow<"bad">(weft::step<summarize> >> weft::step<count_words>);
int main() {}
