// Steps per second and per-step latency of weft::durable (SQLite WAL, PostgreSQL) against weft::local, on the
// same shapes: what durability costs. Each row is the best of `--rounds` rounds.
//
//     build/benchmarks/bench.durable_steps [--runs 200] [--rounds 3] [--dir /tmp] [--postgres URL]
//
// --postgres adds the rows of a PostgreSQL journal at URL (its schema weft_durable is emptied first).
//
// throughput: `runs` runs of an 8-step chain started at once, then all awaited (steps / wall time);
// latency: one run of the chain at a time, wall time per step (start to get, over 8 steps);
// fan: `runs` runs of a fan-out of 8 steps and a join (10 steps each), started at once;
// peak RSS: the process's VmHWM after the row (rows run in order, so each one's peak includes the
// rows before it: weft::local's is its own).
#include <weft/durable.hpp>
#include <weft/weft.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

using weft::step;

namespace {

template <int I>
struct inc { static constexpr std::string_view name = std::array{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"}[I];
    long operator()(long x) const { return x + 1; } };
struct join8 { static constexpr std::string_view name = "join";
    long operator()(long a, long b, long c, long d, long e, long f, long g, long h) const { return a + b + c + d + e + f + g + h; } };
struct src { static constexpr std::string_view name = "src"; long operator()(long x) const { return x; } };

constexpr auto chain = weft::workflow<"bench_chain">(step<inc<0>> >> step<inc<1>> >> step<inc<2>> >> step<inc<3>> >>
                                                     step<inc<4>> >> step<inc<5>> >> step<inc<6>> >> step<inc<7>>);
constexpr auto fan = weft::workflow<"bench_fan">(step<src> >> (step<inc<0>>, step<inc<1>>, step<inc<2>>, step<inc<3>>,
                                                              step<inc<4>>, step<inc<5>>, step<inc<6>>, step<inc<7>>) >>
                                                 step<join8>);

using seconds = std::chrono::duration<double>;

double status_mib(std::string_view field) {  // a "Vm...:" line of /proc/self/status, in MiB
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(field)) return std::stod(line.substr(field.size())) / 1024;
    return -1;
}

template <class Client, class W>
double throughput(Client& client, W wf, int runs, int steps) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<weft::run<long>> handles;
    handles.reserve(static_cast<std::size_t>(runs));
    for (int i = 0; i < runs; ++i) handles.push_back(client.start(wf, long{i}));
    for (auto& h : handles) (void)h.get();
    return runs * steps / seconds(std::chrono::steady_clock::now() - t0).count();
}

template <class Client>
double latency_us(Client& client, int runs) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < runs; ++i) (void)client.start(chain, long{i}).get();
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / (runs * 8.0);
}

struct row {
    double chain_sps = 0, fan_sps = 0, step_us = 1e300;
};

template <class Make>
row measure(Make make, int runs, int rounds) {
    row best;
    for (int r = 0; r < rounds; ++r) {
        auto client = make();
        best.chain_sps = std::max(best.chain_sps, throughput(*client, chain, runs, 8));
        best.fan_sps = std::max(best.fan_sps, throughput(*client, fan, runs, 10));
        best.step_us = std::min(best.step_us, latency_us(*client, std::max(10, runs / 10)));
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 200, rounds = 3;
    std::string dir = std::filesystem::temp_directory_path().string(), postgres;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!std::strcmp(argv[i], "--postgres")) postgres = argv[i + 1];
    }
    const std::string journal = dir + "/weft-bench-durable-" + std::to_string(::getpid()) + ".db";
    auto clean = [&] {
        for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(journal + s);
    };
    std::printf("%d runs at once, 2 threads, best of %d; journal in %s\n", runs, rounds, dir.c_str());
    std::printf("RSS before any client: %.1f MiB\n", status_mib("VmRSS:"));
    std::printf("%-28s %14s %14s %14s %14s\n", "engine", "chain steps/s", "fan steps/s", "us per step", "peak RSS MiB");
    auto print = [](const char* name, const row& r) {
        std::printf("%-28s %14.0f %14.0f %14.1f %14.1f\n", name, r.chain_sps, r.fan_sps, r.step_us, status_mib("VmHWM:"));
    };
    print("weft::local", measure([] { return std::make_unique<weft::client<weft::local>>(weft::local::options{.threads = 2}); },
                                 runs, rounds));
    for (const char* sync : {"normal", "full"}) {
        clean();
        const row r = measure(
            [&] {
                return std::make_unique<weft::client<weft::durable>>(
                    weft::durable::options{.journal = journal, .threads = 2, .synchronous = sync});
            },
            runs, rounds);
        print((std::string("weft::durable synchronous=") + sync).c_str(), r);
    }
    clean();
    if (postgres.empty()) return 0;
    for (const char* sync : {"normal", "full"}) {
        {
            weft::durable_detail::backend_impl b({.journal = postgres});  // creates the schema if missing
        }
        const row r = measure(
            [&] {
                return std::make_unique<weft::client<weft::durable>>(
                    weft::durable::options{.journal = postgres, .threads = 2, .synchronous = sync});
            },
            runs, rounds);
        print((std::string("weft::durable PostgreSQL ") + sync).c_str(), r);
    }
}
