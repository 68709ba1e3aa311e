// The workflow both programs of durable.interop serve: the same header, two different programs.
// Every step body appends "<key> <step> <pid>" to $WEFT_TEST_SIDE when it finishes; `parse` waits
// while the file $WEFT_TEST_BLOCK exists, so the driver can kill a program with runs in flight.
#pragma once

#include <weft/weft.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace interop {

struct doc {
    long key = 0;
    std::vector<std::string> words;
};
BOOST_DESCRIBE_STRUCT(doc, (), (key, words))

inline void mark(long key, std::string_view step) {
    if (const char* side = std::getenv("WEFT_TEST_SIDE")) {
        std::ofstream(side, std::ios::app) << key << ' ' << step << ' ' << ::getpid() << '\n';
    }
}

struct fetch {
    static constexpr std::string_view name = "fetch";
    doc operator()(long key) const {
        mark(key, name);
        return {key, {"alpha", "beta", std::to_string(key)}};
    }
};
struct parse {
    static constexpr std::string_view name = "parse";
    long operator()(const doc& d) const {
        if (const char* block = std::getenv("WEFT_TEST_BLOCK"))
            while (std::filesystem::exists(block)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        mark(d.key, name);
        long letters = 0;
        for (const auto& w : d.words) letters += static_cast<long>(w.size());
        return letters;
    }
};
struct store {
    static constexpr std::string_view name = "store";
    std::string operator()(long letters) const {
        mark(letters, name);
        return "stored " + std::to_string(letters) + " letters";
    }
};

constexpr auto ingest = weft::workflow<"interop_ingest">(weft::step<fetch> >> weft::step<parse> >> weft::step<store>);

}  // namespace interop
