#include <weft/any_client.hpp>
#include <weft/weft.hpp>

struct greet { static constexpr std::string_view name = "greet"; std::string operator()(const std::string& who) const { return "hello " + who; } };
struct shout { static constexpr std::string_view name = "shout"; std::string operator()(std::string s) const { return s + "!"; } };

int main() {
    constexpr auto wf = weft::workflow<"greeting">(weft::step<greet> >> weft::step<shout>);
    weft::client<weft::local> fixed;
    auto configured = weft::any_client::from_env();
    bool ok = fixed.start(wf, std::string("weft")).get() == "hello weft!" &&
              configured.start(wf, std::string("again")).get() == "hello again!";
    return ok ? 0 : 1;
}
