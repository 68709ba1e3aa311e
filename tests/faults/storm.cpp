// Faults under load (tests/faults/storm.py runs it): thousands of runs in flight while workers are
// killed with SIGKILL and the server restarts.
//
//   storm worker --backend <b> ...   a weft::cli worker serving `storm`
//   storm drive <runs> <seconds>     starts <runs> runs through any_client (WEFT_BACKEND), prints
//                                    {"seq", "id"} per run, waits for them all within <seconds>, then
//                                    prints one {"seq", "state", "error"} line per run that did not
//                                    succeed with the right output, and a summary line
//
// Each step appends "<seq> <step> <pid>" to WEFT_TEST_EXEC_LOG when its body has finished (one
// O_APPEND write), so the script can count executions per step, duplicates included.
#include <weft/cli.hpp>
#include <weft/any_client.hpp>
#include <weft/weft.hpp>

#include "../exec_log.hpp"

#include <boost/describe.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace storm {

struct tagged {
    int seq = 0;
    long weight = 0;
};
BOOST_DESCRIBE_STRUCT(tagged, (), (seq, weight))

inline void record(int seq, std::string_view step) {
    if (const char* ms = std::getenv("WEFT_TEST_STEP_MS")) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(ms)));
    test_exec_log::append(std::to_string(seq) + " " + std::string(step) + " " + std::to_string(::getpid()));
}

// A killed worker's attempt comes back as a failure (a timeout) or a redelivery: retries cover it.
inline constexpr weft::step_policy resilient{
    .retry = {.max_attempts = 30, .initial = std::chrono::milliseconds(200), .multiplier = 1.5, .maximum = std::chrono::seconds(2)},
    .timeout = std::chrono::seconds(30)};

struct tag {
    static constexpr std::string_view name = "storm.tag";
    static constexpr weft::step_policy policy = resilient;
    tagged operator()(int seq) const {
        record(seq, name);
        return {seq, long(seq % 97) * 3};
    }
};
struct total {
    static constexpr std::string_view name = "storm.total";
    static constexpr weft::step_policy policy = resilient;
    long operator()(const tagged& t) const {
        record(t.seq, name);
        return t.weight * 1000 + t.seq;
    }
};
inline long expected(int seq) { return long(seq % 97) * 3 * 1000 + seq; }

constexpr auto flow = weft::workflow<"storm">(weft::step<tag> >> weft::step<total>);

}  // namespace storm

namespace {

int drive(int runs, double seconds) {
    auto client = weft::any_client::from_env();
    struct started {
        int seq;
        weft::run<long> run;
    };
    std::vector<started> all;
    int start_errors = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int seq = 0; seq < runs; ++seq) {
        // A start refused while the server is away is retried, as a caller would: the run must exist.
        for (int attempt = 1;; ++attempt) {
            try {
                auto r = client.start(storm::flow, seq);
                std::printf("{\"seq\": %d, \"id\": \"%s\"}\n", seq, r.id().c_str());
                all.push_back({seq, r});
                break;
            } catch (const std::exception& e) {
                ++start_errors;
                if (attempt == 60) {
                    std::printf("{\"seq\": %d, \"state\": \"not started\", \"error\": \"%s\"}\n", seq, e.what());
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
            }
        }
    }
    std::fflush(stdout);
    const auto started_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "storm: %zu runs started in %.1f s (%d refused starts retried)\n", all.size(), started_s, start_errors);
    const auto deadline = t0 + std::chrono::milliseconds(long(seconds * 1000));
    int succeeded = 0, failed = 0, unfinished = 0, wrong = 0, wait_errors = 0;
    for (auto& s : all) {
        // A handle's wait throws while the server is away (kit::remote_run): the run is not lost, the
        // caller waits again, as this one does until the deadline.
        bool ended = false;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            try {
                ended = s.run.wait_for(std::max(left, std::chrono::milliseconds(1)));
                break;
            } catch (const std::exception&) {
                ++wait_errors;
                if (std::chrono::steady_clock::now() >= deadline) break;
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
            }
        }
        if (!ended) {
            ++unfinished;
            std::printf("{\"seq\": %d, \"id\": \"%s\", \"state\": \"unfinished\"}\n", s.seq, s.run.id().c_str());
            continue;
        }
        try {
            const long v = s.run.get();
            if (v == storm::expected(s.seq)) {
                ++succeeded;
            } else {
                ++wrong;
                std::printf("{\"seq\": %d, \"id\": \"%s\", \"state\": \"wrong\", \"error\": \"%ld\"}\n", s.seq, s.run.id().c_str(), v);
            }
        } catch (const std::exception& e) {
            ++failed;
            std::string what = e.what();
            for (auto& ch : what)
                if (ch == '"' || ch == '\\' || ch == '\n') ch = ' ';
            std::printf("{\"seq\": %d, \"id\": \"%s\", \"state\": \"failed\", \"error\": \"%s\"}\n", s.seq, s.run.id().c_str(),
                        what.c_str());
        }
    }
    const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"summary\": true, \"runs\": %d, \"started\": %zu, \"succeeded\": %d, \"failed\": %d, \"unfinished\": %d, "
                "\"wrong\": %d, \"wait_errors\": %d, \"seconds\": %.1f}\n",
                runs, all.size(), succeeded, failed, unfinished, wrong, wait_errors, total_s);
    return succeeded == runs ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::string_view(argv[1]) == "drive") {
        if (argc != 4) {
            std::fprintf(stderr, "usage: storm drive <runs> <seconds>\n");
            return 2;
        }
        try {
            return drive(std::atoi(argv[2]), std::atof(argv[3]));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "FAIL %s\n", e.what());
            return 1;
        }
    }
    return weft::cli::main(argc, argv, storm::flow);
}
