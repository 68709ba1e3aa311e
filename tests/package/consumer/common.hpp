// What the consumer programs share: a two-step workflow, a check that says what failed, what start()
// throws when no server listens, and a local run.
#pragma once

#include <weft/weft.hpp>

#include <cstdio>
#include <exception>
#include <string>

namespace consumer {

struct greet { static constexpr std::string_view name = "greet"; std::string operator()(const std::string& who) const { return "hello " + who; } };
struct shout { static constexpr std::string_view name = "shout"; std::string operator()(std::string s) const { return s + "!"; } };

inline constexpr auto greeting = weft::workflow<"greeting">(weft::step<greet> >> weft::step<shout>);

inline bool check(bool ok, const char* program, const char* what) {
    if (!ok) std::fprintf(stderr, "%s: %s\n", program, what);
    return ok;
}

// The message of what client.start(greeting, "weft") throws ("" if it does not), printed.
template <class Client>
std::string start_error(Client& client, const char* program, const std::string& where) {
    std::string error;
    try {
        (void)client.start(greeting, std::string("weft"));
    } catch (const std::exception& e) {
        error = e.what();
    }
    std::fprintf(stderr, "%s: start on %s: %s\n", program, where.c_str(), error.c_str());
    return error;
}

inline bool local_runs() {
    weft::client<weft::local> local;
    return local.start(greeting, std::string("weft")).get() == "hello weft!";
}

}  // namespace consumer
