// A journal that cannot be used gives an error naming the file and what to do, and loses nothing:
// a file that is not a database, a damaged one, another program's database, a locked one (at open
// and in the middle of a run).
#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <sched.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft/durable.hpp>

#include "../engine_steps.hpp"
#include "journal_file.hpp"

using weft::step;
using durable_test::journal_file;
using durable_test::query;

namespace {

struct twice { static constexpr std::string_view name = "twice"; int operator()(int x) const { return 2 * x; } };
constexpr auto wf = weft::workflow<"twice">(step<twice>);

std::string open_error(const std::string& path, std::chrono::milliseconds busy = std::chrono::milliseconds(5000)) {
    try {
        weft::client<weft::durable> client({.journal = path, .busy_timeout = busy});
        (void)client.start(wf, 1).get();
    } catch (const weft::durable::journal_error& e) {
        CHECK(e.path() == path);
        return e.what();
    }
    return "no error";
}

TEST_CASE("a journal file that is not a database is refused, naming the file and how to recover") {
    journal_file j("garbage");
    std::ofstream(j.path) << std::string(8192, 'x');
    const std::string e = open_error(j.path);
    CHECK_THAT(e, Catch::StartsWith("weft: durable: the journal '" + j.path + "' is corrupted or is not a SQLite database"));
    CHECK_THAT(e, Catch::Contains("restore it from a backup or salvage it with `sqlite3 " + j.path + " .recover`"));
    CHECK_THAT(e, Catch::Contains("move it aside"));
}

TEST_CASE("a journal damaged inside is refused, naming the file and how to recover") {
    journal_file j("damaged");
    {
        weft::client<weft::durable> client({.journal = j.path});
        for (int i = 0; i < 50; ++i) (void)client.start(wf, i).get();
    }
    // Overwrite every page but the header page: the schema and the tables are gone.
    {
        std::fstream f(j.path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(0, std::ios::end);
        const auto size = static_cast<std::size_t>(f.tellp());
        REQUIRE(size > 8192);
        f.seekp(100);  // the 100-byte file header stays valid
        const std::string junk(size - 100, '\x5a');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    const std::string e = open_error(j.path);
    CHECK_THAT(e, Catch::StartsWith("weft: durable: the journal '" + j.path + "' is corrupted or is not a SQLite database"));
}

TEST_CASE("another program's SQLite database is not taken for a journal") {
    journal_file j("foreign");
    sqlite3* db = nullptr;
    sqlite3_open(j.path.c_str(), &db);
    sqlite3_exec(db, "CREATE TABLE invoices(id INTEGER PRIMARY KEY)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    CHECK(open_error(j.path) == "weft: durable: '" + j.path + "' is a SQLite database of another program, not a weft "
                                "journal: point durable.journal at a new file or at a journal weft created");
    CHECK(query(j.path, "SELECT count(*) FROM sqlite_schema") == "1");  // untouched
}

TEST_CASE("a journal locked by another connection gives an error naming the file and what to do") {
    journal_file j("locked");
    { weft::client<weft::durable> create({.journal = j.path}); }
    sqlite3* holder = nullptr;
    REQUIRE(sqlite3_open(j.path.c_str(), &holder) == SQLITE_OK);
    REQUIRE(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    const std::string e = open_error(j.path, std::chrono::milliseconds(200));
    sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(holder);
    CHECK_THAT(e, Catch::StartsWith("weft: durable: the journal '" + j.path + "' is locked by another connection"));
    CHECK_THAT(e, Catch::Contains("`fuser " + j.path + "`"));
    CHECK_THAT(e, Catch::Contains("raise durable.busy_timeout_ms"));
    // Nothing was half written: the journal works again once the lock is gone.
    weft::client<weft::durable> client({.journal = j.path});
    CHECK(client.start(wf, 21).get() == 42);
}

TEST_CASE("a journal locked while a run goes on fails that run's handle, and the run resumes later") {
    using namespace engine_steps;
    gate_open = false;
    downstream_calls = 0;
    journal_file j("locked_mid_run");
    std::string id;
    {
        weft::client<weft::durable> client({.journal = j.path, .busy_timeout = std::chrono::milliseconds(200)});
        auto run = client.start(gated, 3);
        id = run.id();
        while (run.step("gate").state != weft::step_state::running) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        sqlite3* holder = nullptr;
        REQUIRE(sqlite3_open(j.path.c_str(), &holder) == SQLITE_OK);
        REQUIRE(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
        gate_open = true;  // gate's result cannot be committed now
        try {
            (void)run.get();
            FAIL("get() should have thrown");
        } catch (const weft::durable::journal_error& e) {
            CHECK(e.path() == j.path);
            CHECK_THAT(e.what(), Catch::Contains("is locked by another connection") &&
                                     Catch::Contains("while committing a step's result"));
        }
        sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
        sqlite3_close(holder);
    }  // the program ends: it hands its unfinished run back
    CHECK(query(j.path, "SELECT state FROM runs") == "running");  // not lost
    weft::client<weft::durable> next({.journal = j.path});
    auto resumed = next.resume(gated);
    REQUIRE(resumed.size() == 1);
    CHECK(resumed[0].id() == id);
    CHECK(resumed[0].get() == 3);
    CHECK(downstream_calls == 1);
}

// A disk that is full for one process: its file-size limit (the test cannot fill a real disk), which
// SQLite meets as a failed write (EFBIG).
TEST_CASE("a full disk gives an error naming the journal, and what was committed before stays") {
    journal_file j("full");
    { weft::client<weft::durable> create({.journal = j.path}); }
    const std::string message = j.path + ".message";
    const pid_t pid = ::fork();
    if (pid == 0) {  // a process whose files may not grow past a limit: the disk is full for it
        std::signal(SIGXFSZ, SIG_IGN);
        int code = 1;
        try {
            weft::client<weft::durable> client({.journal = j.path, .synchronous = "normal"});
            const std::uintmax_t size = std::filesystem::file_size(j.path) + std::filesystem::file_size(j.path + "-wal");
            const rlimit limit{size + 256 * 1024, size + 256 * 1024};
            ::setrlimit(RLIMIT_FSIZE, &limit);
            for (int i = 0; i < 100000; ++i) (void)client.start(wf, i).get();
        } catch (const weft::durable::journal_error& e) {
            std::ofstream(message) << e.what();
            code = 0;
        } catch (const std::exception& e) {
            std::ofstream(message) << "unexpected: " << e.what();
        }
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    std::ifstream in(message);
    const std::string e((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::filesystem::remove(message);
    INFO(e);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    // SQLite reports the failed write as an I/O error (it keeps SQLITE_FULL for ENOSPC); when it
    // passes the errno on, the message names the limit.
    CHECK_THAT(e, Catch::StartsWith("weft: durable: ") && Catch::Contains("the journal '" + j.path + "'"));
    CHECK_THAT(e, Catch::Contains("reached the largest file this process may write (ulimit -f)") ||
                      Catch::Contains("(disk I/O error") && Catch::Contains("check the disk it is on"));
    CHECK_THAT(e, Catch::Contains("the run stays unfinished in the journal and resumes from its committed steps"));
    // The journal is whole: every run it holds is either finished or resumes and finishes.
    const int finished = std::stoi(query(j.path, "SELECT count(*) FROM runs WHERE state = 'succeeded'"));
    CHECK(finished > 0);
    weft::client<weft::durable> after({.journal = j.path});
    for (auto& r : after.resume(wf)) CHECK(r.get() % 2 == 0);
    CHECK(query(j.path, "SELECT count(*) FROM runs WHERE state <> 'succeeded'") == "0");
    CHECK(query(j.path, "PRAGMA integrity_check") == "ok");
}

// A disk that is really full: a 2 MiB tmpfs, mounted in a child's own mount namespace (as root, or
// in a user namespace otherwise), so ENOSPC comes from the kernel as on a full volume. Then the same
// tmpfs grows (space freed) and the next client finishes every run the journal holds.
namespace {
bool private_tmpfs(const std::string& dir, std::string& why) {
    const uid_t uid = ::geteuid();
    const gid_t gid = ::getegid();
    // Root without CAP_SYS_ADMIN (a container) falls back to a user namespace too.
    const bool own_user = uid != 0 || ::unshare(CLONE_NEWNS) != 0;
    if (own_user && ::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
        why = std::string("unshare: ") + std::strerror(errno);
        return false;
    }
    if (own_user) {  // map this user to root in the new namespace, which may then mount a tmpfs
        std::ofstream("/proc/self/setgroups") << "deny";
        std::ofstream("/proc/self/uid_map") << "0 " << uid << " 1";
        std::ofstream("/proc/self/gid_map") << "0 " << gid << " 1";
    }
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("weft-full", dir.c_str(), "tmpfs", 0, "size=2m") != 0) {
        why = std::string("mount: ") + std::strerror(errno);
        return false;
    }
    return true;
}
}  // namespace

TEST_CASE("a really full disk (ENOSPC on a tmpfs) gives SQLite's full-disk error, and every run finishes once there is room") {
    const auto dir = std::filesystem::temp_directory_path() / ("weft-durable-enospc-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string journal = (dir / "journal.db").string();
    const std::string report = dir.string() + ".report";
    const pid_t pid = ::fork();
    if (pid == 0) {
        std::ofstream out(report);
        auto leave = [&](int code) {
            out.close();  // _exit flushes nothing
            ::_exit(code);
        };
        std::string why;
        if (!private_tmpfs(dir.string(), why)) {
            out << "setup: cannot mount a tmpfs for the test (" << why
                << "); it needs root, or unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)";
            leave(2);
        }
        int started = 0;
        try {
            weft::client<weft::durable> client({.journal = journal});
            for (; started < 1000000; ++started) (void)client.start(wf, started).get();
            out << "no error after " << started << " runs";
            leave(1);
        } catch (const weft::durable::journal_error& e) {
            out << "error: " << e.what() << "\n";
        }
        // Room again: the volume grows, as when space is freed. The next client, in this same
        // process, takes over at once what the first one could not hand back.
        if (::mount("weft-full", dir.c_str(), "tmpfs", MS_REMOUNT, "size=64m") != 0) {
            out << "setup: remount: " << std::strerror(errno);
            leave(2);
        }
        try {
            weft::client<weft::durable> after({.journal = journal});
            int resumed = 0, wrong = 0;
            for (auto& r : after.resume(wf)) {
                ++resumed;
                wrong += r.get() % 2 != 0;
            }
            out << "started: " << started << "\nresumed: " << resumed << "\nwrong: " << wrong
                << "\nsucceeded: " << query(journal, "SELECT count(*) FROM runs WHERE state = 'succeeded'")
                << "\nunfinished: " << query(journal, "SELECT count(*) FROM runs WHERE state <> 'succeeded'")
                << "\nintegrity: " << query(journal, "PRAGMA integrity_check") << "\n";
        } catch (const std::exception& e) {
            out << "after: " << e.what();
            leave(1);
        }
        leave(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    std::ifstream in(report);
    const std::string r((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::filesystem::remove(report);
    std::filesystem::remove_all(dir);
    INFO(r);
    REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    CHECK_THAT(r, Catch::Contains("error: weft: durable: the disk holding the journal '" + journal + "' is full ("));
    CHECK_THAT(r, Catch::Contains("Free space there"));
    CHECK_THAT(r, Catch::Contains("\nwrong: 0\n") && Catch::Contains("\nunfinished: 0\n") &&
                      Catch::Contains("\nintegrity: ok\n"));
    // Every run the first client started is in the journal, finished: the one the disk stopped
    // was resumed (or had not been recorded at all, and then its start() threw, not a lost run).
    auto field = [&](const std::string& name) {
        auto at = r.find("\n" + name + ": ");
        return at == std::string::npos ? -1 : std::stoi(r.substr(at + name.size() + 3));
    };
    CHECK(field("started") > 10);
    CHECK(field("succeeded") >= field("started"));
    CHECK(field("succeeded") <= field("started") + 1);
}

TEST_CASE("a journal in a directory that does not exist names the path") {
    const std::string path = "/nonexistent-weft-dir/runs.db";
    CHECK_THAT(open_error(path), Catch::StartsWith("weft: durable: cannot open the journal '" + path + "'"));
}

}  // namespace
