#include <weft/any_client.hpp>
#include <weft/weft.hpp>

#include "common.hpp"

int main() {
    constexpr auto wf = consumer::greeting;
    weft::client<weft::local> fixed;
    auto configured = weft::any_client::from_env();
    bool ok = fixed.start(wf, std::string("weft")).get() == "hello weft!" &&
              configured.start(wf, std::string("again")).get() == "hello again!";
    return ok ? 0 : 1;
}
