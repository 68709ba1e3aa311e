// The PostgreSQL journal: the schema weft_durable of the database a URL names, shared by any number
// of processes on any number of machines. The tables are the SQLite journal's.
//
// Two connections per engine: one whose commits wait for the server's disk (results, the run's
// state), and one with synchronous_commit = off for the bookkeeping a power loss may cost (an
// attempt's start or failure) — the SQLite journal's `unsynced` writes. A result's synchronous
// commit flushes the server's log up to itself, those rows with it.
//
// A lost server is waited for (durable.reconnect_ms) and the interrupted method is run again from
// its start. That is safe because every method is idempotent: inserts are ON CONFLICT DO NOTHING,
// updates set final values, a claim already won counts as won, and closing a run that already
// holds this very outcome counts as closing it.
#include "journal.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include <weft/kit/backoff.hpp>

namespace weft::durable_detail {

namespace {

// 'weftdura': the advisory lock that makes creating the schema one process's job.
constexpr std::int64_t schema_lock_key = 0x7765667464757261;

constexpr const char* schema_sql = R"sql(
CREATE SCHEMA IF NOT EXISTS weft_durable;
CREATE TABLE weft_durable.journal(version INTEGER NOT NULL);
CREATE TABLE weft_durable.runs(
  id TEXT PRIMARY KEY,
  workflow TEXT NOT NULL,
  dag_hash TEXT NOT NULL,
  input TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
  output TEXT,
  failed_step TEXT,
  error TEXT,
  attempts INTEGER,
  owner TEXT,
  lease_until BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  finished_at BIGINT,
  metadata TEXT
);
CREATE INDEX runs_unfinished ON weft_durable.runs(workflow, created_at) WHERE state = 'running';
CREATE INDEX runs_owned ON weft_durable.runs(owner) WHERE state = 'running';
CREATE INDEX runs_finished ON weft_durable.runs(finished_at) WHERE state <> 'running';
CREATE INDEX runs_recent ON weft_durable.runs(workflow, created_at DESC);
CREATE TABLE weft_durable.step_attempts(
  run_id TEXT NOT NULL,
  step TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  owner TEXT,
  started_at BIGINT NOT NULL,
  finished_at BIGINT,
  outcome TEXT CHECK (outcome IN ('succeeded', 'failed', 'timed_out', 'stopped')),
  error TEXT,
  PRIMARY KEY (run_id, step, attempt)
);
CREATE TABLE weft_durable.step_results(
  run_id TEXT NOT NULL,
  step TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('succeeded', 'failed')),
  output TEXT,
  error TEXT,
  attempt INTEGER NOT NULL,
  committed_at BIGINT NOT NULL,
  PRIMARY KEY (run_id, step)
);
)sql";

// The URL as messages show it: its password replaced.
std::string shown_url(std::string_view url) {
    std::string s(url);
    if (auto scheme = s.find("://"); scheme != std::string::npos) {
        const auto start = scheme + 3;
        const auto end = s.find_first_of("/?", start);
        const auto at = s.rfind('@', end == std::string::npos ? s.size() : end);
        if (at != std::string::npos && at > start) {
            const auto colon = s.find(':', start);
            if (colon != std::string::npos && colon < at) s.replace(colon + 1, at - colon - 1, "***");
        }
    }
    for (std::size_t p = 0; (p = s.find("password=", p)) != std::string::npos;) {
        p += 9;
        const auto end = s.find('&', p);
        s.replace(p, (end == std::string::npos ? s.size() : end) - p, "***");
    }
    return s;
}

// One statement parameter, as text (PostgreSQL converts it to the column's type); NULL when `null`.
struct param {
    std::string text;
    bool null = false;
    param(std::string_view s) : text(s) {}
    param(const char* s) : text(s) {}
    param(const std::string& s) : text(s) {}
    param(std::int64_t v) : text(std::to_string(v)) {}
    param(int v) : text(std::to_string(v)) {}
    static param none() {
        param p(std::string_view{});
        p.null = true;
        return p;
    }
    // Optional columns keep NULL for "none", as in the SQLite journal.
    static param or_null(std::string_view s) {
        param p(s);
        p.null = s.empty();
        return p;
    }
};

class result {
public:
    explicit result(PGresult* r) noexcept : r_(r) {}
    result(result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    result& operator=(result&&) = delete;
    ~result() { PQclear(r_); }

    int rows() const noexcept { return PQntuples(r_); }
    bool null(int row, int col) const noexcept { return PQgetisnull(r_, row, col) != 0; }
    std::string text(int row, int col) const {
        return null(row, col) ? std::string() : std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
    }
    std::int64_t integer(int row, int col) const { return null(row, col) ? 0 : std::strtoll(PQgetvalue(r_, row, col), nullptr, 10); }
    bool boolean(int row, int col) const { return !null(row, col) && PQgetvalue(r_, row, col)[0] == 't'; }
    const PGresult* raw() const noexcept { return r_; }
    int affected() const noexcept {
        const char* n = PQcmdTuples(r_);
        return n && *n ? std::atoi(n) : 0;
    }

private:
    PGresult* r_;
};

// SQLSTATE classes that mean the server or the connection went away: worth waiting for.
bool server_lost(std::string_view sqlstate) {
    return sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

}  // namespace

class postgres_journal final : public journal {
public:
    explicit postgres_journal(const durable::options& opts);

    void insert_run(const run_row& r) override;
    std::optional<run_row> read_run(std::string_view id) override;
    std::vector<std::string> unfinished_runs(std::string_view workflow) override;
    bool claim(std::string_view id, std::string_view seen_owner, millis seen_lease, std::string_view owner,
               millis lease_until) override;
    void renew(std::string_view owner, millis lease_until) override;
    void release(std::string_view owner) override;
    void release(std::string_view owner, std::string_view id) override;
    bool finish_run(const run_row& r) override;
    bool cancel_run(std::string_view id) override;
    std::vector<std::string> closed_since(millis since) override;
    int remove_finished(millis cutoff, int limit) override;
    void begin_attempt(std::string_view run, std::string_view step, int attempt, std::string_view owner) override;
    void fail_attempt(std::string_view run, std::string_view step, int attempt, std::string_view error,
                      bool timed_out) override;
    void stop_attempt(std::string_view run, std::string_view step, int attempt) override;
    std::optional<step_result> commit_result(std::string_view run, std::string_view step,
                                             const step_result& result) override;
    std::unique_ptr<step_transaction> begin_step() override;
    std::vector<step_record> steps_of(std::string_view run) override;
    bool has_attempts(std::string_view run) override;
    std::vector<listed_run> recent_runs(std::string_view workflow, std::size_t limit) override;
    std::vector<health_check> checks() override;

private:
    // One connection to the server, its prepared statements, and its errors as journal_errors.
    class connection {
    public:
        connection(postgres_journal& j, bool synced) : j_(j), synced_(synced) {}
        ~connection() {
            if (c_) PQfinish(c_);
        }
        connection(const connection&) = delete;
        connection& operator=(const connection&) = delete;

        bool usable() const noexcept { return c_ && PQstatus(c_) == CONNECTION_OK; }
        void open();  // (re)connects and sets the session up
        void exec(const char* sql, std::string_view doing);
        // A prepared statement (prepared on first use on this connection), run with `params`.
        result run(const char* sql, std::initializer_list<param> params, std::string_view doing);
        // An unprepared statement with text parameters (null: NULL), its rows as text.
        std::vector<durable::row> run_text(const char* sql, const std::vector<const char*>& params, std::string_view doing);
        PGconn* raw() const noexcept { return c_; }

    private:
        PGresult* checked(PGresult* r, std::string_view doing, ExecStatusType ok = PGRES_COMMAND_OK);
        [[noreturn]] void fail(const PGresult* r, std::string_view doing);
        postgres_journal& j_;
        const bool synced_;
        PGconn* c_ = nullptr;
        std::map<const char*, std::string> prepared_;
    };

    // BEGIN .. COMMIT on one connection; rolled back unless committed (a failed statement leaves the
    // transaction aborted: nothing of it is kept).
    struct tx {
        connection& c;
        bool committed = false;
        tx(connection& cc, std::string_view doing) : c(cc) { c.exec("BEGIN", doing); }
        void commit(std::string_view doing) {
            c.exec("COMMIT", doing);
            committed = true;
        }
        ~tx() {
            if (!committed && c.usable()) PQclear(PQexec(c.raw(), "ROLLBACK"));
        }
    };

    class step_tx;
    struct committed {
        std::optional<step_result> winner;  // nothing: the run no longer runs
        bool ours = false;                  // the result given was inserted
    };
    // The statement of commit_result, on `c`, in a transaction the caller holds.
    committed commit_on(connection& c, std::string_view run, std::string_view step, const step_result& r);

    // Runs `f` with the journal to itself; a lost server is waited for, up to reconnect_ms, and `f`
    // run again from its start.
    template <class F>
    auto retrying(F&& f) -> decltype(f());
    void create_or_check_schema();
    [[noreturn]] void fail_message(std::string message, std::string sqlstate) const {
        throw durable::journal_error("weft: durable: " + message, path_, 0, std::move(sqlstate));
    }

    const std::string url_;
    const durable::options opts_;
    std::mutex m_;  // one method at a time on the connections
    connection synced_{*this, true};
    connection unsynced_{*this, false};
    std::mutex pool_m_;
    std::vector<std::unique_ptr<connection>> idle_;  // connections of finished step transactions
};

std::shared_ptr<journal> open_postgres_journal(const durable::options& opts) { return std::make_shared<postgres_journal>(opts); }

// ---- connections ---------------------------------------------------------------------------------

void postgres_journal::connection::open() {
    prepared_.clear();
    if (c_) PQfinish(c_);
    // application_name first: the URL's own, if it sets one, wins.
    const char* keys[] = {"application_name", "connect_timeout", "dbname", nullptr};
    const std::string timeout = std::to_string(std::max<long long>(2, j_.opts_.reconnect.count() / 1000));
    const char* values[] = {"weft-durable", timeout.c_str(), j_.url_.c_str(), nullptr};
    c_ = PQconnectdbParams(keys, values, 1);
    if (!c_) j_.fail_message("cannot allocate a PostgreSQL connection for the journal '" + j_.path_ + "'", "08000");
    if (PQstatus(c_) != CONNECTION_OK) {
        std::string why = PQerrorMessage(c_);
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        // A refused password or an unknown database will not cure itself: not worth waiting for.
        const bool denied = why.find("password authentication failed") != std::string::npos ||
                            why.find("does not exist") != std::string::npos ||
                            why.find("no pg_hba.conf entry") != std::string::npos;
        j_.fail_message("cannot connect to the PostgreSQL journal '" + j_.path_ + "' (" + why + "): " +
                            (denied ? "check the URL's user, password and database (create it with `createdb`)"
                                    : "check that the server runs and listens at the URL's host and port"),
                        denied ? "28000" : "08006");
    }
    // lock_timeout: a write waits for another connection's lock as long as a SQLite write would.
    std::string setup = "SET lock_timeout = " + std::to_string(j_.opts_.busy_timeout.count()) + ";";
    if (!synced_ || j_.opts_.synchronous == "normal") setup += " SET synchronous_commit = off;";
    exec(setup.c_str(), "setting the session up");
}

// `r` if it succeeded; otherwise it is freed and its error thrown.
PGresult* postgres_journal::connection::checked(PGresult* r, std::string_view doing, ExecStatusType ok) {
    const auto status = PQresultStatus(r);
    if (status == ok || status == PGRES_TUPLES_OK) return r;
    try {
        fail(r, doing);
    } catch (...) {
        PQclear(r);
        throw;
    }
}

void postgres_journal::connection::exec(const char* sql, std::string_view doing) { PQclear(checked(PQexec(c_, sql), doing)); }

result postgres_journal::connection::run(const char* sql, std::initializer_list<param> params, std::string_view doing) {
    auto [at, fresh] = prepared_.try_emplace(sql, "weft_" + std::to_string(prepared_.size()));
    if (fresh) {
        try {
            PQclear(checked(PQprepare(c_, at->second.c_str(), sql, 0, nullptr), doing));
        } catch (...) {
            prepared_.erase(at);
            throw;
        }
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const param& p : params) values.push_back(p.null ? nullptr : p.text.c_str());
    return result(checked(
        PQexecPrepared(c_, at->second.c_str(), static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0), doing));
}

std::vector<durable::row> postgres_journal::connection::run_text(const char* sql, const std::vector<const char*>& params,
                                                               std::string_view doing) {
    const result r(checked(PQexecParams(c_, sql, static_cast<int>(params.size()), nullptr, params.data(), nullptr, nullptr, 0), doing));
    std::vector<durable::row> rows(static_cast<std::size_t>(r.rows()));
    const int columns = PQnfields(r.raw());
    for (int i = 0; i < r.rows(); ++i)
        for (int col = 0; col < columns; ++col)
            rows[static_cast<std::size_t>(i)].push_back(r.null(i, col) ? std::nullopt : std::optional<std::string>(r.text(i, col)));
    return rows;
}

void postgres_journal::connection::fail(const PGresult* r, std::string_view doing) {
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string sqlstate = state ? state : "";
    std::string detail = r ? PQresultErrorMessage(r) : "";
    if (detail.empty() && c_) detail = PQerrorMessage(c_);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    if (detail.starts_with("ERROR:  ")) detail.erase(0, 8);
    if (!usable() && sqlstate.empty()) sqlstate = "08006";  // the connection itself broke
    const std::string where = "the PostgreSQL journal '" + j_.path_ + "'";
    const std::string while_ = " while " + std::string(doing);
    const std::string kept = "; the run stays unfinished in the journal and resumes from its committed steps";
    const std::string cls = sqlstate.substr(0, 2);
    std::string msg;
    if (server_lost(sqlstate))
        msg = "lost the connection to " + where + " (" + detail + ")" + while_ + ", and the server did not come back within "
              "durable.reconnect_ms (" + std::to_string(j_.opts_.reconnect.count()) + " ms): check that it runs" + kept;
    else if (sqlstate == "53100")
        msg = "the disk of the server holding " + where + " is full (" + detail + ")" + while_ +
              ": nothing of this write was recorded. Free space on the server" + kept;
    else if (cls == "53")
        msg = where + " is out of resources (" + detail + ")" + while_ + ": raise the server's limits (max_connections, memory)" + kept;
    else if (sqlstate == "55P03" || sqlstate == "40P01")
        msg = where + " is locked by another connection (" + detail + ")" + while_ +
              ": another program holds a lock on weft_durable's rows and did not release it within busy_timeout_ms. End "
              "that transaction (pg_stat_activity lists the sessions and what they wait for), or raise durable.busy_timeout_ms";
    else if (sqlstate == "42501")
        msg = where + " refuses this role (" + detail + ")" + while_ +
              ": grant it CREATE on the database (for the schema weft_durable) and the use of that schema's tables";
    else if (sqlstate == "25006")
        msg = where + " is read-only (" + detail + ")" + while_ + ": point durable.journal at the primary server, not a standby";
    else if (cls == "XX")
        msg = where + " is damaged (" + detail + ")" + while_ + ": see the server's log, and restore the database from a backup";
    else if (sqlstate == "22021")
        msg = where + " refused text that is not UTF-8 (" + detail + ")" + while_ +
              ": a run's input or a step's output holds bytes that PostgreSQL's text columns do not take (the SQLite journal "
              "keeps them); send such bytes encoded (base64)";
    else
        msg = where + ": " + detail + (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")") + while_;
    j_.fail_message(std::move(msg), std::move(sqlstate));
}

// ---- the journal ---------------------------------------------------------------------------------

postgres_journal::postgres_journal(const durable::options& opts)
    : journal(shown_url(opts.journal)), url_(opts.journal), opts_(opts) {
    std::lock_guard l(m_);
    synced_.open();
    create_or_check_schema();
    unsynced_.open();
}

template <class F>
auto postgres_journal::retrying(F&& f) -> decltype(f()) {
    std::lock_guard l(m_);
    const auto give_up = std::chrono::steady_clock::now() + opts_.reconnect;
    kit::backoff delay({.initial = std::chrono::milliseconds(50), .multiplier = 2.0, .maximum = std::chrono::milliseconds(1000)});
    for (bool first = true;; first = false) {
        try {
            if (!synced_.usable()) synced_.open();
            if (!unsynced_.usable()) unsynced_.open();
            return f();
        } catch (const durable::journal_error& e) {
            if (!server_lost(e.sqlstate()) || std::chrono::steady_clock::now() >= give_up) throw;
        }
        // A dropped connection (the server restarted it, a proxy timed it out) is reopened at once;
        // a server that is down is waited for with growing delays.
        if (!first) std::this_thread::sleep_for(delay.failed());
    }
}

void postgres_journal::create_or_check_schema() {
    constexpr std::string_view doing = "creating or checking the schema weft_durable";
    tx t(synced_, doing);
    synced_.run("SELECT pg_advisory_xact_lock($1)", {schema_lock_key}, doing);
    const auto found = synced_.run(
        "SELECT to_regclass('weft_durable.journal') IS NOT NULL, "
        "(SELECT count(*) FROM pg_tables WHERE schemaname = 'weft_durable')",
        {}, doing);
    if (found.boolean(0, 0)) {
        const auto v = synced_.run("SELECT version FROM weft_durable.journal", {}, doing);
        const std::int64_t version = v.rows() == 1 ? v.integer(0, 0) : -1;
        if (version != journal_schema_version)
            fail_message("the journal '" + path_ + "' has schema version " + std::to_string(version) + ", this weft reads version " +
                             std::to_string(journal_schema_version) + ": open it with the weft that wrote it",
                         "22000");
        t.commit(doing);
        return;
    }
    if (found.integer(0, 1) != 0)
        fail_message("the schema weft_durable of '" + path_ + "' holds tables of another program, not a weft journal: "
                     "point durable.journal at another database, or drop that schema",
                     "42P07");
    synced_.exec(schema_sql, doing);
    synced_.run("INSERT INTO weft_durable.journal(version) VALUES($1)", {journal_schema_version}, doing);
    t.commit(doing);
}

std::vector<health_check> postgres_journal::checks() {
    return retrying([&] {
        constexpr std::string_view doing = "checking the journal";
        const auto r = synced_.run(
            "SELECT current_setting('server_version'), current_user, current_database(), "
            "has_table_privilege('weft_durable.runs', 'INSERT, UPDATE, DELETE'), "
            "has_table_privilege('weft_durable.step_results', 'INSERT, UPDATE, DELETE'), "
            "has_table_privilege('weft_durable.step_attempts', 'INSERT, UPDATE, DELETE'), "
            "pg_is_in_recovery()",
            {}, doing);
        std::vector<health_check> out;
        out.push_back({"durable.schema", true,
                       "'" + path_ + "' (PostgreSQL " + r.text(0, 0) + ", database " + r.text(0, 2) +
                           ") holds a weft journal of schema version " + std::to_string(journal_schema_version) +
                           " in the schema weft_durable",
                       {}});
        const bool writes = r.boolean(0, 3) && r.boolean(0, 4) && r.boolean(0, 5), primary = !r.boolean(0, 6);
        out.push_back({"durable.writable", writes && primary,
                       !primary ? "the server is a standby (read-only)"
                       : writes ? "the role " + r.text(0, 1) + " may write the journal's tables"
                                : "the role " + r.text(0, 1) + " may not write every table of weft_durable",
                       writes && primary ? "" : "grant the role INSERT, UPDATE and DELETE on weft_durable's tables, or use the primary"});
        return out;
    });
}

// ---- runs ----------------------------------------------------------------------------------------

void postgres_journal::insert_run(const run_row& r) {
    retrying([&] {
        // ON CONFLICT: run again after a lost server, the insert may have committed the first time.
        synced_.run("INSERT INTO weft_durable.runs(id, workflow, dag_hash, input, state, owner, lease_until, created_at, "
                    "updated_at, metadata) VALUES($1, $2, $3, $4, 'running', $5, $6, $7, $7, $8) ON CONFLICT (id) DO NOTHING",
                    {r.id, r.workflow, r.dag_hash, r.input, r.owner, r.lease_until, r.created_at, param::or_null(r.metadata)},
                    "recording a new run");
    });
}

std::optional<run_row> postgres_journal::read_run(std::string_view id) {
    return retrying([&]() -> std::optional<run_row> {
        const auto s = synced_.run(
            "SELECT workflow, dag_hash, input, state, output, failed_step, error, attempts, owner, lease_until, created_at, "
            "finished_at, metadata FROM weft_durable.runs WHERE id = $1",
            {id}, "reading a run");
        if (s.rows() == 0) return std::nullopt;
        run_row r;
        r.id = std::string(id);
        r.workflow = s.text(0, 0);
        r.dag_hash = s.text(0, 1);
        r.input = s.text(0, 2);
        r.state = state_from(s.text(0, 3));
        r.output = s.text(0, 4);
        r.failed_step = s.text(0, 5);
        r.error = s.text(0, 6);
        r.attempts = static_cast<int>(s.integer(0, 7));
        r.owner = s.text(0, 8);
        r.lease_until = s.integer(0, 9);
        r.created_at = s.integer(0, 10);
        r.finished_at = s.integer(0, 11);
        r.metadata = s.text(0, 12);
        return r;
    });
}

std::vector<std::string> postgres_journal::unfinished_runs(std::string_view workflow) {
    return retrying([&] {
        const auto s = synced_.run("SELECT id FROM weft_durable.runs WHERE workflow = $1 AND state = 'running' ORDER BY created_at",
                                   {workflow}, "listing unfinished runs");
        std::vector<std::string> out;
        for (int i = 0; i < s.rows(); ++i) out.push_back(s.text(i, 0));
        return out;
    });
}

bool postgres_journal::claim(std::string_view id, std::string_view seen_owner, millis seen_lease, std::string_view owner,
                             millis lease_until) {
    return retrying([&] {
        // Under READ COMMITTED the WHERE is checked again on the row an update waited for: of two
        // processes that saw the same owner, one wins. `owner = $1`: this claim, run again after a
        // lost server, may have been won the first time.
        return synced_.run("UPDATE weft_durable.runs SET owner = $1, lease_until = $2, updated_at = $3 WHERE id = $4 AND "
                           "state = 'running' AND (owner IS NOT DISTINCT FROM $5 AND coalesce(lease_until, 0) = $6 OR owner = $1)",
                           {owner, lease_until, now_ms(), id, param::or_null(seen_owner), seen_lease}, "taking a run over")
                   .affected() == 1;
    });
}

void postgres_journal::renew(std::string_view owner, millis lease_until) {
    retrying([&] {
        synced_.run("UPDATE weft_durable.runs SET lease_until = $1 WHERE owner = $2 AND state = 'running'", {lease_until, owner},
                    "renewing the leases of its runs");
    });
}

void postgres_journal::release(std::string_view owner) {
    retrying([&] {
        synced_.run("UPDATE weft_durable.runs SET owner = NULL, lease_until = NULL, updated_at = $1 WHERE owner = $2 AND "
                    "state = 'running'",
                    {now_ms(), owner}, "handing its unfinished runs back");
    });
}

void postgres_journal::release(std::string_view owner, std::string_view id) {
    retrying([&] {
        synced_.run("UPDATE weft_durable.runs SET owner = NULL, lease_until = NULL, updated_at = $1 WHERE id = $2 AND "
                    "owner = $3 AND state = 'running'",
                    {now_ms(), id, owner}, "handing a run back");
    });
}

bool postgres_journal::finish_run(const run_row& r) {
    return retrying([&] {
        constexpr std::string_view doing = "closing a run";
        tx t(synced_, doing);
        const millis now = now_ms();
        bool won = synced_.run("UPDATE weft_durable.runs SET state = $1, output = $2, failed_step = $3, error = $4, "
                               "attempts = $5, owner = NULL, lease_until = NULL, updated_at = $6, finished_at = $6 "
                               "WHERE id = $7 AND state = 'running'",
                               {to_string(r.state), param::or_null(r.output), param::or_null(r.failed_step),
                                param::or_null(r.error), r.state == run_state::failed ? param(r.attempts) : param::none(), now, r.id},
                               doing)
                       .affected() == 1;
        if (!won) {
            // Closed already: by this very call, before the server was lost, if it holds this outcome.
            const auto s = synced_.run(
                "SELECT state = $2 AND output IS NOT DISTINCT FROM $3 AND failed_step IS NOT DISTINCT FROM $4 AND "
                "error IS NOT DISTINCT FROM $5 FROM weft_durable.runs WHERE id = $1",
                {r.id, to_string(r.state), param::or_null(r.output), param::or_null(r.failed_step), param::or_null(r.error)},
                doing);
            won = s.rows() == 1 && s.boolean(0, 0) && r.state != run_state::cancelled;
        }
        crash_point("run.before_complete");
        t.commit(doing);
        crash_point("run.after_complete");
        return won;
    });
}

bool postgres_journal::cancel_run(std::string_view id) {
    return retrying([&] {
        const millis now = now_ms();
        return synced_.run("UPDATE weft_durable.runs SET state = 'cancelled', owner = NULL, lease_until = NULL, updated_at = $1, "
                           "finished_at = $1 WHERE id = $2 AND state = 'running'",
                           {now, id}, "cancelling a run")
                   .affected() == 1;
    });
}

std::vector<std::string> postgres_journal::closed_since(millis since) {
    return retrying([&] {
        const auto s = synced_.run("SELECT id FROM weft_durable.runs WHERE state <> 'running' AND finished_at >= $1", {since},
                                   "listing runs closed lately");
        std::vector<std::string> out;
        for (int i = 0; i < s.rows(); ++i) out.push_back(s.text(i, 0));
        return out;
    });
}

int postgres_journal::remove_finished(millis cutoff, int limit) {
    return retrying([&] {
        // SKIP LOCKED: processes that clean up at the same moment take different runs.
        return synced_.run(
                   "WITH expired AS (SELECT id FROM weft_durable.runs WHERE state <> 'running' AND finished_at < $1 LIMIT $2 "
                   "FOR UPDATE SKIP LOCKED), "
                   "r AS (DELETE FROM weft_durable.step_results WHERE run_id IN (SELECT id FROM expired)), "
                   "a AS (DELETE FROM weft_durable.step_attempts WHERE run_id IN (SELECT id FROM expired)) "
                   "DELETE FROM weft_durable.runs WHERE id IN (SELECT id FROM expired)",
                   {cutoff, limit}, "removing finished runs past their retention")
            .affected();
    });
}

// ---- steps ---------------------------------------------------------------------------------------

void postgres_journal::begin_attempt(std::string_view run, std::string_view step, int attempt, std::string_view owner) {
    retrying([&] {
        unsynced_.run("INSERT INTO weft_durable.step_attempts(run_id, step, attempt, owner, started_at) "
                      "VALUES($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                      {run, step, attempt, owner, now_ms()}, "recording a step attempt");
    });
}

void postgres_journal::fail_attempt(std::string_view run, std::string_view step, int attempt, std::string_view error,
                                    bool timed_out) {
    retrying([&] {
        unsynced_.run("UPDATE weft_durable.step_attempts SET outcome = $1, error = $2, finished_at = $3 WHERE run_id = $4 AND "
                      "step = $5 AND attempt = $6",
                      {timed_out ? "timed_out" : "failed", error, now_ms(), run, step, attempt}, "recording a failed step attempt");
    });
}

void postgres_journal::stop_attempt(std::string_view run, std::string_view step, int attempt) {
    retrying([&] {
        unsynced_.run("UPDATE weft_durable.step_attempts SET outcome = 'stopped', finished_at = $1 WHERE run_id = $2 AND "
                      "step = $3 AND attempt = $4 AND outcome IS NULL",
                      {now_ms(), run, step, attempt}, "recording an attempt cut short by a shutdown");
    });
}

std::optional<step_result> postgres_journal::commit_result(std::string_view run, std::string_view step, const step_result& r) {
    return retrying([&]() -> std::optional<step_result> {
        constexpr std::string_view doing = "committing a step's result";
        tx t(synced_, doing);
        const committed c = commit_on(synced_, run, step, r);
        if (!c.winner) return std::nullopt;  // cancelled meanwhile: record nothing more
        crash_point("result.before_commit");
        t.commit(doing);
        crash_point("result.after_commit");
        return c.winner;
    });
}

postgres_journal::committed postgres_journal::commit_on(connection& c, std::string_view run, std::string_view step,
                                                        const step_result& r) {
    constexpr std::string_view doing = "committing a step's result";
    const std::string_view state = r.succeeded ? "succeeded" : "failed";
    // One round trip: FOR SHARE holds the run open (a cancel or a close waits for this commit)
    // while the result is inserted, first writer winning, and the attempt is closed.
    const auto s = c.run(
        "WITH open_run AS (SELECT 1 FROM weft_durable.runs WHERE id = $1 AND state = 'running' FOR SHARE), "
        "ins AS (INSERT INTO weft_durable.step_results(run_id, step, state, output, error, attempt, committed_at) "
        "SELECT $1, $2, $3, $4, $5, $6::integer, $7::bigint WHERE EXISTS (SELECT 1 FROM open_run) "
        "ON CONFLICT (run_id, step) DO NOTHING RETURNING 1), "
        "att AS (UPDATE weft_durable.step_attempts SET outcome = $3, error = $5, finished_at = $7::bigint "
        "WHERE run_id = $1 AND step = $2 AND attempt = $6::integer AND EXISTS (SELECT 1 FROM open_run) RETURNING 1) "
        "SELECT EXISTS (SELECT 1 FROM open_run), EXISTS (SELECT 1 FROM ins), (SELECT count(*) FROM att)",
        {run, step, state, param::or_null(r.output), param::or_null(r.error), r.attempt, now_ms()}, doing);
    if (!s.boolean(0, 0)) return {};
    step_result winner = r;
    const bool ours = s.boolean(0, 1);
    if (!ours) {
        const auto w = c.run("SELECT state, output, error, attempt FROM weft_durable.step_results WHERE run_id = $1 AND step = $2",
                             {run, step}, "reading a step's committed result");
        if (w.rows() == 1) winner = {w.text(0, 0) == "succeeded", w.text(0, 1), w.text(0, 2), static_cast<int>(w.integer(0, 3))};
    }
    return {winner, ours};
}

// ---- transactional steps ---------------------------------------------------------------------------

// A pooled connection with BEGIN done. Not retried on a lost server as the methods are: the body's
// statements went with the connection, so the attempt fails and the step is retried per its policy.
class postgres_journal::step_tx final : public step_transaction {
public:
    step_tx(postgres_journal& owner, std::unique_ptr<connection> c) : owner_(owner), c_(std::move(c)) {
        c_->exec("BEGIN", "beginning a transactional step's transaction");
    }
    ~step_tx() override {
        if (open_ && c_->usable()) PQclear(PQexec(c_->raw(), "ROLLBACK"));
        if (!c_->usable() || PQtransactionStatus(c_->raw()) != PQTRANS_IDLE) return;  // not reused
        std::lock_guard l(owner_.pool_m_);
        owner_.idle_.push_back(std::move(c_));
    }

    std::vector<durable::row> exec(std::string_view sql, std::initializer_list<durable::sql_value> params) override {
        const std::string text(sql);
        const std::string doing =
            "running the step's statement `" + (sql.size() <= 120 ? text : text.substr(0, 117) + "...") + "`";
        if (!open_) throw std::logic_error("weft: durable: " + doing + ": the step's transaction has ended");
        std::vector<std::string> values;
        std::vector<const char*> pointers;
        values.reserve(params.size());
        for (const auto& p : params) {
            switch (p.type()) {
            case durable::sql_value::kind::null: values.emplace_back(); break;
            case durable::sql_value::kind::integer: values.push_back(std::to_string(p.integer())); break;
            case durable::sql_value::kind::real: {
                char buf[32];
                const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, p.real());
                values.emplace_back(buf, ec == std::errc() ? end : buf);
                break;
            }
            case durable::sql_value::kind::text: values.push_back(p.text()); break;
            }
        }
        std::size_t k = 0;  // values holds one entry per parameter, NULLs included
        for (const auto& p : params) {
            pointers.push_back(p.type() == durable::sql_value::kind::null ? nullptr : values[k].c_str());
            ++k;
        }
        return c_->run_text(text.c_str(), pointers, doing);
    }
    bool postgres() const noexcept override { return true; }

    std::optional<step_result> commit(std::string_view run, std::string_view step, const step_result& r) override {
        try {
            const committed c = owner_.commit_on(*c_, run, step, r);
            if (!c.winner || !c.ours) {  // the body's writes go at once
                open_ = false;
                c_->exec("ROLLBACK", "rolling back a transactional step's writes");
                return c.winner;
            }
            crash_point("result.before_commit");
            open_ = false;
            c_->exec("COMMIT", "committing a transactional step's writes with its result");
            crash_point("result.after_commit");
            return c.winner;
        } catch (const durable::journal_error& e) {
            // Class 40 (a serializable transaction's conflict, a deadlock): the server rolled it all back.
            if (!e.sqlstate().starts_with("40")) throw;
            open_ = c_->usable() && PQtransactionStatus(c_->raw()) != PQTRANS_IDLE;
            throw step_conflict("weft: durable: the step's transaction conflicted with another one and was rolled back "
                                "(SQLSTATE " + e.sqlstate() + "): " + e.what());
        }
    }

private:
    postgres_journal& owner_;
    std::unique_ptr<connection> c_;
    bool open_ = true;
};

std::unique_ptr<step_transaction> postgres_journal::begin_step() {
    std::unique_ptr<connection> c;
    {
        std::lock_guard l(pool_m_);
        if (!idle_.empty()) {
            c = std::move(idle_.back());
            idle_.pop_back();
        }
    }
    if (!c || !c->usable()) {
        c = std::make_unique<connection>(*this, true);
        c->open();
    }
    return std::make_unique<step_tx>(*this, std::move(c));
}

std::vector<step_record> postgres_journal::steps_of(std::string_view run) {
    return retrying([&] {
        std::vector<step_record> out;
        auto record = [&](const std::string& step) -> step_record& {
            for (auto& r : out)
                if (r.step == step) return r;
            return out.emplace_back(step_record{step});
        };
        // One snapshot for both reads: a result committed between them would otherwise be missed.
        constexpr std::string_view doing = "reading a run's steps";
        tx t(synced_, doing);
        synced_.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", doing);
        const auto a = synced_.run("SELECT step, attempt, outcome, finished_at, error, started_at FROM weft_durable.step_attempts "
                                   "WHERE run_id = $1 ORDER BY step, attempt",
                                   {run}, "reading a run's step attempts");
        for (int i = 0; i < a.rows(); ++i) {
            auto& r = record(a.text(i, 0));
            if (r.last_attempt == 0) r.first_started_at = a.integer(i, 5);
            r.last_attempt = static_cast<int>(a.integer(i, 1));
            const std::string outcome = a.text(i, 2);
            r.last_open = a.null(i, 2);
            r.last_failed = outcome == "failed" || outcome == "timed_out";
            if (r.last_failed) ++r.failures;
            if (r.last_open) ++r.interrupted;
            r.last_finished_at = a.integer(i, 3);
            r.last_error = a.text(i, 4);
        }
        const auto s = synced_.run("SELECT step, state, output, error, attempt FROM weft_durable.step_results WHERE run_id = $1",
                                   {run}, "reading a run's step results");
        for (int i = 0; i < s.rows(); ++i)
            record(s.text(i, 0)).result =
                step_result{s.text(i, 1) == "succeeded", s.text(i, 2), s.text(i, 3), static_cast<int>(s.integer(i, 4))};
        t.commit(doing);
        return out;
    });
}

bool postgres_journal::has_attempts(std::string_view run) {
    return retrying([&] {
        return synced_.run("SELECT EXISTS (SELECT 1 FROM weft_durable.step_attempts WHERE run_id = $1)", {run},
                           "reading whether a run has begun")
            .boolean(0, 0);
    });
}

std::vector<journal::listed_run> postgres_journal::recent_runs(std::string_view workflow, std::size_t limit) {
    return retrying([&] {
        const auto s = synced_.run(
            "SELECT id, state, created_at, (SELECT min(started_at) FROM weft_durable.step_attempts WHERE run_id = runs.id) "
            "FROM weft_durable.runs WHERE workflow = $1 ORDER BY created_at DESC, id LIMIT $2",
            {workflow, static_cast<std::int64_t>(std::min<std::size_t>(limit, std::size_t(1) << 40))}, "listing recent runs");
        std::vector<listed_run> out;
        for (int i = 0; i < s.rows(); ++i)
            out.push_back({s.text(i, 0), state_from(s.text(i, 1)), s.integer(i, 2), s.null(i, 3) ? 0 : s.integer(i, 3)});
        return out;
    });
}

}  // namespace weft::durable_detail
