// A live migration between two real backends, under load (tests/router/migration.py runs it):
//
//   migration worker --backend <b> ...   a weft::cli worker serving the workflows below
//   migration drive <from> <to> <flags file> <seconds per phase>
//
// `drive` streams runs through weft::client<router> while it rewrites the flag file: the route flag
// goes 0 -> 10 -> 50 -> 100 % to <to>, and two bad edits (a syntax error, a rollback) come in
// between and must be refused. It checks that every run succeeds with the right output, that each
// run went where the flag in force sent its key, that the split stays within tolerance, that no
// sticky key moves back, and that the first phase's runs are still readable at 100 %. Then a shadow
// phase: 0 mismatches for the deterministic workflow, every run caught when a step diverges on the
// candidate, and the workflow with a side-effect step never shadowed. It prints one JSON line per run
// (seq, id, backend) for the exactly-once check, which the script makes against the steps' log.
#include <weft/cli.hpp>
#include <weft/router.hpp>
#include <weft/run_description.hpp>
#include <weft/telemetry.hpp>
#include <weft/weft.hpp>

#include "../exec_log.hpp"

#include <boost/describe.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unistd.h>

namespace mig {

struct job {
    int seq = 0;
    std::string key;
    std::string diverge_on;  // the backend on which `score` answers differently; empty: none
};
BOOST_DESCRIBE_STRUCT(job, (), (seq, key, diverge_on))

struct tagged {
    int seq = 0;
    std::string key;
    std::string diverge_on;
    long weight = 0;
};
BOOST_DESCRIBE_STRUCT(tagged, (), (seq, key, diverge_on, weight))

struct result {
    int seq = 0;
    std::string key;
    long score = 0;
};
BOOST_DESCRIBE_STRUCT(result, (), (seq, key, score))

// Each execution appends "<seq> <step> <side>" to the execution log.
inline void record(int seq, std::string_view step) {
    const char* side = std::getenv("WEFT_TEST_SIDE");
    test_exec_log::append(std::to_string(seq) + " " + std::string(step) + " " + (side ? side : "?"));
}

inline long expected_weight(const job& j) { return long(j.key.size()) * 3 + j.seq % 11; }
inline long expected_score(const job& j) { return expected_weight(j) * 7 + j.seq; }

struct tag {
    static constexpr std::string_view name = "migrate.tag";
    tagged operator()(const job& j) const {
        record(j.seq, name);
        return {j.seq, j.key, j.diverge_on, expected_weight(j)};
    }
};
struct score {
    static constexpr std::string_view name = "migrate.score";
    result operator()(const tagged& t) const {
        record(t.seq, name);
        const char* side = std::getenv("WEFT_TEST_SIDE");
        const bool diverge = !t.diverge_on.empty() && side && t.diverge_on == side;
        return {t.seq, t.key, t.weight * 7 + t.seq + (diverge ? 1 : 0)};
    }
};
// Sends a notice: running it twice would send two, so a shadow must not repeat it.
struct notify {
    static constexpr std::string_view name = "migrate.notify";
    static constexpr weft::step_policy policy{.side_effects = true};
    result operator()(const result& r) const {
        record(r.seq, name);
        return r;
    }
};

constexpr auto flow = weft::workflow<"migrate">(weft::step<tag> >> weft::step<score>);
constexpr auto notified = weft::workflow<"migrate_notified">(weft::step<tag> >> weft::step<score> >> weft::step<notify>);

}  // namespace mig

namespace {

int failures = 0;
void check(bool ok, const std::string& what) {
    if (!ok) {
        ++failures;
        std::fprintf(stderr, "FAIL %s\n", what.c_str());
    }
}

// The flag file of one phase: `pct` percent of keys to `to`, sticky by the run's key; `more`: further
// flags (",\n  \"key\": {...}").
std::string route_flags(const std::string& from, const std::string& to, int pct, const std::string& more = {}) {
    return "{\n  \"$schema\": \"https://flagd.dev/schema/v0/flags.json\",\n  \"flags\": {\n"
           "    \"weft.route.migrate\": {\n"
           "      \"state\": \"ENABLED\",\n"
           "      \"variants\": {\"" + from + "\": \"" + from + "\", \"" + to + "\": \"" + to + "\"},\n"
           "      \"defaultVariant\": \"" + from + "\",\n"
           "      \"targeting\": {\"fractional\": [[\"" + from + "\", " + std::to_string(100 - pct) + "], [\"" + to + "\", " +
           std::to_string(pct) + "]]}\n"
           "    }" + more + "\n  }\n}\n";
}

// Replaces the file in one step, as a deploy tool does (a reader never sees half a file).
void write_flags(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path);
}

struct started {
    int seq;
    std::string key;
    std::string backend;  // from the run's id
    std::string id;
    int phase;
    std::chrono::steady_clock::time_point at;
    weft::run<mig::result> run;
};

std::string backend_of_id(const std::string& id) {
    auto r = weft::run_id::parse(id);
    return r ? std::string(r->backend) : std::string();
}

int drive(const std::string& from, const std::string& to, const std::string& flags_path, double phase_s) {
    weft::telemetry::collect_metrics(true);
    write_flags(flags_path, route_flags(from, to, 0));
    weft::config c = weft::config::from_env();
    c.set("backend", "router");
    c.set("router.backends", from + ", " + to);
    c.set("router.flags", flags_path);
    c.set("router.flags_poll_ms", "100");
    weft::client<weft::router> client(c);

    // The flag sets of the phases, as the test evaluates them itself: where each key must go.
    const int percentages[] = {0, 10, 50, 100};
    std::vector<weft::flags::flag_set> phase_sets;
    for (int p : percentages) phase_sets.push_back(weft::flags::flag_set::parse(route_flags(from, to, p), "phase"));

    constexpr int keys = 400;
    std::vector<std::string> key_names;
    for (int k = 0; k < keys; ++k) key_names.push_back("tenant-" + std::to_string(k));

    std::mutex m;
    std::deque<started> in_flight;
    std::vector<started> done;
    std::atomic<bool> starting{true};
    // Set once every starter has returned: a starter may still be inside start() when `starting`
    // goes false, and its run must still find a waiter.
    std::atomic<bool> started_all{false};
    std::atomic<int> phase{0};
    std::atomic<int> seq{0};
    std::vector<std::chrono::steady_clock::time_point> changed(4);
    changed[0] = std::chrono::steady_clock::now();

    // Waiters: results come back while new runs keep starting.
    std::vector<std::thread> waiters;
    for (int w = 0; w < 4; ++w)
        waiters.emplace_back([&] {
            for (;;) {
                std::optional<started> s;
                const bool all = started_all;  // read first: an empty queue after it is final
                {
                    std::lock_guard l(m);
                    if (!in_flight.empty()) {
                        s.emplace(std::move(in_flight.front()));
                        in_flight.pop_front();
                    }
                }
                if (!s) {
                    if (all) return;
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                    continue;
                }
                const mig::job j{s->seq, s->key, ""};
                try {
                    if (!s->run.wait_for(std::chrono::seconds(120))) {
                        check(false, "run " + s->id + " did not end within 120 s");
                    } else {
                        const mig::result r = s->run.get();
                        check(r.seq == j.seq && r.key == j.key && r.score == mig::expected_score(j),
                              "run " + s->id + ": wrong output");
                    }
                } catch (const std::exception& e) {
                    check(false, "run " + s->id + " failed: " + e.what());
                }
                std::lock_guard l(m);
                done.push_back(std::move(*s));
            }
        });

    // The stream: one run every 1/rate s from a few starter threads, keys drawn at random.
    const double rate = 16;  // runs per second
    std::vector<std::thread> starters;
    for (int t = 0; t < 2; ++t)
        starters.emplace_back([&, t] {
            std::mt19937 rng(1234 + t);
            std::uniform_int_distribution<int> pick(0, keys - 1);
            auto next = std::chrono::steady_clock::now();
            while (starting) {
                next += std::chrono::microseconds(long(2e6 / rate));
                std::this_thread::sleep_until(next);
                const int n = seq++;
                const std::string& key = key_names[pick(rng)];
                try {
                    const int ph = phase.load();
                    const auto at = std::chrono::steady_clock::now();  // before the router decides
                    auto r = client.start(mig::flow, mig::job{n, key, ""}, {.key = key});
                    started s{n, key, backend_of_id(r.id()), r.id(), ph, at, r};
                    std::lock_guard l(m);
                    in_flight.push_back(std::move(s));
                } catch (const std::exception& e) {
                    check(false, "start of run " + std::to_string(n) + " failed: " + e.what());
                }
            }
        });

    auto sleep_s = [](double s) { std::this_thread::sleep_for(std::chrono::milliseconds(long(s * 1000))); };
    for (int p = 1; p < 4; ++p) {
        sleep_s(phase_s / 2);
        if (p == 2) {
            // Bad edits in flight: a syntax error, then a rollback (10 % back to 5 %): both refused.
            write_flags(flags_path, route_flags(from, to, 10).substr(0, 120));
            sleep_s(0.5);
            const std::string err = client.backend().flags_error();
            check(err.find(":") != std::string::npos && !err.empty(), "a broken flag file was not reported: '" + err + "'");
            std::fprintf(stderr, "refused (syntax): %s\n", err.c_str());
            write_flags(flags_path, route_flags(from, to, 5));
            sleep_s(0.5);
            const std::string err2 = client.backend().flags_error();
            check(err2.find("move back") != std::string::npos, "a rollback was not refused: '" + err2 + "'");
            std::fprintf(stderr, "refused (rollback): %s\n", err2.c_str());
        }
        sleep_s(phase_s / 2);
        write_flags(flags_path, route_flags(from, to, percentages[p]));
        changed[p] = std::chrono::steady_clock::now();
        phase = p;
        std::fprintf(stderr, "phase %d: %d%% to %s (runs so far: %d)\n", p, percentages[p], to.c_str(), seq.load());
    }
    sleep_s(phase_s);
    starting = false;
    for (auto& t : starters) t.join();
    started_all = true;
    for (auto& t : waiters) t.join();

    // Where each run went, against the flag in force: a run started 400 ms after a change (the
    // router checks the file every 100 ms) and before the next one is judged by that phase's flag.
    std::map<std::string, std::vector<const started*>> by_key;
    std::sort(done.begin(), done.end(), [](const started& a, const started& b) { return a.at < b.at; });
    for (int p = 0; p < 4; ++p) {
        int n = 0, on_to = 0, wrong = 0;
        std::set<std::string> distinct;
        const auto from_t = changed[p] + std::chrono::milliseconds(p == 0 ? 0 : 400);
        const auto to_t = p == 3 ? std::chrono::steady_clock::time_point::max() : changed[p + 1];
        for (auto& s : done) {
            if (s.at < from_t || s.at >= to_t) continue;
            ++n;
            distinct.insert(s.key);
            on_to += s.backend == to;
            weft::flags::context ctx{s.key, {}};
            ctx.attributes["workflow"] = "migrate";
            const auto e = phase_sets[p].evaluate("weft.route.migrate", ctx);
            if (std::string(e.value.as_string()) != s.backend) ++wrong;
        }
        const double pct = percentages[p], observed = n ? 100.0 * on_to / n : 0;
        // Keys are drawn uniformly, so the share of runs on `to` is a binomial over the keys seen:
        // within 3 standard deviations (plus 2 points for the draw of runs per key).
        const double sigma = 100 * std::sqrt(pct / 100 * (1 - pct / 100) / std::max<std::size_t>(1, distinct.size()));
        const double tolerance = 3 * sigma + 2;
        std::fprintf(stderr, "phase %d (%g%%): %d runs, %zu keys, %.1f%% on %s (tolerance +-%.1f), %d against the flag\n", p,
                     pct, n, distinct.size(), observed, to.c_str(), tolerance, wrong);
        check(n >= 10, "phase " + std::to_string(p) + ": only " + std::to_string(n) + " runs");
        check(std::abs(observed - pct) <= tolerance, "phase " + std::to_string(p) + ": split " + std::to_string(observed) + "%");
        check(wrong == 0, "phase " + std::to_string(p) + ": " + std::to_string(wrong) + " runs went against the flag");
    }
    for (auto& s : done) by_key[s.key].push_back(&s);
    int back = 0;
    for (auto& [k, runs] : by_key) {
        bool moved = false;
        for (auto* s : runs) {
            if (s->backend == to) moved = true;
            else if (moved) ++back;
        }
    }
    check(back == 0, std::to_string(back) + " runs of sticky keys went back to " + from);

    // At 100 %: the first phase's runs are still there, on the backend that ran them.
    int read = 0;
    for (auto& s : done) {
        if (s.backend != from || read >= 20) continue;
        try {
            const weft::run_description d = client.describe(s.id);
            check(d.state == weft::run_state::succeeded, "describe " + s.id + ": not succeeded");
            check(d.output.is_object() && d.output.as_object().at("seq").to_number<int>() == s.seq, "describe " + s.id + ": output");
            auto again = client.attach(mig::flow, s.id);
            check(again.get().seq == s.seq, "attach " + s.id);
            ++read;
        } catch (const std::exception& e) {
            check(false, "describe/attach " + s.id + " after 100%: " + e.what());
        }
    }
    check(read > 0, "no run of the first phase to read back");

    for (auto& s : done) std::printf("{\"seq\": %d, \"id\": \"%s\", \"backend\": \"%s\"}\n", s.seq, s.id.c_str(), s.backend.c_str());
    std::fprintf(stderr, "migration: %zu runs, %d started\n", done.size(), seq.load());
    check(int(done.size()) == seq.load(), "runs lost: started " + std::to_string(seq.load()) + ", ended " + std::to_string(done.size()));

    // Shadow phase: everything on `to`, every run shadowed on `from`.
    write_flags(flags_path, route_flags(from, to, 100,
                                        ",\n    \"weft.shadow.migrate\": {\"state\": \"ENABLED\", \"variants\": {\"on\": \"" + from +
                                            "\", \"off\": \"\"}, \"defaultVariant\": \"on\", \"metadata\": {\"compareIgnore\": \"/nothing/*\"}}"
                                            ",\n    \"weft.shadow.migrate_notified\": {\"state\": \"ENABLED\", \"variants\": {\"on\": \"" + to +
                                            "\"}, \"defaultVariant\": \"on\"}"));
    sleep_s(0.5);
    check(client.decide("migrate", "k").shadow == from, "the shadow flags were refused: " + client.backend().flags_error());
    const auto d = client.decide("migrate", "tenant-1");
    check(d.backend == to && d.shadow == from, "decide: " + d.backend + " / " + d.shadow + " (" + d.why + "; " + d.shadow_why + ")");
    const int base = seq.load();
    std::vector<weft::run<mig::result>> primaries;
    for (int i = 0; i < 12; ++i) {
        const int n = base + i;
        primaries.push_back(client.start(mig::flow, mig::job{n, key_names[i], i < 6 ? "" : from}, {.key = key_names[i]}));
        std::printf("{\"seq\": %d, \"id\": \"%s\", \"backend\": \"%s\", \"shadowed\": true}\n", n,
                    primaries.back().id().c_str(), backend_of_id(primaries.back().id()).c_str());
    }
    auto side = client.start(mig::notified, mig::job{base + 12, "tenant-x", ""}, {.key = "tenant-x"});
    std::printf("{\"seq\": %d, \"id\": \"%s\", \"backend\": \"%s\", \"notified\": true}\n", base + 12, side.id().c_str(),
                backend_of_id(side.id()).c_str());
    for (int i = 0; i < 12; ++i) {
        const mig::result r = primaries[i].get();
        // The caller's result is the primary's, whatever the shadow does.
        check(r.score == mig::expected_score({base + i, key_names[i], ""}), "shadowed run " + std::to_string(base + i) + ": output changed");
    }
    check(side.get().seq == base + 12, "the notified run");
    client.drain_shadows();
    const auto counts = client.shadows("migrate");
    const auto skipped = client.shadows("migrate_notified");
    std::fprintf(stderr, "shadows: started %llu matched %llu mismatched %llu errors %llu dropped %llu; notified skipped %llu\n",
                 (unsigned long long)counts.started, (unsigned long long)counts.matched, (unsigned long long)counts.mismatched,
                 (unsigned long long)counts.errors, (unsigned long long)counts.dropped, (unsigned long long)skipped.skipped);
    check(counts.started == 12 && counts.matched == 6 && counts.mismatched == 6 && counts.errors == 0,
          "shadow counts: 6 deterministic runs match, 6 diverging runs are caught");
    check(skipped.skipped == 1 && skipped.started == 0, "the workflow with a side-effect step was shadowed");
    const std::string metrics = weft::telemetry::metrics_text();
    check(metrics.find("weft_shadow_runs_total{backend=\"" + from + "\",workflow=\"migrate\",outcome=\"mismatched\"} 6") !=
              std::string::npos,
          "metrics: no weft_shadow_runs_total{outcome=mismatched} 6 in\n" + metrics);
    std::printf("{\"shadow_started\": %llu}\n", (unsigned long long)counts.started);
    // Shadows off before the old side drains: a shadow sent to a backend without workers would wait
    // in its queue for ever.
    write_flags(flags_path, route_flags(from, to, 100));
    std::fprintf(stderr, "migration %s -> %s: %s\n", from.c_str(), to.c_str(), failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::string_view(argv[1]) == "drive") {
        if (argc != 6) {
            std::fprintf(stderr, "usage: migration drive <from> <to> <flags file> <seconds per phase>\n");
            return 2;
        }
        try {
            return drive(argv[2], argv[3], argv[4], std::atof(argv[5]));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "FAIL %s\n", e.what());
            return 1;
        }
    }
    return weft::cli::main(argc, argv, mig::flow, mig::notified);
}
