// Transactional steps (step_policy::transactional) on a real SQLite journal, and on PostgreSQL
// (journal_file.hpp): the body's writes to the journal's database commit with the step's result, so
// they happen once per run however often the body runs; a failed, timed-out or losing attempt leaves
// nothing. Backends without a journal database refuse such a workflow.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include <weft/any_client.hpp>
#include <weft/durable.hpp>
#include <weft/local.hpp>

#include "journal_file.hpp"

using namespace std::chrono_literals;
using weft::step;
using durable_test::journal_file;
using durable_test::query;

namespace {

std::atomic<int> executions{0};

// The table the steps write, beside the journal's own: on PostgreSQL in `public` (the step's
// connection's search_path), not in weft_durable.
std::string ledger() { return durable_test::postgres() ? "public.ledger" : "ledger"; }

void make_ledger(const journal_file& j) {
    // The journal first: a SQLite file with foreign tables and no journal is refused as another program's.
    weft::client<weft::durable> opener({.journal = j.path});
    query(j.path, "CREATE TABLE " + ledger() + "(account INTEGER NOT NULL, cents INTEGER NOT NULL, attempt INTEGER NOT NULL)");
}

// Books `cents` on account `account`, and reads the account's balance back inside the transaction.
struct booking {
    long account = 0;
    long cents = 0;
};
BOOST_DESCRIBE_STRUCT(booking, (), (account, cents))

struct book {
    static constexpr std::string_view name = "book";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 3, .initial = 10ms}, .transactional = true};
    long operator()(booking b) const {
        ++executions;
        auto& tx = weft::durable::transaction::current();
        tx.exec("INSERT INTO ledger(account, cents, attempt) VALUES($1, $2, $3)", {b.account, b.cents, weft::this_step::attempt()});
        const auto rows = tx.exec("SELECT sum(cents) FROM ledger WHERE account = $1", {b.account});
        return std::stol(rows.at(0).at(0).value());
    }
};
struct report {
    static constexpr std::string_view name = "report";
    std::string operator()(long balance) const { return "balance " + std::to_string(balance); }
};
constexpr auto booking_flow = weft::workflow<"booking">(step<book> >> step<report>);

// Writes, then fails its first attempt: the write must go with it.
struct book_then_fail {
    static constexpr std::string_view name = "book_then_fail";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 2, .initial = 10ms}, .transactional = true};
    long operator()(long account) const {
        ++executions;
        weft::durable::transaction::current().exec("INSERT INTO ledger(account, cents, attempt) VALUES($1, 100, $2)",
                                                   {account, weft::this_step::attempt()});
        if (weft::this_step::attempt() == 1) throw std::runtime_error("the card was declined");
        return account;
    }
};

// Writes, then outlives its timeout on the first attempt: the late attempt's write must not commit.
struct book_slowly {
    static constexpr std::string_view name = "book_slowly";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 2, .initial = 10ms}, .timeout = 100ms,
                                              .transactional = true};
    long operator()(long account) const {
        ++executions;
        weft::durable::transaction::current().exec("INSERT INTO ledger(account, cents, attempt) VALUES($1, 5, $2)",
                                                   {account, weft::this_step::attempt()});
        if (weft::this_step::attempt() == 1) std::this_thread::sleep_for(300ms);
        return account;
    }
};

struct bad_sql {
    static constexpr std::string_view name = "bad_sql";
    static constexpr weft::step_policy policy{.transactional = true};
    long operator()(long account) const {
        weft::durable::transaction::current().exec("INSERT INTO no_such_table VALUES($1)", {account});
        return account;
    }
};

struct not_transactional {
    static constexpr std::string_view name = "not_transactional";
    long operator()(long account) const {
        weft::durable::transaction::current().exec("SELECT 1");
        return account;
    }
};

struct too_few {
    static constexpr std::string_view name = "too_few";
    static constexpr weft::step_policy policy{.transactional = true};
    long operator()(long a) const {
        weft::durable::transaction::current().exec("INSERT INTO ledger(account, cents, attempt) VALUES($1, $2, $3)", {a, 1});
        return a;
    }
};

std::string count_rows(const journal_file& j, long account) {
    return query(j.path, "SELECT count(*) || ' ' || ifnull(group_concat(CAST(attempt AS TEXT)), '') FROM " + ledger() +
                             " WHERE account = " + std::to_string(account));
}

TEST_CASE("a transactional step's writes commit with its result, once per run, and the body reads its own writes") {
    journal_file j("tx_book");
    make_ledger(j);
    weft::client<weft::durable> client({.journal = j.path, .threads = 2});
    executions = 0;
    // One after another: each body reads the balance the earlier commits left, and its own row.
    CHECK(client.start(booking_flow, booking{1, 10}).get() == "balance 10");
    CHECK(client.start(booking_flow, booking{1, 40}).get() == "balance 50");
    // At once, two at a time: every row is there once, whatever the order.
    std::vector<weft::run<std::string>> runs;
    for (long n = 1; n <= 6; ++n) runs.push_back(client.start(booking_flow, booking{n % 3, 10 * n}));
    for (auto& r : runs) r.wait();
    for (auto& r : runs) CHECK(r.state() == weft::run_state::succeeded);
    CHECK(query(j.path, "SELECT count(*) FROM " + ledger()) == "8");
    CHECK(query(j.path, "SELECT sum(cents) FROM " + ledger()) == "260");
    CHECK(executions == 8);
    // The result row and the ledger row are one commit: every committed `book` has its booking.
    CHECK(query(j.path, "SELECT count(*) FROM step_results WHERE step = 'book' AND state = 'succeeded'") == "8");
}

// Two runs that read the account and then write it, each waiting (up to 1 s) for the other to have
// read: on PostgreSQL at SERIALIZABLE that is a write skew, refused at one commit (SQLSTATE 40001)
// and retried; on SQLite the second cannot begin until the first commits. Either way the result is
// as if they ran one after the other.
std::atomic<int> readers{0};
struct book_serializable {
    static constexpr std::string_view name = "book_serializable";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 5, .initial = 10ms}, .transactional = true};
    long operator()(booking b) const {
        auto& tx = weft::durable::transaction::current();
        if (tx.postgres()) tx.exec("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
        const auto before = tx.exec("SELECT count(*) FROM ledger WHERE account = $1", {b.account});
        if (weft::this_step::attempt() == 1) {
            ++readers;
            for (int i = 0; i < 100 && readers < 2; ++i) std::this_thread::sleep_for(10ms);
        }
        tx.exec("INSERT INTO ledger(account, cents, attempt) VALUES($1, $2, $3)", {b.account, b.cents, weft::this_step::attempt()});
        return std::stol(before.at(0).at(0).value());
    }
};

TEST_CASE("two transactional steps that conflict end as if one ran after the other; the loser is retried") {
    journal_file j("tx_conflict");
    make_ledger(j);
    weft::client<weft::durable> client({.journal = j.path, .threads = 2});
    readers = 0;
    const auto flow = weft::workflow<"tx_conflict">(step<book_serializable>);
    auto a = client.start(flow, booking{3, 1});
    auto b = client.start(flow, booking{3, 2});
    const long seen_a = a.get(), seen_b = b.get();
    CHECK(std::min(seen_a, seen_b) == 0);  // one saw an empty account...
    CHECK(std::max(seen_a, seen_b) == 1);  // ...and the other saw the first one's row
    CHECK(query(j.path, "SELECT count(*) FROM " + ledger() + " WHERE account = 3") == "2");
    if (durable_test::postgres())
        CHECK(query(j.path, "SELECT count(*) FROM step_attempts WHERE outcome = 'failed' AND error LIKE '%SQLSTATE 40001%'") == "1");
}

TEST_CASE("a failed attempt's writes are rolled back; the retry's commit with its result") {
    journal_file j("tx_fail");
    make_ledger(j);
    weft::client<weft::durable> client({.journal = j.path});
    executions = 0;
    auto run = client.start(weft::workflow<"tx_fail">(step<book_then_fail>), 7L);
    CHECK(run.get() == 7);
    CHECK(executions == 2);
    CHECK(count_rows(j, 7) == "1 2");  // one row, the second attempt's
    CHECK(query(j.path, "SELECT outcome FROM step_attempts WHERE run_id = '" + run.id() + "' AND attempt = 1") == "failed");
}

TEST_CASE("a timed-out attempt's writes never commit, even when its body returns later") {
    journal_file j("tx_timeout");
    make_ledger(j);
    weft::client<weft::durable> client({.journal = j.path});
    executions = 0;
    auto run = client.start(weft::workflow<"tx_timeout">(step<book_slowly>), 9L);
    CHECK(run.get() == 9);
    CHECK(executions == 2);
    std::this_thread::sleep_for(400ms);  // the late first attempt has returned and rolled back by now
    CHECK(count_rows(j, 9) == "1 2");
    CHECK(query(j.path, "SELECT outcome FROM step_attempts WHERE run_id = '" + run.id() + "' AND attempt = 1") == "timed_out");
}

TEST_CASE("a statement that fails fails the attempt, naming the statement and what the database said") {
    journal_file j("tx_bad_sql");
    make_ledger(j);
    weft::client<weft::durable> client({.journal = j.path});
    auto run = client.start(weft::workflow<"tx_bad_sql">(step<bad_sql>), 1L);
    CHECK_THROWS_WITH(run.get(), Catch::Contains("step 'bad_sql' failed") &&
                                     Catch::Contains("running the step's statement `INSERT INTO no_such_table VALUES($1)`") &&
                                     Catch::Contains("no_such_table"));
    CHECK(query(j.path, "SELECT count(*) FROM " + ledger()) == "0");
}

TEST_CASE("transaction::current() outside a transactional step says what is missing") {
    journal_file j("tx_outside");
    weft::client<weft::durable> client({.journal = j.path});
    auto run = client.start(weft::workflow<"tx_outside">(step<not_transactional>), 1L);
    CHECK_THROWS_WITH(run.get(), Catch::Contains("outside a transactional step") &&
                                     Catch::Contains("step_policy::transactional"));
    CHECK_THROWS_AS(weft::durable::transaction::current(), std::logic_error);
}

TEST_CASE("a parameter count that does not fit the statement fails before anything runs") {
    journal_file j("tx_params");
    make_ledger(j);
    weft::client<weft::durable> client({.journal = j.path});
    auto run = client.start(weft::workflow<"tx_params">(step<too_few>), 1L);
    CHECK_THROWS_WITH(run.get(), Catch::Contains("step 'too_few' failed"));
    CHECK(query(j.path, "SELECT count(*) FROM " + ledger()) == "0");
}

struct scoped_env {
    std::string name;
    scoped_env(std::string n, const char* v) : name(std::move(n)) { ::setenv(name.c_str(), v, 1); }
    ~scoped_env() { ::unsetenv(name.c_str()); }
};

TEST_CASE("a backend chosen by configuration that keeps no journal database refuses a transactional step at start") {
    scoped_env b("WEFT_BACKEND", "local");
    auto client = weft::any_client::from_env();
    CHECK_THROWS_WITH(client.start(booking_flow, booking{1, 1}),
                      Catch::Contains("step 'book' of workflow 'booking' sets step_policy::transactional") &&
                          Catch::Contains("backend 'local' keeps no database it can write to"));
}

TEST_CASE("the same workflow chosen by configuration runs on the durable engine") {
    journal_file j("tx_any");
    make_ledger(j);
    scoped_env b("WEFT_BACKEND", "durable");
    scoped_env f("WEFT_DURABLE_JOURNAL", j.path.c_str());
    auto client = weft::any_client::from_env();
    CHECK(client.start(booking_flow, booking{4, 25}).get() == "balance 25");
    CHECK(count_rows(j, 4) == "1 1");
}

}  // namespace
