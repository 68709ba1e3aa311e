// What weft::router adds to a caller's start(): the flag evaluation, and for a shadowed run the input
// copy and the queueing (the shadow itself runs on the router's comparer threads). Each variant
// starts `--runs` runs of a one-step workflow on weft::local one at a time and times start() alone;
// each run is awaited outside the timed part. Rows: the median and p99 of start(), the best of
// `--rounds` rounds.
//
//     build/benchmarks/bench.router_start [--runs 4000] [--rounds 5]
#include <weft/any_client.hpp>
#include <weft/durable.hpp>
#include <weft/router.hpp>
#include <weft/weft.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

struct payload {
    std::string doc;
    std::vector<int> pages;
};
BOOST_DESCRIBE_STRUCT(payload, (), (doc, pages))
struct count_pages {
    static constexpr std::string_view name = "count_pages";
    int operator()(const payload& p) const { return int(p.pages.size()); }
};
constexpr auto flow = weft::workflow<"bench_route">(weft::step<count_pages>);

struct figures {
    double median_us, p99_us;
};

template <class Client>
figures measure(Client& client, int runs, bool keyed) {
    std::vector<double> us;
    us.reserve(runs);
    const payload in{"doc", std::vector<int>(32, 1)};
    for (int i = 0; i < runs; ++i) {
        weft::run_options o;
        if (keyed) o.key = "tenant-" + std::to_string(i % 500);
        const auto t0 = std::chrono::steady_clock::now();
        auto r = client.start(flow, in, std::move(o));
        const auto t1 = std::chrono::steady_clock::now();
        (void)r.get();
        us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(us.begin(), us.end());
    return {us[us.size() / 2], us[us.size() * 99 / 100]};
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 4000, rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    }
    const auto dir = std::filesystem::temp_directory_path() / ("weft-bench-router-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string flags = (dir / "flags.json").string();
    std::ofstream(flags) << R"({"flags": {
      "weft.route.bench_route": {"state": "ENABLED", "variants": {"local": "local", "durable": "durable"},
        "defaultVariant": "local", "targeting": {"fractional": [["local", 100], ["durable", 0]]}},
      "weft.shadow.bench_route": {"state": "ENABLED", "variants": {"on": "durable", "off": ""}, "defaultVariant": "off",
        "targeting": {"if": [{"==": [{"var": "shadow"}, "yes"]}, "on", "off"]}}}})";

    weft::config base;
    base.set("local.threads", "2");
    base.set("durable.journal", (dir / "shadow.db").string());
    base.set("durable.synchronous", "normal");
    weft::any_client direct([&] {
        weft::config c = base;
        c.set("backend", "local");
        return c;
    }());
    auto routed = [&](bool with_flags) {
        weft::config c = base;
        c.set("backend", "router");
        c.set("router.backends", "local, durable");
        if (with_flags) c.set("router.flags", flags);
        c.set("router.shadow_queue", "100000");
        return c;
    };
    weft::client<weft::router> no_flags(routed(false)), with_flags(routed(true));

    struct shadowing {
        weft::client<weft::router>& c;
        auto start(decltype(flow) w, payload in, weft::run_options o) {
            o.attributes = {{"shadow", "yes"}};
            return c.start(w, std::move(in), std::move(o));
        }
    } shadowed{with_flags};

    std::printf("router start() overhead, %d runs per round, best of %d rounds (median / p99 of start() alone, us)\n", runs, rounds);
    std::printf("%-44s %10s %10s %8s\n", "variant", "median", "p99", "ratio");
    figures best[4] = {{1e9, 1e9}, {1e9, 1e9}, {1e9, 1e9}, {1e9, 1e9}};
    for (int r = 0; r < rounds; ++r) {
        auto keep = [](figures& b, figures f) {
            if (f.median_us < b.median_us) b = f;
        };
        keep(best[0], measure(direct, runs, false));
        keep(best[1], measure(no_flags, runs, false));
        keep(best[2], measure(with_flags, runs, true));
        keep(best[3], measure(shadowed, runs / 4, true));
        with_flags.drain_shadows();
    }
    const char* names[] = {"weft::local through any_client", "router, no flag file", "router, flagd fractional, keyed",
                           "router, fractional + shadow to durable"};
    for (int i = 0; i < 4; ++i)
        std::printf("%-44s %10.2f %10.2f %8.2f\n", names[i], best[i].median_us, best[i].p99_us, best[i].median_us / best[0].median_us);
    const auto s = with_flags.shadows("bench_route");
    std::printf("shadows: started %llu matched %llu mismatched %llu dropped %llu\n", (unsigned long long)s.started,
                (unsigned long long)s.matched, (unsigned long long)s.mismatched, (unsigned long long)s.dropped);
    std::filesystem::remove_all(dir);
    return 0;
}
