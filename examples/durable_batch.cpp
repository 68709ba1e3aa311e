// A nightly batch that survives its process: the first thing it does is resume the runs a killed
// predecessor left unfinished (their committed steps are not run again), then it starts tonight's.
//
//     durable_batch runs.db 2026-12-01     # kill -9 it at any point, then run it again
#include <weft/durable.hpp>

#include <algorithm>
#include <iostream>
#include <string>

using weft::step;

struct fetch { static constexpr std::string_view name = "fetch";
    std::vector<int> operator()(const std::string& day) const { return {static_cast<int>(day.size()), 20, 30}; } };
struct total { static constexpr std::string_view name = "total";
    int operator()(const std::vector<int>& xs) const { int s = 0; for (int x : xs) s += x; return s; } };
struct largest { static constexpr std::string_view name = "largest";
    int operator()(const std::vector<int>& xs) const { int m = 0; for (int x : xs) m = std::max(m, x); return m; } };
struct summary { static constexpr std::string_view name = "summary";
    std::string operator()(int t, int m) const { return "total " + std::to_string(t) + ", largest " + std::to_string(m); } };

constexpr auto nightly = weft::workflow<"nightly">(step<fetch> >> (step<total>, step<largest>) >> step<summary>);

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: durable_batch JOURNAL DAY\n";
        return 2;
    }
    weft::client<weft::durable> client({.journal = argv[1]});
    for (auto& run : client.resume(nightly)) std::cout << "resumed " << run.id() << ": " << run.get() << '\n';
    auto run = client.start(nightly, std::string(argv[2]));  // in the journal before start() returns
    std::cout << "run " << run.id() << ": " << run.get() << '\n';
}
