// The C++ side of the Celery interop tests (driven by tests/celery/interop.py):
//
//   celery_peer worker <queue> <concurrency> [visibility_timeout_s restore_interval_ms [prefetch_multiplier]]
//   celery_peer client <case> <cpp_queue> <py_queue> [args...]     prints one JSON line
//        (case metadata: run_options::metadata {"tenant": "globex", "trace_id": "t-42"})
//   celery_peer anyclient <x> <y>                                   WEFT_BACKEND=celery through any_client
//
// The Redis URL (with its password) comes from WEFT_REDIS_URL. The worker also reads
// WEFT_TEST_NODENAME (worker_options::hostname), WEFT_TEST_TASK_EVENTS=1 and WEFT_TEST_HEARTBEAT_MS.
// With OTEL_EXPORTER_OTLP_ENDPOINT set, both send their spans there (tests/celery/traces.py).
#include <weft/any_client.hpp>
#include <weft/celery.hpp>
#include <weft/json.hpp>
#ifdef WEFT_PEER_TRACES
#include <weft/cli/traces.hpp>
#endif

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "../metadata_text.hpp"

using weft::step;

namespace steps {
struct add {
    static constexpr std::string_view name = "weft.test.add";
    int operator()(int x, int y) const { return x + y; }
};
struct fail {
    static constexpr std::string_view name = "weft.test.fail";
    std::string operator()(const std::string& why) const { throw std::invalid_argument(why); }
};
struct to_text {
    static constexpr std::string_view name = "weft.test.to_text";
    std::string operator()(int x) const { return "n=" + std::to_string(x); }
};
struct boom {
    static constexpr std::string_view name = "weft.test.boom";
    int operator()(int) const { throw std::runtime_error("boom from C++"); }
};
// Fails twice, then returns how many attempts it took. Keyed by its argument, so tests do not interfere.
struct flaky {
    static constexpr std::string_view name = "weft.test.flaky";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 3, .initial = weft::milliseconds(300)}};
    int operator()(const std::string& key) const {
        static std::mutex m;
        static std::map<std::string, int> attempts;
        std::lock_guard lock(m);
        int n = ++attempts[key];
        if (n < 3) throw std::runtime_error("flaky attempt " + std::to_string(n));
        return n;
    }
};
struct slow {
    static constexpr std::string_view name = "weft.test.slow";
    int operator()(int ms) const {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        return ms;
    }
};
// A chord body for Python canvas: receives the header results as one list.
struct total {
    static constexpr std::string_view name = "weft.test.total";
    long operator()(const std::vector<long>& xs) const {
        long s = 0;
        for (long x : xs) s += x;
        return s;
    }
};
// Declared in C++, implemented by the Python worker (tests/celery/interop.py), routed to its queue.
struct py_mul {
    static constexpr std::string_view name = "weft.py.mul";
    int operator()(int, int) const { throw std::logic_error("weft.py.mul runs in Python"); }
};
struct py_double {
    static constexpr std::string_view name = "weft.py.double";
    int operator()(int) const { throw std::logic_error("weft.py.double runs in Python"); }
};
struct inc {
    static constexpr std::string_view name = "weft.test.inc";
    int operator()(int x) const { return x + 1; }
};
struct twice {
    static constexpr std::string_view name = "weft.test.twice";
    int operator()(int x) const { return 2 * x; }
};
// A join: one parameter per parent, in the order the parents were declared.
struct join2 {
    static constexpr std::string_view name = "weft.test.join2";
    int operator()(int a, int b) const { return a * 100 + b; }
};
// Works for up to `ms`, stopping early when asked (time limit, shutdown); returns the ms it worked.
struct sleepy {
    static constexpr std::string_view name = "weft.test.sleepy";
    int operator()(int ms) const {
        auto t0 = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(ms) && !weft::this_step::stop_requested())
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
    }
};
struct noop {
    static constexpr std::string_view name = "weft.bench.noop";
    int operator()(int x) const { return x; }
};
// The run's metadata as a first step and a later one read it.
struct tenant_of {
    static constexpr std::string_view name = "weft.test.tenant_of";
    std::string operator()(int) const { return metadata_text::tenant(); }
};
struct metadata_seen {
    static constexpr std::string_view name = "weft.test.metadata_seen";
    std::string operator()(const std::string& before) const { return before + "|" + metadata_text::entries(); }
};
// Python appends the tenant it reads from task.request.weft_metadata (interop.py).
struct py_tenant {
    static constexpr std::string_view name = "weft.py.tenant";
    std::string operator()(const std::string&) const { throw std::logic_error("weft.py.tenant runs in Python"); }
};
// An errback or a link callback for tests/celery/canvas.py: shows what it was called with.
struct echo {
    static constexpr std::string_view name = "weft.test.echo";
    std::string operator()(const std::string& s) const { return "echo:" + s; }
};
// One described struct parameter: a Python caller's kwargs are its members.
struct box {
    int w = 0, h = 0;
};
BOOST_DESCRIBE_STRUCT(box, (), (w, h))
struct area {
    static constexpr std::string_view name = "weft.test.area";
    int operator()(const box& b) const { return b.w * b.h; }
};
}  // namespace steps

constexpr auto wf_add = weft::workflow<"add">(step<steps::add>);
constexpr auto wf_fail = weft::workflow<"fail">(step<steps::fail>);
constexpr auto wf_boom = weft::workflow<"boom">(step<steps::add> >> step<steps::boom> >> step<steps::to_text>);
constexpr auto wf_flaky = weft::workflow<"flaky">(step<steps::flaky>);
constexpr auto wf_slow = weft::workflow<"slow">(step<steps::slow> >> step<steps::to_text>);
constexpr auto wf_total = weft::workflow<"total">(step<steps::total>);
constexpr auto wf_py_mul = weft::workflow<"py_mul">(step<steps::py_mul>);
// a >> (b, c) >> d >> e, with c on the Python worker: chain(a, chord(group(b, c), d), e).
constexpr auto wf_diamond = weft::workflow<"diamond">(step<steps::add> >> (step<steps::inc>, step<steps::py_double>) >>
                                                      step<steps::join2> >> step<steps::to_text>);
// (a, b) >> c: the client applies the chord itself.
constexpr auto wf_fan_in = weft::workflow<"fan_in">((step<steps::inc>, step<steps::twice>) >> step<steps::join2>);
// a >> (b, c): the run's output is both results.
constexpr auto wf_fan_out = weft::workflow<"fan_out">(step<steps::add> >> (step<steps::inc>, step<steps::twice>));
constexpr auto wf_sleepy = weft::workflow<"sleepy">(step<steps::sleepy>);
constexpr auto wf_echo = weft::workflow<"echo">(step<steps::echo>);
constexpr auto wf_area = weft::workflow<"area">(step<steps::area>);
constexpr auto wf_noop = weft::workflow<"noop">(step<steps::noop>);
constexpr auto wf_chain3 = weft::workflow<"chain3">(step<steps::noop> >> step<steps::inc> >> step<steps::twice>);
constexpr auto wf_slow_mixed =
    weft::workflow<"slow_mixed">(step<steps::slow> >> step<steps::py_double> >> step<steps::to_text>);
constexpr auto wf_mixed = weft::workflow<"mixed">(step<steps::add> >> step<steps::py_double> >> step<steps::to_text>);
// C++ >> Python >> C++: the metadata crosses the Python step to the last C++ one.
constexpr auto wf_metadata =
    weft::workflow<"metadata">(step<steps::tenant_of> >> step<steps::py_tenant> >> step<steps::metadata_seen>);
// What the C++ worker serves of it (a Python caller chains these two itself).
constexpr auto wf_metadata_cpp = weft::workflow<"metadata_cpp">(step<steps::tenant_of> >> step<steps::metadata_seen>);

namespace {

std::string redis_url() {
    const char* u = std::getenv("WEFT_REDIS_URL");
    if (!u) {
        std::cerr << "WEFT_REDIS_URL is not set: run through scripts/with-services --need redis\n";
        std::exit(2);
    }
    return u;
}

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

int run_worker(int argc, char** argv) {
    if (argc < 4) return 2;
    weft::celery::worker_options o;
    o.broker_url = redis_url();
    o.queues = {argv[2]};
    o.concurrency = static_cast<unsigned>(std::stoul(argv[3]));
    o.result_expires = std::chrono::seconds(600);
    if (argc >= 6) {
        o.visibility_timeout = std::chrono::seconds(std::stol(argv[4]));
        o.restore_interval = std::chrono::milliseconds(std::stol(argv[5]));
    }
    if (argc >= 7) o.prefetch_multiplier = static_cast<unsigned>(std::stoul(argv[6]));
    if (const char* dl = std::getenv("WEFT_TEST_DEAD_LETTER")) o.dead_letter = dl;
    if (const char* prefix = std::getenv("WEFT_TEST_KEYPREFIX")) o.global_keyprefix = o.result_keyprefix = prefix;
    if (const char* results = std::getenv("WEFT_TEST_RESULT_URL")) o.result_url = results;
    if (const char* node = std::getenv("WEFT_TEST_NODENAME")) o.hostname = node;
    if (const char* ev = std::getenv("WEFT_TEST_TASK_EVENTS")) o.task_events = std::string(ev) == "1";
    if (const char* hb = std::getenv("WEFT_TEST_HEARTBEAT_MS")) o.heartbeat_interval = std::chrono::milliseconds(std::stol(hb));
    if (const char* d = std::getenv("WEFT_TEST_DRAIN_MS")) o.drain_timeout = std::chrono::milliseconds(std::stol(d));
    weft::celery::worker w(o);
    w.serve(wf_add);
    w.serve(wf_fail);
    w.serve(wf_boom);
    w.serve(wf_flaky);
    w.serve(wf_slow);
    w.serve(wf_total);
    w.serve(wf_fan_in);
    w.serve(wf_noop);
    w.serve(wf_chain3);
    w.serve(wf_sleepy);
    w.serve(wf_metadata_cpp);
    w.serve(wf_echo);
    w.serve(wf_area);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    w.start();
    std::cout << "ready" << std::endl;
    while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    w.stop();
    auto s = w.stats();
    std::cerr << "worker stopped: succeeded=" << s.succeeded << " failed=" << s.failed << " retried=" << s.retried
              << " dead_lettered=" << s.dead_lettered << " restored=" << s.restored << std::endl;
    return 0;
}

template <class Run>
void print_steps(weft::json::object& out, const Run& r) {
    weft::json::object st;
    for (auto& s : r.steps()) st[s.name] = weft::to_string(s.state);
    out["steps"] = std::move(st);
}

int run_client(int argc, char** argv) {
    if (argc < 5) return 2;
    std::string which = argv[2];
    weft::celery::options o;
    o.broker_url = redis_url();
    o.queue = argv[3];
    o.routes = {{"weft.py.mul", argv[4]}, {"weft.py.double", argv[4]}, {"weft.py.tenant", argv[4]}};
    o.result_expires = std::chrono::seconds(600);
    weft::client<weft::celery> client(o);
    weft::json::object out;
    auto timeout = std::chrono::seconds(30);
    try {
        if (which == "py_mul") {
            auto r = client.start(wf_py_mul, {std::stoi(argv[5]), std::stoi(argv[6])});
            out["id"] = r.id();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["result"] = r.get();
            out["state"] = weft::to_string(r.state());
        } else if (which == "metadata") {
            auto r = client.start(wf_metadata, std::stoi(argv[5]), {.metadata = {{"tenant", "globex"}, {"trace_id", "t-42"}}});
            out["id"] = r.id();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["result"] = r.get();
        } else if (which == "mixed") {
            auto r = client.start(wf_mixed, {std::stoi(argv[5]), std::stoi(argv[6])});
            out["id"] = r.id();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["result"] = r.get();
            // A Python worker stores its result after it sends the chain on, so the last step can be
            // ready before the middle one reports: give the status a moment to settle.
            for (int i = 0; i < 50; ++i) {
                bool all = true;
                for (auto& s : r.steps()) all = all && s.state == weft::step_state::succeeded;
                if (all) break;
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            print_steps(out, r);
        } else if (which == "diamond") {
            // on_step as on the other backends: every step's settled state, each once.
            std::mutex m;
            weft::json::array succeeded;
            weft::run_options opts{.on_step = [&](const weft::step_event& e) {
                std::lock_guard lock(m);
                if (e.state == weft::step_state::succeeded) succeeded.push_back(weft::json::value(std::string(e.step)));
            }};
            auto r = client.start(wf_diamond, {std::stoi(argv[5]), std::stoi(argv[6])}, opts);
            out["id"] = r.id();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["result"] = r.get();
            auto seen = [&] {
                std::lock_guard lock(m);
                return succeeded.size();
            };
            for (int i = 0; i < 50 && seen() < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
            std::lock_guard lock(m);  // the watcher's last poll is in
            out["on_step"] = succeeded;
        } else if (which == "fan_in") {
            auto r = client.start(wf_fan_in, std::stoi(argv[5]));
            out["id"] = r.id();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["result"] = r.get();
        } else if (which == "fan_out") {
            auto r = client.start(wf_fan_out, {std::stoi(argv[5]), std::stoi(argv[6])});
            out["id"] = r.id();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            auto [b, c] = r.get();
            out["result"] = weft::json::array{b, c};
        } else if (which == "boom") {
            auto r = client.start(wf_boom, {1, 2});
            out["id"] = r.id();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["state"] = weft::to_string(r.state());
            print_steps(out, r);
            try {
                (void)r.get();
                out["error"] = "no exception";
            } catch (const weft::step_failed& e) {
                out["error"] = e.what();
                out["failed_step"] = e.step();
            }
        } else if (which == "many") {
            // start_many: 50 runs in one round trip, each its own handle.
            std::vector<std::tuple<int, int>> inputs;
            for (int i = 0; i < 50; ++i) inputs.emplace_back(i, i);
            auto runs = client.start_many(wf_add, std::span<const std::tuple<int, int>>(inputs));
            weft::json::array results;
            for (auto& r : runs) {
                if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
                results.push_back(r.get());
            }
            out["id"] = runs.at(0).id();
            out["result"] = std::move(results);
        } else if (which == "flaky") {
            auto r = client.start(wf_flaky, std::string(argv[5]));
            out["id"] = r.id();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["result"] = r.get();
            out["attempts"] = r.steps().at(0).attempts;
        } else if (which == "cancel") {
            auto r = client.start(wf_slow, std::stoi(argv[5]));
            out["id"] = r.id();
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            r.cancel();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["state"] = weft::to_string(r.state());
            print_steps(out, r);
            try {
                (void)r.get();
                out["error"] = "no exception";
            } catch (const weft::run_cancelled& e) {
                out["error"] = e.what();
            }
        } else if (which == "cancel_mixed") {
            auto r = client.start(wf_slow_mixed, std::stoi(argv[5]));
            out["id"] = r.id();
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            r.cancel();
            if (!r.wait_for(timeout)) throw std::runtime_error("timed out");
            out["state"] = weft::to_string(r.state());
            print_steps(out, r);
        } else {
            std::cerr << "unknown client case " << which << "\n";
            return 2;
        }
    } catch (const std::exception& e) {
        out["exception"] = e.what();
        std::cout << weft::json::value(out) << std::endl;
        return 1;
    }
    std::cout << weft::json::value(out) << std::endl;
    return 0;
}

// celery_peer bench-enqueue <queue> <n> [batch]: n runs of a one-step workflow, through
// client.start() one at a time, or client.start_many() `batch` runs a call.
int bench_enqueue(int argc, char** argv) {
    weft::celery::options o;
    o.broker_url = redis_url();
    o.queue = argv[2];
    o.result_expires = std::chrono::seconds(600);
    weft::client<weft::celery> client(o);
    int n = std::stoi(argv[3]), batch = argc >= 5 ? std::stoi(argv[4]) : 0;
    std::vector<int> inputs(static_cast<std::size_t>(batch));
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; i += batch ? batch : 1) {
        if (!batch) {
            (void)client.start(wf_noop, i);
            continue;
        }
        for (int k = 0; k < batch; ++k) inputs[static_cast<std::size_t>(k)] = i + k;
        if (client.start_many(wf_noop, std::span<const int>(inputs)).size() != inputs.size()) return 1;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "{\"enqueued\": " << n << ", \"seconds\": " << s << "}" << std::endl;
    return 0;
}

// celery_peer bench-drain <queue> <n> <concurrency> [prefetch_multiplier]: a worker drains n queued no-ops.
int bench_drain(int argc, char** argv) {
    weft::celery::worker_options o;
    o.broker_url = redis_url();
    o.queues = {argv[2]};
    o.concurrency = static_cast<unsigned>(std::stoul(argv[4]));
    if (argc >= 6) o.prefetch_multiplier = static_cast<unsigned>(std::stoul(argv[5]));
    o.result_expires = std::chrono::seconds(600);
    std::uint64_t n = std::stoull(argv[3]);
    weft::celery::worker w(o);
    w.serve(wf_noop);
    auto t0 = std::chrono::steady_clock::now();
    w.start();
    while (w.stats().succeeded < n && std::chrono::steady_clock::now() - t0 < std::chrono::minutes(5))
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    w.stop();
    std::cout << "{\"done\": " << w.stats().succeeded << ", \"seconds\": " << s << "}" << std::endl;
    return 0;
}

// celery_peer bench-chain <cpp_queue> <n>: median latency of a 3-step chain, in ms.
int bench_chain(int argc, char** argv) {
    weft::celery::options o;
    o.broker_url = redis_url();
    o.queue = argv[2];
    o.result_expires = std::chrono::seconds(600);
    weft::client<weft::celery> client(o);
    int n = std::stoi(argv[3]);
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        auto r = client.start(wf_chain3, i);
        if (!r.wait_for(std::chrono::seconds(10)) || r.get() != 2 * (i + 1)) return 1;
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::cout << "{\"median_ms\": " << ms[ms.size() / 2] << "}" << std::endl;
    return 0;
}

int run_any_client(int argc, char** argv) {
    if (argc < 4) return 2;
    try {
        auto client = weft::any_client::from_env();
        auto r = client.start(wf_add, {std::stoi(argv[2]), std::stoi(argv[3])});
        if (!r.wait_for(std::chrono::seconds(30))) throw std::runtime_error("timed out");
        weft::json::object out;
        out["backend"] = std::string(client.backend());
        out["id"] = r.id();
        out["result"] = r.get();
        std::cout << weft::json::value(out) << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cout << "{\"exception\": " << weft::json::value(std::string(e.what())) << "}" << std::endl;
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: celery_peer worker|client|anyclient ...\n";
        return 2;
    }
    std::string mode = argv[1];
#ifdef WEFT_PEER_TRACES
    weft::cli::export_traces("");  // from OTEL_EXPORTER_OTLP_ENDPOINT; flushed at exit
#endif
    if (mode == "worker") return run_worker(argc, argv);
    if (mode == "client") return run_client(argc, argv);
    if (mode == "anyclient") return run_any_client(argc, argv);
    if (mode == "bench-enqueue" && argc >= 4) return bench_enqueue(argc, argv);
    if (mode == "bench-drain" && argc >= 5) return bench_drain(argc, argv);
    if (mode == "bench-chain" && argc >= 4) return bench_chain(argc, argv);
    return 2;
}
