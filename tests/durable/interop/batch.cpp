// Program one of durable.interop: a batch linked with weft::durable alone.
//
//     durable_interop_batch JOURNAL start FIRST COUNT   start runs FIRST.., print each id, wait for all
//     durable_interop_batch JOURNAL resume              resume what others left, print each output
#include <weft/durable.hpp>

#include <iostream>
#include <string>

#include "workflow.hpp"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: durable_interop_batch JOURNAL start FIRST COUNT | resume\n";
        return 2;
    }
    // 8 threads: the 4 runs' parse steps wait on the block file, and each fetch needs a thread too.
    weft::client<weft::durable> client({.journal = argv[1], .threads = 8, .resume = false});
    const std::string mode = argv[2];
    if (mode == "start" && argc == 5) {
        std::vector<weft::run<std::string>> runs;
        for (long k = std::stol(argv[3]), n = std::stol(argv[4]); n-- > 0; ++k) {
            runs.push_back(client.start(interop::ingest, k));
            std::cout << runs.back().id() << std::endl;
        }
        for (auto& r : runs) std::cout << r.id() << " " << r.get() << std::endl;
        return 0;
    }
    if (mode == "resume") {
        for (auto& r : client.resume(interop::ingest)) std::cout << r.id() << " " << r.get() << std::endl;
        return 0;
    }
    std::cerr << "unknown mode " << mode << "\n";
    return 2;
}
