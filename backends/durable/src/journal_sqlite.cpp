// The SQLite journal: one file in WAL mode, one connection per engine, every write one BEGIN
// IMMEDIATE transaction.
#include "journal.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include <unistd.h>

namespace weft::durable_detail {

namespace {

// 'weft' in ASCII: marks the file as a weft journal for whoever opens it later.
constexpr int application_id = 0x77656674;
// A version 1 journal is upgraded in place when opened (one ALTER TABLE).
constexpr int schema_version = journal_schema_version;

constexpr const char* schema = R"sql(
CREATE TABLE runs(
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
  lease_until INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER,
  metadata TEXT
);
CREATE INDEX runs_unfinished ON runs(workflow, created_at) WHERE state = 'running';
CREATE INDEX runs_finished ON runs(finished_at) WHERE state <> 'running';
CREATE TABLE step_attempts(
  run_id TEXT NOT NULL,
  step TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  owner TEXT,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  outcome TEXT CHECK (outcome IN ('succeeded', 'failed', 'timed_out', 'stopped')),
  error TEXT,
  PRIMARY KEY (run_id, step, attempt)
) WITHOUT ROWID;
CREATE TABLE step_results(
  run_id TEXT NOT NULL,
  step TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('succeeded', 'failed')),
  output TEXT,
  error TEXT,
  attempt INTEGER NOT NULL,
  committed_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
)sql";

constexpr std::string_view state_name(run_state s) { return to_string(s); }

}  // namespace

class sqlite_journal final : public journal {
public:
    explicit sqlite_journal(const durable::options& opts);
    ~sqlite_journal() override;

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
    class statement;
    struct tx;
    struct unsynced;
    class step_tx;
    struct committed {
        std::optional<step_result> winner;  // nothing: the run no longer runs
        bool ours = false;                  // the result given was inserted
    };
    // The statements of commit_result, in a transaction the caller holds.
    committed commit_in_tx(std::string_view run, std::string_view step, const step_result& r);
    [[noreturn]] void fail(int rc, std::string_view doing) const;
    void exec(const char* sql, std::string_view doing);
    void open_checked(const durable::options& opts);
    statement& prepare(const char* sql);

    const durable::options opts_;
    bool full_;  // synchronous = full: every commit waits for the disk, unless `unsynced`
    sqlite3* db_ = nullptr;
    std::mutex m_;  // one transaction at a time on the connection
    std::vector<std::unique_ptr<statement>> statements_;
    std::mutex pool_m_;
    std::vector<std::unique_ptr<sqlite_journal>> idle_;  // connections of finished step transactions
};

std::shared_ptr<journal> open_sqlite_journal(const durable::options& opts) { return std::make_shared<sqlite_journal>(opts); }

// A prepared statement, reset after each use.
class sqlite_journal::statement {
public:
    statement(sqlite_journal& j, const char* sql) : j_(j), sql_(sql) {
        if (int rc = sqlite3_prepare_v3(j.db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr); rc != SQLITE_OK)
            j.fail(rc, "preparing a statement");
    }
    ~statement() { sqlite3_finalize(s_); }
    const char* sql() const noexcept { return sql_; }

    statement& bind(int i, std::string_view v) {
        check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
        return *this;
    }
    statement& bind(int i, std::int64_t v) {
        check(sqlite3_bind_int64(s_, i, v));
        return *this;
    }
    statement& bind_null(int i) {
        check(sqlite3_bind_null(s_, i));
        return *this;
    }
    // Text, or NULL when empty: optional columns keep NULL for "none".
    statement& bind_or_null(int i, std::string_view v) { return v.empty() ? bind_null(i) : bind(i, v); }

    // Steps once: true while it yields a row.
    bool step(std::string_view doing) {
        int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        sqlite3_reset(s_);
        j_.fail(rc, doing);
    }
    void run(std::string_view doing) {
        while (step(doing)) {
        }
        done();
    }
    // The first column of every row, as text.
    std::vector<std::string> column(std::string_view doing) {
        std::vector<std::string> out;
        while (step(doing)) out.push_back(text(0));
        done();
        return out;
    }
    void done() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }

    std::string text(int col) const {
        auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, col))) : std::string();
    }
    std::int64_t integer(int col) const { return sqlite3_column_int64(s_, col); }
    bool null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) j_.fail(rc, "binding a value");
    }
    sqlite_journal& j_;
    const char* sql_;
    sqlite3_stmt* s_ = nullptr;
};

// BEGIN IMMEDIATE takes the write lock at once, so a transaction never has to upgrade (and deadlock)
// half way; rolled back unless committed.
struct sqlite_journal::tx {
    sqlite_journal& j;
    bool committed = false;
    explicit tx(sqlite_journal& jj, std::string_view doing) : j(jj) { j.exec("BEGIN IMMEDIATE", doing); }
    void commit(std::string_view doing) {
        j.exec("COMMIT", doing);
        committed = true;
    }
    ~tx() {
        if (!committed) sqlite3_exec(j.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
};

// Bookkeeping that may be lost with power (an attempt's start, a failure that leads to a retry) is
// written without its own fsync: in WAL mode the next synchronous commit (a result's) syncs the whole
// log, these rows with it. A lost one costs at most an extra attempt, never a result.
struct sqlite_journal::unsynced {
    sqlite_journal& j;
    explicit unsynced(sqlite_journal& jj) : j(jj) {
        if (j.full_) j.exec("PRAGMA synchronous = NORMAL", "writing without waiting for the disk");
    }
    ~unsynced() {
        if (j.full_) sqlite3_exec(j.db_, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr);
    }
};

sqlite_journal::sqlite_journal(const durable::options& opts)
    : journal(opts.journal), opts_(opts), full_(opts.synchronous != "normal") {
    try {
        open_checked(opts);
    } catch (...) {
        statements_.clear();
        sqlite3_close_v2(db_);
        throw;
    }
}

sqlite_journal::~sqlite_journal() {
    statements_.clear();
    sqlite3_close_v2(db_);
}

void sqlite_journal::open_checked(const durable::options& opts) {
    if (path_.empty())
        throw durable::journal_error("weft: durable: no journal file: set durable.journal (WEFT_DURABLE_JOURNAL) to a path",
                                     path_, SQLITE_CANTOPEN);
    int rc = sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) fail(rc, "opening it");
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(opts.busy_timeout.count()));

    // The header is read here first: a file that is not a database fails now, with the file's name.
    // One read transaction for both reads: another process may be creating the tables meanwhile.
    exec("BEGIN", "reading its header");
    auto& id = prepare("PRAGMA application_id");
    id.step("reading its header");
    const auto app = id.integer(0);
    id.done();
    auto& tables = prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'");
    tables.step("reading its schema");
    const auto table_count = tables.integer(0);
    tables.done();
    exec("COMMIT", "reading its header");
    if ((app != 0 && app != application_id) || (app == 0 && table_count != 0))
        throw durable::journal_error(
            "weft: durable: '" + path_ + "' is a SQLite database of another program, not a weft journal: "
            "point durable.journal at a new file or at a journal weft created",
            path_, SQLITE_NOTADB);

    auto& current = prepare("PRAGMA journal_mode");
    current.step("reading its journal mode");
    std::string m = current.text(0);
    current.done();
    // Switching to WAL needs the file to itself, and SQLite does not wait for that (no busy handler):
    // another process opening a new journal at the same moment gets SQLITE_BUSY at once. Retry for
    // as long as a write would wait.
    for (auto until = std::chrono::steady_clock::now() + opts.busy_timeout; m != "wal";) {
        try {
            auto& mode = prepare("PRAGMA journal_mode = WAL");
            mode.step("switching it to WAL mode");
            m = mode.text(0);
            mode.done();
            break;
        } catch (const durable::journal_error& e) {
            if ((e.sqlite_code() & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() > until) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    if (m != "wal")
        throw durable::journal_error("weft: durable: the journal '" + path_ + "' cannot use WAL mode (SQLite kept '" + m +
                                         "'): put it on a local file system that supports shared memory (not NFS)",
                                     path_, SQLITE_IOERR);
    exec(opts.synchronous == "normal" ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL", "setting synchronous");

    if (app == 0) {
        tx t(*this, "creating its tables");
        // Another process may have created them since the header was read: look again under the lock.
        auto& again = prepare("PRAGMA application_id");
        again.step("creating its tables");
        const bool created = again.integer(0) == application_id;
        again.done();
        if (created) return;
        exec(schema, "creating its tables");
        exec(("PRAGMA application_id = " + std::to_string(application_id)).c_str(), "creating its tables");
        exec(("PRAGMA user_version = " + std::to_string(schema_version)).c_str(), "creating its tables");
        t.commit("creating its tables");
        return;
    }
    auto read_version = [&](std::string_view doing) {
        auto& v = prepare("PRAGMA user_version");
        v.step(doing);
        const auto version = v.integer(0);
        v.done();
        return version;
    };
    auto version = read_version("reading its version");
    if (version == 1) {
        constexpr std::string_view doing = "adding the column runs.metadata (schema version 1 to 2)";
        tx t(*this, doing);
        version = read_version(doing);  // another process may have upgraded it since
        if (version == 1) {
            exec("ALTER TABLE runs ADD COLUMN metadata TEXT", doing);
            exec(("PRAGMA user_version = " + std::to_string(schema_version)).c_str(), doing);
            version = schema_version;
        }
        t.commit(doing);
    }
    if (version != schema_version)
        throw durable::journal_error("weft: durable: the journal '" + path_ + "' has schema version " + std::to_string(version) +
                                         ", this weft reads version " + std::to_string(schema_version) +
                                         ": open it with the weft that wrote it",
                                     path_, SQLITE_MISMATCH);
}

sqlite_journal::statement& sqlite_journal::prepare(const char* sql) {
    for (auto& s : statements_)
        if (s->sql() == sql) return *s;
    statements_.push_back(std::make_unique<statement>(*this, sql));
    return *statements_.back();
}

void sqlite_journal::exec(const char* sql, std::string_view doing) {
    if (int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); rc != SQLITE_OK) fail(rc, doing);
}

void sqlite_journal::fail(int rc, std::string_view doing) const {
    const std::string detail = std::string(sqlite3_errstr(rc)) +
                               (db_ && sqlite3_extended_errcode(db_) == rc ? std::string(": ") + sqlite3_errmsg(db_) : "");
    const std::string where = "the journal '" + path_ + "'";
    const std::string while_ = " while " + std::string(doing);
    std::string msg;
    // A full disk reaches SQLite as SQLITE_FULL or, mid-write, as an I/O error whose errno tells.
    const int sys = db_ ? sqlite3_system_errno(db_) : 0;
    const std::string resumes = ": nothing of this write was recorded. ";
    const std::string kept = "; the run stays unfinished in the journal and resumes from its committed steps";
    if ((rc & 0xff) == SQLITE_IOERR && sys == EFBIG) {
        msg = where + " reached the largest file this process may write (ulimit -f) (" + detail + ")" + while_ +
              resumes + "Raise that limit" + kept;
        throw durable::journal_error("weft: durable: " + msg, path_, rc);
    }
    if ((rc & 0xff) == SQLITE_IOERR && sys == ENOSPC) rc = SQLITE_FULL;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        msg = where + " is locked by another connection (" + detail + ")" + while_ +
              ": another program holds a write transaction on it and did not end it within busy_timeout_ms. "
              "End that program's transaction (`fuser " + path_ + "` lists the processes that have the file open), "
              "or raise durable.busy_timeout_ms";
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        msg = where + " is corrupted or is not a SQLite database (" + detail + ")" + while_ +
              ". Stop every process that uses it, then restore it from a backup or salvage it with `sqlite3 " + path_ +
              " .recover`; to start afresh, move it aside (the runs it holds are then not resumed)";
        break;
    case SQLITE_FULL:
        msg = "the disk holding " + where + " is full (" + detail + ")" + while_ + resumes + "Free space there" + kept;
        break;
    case SQLITE_CANTOPEN:
        msg = "cannot open " + where + " (" + detail + "): check that its directory exists and is writable";
        break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
        msg = where + " is read-only (" + detail + ")" + while_ + ": weft writes to its journal; make it and its directory writable";
        break;
    case SQLITE_IOERR:
        msg = "cannot read or write " + where + " (" + detail + (sys ? std::string(": ") + std::strerror(sys) : "") + ")" +
              while_ + ": check the disk it is on" + kept;
        break;
    default:
        msg = where + ": " + detail + while_;
    }
    throw durable::journal_error("weft: durable: " + msg, path_, rc);
}

// ---- runs ----------------------------------------------------------------------------------------

void sqlite_journal::insert_run(const run_row& r) {
    std::lock_guard l(m_);
    prepare("INSERT INTO runs(id, workflow, dag_hash, input, state, owner, lease_until, created_at, updated_at, metadata) "
            "VALUES(?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)")
        .bind(1, r.id).bind(2, r.workflow).bind(3, r.dag_hash).bind(4, r.input).bind(5, r.owner)
        .bind(6, r.lease_until).bind(7, r.created_at).bind(8, r.created_at).bind_or_null(9, r.metadata)
        .run("recording a new run");
}

std::optional<run_row> sqlite_journal::read_run(std::string_view id) {
    std::lock_guard l(m_);
    auto& s = prepare("SELECT workflow, dag_hash, input, state, output, failed_step, error, attempts, owner, lease_until, "
                      "created_at, finished_at, metadata FROM runs WHERE id = ?");
    s.bind(1, id);
    if (!s.step("reading a run")) {
        s.done();
        return std::nullopt;
    }
    run_row r;
    r.id = std::string(id);
    r.workflow = s.text(0);
    r.dag_hash = s.text(1);
    r.input = s.text(2);
    r.state = state_from(s.text(3));
    r.output = s.text(4);
    r.failed_step = s.text(5);
    r.error = s.text(6);
    r.attempts = static_cast<int>(s.integer(7));
    r.owner = s.text(8);
    r.lease_until = s.integer(9);
    r.created_at = s.integer(10);
    r.finished_at = s.integer(11);
    r.metadata = s.text(12);
    s.done();
    return r;
}

std::vector<std::string> sqlite_journal::unfinished_runs(std::string_view workflow) {
    std::lock_guard l(m_);
    auto& s = prepare("SELECT id FROM runs WHERE workflow = ? AND state = 'running' ORDER BY created_at");
    return s.bind(1, workflow).column("listing unfinished runs");
}

bool sqlite_journal::claim(std::string_view id, std::string_view seen_owner, millis seen_lease, std::string_view owner,
                    millis lease_until) {
    std::lock_guard l(m_);
    auto& s = prepare("UPDATE runs SET owner = ?, lease_until = ?, updated_at = ? "
                      "WHERE id = ? AND state = 'running' AND owner IS ? AND ifnull(lease_until, 0) = ?");
    s.bind(1, owner).bind(2, lease_until).bind(3, now_ms()).bind(4, id).bind_or_null(5, seen_owner).bind(6, seen_lease);
    s.run("taking a run over");
    return sqlite3_changes(db_) == 1;
}

void sqlite_journal::renew(std::string_view owner, millis lease_until) {
    std::lock_guard l(m_);
    prepare("UPDATE runs SET lease_until = ? WHERE owner = ? AND state = 'running'")
        .bind(1, lease_until).bind(2, owner).run("renewing the leases of its runs");
}

void sqlite_journal::release(std::string_view owner) {
    std::lock_guard l(m_);
    prepare("UPDATE runs SET owner = NULL, lease_until = NULL, updated_at = ? WHERE owner = ? AND state = 'running'")
        .bind(1, now_ms()).bind(2, owner).run("handing its unfinished runs back");
}

void sqlite_journal::release(std::string_view owner, std::string_view id) {
    std::lock_guard l(m_);
    prepare("UPDATE runs SET owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND owner = ? AND state = 'running'")
        .bind(1, now_ms()).bind(2, id).bind(3, owner).run("handing a run back");
}

bool sqlite_journal::finish_run(const run_row& r) {
    std::lock_guard l(m_);
    tx t(*this, "closing a run");
    const millis now = now_ms();
    auto& s = prepare("UPDATE runs SET state = ?, output = ?, failed_step = ?, error = ?, attempts = ?, owner = NULL, "
                      "lease_until = NULL, updated_at = ?, finished_at = ? WHERE id = ? AND state = 'running'");
    s.bind(1, state_name(r.state)).bind_or_null(2, r.output).bind_or_null(3, r.failed_step).bind_or_null(4, r.error);
    if (r.state == run_state::failed) s.bind(5, std::int64_t{r.attempts});
    else s.bind_null(5);
    s.bind(6, now).bind(7, now).bind(8, r.id).run("closing a run");
    const bool won = sqlite3_changes(db_) == 1;
    crash_point("run.before_complete");
    t.commit("closing a run");
    crash_point("run.after_complete");
    return won;
}

bool sqlite_journal::cancel_run(std::string_view id) {
    std::lock_guard l(m_);
    const millis now = now_ms();
    prepare("UPDATE runs SET state = 'cancelled', owner = NULL, lease_until = NULL, updated_at = ?, finished_at = ? "
            "WHERE id = ? AND state = 'running'")
        .bind(1, now).bind(2, now).bind(3, id).run("cancelling a run");
    return sqlite3_changes(db_) == 1;
}

std::vector<std::string> sqlite_journal::closed_since(millis since) {
    std::lock_guard l(m_);
    auto& s = prepare("SELECT id FROM runs WHERE state <> 'running' AND finished_at >= ?");
    return s.bind(1, since).column("listing runs closed lately");
}

int sqlite_journal::remove_finished(millis cutoff, int limit) {
    std::lock_guard l(m_);
    tx t(*this, "removing finished runs past their retention");
    constexpr const char* doing = "removing finished runs past their retention";
    prepare("CREATE TEMP TABLE IF NOT EXISTS expired(id TEXT PRIMARY KEY)").run(doing);
    prepare("DELETE FROM temp.expired").run(doing);
    prepare("INSERT INTO temp.expired SELECT id FROM runs WHERE state <> 'running' AND finished_at < ? LIMIT ?")
        .bind(1, cutoff).bind(2, std::int64_t{limit}).run(doing);
    const int n = sqlite3_changes(db_);
    if (n == 0) return 0;
    prepare("DELETE FROM step_results WHERE run_id IN temp.expired").run(doing);
    prepare("DELETE FROM step_attempts WHERE run_id IN temp.expired").run(doing);
    prepare("DELETE FROM runs WHERE id IN temp.expired").run(doing);
    t.commit(doing);
    return n;
}

// ---- steps ---------------------------------------------------------------------------------------

void sqlite_journal::begin_attempt(std::string_view run, std::string_view step, int attempt, std::string_view owner) {
    std::lock_guard l(m_);
    unsynced u(*this);
    prepare("INSERT INTO step_attempts(run_id, step, attempt, owner, started_at) VALUES(?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING")
        .bind(1, run).bind(2, step).bind(3, std::int64_t{attempt}).bind(4, owner).bind(5, now_ms())
        .run("recording a step attempt");
}

void sqlite_journal::fail_attempt(std::string_view run, std::string_view step, int attempt, std::string_view error,
                           bool timed_out) {
    std::lock_guard l(m_);
    unsynced u(*this);
    prepare("UPDATE step_attempts SET outcome = ?, error = ?, finished_at = ? WHERE run_id = ? AND step = ? AND attempt = ?")
        .bind(1, timed_out ? std::string_view("timed_out") : std::string_view("failed")).bind(2, error).bind(3, now_ms())
        .bind(4, run).bind(5, step).bind(6, std::int64_t{attempt})
        .run("recording a failed step attempt");
}

void sqlite_journal::stop_attempt(std::string_view run, std::string_view step, int attempt) {
    std::lock_guard l(m_);
    unsynced u(*this);
    prepare("UPDATE step_attempts SET outcome = 'stopped', finished_at = ? WHERE run_id = ? AND step = ? AND attempt = ? "
            "AND outcome IS NULL")
        .bind(1, now_ms()).bind(2, run).bind(3, step).bind(4, std::int64_t{attempt})
        .run("recording an attempt cut short by a shutdown");
}

std::optional<step_result> sqlite_journal::commit_result(std::string_view run, std::string_view step, const step_result& r) {
    std::lock_guard l(m_);
    tx t(*this, "committing a step's result");
    const committed c = commit_in_tx(run, step, r);
    if (!c.winner) return std::nullopt;  // cancelled meanwhile: record nothing more
    crash_point("result.before_commit");
    t.commit("committing a step's result");
    crash_point("result.after_commit");
    return c.winner;
}

sqlite_journal::committed sqlite_journal::commit_in_tx(std::string_view run, std::string_view step, const step_result& r) {
    auto& state = prepare("SELECT state FROM runs WHERE id = ?");
    state.bind(1, run);
    const bool open = state.step("committing a step's result") && state.text(0) == "running";
    state.done();
    if (!open) return {};
    const millis now = now_ms();
    prepare("INSERT INTO step_results(run_id, step, state, output, error, attempt, committed_at) "
            "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id, step) DO NOTHING")
        .bind(1, run).bind(2, step).bind(3, r.succeeded ? std::string_view("succeeded") : std::string_view("failed"))
        .bind_or_null(4, r.output).bind_or_null(5, r.error).bind(6, std::int64_t{r.attempt}).bind(7, now)
        .run("committing a step's result");
    const bool ours = sqlite3_changes(db_) == 1;
    prepare("UPDATE step_attempts SET outcome = ?, error = ?, finished_at = ? WHERE run_id = ? AND step = ? AND attempt = ?")
        .bind(1, r.succeeded ? std::string_view("succeeded") : std::string_view("failed")).bind_or_null(2, r.error)
        .bind(3, now).bind(4, run).bind(5, step).bind(6, std::int64_t{r.attempt})
        .run("committing a step's result");
    step_result winner = r;
    if (!ours) {
        auto& s = prepare("SELECT state, output, error, attempt FROM step_results WHERE run_id = ? AND step = ?");
        s.bind(1, run).bind(2, step);
        s.step("reading a step's committed result");
        winner = {s.text(0) == "succeeded", s.text(1), s.text(2), static_cast<int>(s.integer(3))};
        s.done();
    }
    return {winner, ours};
}

// ---- transactional steps ---------------------------------------------------------------------------

// A connection of the pool with BEGIN IMMEDIATE done: the step holds the file's write lock while its
// body runs (SQLite has one writer), so its reads and writes see no other writer's.
class sqlite_journal::step_tx final : public step_transaction {
public:
    step_tx(sqlite_journal& owner, std::unique_ptr<sqlite_journal> c) : owner_(owner), c_(std::move(c)) {
        c_->exec("BEGIN IMMEDIATE", "beginning a transactional step's transaction");
    }
    ~step_tx() override {
        if (open_) sqlite3_exec(c_->db_, "ROLLBACK", nullptr, nullptr, nullptr);
        if (sqlite3_get_autocommit(c_->db_) == 0) return;  // a transaction it could not end: not reused
        std::lock_guard l(owner_.pool_m_);
        owner_.idle_.push_back(std::move(c_));
    }

    std::vector<durable::row> exec(std::string_view sql, std::initializer_list<durable::sql_value> params) override {
        const std::string doing = "running the step's statement `" + shown(sql) + "`";
        if (!open_) throw std::logic_error("weft: durable: " + doing + ": the step's transaction has ended");
        sqlite3_stmt* st = nullptr;
        const char* tail = nullptr;
        if (int rc = sqlite3_prepare_v2(c_->db_, sql.data(), static_cast<int>(sql.size()), &st, &tail); rc != SQLITE_OK)
            c_->fail(rc, doing);
        std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, &sqlite3_finalize);
        if (!st) throw durable::journal_error("weft: durable: the journal '" + owner_.path() + "': no statement in " + doing,
                                              owner_.path(), SQLITE_MISUSE);
        if (std::string_view(tail, sql.data() + sql.size() - tail).find_first_not_of(" \t\r\n;") != std::string_view::npos)
            throw durable::journal_error("weft: durable: the journal '" + owner_.path() + "': more than one statement in " +
                                             doing + ": call exec once per statement",
                                         owner_.path(), SQLITE_MISUSE);
        const int wanted = sqlite3_bind_parameter_count(st);
        if (wanted != static_cast<int>(params.size()))
            throw durable::journal_error("weft: durable: the journal '" + owner_.path() + "': " + std::to_string(params.size()) +
                                             " parameters given for " + std::to_string(wanted) + " while " + doing,
                                         owner_.path(), SQLITE_RANGE);
        int i = 0;
        for (const auto& p : params) {
            ++i;
            // $n names parameter n (as on PostgreSQL); a statement written with ? binds in order.
            const std::string name = "$" + std::to_string(i);
            int at = sqlite3_bind_parameter_index(st, name.c_str());
            if (at == 0) at = i;
            int rc = SQLITE_OK;
            switch (p.type()) {
            case durable::sql_value::kind::null: rc = sqlite3_bind_null(st, at); break;
            case durable::sql_value::kind::integer: rc = sqlite3_bind_int64(st, at, p.integer()); break;
            case durable::sql_value::kind::real: rc = sqlite3_bind_double(st, at, p.real()); break;
            case durable::sql_value::kind::text:
                rc = sqlite3_bind_text(st, at, p.text().data(), static_cast<int>(p.text().size()), SQLITE_TRANSIENT);
                break;
            }
            if (rc != SQLITE_OK) c_->fail(rc, "binding " + name + " while " + doing);
        }
        std::vector<durable::row> rows;
        for (;;) {
            const int rc = sqlite3_step(st);
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) c_->fail(rc, doing);
            auto& r = rows.emplace_back();
            for (int col = 0, n = sqlite3_column_count(st); col < n; ++col) {
                if (sqlite3_column_type(st, col) == SQLITE_NULL) {
                    r.emplace_back();
                    continue;
                }
                auto t = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
                r.emplace_back(std::string(t, static_cast<std::size_t>(sqlite3_column_bytes(st, col))));
            }
        }
        return rows;
    }
    bool postgres() const noexcept override { return false; }

    std::optional<step_result> commit(std::string_view run, std::string_view step, const step_result& r) override {
        const committed c = c_->commit_in_tx(run, step, r);
        if (!c.winner || !c.ours) {  // the body's writes go, and the write lock with them, at once
            open_ = false;
            c_->exec("ROLLBACK", "rolling back a transactional step's writes");
            return c.winner;
        }
        crash_point("result.before_commit");
        c_->exec("COMMIT", "committing a transactional step's writes with its result");
        open_ = false;
        crash_point("result.after_commit");
        return c.winner;
    }

private:
    static std::string shown(std::string_view sql) {
        return sql.size() <= 120 ? std::string(sql) : std::string(sql.substr(0, 117)) + "...";
    }
    sqlite_journal& owner_;
    std::unique_ptr<sqlite_journal> c_;
    bool open_ = true;
};

std::unique_ptr<step_transaction> sqlite_journal::begin_step() {
    std::unique_ptr<sqlite_journal> c;
    {
        std::lock_guard l(pool_m_);
        if (!idle_.empty()) {
            c = std::move(idle_.back());
            idle_.pop_back();
        }
    }
    if (!c) c = std::make_unique<sqlite_journal>(opts_);
    return std::make_unique<step_tx>(*this, std::move(c));
}

std::vector<step_record> sqlite_journal::steps_of(std::string_view run) {
    std::lock_guard l(m_);
    std::vector<step_record> out;
    auto record = [&](const std::string& step) -> step_record& {
        for (auto& r : out)
            if (r.step == step) return r;
        return out.emplace_back(step_record{step});
    };
    auto& a = prepare("SELECT step, attempt, outcome, finished_at, error, started_at FROM step_attempts WHERE run_id = ? "
                      "ORDER BY step, attempt");
    a.bind(1, run);
    while (a.step("reading a run's step attempts")) {
        auto& r = record(a.text(0));
        if (r.last_attempt == 0) r.first_started_at = a.integer(5);
        r.last_attempt = static_cast<int>(a.integer(1));
        const std::string outcome = a.text(2);
        r.last_open = a.null(2);
        r.last_failed = outcome == "failed" || outcome == "timed_out";
        if (r.last_failed) ++r.failures;
        if (r.last_open) ++r.interrupted;
        r.last_finished_at = a.integer(3);
        r.last_error = a.text(4);
    }
    a.done();
    auto& s = prepare("SELECT step, state, output, error, attempt FROM step_results WHERE run_id = ?");
    s.bind(1, run);
    while (s.step("reading a run's step results"))
        record(s.text(0)).result = step_result{s.text(1) == "succeeded", s.text(2), s.text(3), static_cast<int>(s.integer(4))};
    s.done();
    return out;
}

bool sqlite_journal::has_attempts(std::string_view run) {
    std::lock_guard l(m_);
    auto& s = prepare("SELECT EXISTS(SELECT 1 FROM step_attempts WHERE run_id = ?)");
    s.bind(1, run);
    s.step("reading whether a run has begun");
    const bool begun = s.integer(0) != 0;
    s.done();
    return begun;
}

std::vector<journal::listed_run> sqlite_journal::recent_runs(std::string_view workflow, std::size_t limit) {
    std::lock_guard l(m_);
    auto& s = prepare("SELECT id, state, created_at, (SELECT min(started_at) FROM step_attempts WHERE run_id = runs.id) "
                      "FROM runs WHERE workflow = ? ORDER BY created_at DESC, id LIMIT ?");
    s.bind(1, workflow).bind(2, static_cast<std::int64_t>(std::min<std::size_t>(limit, std::size_t(1) << 40)));
    std::vector<listed_run> out;
    while (s.step("listing recent runs"))
        out.push_back({s.text(0), state_from(s.text(1)), s.integer(2), s.null(3) ? 0 : s.integer(3)});
    s.done();
    return out;
}

std::vector<health_check> sqlite_journal::checks() {
    const std::string& path = path_;
    std::vector<health_check> out;
    out.push_back({"durable.schema", true, "'" + path + "' is a weft journal of schema version " + std::to_string(schema_version), {}});
    const std::string dir = std::filesystem::path(path).parent_path().empty()
                                ? std::string(".")
                                : std::filesystem::path(path).parent_path().string();
    const bool file_ok = ::access(path.c_str(), W_OK) == 0, dir_ok = ::access(dir.c_str(), W_OK | X_OK) == 0;
    out.push_back({"durable.writable", file_ok && dir_ok,
                   file_ok && dir_ok ? "this process can write '" + path + "' and its directory"
                   : !file_ok        ? "this process cannot write '" + path + "': " + std::strerror(errno)
                                     : "this process cannot create files in '" + dir + "' (SQLite's -wal and -shm): " +
                                           std::strerror(errno),
                   file_ok && dir_ok ? "" : "give this user write access, or point journal (WEFT_DURABLE_JOURNAL) elsewhere"});
    return out;
}

}  // namespace weft::durable_detail
