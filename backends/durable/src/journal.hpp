// The journal: runs, step attempts and step results in one SQLite file (WAL), behind one connection
// per engine. Every method is one transaction; errors are durable::journal_error naming the file.
//
// A step's result is committed once: step_results is keyed by (run, step), the insert is
// ON CONFLICT DO NOTHING, and the caller gets the row that won, whoever wrote it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <weft/durable.hpp>

struct sqlite3;
struct sqlite3_stmt;

namespace weft::durable_detail {

using millis = std::int64_t;  // milliseconds since the Unix epoch
millis now_ms();

void crash_point(std::string_view point);  // calls the test hook, if any

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

class journal {
public:
    explicit journal(const durable::options& opts);  // opens or creates the file; checks it is a weft journal
    ~journal();
    journal(const journal&) = delete;
    journal& operator=(const journal&) = delete;

    const std::string& path() const noexcept { return path_; }
    // The schema version this weft reads and writes (opening a journal of another version throws).
    static int version() noexcept;

    void insert_run(const run_row& r);
    std::optional<run_row> read_run(std::string_view id);
    std::vector<std::string> unfinished_runs(std::string_view workflow);
    // Takes the run over if it is still running and its owner is still `seen_owner` (compare and swap).
    bool claim(std::string_view id, std::string_view seen_owner, millis seen_lease, std::string_view owner, millis lease_until);
    void renew(std::string_view owner, millis lease_until);
    void release(std::string_view owner);  // hands this owner's unfinished runs back (owner NULL)
    void release(std::string_view owner, std::string_view id);
    // Closes a running run; false when it was already closed (cancelled, or finished elsewhere).
    bool finish_run(const run_row& r);
    bool cancel_run(std::string_view id);
    std::vector<std::string> closed_since(millis since);  // runs closed (by anyone) at or after `since`
    // Removes up to `limit` runs that finished before `cutoff`, with their attempts and results;
    // returns how many.
    int remove_finished(millis cutoff, int limit);

    void begin_attempt(std::string_view run, std::string_view step, int attempt, std::string_view owner);
    void fail_attempt(std::string_view run, std::string_view step, int attempt, std::string_view error, bool timed_out);
    // The attempt was cut short by a shutdown (not a failure, not a crash): it runs again on resume.
    void stop_attempt(std::string_view run, std::string_view step, int attempt);
    // Commits `result` for (run, step) unless one is committed already; returns the committed one.
    // Nothing when the run is no longer running (cancelled or closed): nothing was written then.
    std::optional<step_result> commit_result(std::string_view run, std::string_view step, const step_result& result);
    std::vector<step_record> steps_of(std::string_view run);
    // Whether any step of the run has begun an attempt (a run without one is queued).
    bool has_attempts(std::string_view run);
    // The newest runs of `workflow`, at most `limit`: id, state, created_at, and the first attempt's
    // start (0: none yet).
    struct listed_run {
        std::string id;
        run_state state = run_state::running;
        millis created_at = 0, first_started_at = 0;
    };
    std::vector<listed_run> recent_runs(std::string_view workflow, std::size_t limit);

private:
    class statement;
    struct tx;
    struct unsynced;
    [[noreturn]] void fail(int rc, std::string_view doing) const;
    void exec(const char* sql, std::string_view doing);
    void open_checked(const durable::options& opts);

    std::string path_;
    bool full_;  // synchronous = full: every commit waits for the disk, unless `unsynced`
    sqlite3* db_ = nullptr;
    std::mutex m_;  // one transaction at a time on the connection
    std::vector<std::unique_ptr<statement>> statements_;
    statement& prepare(const char* sql);
};

}  // namespace weft::durable_detail
