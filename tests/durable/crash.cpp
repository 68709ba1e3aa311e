// The crash-point test: a child process drives runs of a diamond on one journal and SIGKILLs itself
// at a named point of the journal's writes (before a step's result commits, after it commits, while
// the run completes); the next child resumes on the same journal. After at least 100 kills and a
// last child that is not killed, every run must have finished with the right output, no step may
// have two results, every output must be built from the committed results, no step may have run
// again once its result was committed (each execution appends a line to a side file), and the
// transactional step's writes must be there exactly once per run: the committed execution's.
//
//     durable_crash_test [--kills 100] [--seconds 240] [--parallel 1] [--postgres]   bounded in kills, children and time
//
// --parallel N runs N children on the journal at once (several processes on one SQLite file, or on
// one PostgreSQL database): each starts its own keys, and any of them takes over the runs of a child
// that was killed. --postgres puts the journal in a database of its own on WEFT_POSTGRES_URL's server.
#include <weft/durable.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal_file.hpp"

extern char** environ;

using weft::step;

namespace {

int side_fd = -1;

std::string nonce() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
    return buf;
}

// Records one execution of a step body: "<run key> <step> <nonce>", one write, O_APPEND.
std::string mark(long n, std::string_view step) {
    std::string id = nonce();
    std::string line = std::to_string(n) + " " + std::string(step) + " " + id + "\n";
    if (::write(side_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
    return id;
}

struct trail { long n = 0; long value = 0; std::vector<std::string> marks; };
BOOST_DESCRIBE_STRUCT(trail, (), (n, value, marks))

struct seed { static constexpr std::string_view name = "seed";
    trail operator()(long n) const { return {n, n, {mark(n, name)}}; } };
struct doubled { static constexpr std::string_view name = "double";
    trail operator()(trail t) const { t.value *= 2; t.marks.push_back(mark(t.n, name)); return t; } };
// Transactional: its row in `effects` commits with its result, so each run has exactly one, the
// committed execution's, however often the body ran.
struct plus7 { static constexpr std::string_view name = "plus7";
    static constexpr weft::step_policy policy{.transactional = true};
    trail operator()(trail t) const {
        t.value += 7;
        t.marks.push_back(mark(t.n, name));
        weft::durable::transaction::current().exec("INSERT INTO effects(n, mark) VALUES($1, $2)", {t.n, t.marks.back()});
        return t; } };
struct join { static constexpr std::string_view name = "join";
    trail operator()(const trail& x, const trail& y) const {
        trail r{x.n, x.value + y.value, x.marks};
        r.marks.insert(r.marks.end(), y.marks.begin(), y.marks.end());
        r.marks.push_back(mark(x.n, name));
        return r; } };
constexpr auto diamond = weft::workflow<"crash_diamond">(step<seed> >> (step<doubled>, step<plus7>) >> step<join>);

// ---- the child: resume, start the runs the journal lacks, wait, or die at the chosen point ----

std::string kill_point;
int kill_at = 0;
std::atomic<int> hits{0};  // the hook runs on the engine's threads

// Slot `slot` of `parallel` children at once starts the keys n with n % parallel == slot, so that
// no two children start the same key; any child resumes any unfinished run no live child drives.
int child(const std::string& journal, const std::string& side, long runs, const std::string& point, int hit, int slot,
          int parallel) {
    side_fd = ::open(side.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (side_fd < 0) return 3;
    kill_point = point;
    kill_at = hit;
    weft::durable_detail::set_crash_hook([](std::string_view p) {
        if (p == kill_point && ++hits == kill_at) ::kill(::getpid(), SIGKILL);
    });
    // max_interrupts off: a step in flight at many of the kills is the point here, not a crash loop.
    weft::client<weft::durable> client(
        {.journal = journal, .threads = 2, .synchronous = "normal", .max_interrupts = 0, .resume = false});
    auto handles = client.resume(diamond);
    std::set<long> present;
    std::istringstream inputs(durable_test::query(journal, "SELECT substr(input, 2, length(input) - 2) FROM runs"));
    for (std::string line; std::getline(inputs, line);) present.insert(std::stol(line));
    for (long n = 1; n <= runs; ++n)
        if (n % parallel == slot && !present.count(n)) handles.push_back(client.start(diamond, n));
    for (auto& h : handles) h.wait();
    return 0;
}

// ---- the parent ----

pid_t spawn_child(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) return -1;
    return pid;
}

// Its exit code, 128 + the signal that killed it, -1 if it did not start, -2 if it outlived `limit`.
int wait_child(pid_t pid, std::chrono::seconds limit) {
    if (pid <= 0) return -1;
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid)
            return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        if (std::chrono::steady_clock::now() > until) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -2;
        }
        ::usleep(2000);
    }
}

int failures = 0;
void fail(const std::string& what) {
    if (++failures <= 20) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

int parent(int target_kills, int seconds, int parallel) {
    durable_test::journal_file j("crash");
    const std::string side = (durable_test::postgres() ? (std::filesystem::temp_directory_path() /
                                                           ("weft-durable-crash-" + std::to_string(::getpid()))).string()
                                                      : j.path) + ".executions";
    std::remove(side.c_str());
    {
        // The journal first (a SQLite file with tables of its own and no journal is another program's),
        // then the transactional step's table beside it (PostgreSQL: in public, not weft_durable).
        weft::client<weft::durable> opener({.journal = j.path});
        durable_test::query(j.path, std::string("CREATE TABLE ") + (durable_test::postgres() ? "public." : "") +
                                        "effects(n BIGINT NOT NULL, mark TEXT NOT NULL)");
    }
    const std::vector<std::string> points = {"result.before_commit", "result.after_commit", "run.before_complete",
                                             "run.after_complete"};
    const unsigned seed_value = std::random_device{}();
    std::mt19937 rng(seed_value);
    std::map<std::string, int> kills_at;
    int kills = 0, children = 0;
    long runs = 40;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    constexpr int max_children = 1000;
    while (kills < target_kills && children < max_children && std::chrono::steady_clock::now() < deadline &&
           failures == 0) {
        struct started {
            pid_t pid;
            std::string point;
            int hit;
        };
        std::vector<started> round;  // `parallel` children on the journal at once
        for (int slot = 0; slot < parallel; ++slot) {
            const std::string& point = points[static_cast<std::size_t>(children) % points.size()];
            const int hit = 1 + static_cast<int>(rng() % (point.starts_with("result") ? 16 : 4));
            ++children;
            round.push_back({spawn_child({"durable_crash_test", "--child", j.path, side, std::to_string(runs), point,
                                          std::to_string(hit), std::to_string(slot), std::to_string(parallel)}),
                             point, hit});
        }
        bool some_finished = false;
        for (auto& c : round) {
            const int rc = wait_child(c.pid, std::chrono::seconds(60));
            if (rc == 128 + SIGKILL) {
                ++kills;
                ++kills_at[c.point];
            } else if (rc == 0) {
                some_finished = true;
            } else {
                fail("a child (" + c.point + " #" + std::to_string(c.hit) + ") exited with " + std::to_string(rc));
            }
        }
        if (some_finished) runs += 20;  // its runs finished before the point was hit: more work for the next
    }
    const int last = wait_child(spawn_child({"durable_crash_test", "--child", j.path, side, std::to_string(runs), "none",
                                             "0", "0", "1"}),
                                std::chrono::seconds(120));
    if (last != 0) fail("the last child, which is not killed, exited with " + std::to_string(last));
    if (kills < target_kills) fail("only " + std::to_string(kills) + " kills in the time and children allowed");

    // Every run of 1..runs exists once and succeeded with the right value.
    std::map<long, std::string> run_of;  // key -> run id
    std::istringstream rows(durable_test::query(j.path, "SELECT id, input, state, ifnull(output, '') FROM runs"));
    std::map<std::string, weft::json::value> output_of;
    for (std::string line; std::getline(rows, line);) {
        std::vector<std::string> col;
        std::size_t start = 0;
        for (int c = 0; c < 3; ++c) {
            const std::size_t bar = line.find('|', start);
            col.push_back(line.substr(start, bar - start));
            start = bar + 1;
        }
        col.push_back(line.substr(start));
        const long n = weft::json::decode<std::vector<long>>(col[1]).at(0);
        if (run_of.count(n)) fail("two runs for key " + std::to_string(n));
        run_of[n] = col[0];
        if (col[2] != "succeeded") {
            fail("run " + col[0] + " (key " + std::to_string(n) + ") is " + col[2] + ": lost");
            continue;
        }
        const trail t = weft::json::decode<trail>(col[3]);
        if (t.value != 3 * n + 7) fail("run " + col[0] + " output value " + std::to_string(t.value));
        output_of[col[0]] = weft::json::parse(col[3]);
    }
    int lost = 0;
    for (long n = 1; n <= runs; ++n)
        if (!run_of.count(n)) {
            ++lost;
            fail("no run for key " + std::to_string(n) + ": lost");
        }
    lost += static_cast<int>(std::count_if(run_of.begin(), run_of.end(),
                                           [&](auto& kv) { return !output_of.count(kv.second); }));

    const int twice = std::stoi(durable_test::query(
        j.path, "SELECT count(*) FROM (SELECT 1 FROM step_results GROUP BY run_id, step HAVING count(*) > 1) AS twice"));
    if (twice != 0) fail(std::to_string(twice) + " steps have two results");

    // The committed result of each step: its own mark is the last of its trail.
    std::map<std::pair<long, std::string>, std::string> committed;
    std::map<std::string, long> key_of;
    for (auto& [n, id] : run_of) key_of[id] = n;
    std::istringstream results(durable_test::query(j.path, "SELECT run_id, step, state, output FROM step_results"));
    for (std::string line; std::getline(results, line);) {
        const auto a = line.find('|'), b = line.find('|', a + 1), c = line.find('|', b + 1);
        const std::string id = line.substr(0, a), stp = line.substr(a + 1, b - a - 1), state = line.substr(b + 1, c - b - 1);
        if (state != "succeeded") {
            fail("step " + stp + " of run " + id + " failed");
            continue;
        }
        committed[{key_of[id], stp}] = weft::json::decode<trail>(line.substr(c + 1)).marks.back();
    }
    for (auto& [n, id] : run_of) {
        if (!output_of.count(id)) continue;
        const trail t = weft::json::from_value<trail>(output_of[id]);
        const std::vector<std::string> expected = {committed[{n, "seed"}], committed[{n, "double"}], committed[{n, "seed"}],
                                                   committed[{n, "plus7"}], committed[{n, "join"}]};
        if (t.marks != expected) fail("run " + id + " was built from results other than the committed ones");
    }

    // Executions: the committed one is the last of its step (nothing ran once it was committed).
    std::map<std::pair<long, std::string>, std::vector<std::string>> executions;
    std::ifstream in(side);
    std::size_t lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
        std::istringstream f(line);
        long n = 0;
        std::string stp, id;
        if (f >> n >> stp >> id) executions[{n, stp}].push_back(id);
    }
    int reran = 0, unseen = 0;
    for (auto& [key, id] : committed) {
        auto& e = executions[key];
        auto at = std::find(e.begin(), e.end(), id);
        if (at == e.end()) {
            ++unseen;
            fail("the committed result of " + key.second + " for key " + std::to_string(key.first) + " has no execution");
        } else if (at + 1 != e.end()) {
            reran += static_cast<int>(e.end() - at - 1);
            fail(key.second + " for key " + std::to_string(key.first) + " ran again after its result was committed");
        }
    }

    // The transactional step's effects: one row per run, the committed execution's mark.
    std::map<long, std::vector<std::string>> effects;
    std::istringstream effect_rows(durable_test::query(j.path, std::string("SELECT n, mark FROM ") +
                                                               (durable_test::postgres() ? "public." : "") + "effects"));
    std::size_t effect_count = 0;
    for (std::string line; std::getline(effect_rows, line); ++effect_count) {
        const auto bar = line.find('|');
        effects[std::stol(line.substr(0, bar))].push_back(line.substr(bar + 1));
    }
    int effects_wrong = 0;
    for (auto& [n, id] : run_of) {
        const auto& e = effects[n];
        const auto& c = committed[{n, "plus7"}];
        if (e.size() != 1 || e[0] != c) {
            ++effects_wrong;
            fail("key " + std::to_string(n) + ": " + std::to_string(e.size()) + " effects rows of plus7, expected exactly the committed execution's");
        }
    }
    const std::size_t plus7_runs = std::accumulate(executions.begin(), executions.end(), std::size_t{0}, [](std::size_t a, auto& kv) {
        return a + (kv.first.second == "plus7" ? kv.second.size() : 0);
    });

    std::printf("durable crash test (%s, seed %u, %d at once): %d children, %d kills (", durable_test::postgres() ? "PostgreSQL" : "SQLite", seed_value, parallel, children, kills);
    for (auto& [p, k] : kills_at) std::printf("%s %d; ", p.c_str(), k);
    std::printf("), %ld runs, %zu step executions for %zu committed results\n", runs, lines, committed.size());
    std::printf("lost runs: %d, results recorded twice: %d, completed steps run again: %d, results without execution: %d\n",
                lost, twice, reran, unseen);
    std::printf("transactional step: %zu executions, %zu effects rows for %zu runs, runs without exactly one: %d\n", plus7_runs,
                effect_count, run_of.size(), effects_wrong);
    std::remove(side.c_str());
    std::printf("%d passed, %d failed\n", failures == 0 ? 1 : 0, failures == 0 ? 0 : 1);
    return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 9 && std::strcmp(argv[1], "--child") == 0)
        return child(argv[2], argv[3], std::stol(argv[4]), argv[5], std::atoi(argv[6]), std::atoi(argv[7]),
                     std::atoi(argv[8]));
    int kills = 100, seconds = 240, parallel = 1;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--postgres") == 0) ::setenv("WEFT_TEST_DURABLE_JOURNAL", "postgres", 1);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--kills") == 0) kills = std::atoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--parallel") == 0) parallel = std::max(1, std::atoi(argv[i + 1]));
    }
    return parent(kills, seconds, parallel);
}
