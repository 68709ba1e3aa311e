// flagd flag files as an operator writes them (and mistypes them): parsed, then every flag evaluated
// for a few contexts, as the router does for each run. A file either parses or throws flag_error
// with a line and column inside the file; an evaluation never throws, it reports ERROR.
#include "fuzz.hpp"

#include <weft/router/flags.hpp>

#include <optional>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = weft::fuzz::text(data, size);
    std::optional<weft::flags::flag_set> set;
    try {
        set.emplace(weft::flags::flag_set::parse(text, "flags.json"));
    } catch (const weft::flags::flag_error& e) {
        weft::fuzz::require(e.line() >= 1 || e.column() == 0, "a flag error points before the file");
        return 0;
    }
    std::vector<weft::flags::context> contexts(3);
    contexts[1].targeting_key = "tenant-7";
    contexts[1].attributes["workflow"] = "ingest";
    contexts[2].targeting_key = std::string(text.substr(0, 16));
    contexts[2].attributes["tenant"] = 42;
    contexts[2].attributes["email"] = "a@b.example";
    for (const std::string& key : set->keys()) {
        (void)set->metadata(key);
        (void)set->variants(key);
        for (const auto& c : contexts) {
            const auto e = set->evaluate(key, c);
            weft::fuzz::require(e.reason == "ERROR" ? !e.error_code.empty() : e.error_code.empty(),
                                "an evaluation's reason and error code disagree");
        }
    }
    (void)set->evaluate("no.such.flag", contexts[0]);
    (void)set->set_metadata();
    return 0;
}
