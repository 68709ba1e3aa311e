// flags_eval FILE: evaluates the flags of a flag file for the requests on stdin, one JSON object a
// line ({"flag": ..., "targetingKey": ..., "attributes": {...}}), and prints one JSON line for each
// ({"flag", "variant", "reason", "error_code", "error_message", "value", "why"}). The parity test feeds it and Python's flagd.
#include <weft/json.hpp>
#include <weft/router/flags.hpp>

#include <boost/json/serialize.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: flags_eval FLAG_FILE < requests\n";
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    try {
        auto set = weft::flags::flag_set::parse(text.str(), argv[1]);
        std::string line;
        while (std::getline(std::cin, line)) {
            if (line.empty()) continue;
            auto request = weft::json::parse(line).as_object();
            weft::flags::context ctx;
            if (auto* k = request.if_contains("targetingKey"); k && k->is_string()) ctx.targeting_key = k->get_string();
            if (auto* a = request.if_contains("attributes"); a && a->is_object()) ctx.attributes = a->get_object();
            auto e = set.evaluate(request.at("flag").as_string(), ctx);
            boost::json::object out{{"flag", e.flag_key}, {"variant", e.variant}, {"reason", e.reason},
                                    {"error_code", e.error_code}, {"error_message", e.error_message},
                                    {"value", e.value}, {"why", e.why}};
            std::cout << boost::json::serialize(out) << '\n';
        }
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
}
