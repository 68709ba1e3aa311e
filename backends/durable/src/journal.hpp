// The journal: runs, step attempts and step results, in one SQLite file (WAL) or in a PostgreSQL
// schema, behind one connection per engine. The engine sees only this interface; both stores keep
// the same tables and answer every method with one transaction. Errors are durable::journal_error
// naming the file or the URL.
//
// A step's result is committed once: step_results is keyed by (run, step), the insert is
// ON CONFLICT DO NOTHING, and the caller gets the row that won, whoever wrote it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <weft/durable.hpp>

namespace weft::durable_detail {

using millis = std::int64_t;  // milliseconds since the Unix epoch
millis now_ms();

void crash_point(std::string_view point);  // calls the test hook, if any

// durable::transaction::current() on this thread: set by the engine while a transactional step's body runs.
extern thread_local durable::transaction* current_transaction;

struct run_row {
    std::string id, workflow, dag_hash, input;  // input: the JSON array of the run's input
    run_state state = run_state::running;
    std::string output;                  // succeeded: JSON
    std::string failed_step, error;      // failed: the step that failed first and its error
    int attempts = 0;                    // failed: its attempts
    std::string owner;                   // the process driving it; empty: none
    millis lease_until = 0;
    millis created_at = 0, finished_at = 0;
    std::string metadata;                // a JSON object of strings; empty: the run has none
};

// A step's committed result: what every process uses from then on.
struct step_result {
    bool succeeded = false;
    std::string output;  // succeeded: JSON
    std::string error;   // failed
    int attempt = 0;     // the attempt that produced it
};

// What the journal knows of one step of a run.
struct step_record {
    std::string step;
    std::optional<step_result> result;
    int last_attempt = 0;        // the highest attempt started (0: never started)
    int failures = 0;            // attempts that ended failed or timed out
    int interrupted = 0;         // attempts without an outcome: their process died while they ran
    bool last_open = false;      // the last attempt has no outcome: it runs, or its process died
    bool last_failed = false;    // the last attempt failed or timed out: a retry is due
    millis last_finished_at = 0; // when the last attempt ended
    millis first_started_at = 0; // when the first attempt began
    std::string last_error;
};

// The tables' version, the same in both stores. 2 added runs.metadata.
inline constexpr int journal_schema_version = 2;

// A transactional step's commit refused because its transaction conflicted with another one
// (PostgreSQL's SQLSTATE class 40: a serialization failure, a deadlock): nothing of it was kept, and
// the attempt is retried as a failed one.
struct step_conflict : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A transactional step's transaction (durable::transaction, on a connection of its own), begun
// before the body runs and rolled back when dropped uncommitted.
class step_transaction : public durable::transaction {
public:
    virtual ~step_transaction() = default;
    // Commits the body's writes with `result` when it is the step's first result and the run still
    // runs, at the crash points commit_result has; otherwise rolls them back. Returns the committed
    // result as commit_result does. A commit whose outcome is unknown (the server was lost during it)
    // throws: the journal then says whether it happened.
    virtual std::optional<step_result> commit(std::string_view run, std::string_view step, const step_result& result) = 0;
};

class journal {
public:
    virtual ~journal() = default;
    journal(const journal&) = delete;
    journal& operator=(const journal&) = delete;

    // The file, or the URL without its password: what error messages and doctor name.
    const std::string& path() const noexcept { return path_; }
    // The schema version this weft reads and writes (opening a journal of another version throws).
    static int version() noexcept;

    virtual void insert_run(const run_row& r) = 0;
    virtual std::optional<run_row> read_run(std::string_view id) = 0;
    virtual std::vector<std::string> unfinished_runs(std::string_view workflow) = 0;
    // Takes the run over if it is still running and its owner is still `seen_owner` (compare and swap).
    virtual bool claim(std::string_view id, std::string_view seen_owner, millis seen_lease, std::string_view owner,
                       millis lease_until) = 0;
    virtual void renew(std::string_view owner, millis lease_until) = 0;
    virtual void release(std::string_view owner) = 0;  // hands this owner's unfinished runs back (owner NULL)
    virtual void release(std::string_view owner, std::string_view id) = 0;
    // Closes a running run; false when it was already closed (cancelled, or finished elsewhere).
    virtual bool finish_run(const run_row& r) = 0;
    virtual bool cancel_run(std::string_view id) = 0;
    virtual std::vector<std::string> closed_since(millis since) = 0;  // runs closed (by anyone) at or after `since`
    // Removes up to `limit` runs that finished before `cutoff`, with their attempts and results;
    // returns how many.
    virtual int remove_finished(millis cutoff, int limit) = 0;

    virtual void begin_attempt(std::string_view run, std::string_view step, int attempt, std::string_view owner) = 0;
    virtual void fail_attempt(std::string_view run, std::string_view step, int attempt, std::string_view error,
                              bool timed_out) = 0;
    // The attempt was cut short by a shutdown (not a failure, not a crash): it runs again on resume.
    virtual void stop_attempt(std::string_view run, std::string_view step, int attempt) = 0;
    // Commits `result` for (run, step) unless one is committed already; returns the committed one.
    // Nothing when the run is no longer running (cancelled or closed): nothing was written then.
    virtual std::optional<step_result> commit_result(std::string_view run, std::string_view step,
                                                     const step_result& result) = 0;
    // The transaction a transactional step's body writes through (a pooled connection, BEGIN done).
    virtual std::unique_ptr<step_transaction> begin_step() = 0;
    virtual std::vector<step_record> steps_of(std::string_view run) = 0;
    // Whether any step of the run has begun an attempt (a run without one is queued).
    virtual bool has_attempts(std::string_view run) = 0;
    // The newest runs of `workflow`, at most `limit`: id, state, created_at, and the first attempt's
    // start (0: none yet).
    struct listed_run {
        std::string id;
        run_state state = run_state::running;
        millis created_at = 0, first_started_at = 0;
    };
    virtual std::vector<listed_run> recent_runs(std::string_view workflow, std::size_t limit) = 0;
    // doctor's checks of the store: its schema, and whether this process may write it.
    virtual std::vector<health_check> checks() = 0;

protected:
    explicit journal(std::string path) : path_(std::move(path)) {}
    std::string path_;
};

// A journal URL (postgresql:// or postgres://) rather than a file.
bool is_postgres_url(std::string_view journal);
// The journal `opts.journal` names, opened (and created if missing) and checked to be a weft journal.
std::shared_ptr<journal> open_journal(const durable::options& opts);
std::shared_ptr<journal> open_sqlite_journal(const durable::options& opts);
std::shared_ptr<journal> open_postgres_journal(const durable::options& opts);

// The journal's state names, as both stores keep them.
run_state state_from(std::string_view s);

}  // namespace weft::durable_detail
