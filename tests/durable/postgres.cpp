// The PostgreSQL journal's own faults, on the harness's real server (scripts/with-services --need
// postgres): a server that is not there, refused credentials, a database that does not exist,
// another program's schema, a journal of another version, a lock held by another session, and the
// server dropping weft's connections in the middle of runs — which weft rides out, every run
// finishing with one result per step. The engine's behaviour on PostgreSQL is the engine tests'
// (durable.postgres_durable_engine); crashes are durable.crash_postgres's.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <libpq-fe.h>

#include <weft/durable.hpp>

#include "../engine_steps.hpp"
#include "journal_file.hpp"

using namespace std::chrono_literals;
using durable_test::journal_file;
using durable_test::query;
using weft::step;

namespace {

using namespace engine_steps;

struct pg_mode {
    pg_mode() { ::setenv("WEFT_TEST_DURABLE_JOURNAL", "postgres", 1); }
} const mode;

// What opening `journal` throws.
weft::durable::journal_error open_error(weft::durable::options o) {
    try {
        weft::client<weft::durable> c(std::move(o));
    } catch (const weft::durable::journal_error& e) {
        return e;
    }
    FAIL("opening " << o.journal << " did not fail");
    throw;
}

TEST_CASE("a server that does not answer is named, without the URL's password, after reconnect_ms") {
    const auto t0 = std::chrono::steady_clock::now();
    auto e = open_error({.journal = "postgresql://weft:s3cret@127.0.0.1:1/journal", .reconnect = 2s});
    CHECK_THAT(e.what(), Catch::Contains("cannot connect to the PostgreSQL journal 'postgresql://weft:***@127.0.0.1:1/journal'") &&
                             Catch::Contains("check that the server runs and listens at the URL's host and port"));
    CHECK_THAT(e.what(), !Catch::Contains("s3cret"));
    CHECK(e.path() == "postgresql://weft:***@127.0.0.1:1/journal");
    CHECK(e.sqlstate() == "08006");
    CHECK(std::chrono::steady_clock::now() - t0 < 20s);
}

TEST_CASE("a refused password and a missing database say what to check") {
    journal_file j("credentials");
    std::string bad = j.path;
    const auto colon = bad.find(':', bad.find("://") + 3), at = bad.find('@');
    bad.replace(colon + 1, at - colon - 1, "not-the-password");
    auto e = open_error({.journal = bad});
    CHECK_THAT(e.what(), Catch::Contains("password authentication failed") &&
                             Catch::Contains("check the URL's user, password and database") &&
                             !Catch::Contains("not-the-password"));
    auto missing = open_error({.journal = durable_test::postgres_url("weft_no_such_database")});
    CHECK_THAT(missing.what(), Catch::Contains("does not exist") && Catch::Contains("createdb"));
}

TEST_CASE("another program's schema weft_durable is refused and left untouched") {
    journal_file j("foreign");
    query(j.path, "CREATE SCHEMA weft_durable; CREATE TABLE weft_durable.orders(id int)");
    auto e = open_error({.journal = j.path});
    CHECK_THAT(e.what(), Catch::Contains("holds tables of another program, not a weft journal"));
    CHECK(query(j.path, "SELECT count(*) FROM pg_tables WHERE schemaname = 'weft_durable'") == "1");
}

TEST_CASE("a journal of another schema version is refused, naming both versions") {
    journal_file j("version");
    { weft::client<weft::durable> c({.journal = j.path}); }
    query(j.path, "UPDATE weft_durable.journal SET version = 99");
    auto e = open_error({.journal = j.path});
    CHECK_THAT(e.what(), Catch::Contains("has schema version 99, this weft reads version 2"));
}

TEST_CASE("several processes creating one journal at once make one schema") {
    journal_file j("create_race");
    std::vector<std::thread> openers;
    std::atomic<int> failed{0};
    for (int i = 0; i < 6; ++i)
        openers.emplace_back([&] {
            try {
                weft::client<weft::durable> c({.journal = j.path, .threads = 1});
                if (c.start(diamond, 2).get() != "n=2 sum=3") ++failed;
            } catch (const std::exception& e) {
                UNSCOPED_INFO(e.what());
                ++failed;
            }
        });
    for (auto& t : openers) t.join();
    CHECK(failed == 0);
    CHECK(query(j.path, "SELECT count(*) FROM runs WHERE state = 'succeeded'") == "6");
}

TEST_CASE("a lock another session holds past busy_timeout_ms is a clear error, and the journal works once it ends") {
    journal_file j("locked");
    weft::client<weft::durable> c({.journal = j.path, .busy_timeout = 300ms});
    CHECK(c.start(diamond, 1).get() == "n=1 sum=1");
    PGconn* other = PQconnectdb(j.path.c_str());
    REQUIRE(PQstatus(other) == CONNECTION_OK);
    PQclear(PQexec(other, "BEGIN; LOCK TABLE weft_durable.runs IN ACCESS EXCLUSIVE MODE"));
    try {
        c.start(diamond, 2);
        FAIL("start() succeeded while the table was locked");
    } catch (const weft::durable::journal_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("is locked by another connection") && Catch::Contains("durable.busy_timeout_ms") &&
                                 Catch::Contains("while recording a new run"));
        CHECK(e.sqlstate() == "55P03");
    }
    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);
    CHECK(c.start(diamond, 3).get() == "n=3 sum=6");
}

// A step slow enough that the server's connections are dropped while runs are in flight.
struct slow_double { static constexpr std::string_view name = "slow_double";
    int operator()(int x) const { std::this_thread::sleep_for(2ms); return 2 * x; } };
struct slow_plus { static constexpr std::string_view name = "slow_plus";
    int operator()(int x) const { std::this_thread::sleep_for(2ms); return x + 1; } };
constexpr auto chain = weft::workflow<"pg_chain">(step<slow_double> >> step<slow_plus> >> step<slow_double, "again">);

TEST_CASE("weft's connections dropped by the server mid-run are reconnected, and every run finishes once") {
    journal_file j("dropped");
    weft::client<weft::durable> c({.journal = j.path, .threads = 2});
    std::atomic<bool> done{false};
    std::atomic<int> terminated{0};
    const std::string database = j.database;
    std::thread killer([&] {
        while (!done) {
            std::this_thread::sleep_for(150ms);
            const std::string n = query(durable_test::postgres_url("postgres"),
                                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '" +
                                            database + "' AND application_name = 'weft-durable'");
            terminated += std::stoi(n);
        }
    });
    std::vector<weft::run<int>> runs;
    for (int i = 0; i < 200; ++i) runs.push_back(c.start(chain, i));
    int right = 0;
    for (int i = 0; i < 200; ++i)
        if (runs[static_cast<std::size_t>(i)].get() == 2 * (2 * i + 1)) ++right;
    done = true;
    killer.join();
    CHECK(right == 200);
    CHECK(terminated >= 4);  // the connections were dropped again and again
    CHECK(query(j.path, "SELECT count(*) FROM runs WHERE state = 'succeeded'") == "200");
    CHECK(query(j.path, "SELECT count(*) FROM step_results") == "600");
    INFO("connections terminated: " << terminated);
}

TEST_CASE("doctor on a PostgreSQL journal names the server, the database and the role's rights") {
    journal_file j("doctor");
    weft::durable_detail::backend_impl b({.journal = j.path});
    const auto checks = b.doctor();
    REQUIRE(checks.size() == 2);
    CHECK(checks[0].ok);
    CHECK_THAT(checks[0].detail, Catch::Contains("PostgreSQL 1") && Catch::Contains("database " + j.database) &&
                                     Catch::Contains("schema version 2"));
    CHECK(checks[1].ok);
    CHECK_THAT(checks[1].detail, Catch::Contains("may write the journal's tables"));
    const std::string password = j.path.substr(j.path.find(':', 13) + 1, j.path.find('@') - j.path.find(':', 13) - 1);
    CHECK_THAT(b.journal(), Catch::Contains(":***@") && !Catch::Contains(password));
}

}  // namespace
