// The C++ side of the Hatchet interop, fault and benchmark runs:
//
//   hatchet_peer worker <sets> <slots> [name] [drain ms]  serves sets of workflows (comma-separated) until
//                                              SIGTERM, then drains; prints "ready <worker id>" once the engine accepts it
//        sets: python (hx-from-python, hx-py-fail, hx-metadata), mixed (C++ steps of hx-mixed), fault (hx-fault),
//              bench (hx-bench), limited (hx-limited), limited-declared (hx-limited with weft's limits),
//              rated, rated-declared (hx-rated, with a rate limit on WEFT_TEST_RATE_KEY)
//              drain-a, drain-b (hx-drain-a, hx-drain-b)
//   hatchet_peer run <case> <input JSON> [metadata JSON]   triggers a run (with that run metadata),
//                                              prints its output as one JSON line
//        cases: python-served, mixed, fault, metadata
//   hatchet_peer bench <runs> <parallel>       triggers hx-bench runs, then waits for all; prints
//                                              {"runs": n, "seconds": s}
//   hatchet_peer enqueue <runs> <parallel>     triggers hx-bench runs and exits without waiting (the benchmark's
//                                              queued-drain shape); prints {"runs": n, "seconds": s}
//
// Address and token file from WEFT_HATCHET_HOST_PORT / WEFT_HATCHET_TOKEN_FILE, replace_definitions
// from WEFT_HATCHET_REPLACE_DEFINITIONS. With
// OTEL_EXPORTER_OTLP_ENDPOINT set, spans go there (tests/hatchet/traces.py).
#include "workflows.hpp"
#ifdef WEFT_PEER_TRACES
#include <weft/cli/traces.hpp>
#endif

#include <boost/json/serialize.hpp>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <vector>

namespace {

std::atomic<bool> stop_flag{false};

template <class W>
void serve_only(weft::hatchet::worker& w, W wf, std::initializer_list<std::string_view> names) {
    std::vector<weft::erased_step> keep;
    for (const weft::erased_step& s : weft::step_table(wf))
        for (auto n : names)
            if (s.name() == n) keep.push_back(s);
    w.serve(weft::graph_of<W>, keep);
}

int worker(const std::string& set, int slots, std::string name, int drain_ms) {
    weft::hatchet::worker_options o{hx::options_from_env()};
    o.drain_timeout = std::chrono::milliseconds(drain_ms);
    if (set.find("limited-declared") != std::string::npos) o.limits.emplace("hx-limited", hx::limited_limits());
    if (set.find("rated-declared") != std::string::npos) {
        const char* key = std::getenv("WEFT_TEST_RATE_KEY");
        if (!key) throw std::invalid_argument("rated-declared needs WEFT_TEST_RATE_KEY, the engine's rate limit key");
        o.limits.emplace("hx-rated", hx::rated_limits(key));
    }
    o.concurrency = slots;
    o.worker_name = std::move(name);
    weft::hatchet::worker w(o);
    for (std::size_t at = 0; at <= set.size();) {
        std::size_t end = std::min(set.find(',', at), set.size());
        const std::string one = set.substr(at, end - at);
        at = end + 1;
        if (one == "python") {
            w.serve(hx::for_python);
            w.serve(hx::fail_for_python);
            w.serve(hx::metadata);
        } else if (one == "limited" || one == "limited-declared") w.serve(hx::limited);
        else if (one == "rated" || one == "rated-declared") w.serve(hx::rated);
        else if (one == "mixed") serve_only(w, hx::mixed, {"greet", "shout"});
        else if (one == "fault") w.serve(hx::fault);
        else if (one == "bench") w.serve(hx::bench);
        else if (one == "drain-a") w.serve(hx::drain_a);
        else if (one == "drain-b") w.serve(hx::drain_b);
        else throw std::invalid_argument("unknown worker set " + one);
    }
    std::signal(SIGTERM, [](int) { stop_flag = true; });
    std::signal(SIGINT, [](int) { stop_flag = true; });
    w.start();
    if (!w.wait_ready(std::chrono::seconds(30))) throw std::runtime_error("the engine did not accept the worker");
    std::cout << "ready " << w.id() << std::endl;
    while (!stop_flag) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    w.stop();
    return 0;
}

template <class W>
void print_run(W wf, const std::string& input, const std::string& metadata) {
    weft::client<weft::hatchet> c(hx::options_from_env());
    weft::run_options opts;
    if (!metadata.empty()) {
        const auto m = weft::json::decode<std::map<std::string, std::string>>(metadata);
        opts.metadata.insert(m.begin(), m.end());
    }
    auto r = c.start(wf, weft::json::decode<typename W::input>(input), std::move(opts));
    if (!r.wait_for(std::chrono::seconds(90))) throw std::runtime_error("run " + r.id() + " did not finish in 90 s");
    std::cout << weft::json::encode(r.get()) << std::endl;
}

// Triggers every run first (`parallel` threads), then waits for all: the queue is deep, so the
// figure is how fast the engine and the worker drain it.
int bench(int runs, int parallel) {
    weft::client<weft::hatchet> c(hx::options_from_env());
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::optional<weft::run<int>>> handles(runs);
    std::atomic<int> next{0}, bad{0};
    auto each = [&](auto fn) {
        next = 0;
        std::vector<std::thread> ts;
        for (int p = 0; p < parallel; ++p)
            ts.emplace_back([&] {
                for (int i; (i = next++) < runs;) fn(i);
            });
        for (auto& t : ts) t.join();
    };
    each([&](int i) { handles[i].emplace(c.start(hx::bench, i)); });
    each([&](int i) {
        if (handles[i]->get() != i) ++bad;
    });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "{\"runs\": " << runs << ", \"seconds\": " << s << ", \"wrong\": " << bad << "}" << std::endl;
    return bad ? 1 : 0;
}

// Triggers runs and returns: with no worker connected they stay queued in the engine.
int enqueue(int runs, int parallel) {
    weft::client<weft::hatchet> c(hx::options_from_env());
    auto t0 = std::chrono::steady_clock::now();
    std::atomic<int> next{0};
    std::vector<std::thread> ts;
    for (int p = 0; p < parallel; ++p)
        ts.emplace_back([&] {
            for (int i; (i = next++) < runs;) c.start(hx::bench, i);
        });
    for (auto& t : ts) t.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "{\"runs\": " << runs << ", \"seconds\": " << s << "}" << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) try {
    std::vector<std::string> a(argv + 1, argv + argc);
#ifdef WEFT_PEER_TRACES
    weft::cli::export_traces("");  // from OTEL_EXPORTER_OTLP_ENDPOINT; flushed at exit
#endif
    if (a.size() >= 3 && a[0] == "worker") return worker(a[1], std::stoi(a[2]), a.size() > 3 ? a[3] : "weft-peer", a.size() > 4 ? std::stoi(a[4]) : 0);
    if ((a.size() == 3 || a.size() == 4) && a[0] == "run") {
        const std::string metadata = a.size() == 4 ? a[3] : "";
        if (a[1] == "python-served") print_run(hx::python_served, a[2], metadata);
        else if (a[1] == "mixed") print_run(hx::mixed, a[2], metadata);
        else if (a[1] == "fault") print_run(hx::fault, a[2], metadata);
        else if (a[1] == "metadata") print_run(hx::metadata, a[2], metadata);
        else throw std::invalid_argument("unknown case " + a[1]);
        return 0;
    }
    if (a.size() == 3 && a[0] == "bench") return bench(std::stoi(a[1]), std::stoi(a[2]));
    if (a.size() == 3 && a[0] == "enqueue") return enqueue(std::stoi(a[1]), std::stoi(a[2]));
    std::cerr << "usage: hatchet_peer worker <set> <slots> [name] | run <case> <input JSON> [metadata JSON] | bench|enqueue <runs> <parallel>\n";
    return 2;
} catch (const std::exception& e) {
    std::cerr << "hatchet_peer: " << e.what() << std::endl;
    return 1;
}
