// weft::durable: the embedded engine with a journal. Steps run on a thread pool in this process, as on
// weft::local, and every run, step attempt and step result is recorded in a journal, so a run
// survives the death of its process: the next process that opens the journal resumes it from its
// committed steps, and a completed step does not run again. The journal is a SQLite file (nothing to
// start), or a PostgreSQL database given by URL, shared by many processes on many machines.
//
//     weft::client<weft::durable> client({.journal = "/var/lib/app/runs.db"});  // or "postgresql://..."
//     client.resume(nightly);                 // the runs of `nightly` a dead process left unfinished
//     auto run = client.start(nightly, day);  // recorded before start() returns
//     std::string id = run.id();              // attach(nightly, id) from any process on the journal
//     report r = run.get();
//
// A step's result is committed exactly once (first writer wins); its body runs at least once (again
// after a crash that came before its result committed). A step with step_policy::transactional
// writes to the journal's database through durable::transaction::current(), and those writes commit
// with its result: exactly once. Including this header registers the backend,
// so WEFT_BACKEND=durable selects it in any_client (settings: docs/durable.md).
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <weft/backend.hpp>
#include <weft/codec.hpp>
#include <weft/run.hpp>

namespace weft {

struct durable {
    static constexpr std::string_view name = "durable";

    struct options {
        // The SQLite file (created if missing), or a postgresql:// URL: the journal is then the schema
        // weft_durable of that database (created if missing).
        std::string journal = "weft-journal.db";
        unsigned threads = 0;                           // steps run at once; 0 = one per hardware thread
        std::chrono::milliseconds busy_timeout{5000};   // how long a write waits for another connection's lock
        // "full": a commit survives power loss; "normal": a crash of this process (PostgreSQL: of the
        // client; a server crash may lose the last commits, synchronous_commit = off).
        std::string synchronous = "full";
        std::chrono::milliseconds reconnect{30000};     // PostgreSQL: how long a lost server is waited for
        std::chrono::milliseconds lease{10000};         // a run whose owner stops renewing this long is taken over
        std::chrono::milliseconds poll_interval{50};    // how often a handle reads a run another process drives
        std::chrono::seconds retention{7 * 24 * 3600};  // finished runs are removed this long after they end; 0 = kept
        unsigned max_interrupts = 10;   // a step whose process died this often while it ran fails; 0 = no bound
        bool resume = true;             // the first start() of a workflow also resumes its unfinished runs
        bool resume_changed = false;    // resume runs recorded with a different DAG (hash) than the code's
    };

    // The journal cannot be read or written: names the file (or the URL, without its password), what
    // happened and what to do.
    class journal_error : public std::runtime_error {
    public:
        journal_error(std::string message, std::string path, int code, std::string sqlstate = {})
            : std::runtime_error(std::move(message)), path_(std::move(path)), code_(code), sqlstate_(std::move(sqlstate)) {}
        const std::string& path() const noexcept { return path_; }
        int sqlite_code() const noexcept { return code_; }  // the extended SQLite result code; 0 on PostgreSQL
        // PostgreSQL's SQLSTATE ("53100": disk full, ...); "08006" when the server was lost; empty on SQLite.
        const std::string& sqlstate() const noexcept { return sqlstate_; }

    private:
        std::string path_;
        int code_;
        std::string sqlstate_;
    };

    // A parameter of a transactional step's statement: NULL, a whole number, a real or text.
    class sql_value {
    public:
        enum class kind { null, integer, real, text };
        sql_value(std::nullptr_t) noexcept {}
        sql_value(std::nullopt_t) noexcept {}
        template <std::integral I>
            requires(!std::same_as<I, bool>)
        sql_value(I v) : kind_(kind::integer), integer_(static_cast<std::int64_t>(v)) {
            if constexpr (std::unsigned_integral<I> && sizeof(I) >= sizeof(std::int64_t))
                if (v > static_cast<I>(std::numeric_limits<std::int64_t>::max()))
                    throw std::out_of_range("weft: durable: " + std::to_string(v) + " does not fit a 64-bit SQL integer");
        }
        // SQLite has no booleans and PostgreSQL's take no 0/1: say which you mean (0 or 1, "true").
        sql_value(bool) = delete;
        sql_value(double v) noexcept : kind_(kind::real), real_(v) {}
        sql_value(std::string_view v) : kind_(kind::text), text_(v) {}
        sql_value(const char* v) : kind_(kind::text), text_(v) {}
        sql_value(const std::string& v) : kind_(kind::text), text_(v) {}
        template <class T>
        sql_value(const std::optional<T>& v) : sql_value(v ? sql_value(*v) : sql_value(nullptr)) {}

        kind type() const noexcept { return kind_; }
        std::int64_t integer() const noexcept { return integer_; }
        double real() const noexcept { return real_; }
        const std::string& text() const noexcept { return text_; }

    private:
        kind kind_ = kind::null;
        std::int64_t integer_ = 0;
        double real_ = 0;
        std::string text_;
    };
    using row = std::vector<std::optional<std::string>>;  // a result row, each column as text; NULL: nullopt

    // What a transactional step (step_policy::transactional) writes through: a connection of its own
    // to the journal's database, in a transaction begun before the body runs. The body's statements
    // commit with the step's result, in one commit, only if that result is the step's first: an
    // attempt that fails, times out, is cancelled, dies with its process, or loses to an attempt that
    // committed first leaves nothing. So the writes happen exactly once, however often the body runs.
    class transaction {
    public:
        // The transaction of the transactional step running on this thread. Throws std::logic_error
        // anywhere else (another thread, a step without step_policy::transactional).
        static transaction& current();
        // Runs one statement, $1, $2, ... bound to `params` in order (both databases read `$n`), and
        // returns its rows. A failed statement throws journal_error (its SQLSTATE on PostgreSQL) and
        // fails the attempt: nothing of it is kept, and the step is retried per its policy.
        virtual std::vector<row> exec(std::string_view sql, std::initializer_list<sql_value> params = {}) = 0;
        virtual bool postgres() const noexcept = 0;  // else SQLite: the journal's file

    protected:
        transaction() = default;
        ~transaction() = default;
    };
};

namespace durable_detail {

class engine;

// The backend behind client<durable> and any_client.
class backend_impl final : public backend {
public:
    explicit backend_impl(durable::options opts);
    ~backend_impl() override;  // lets running steps finish, then hands its unfinished runs back to the journal
    std::string_view name() const noexcept override { return durable::name; }
    // Throws config_error when wf carries no JSON steps (it came from a server backend's client).
    std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) override;
    // Every unfinished run of wf in the journal that no live process drives, resumed here.
    std::vector<std::shared_ptr<run_control>> resume(const erased_workflow& wf, run_options opts);
    // The run `id` of wf: resumed here when unfinished and no live process drives it.
    std::shared_ptr<run_control> attach(const erased_workflow& wf, std::string_view id, run_options opts);
    std::shared_ptr<run_control> attach(const erased_workflow& wf, std::string_view id) override {
        return attach(wf, id, {});
    }
    // Cancels run `id`, whichever process drives it; false when it had closed already.
    bool cancel(std::string_view id);
    // From the journal, whichever process drives the run; never takes it over.
    run_description describe(std::string_view id) override;
    // The newest runs of `workflow` in the journal.
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit) override;
    // The journal: its schema version (checked as it opened), and whether this process may write
    // the file and its directory (SQLite's WAL puts -wal and -shm files beside it).
    std::vector<health_check> doctor() override;
    const std::string& journal() const noexcept;

private:
    std::shared_ptr<engine> engine_;  // shared with run handles, weakly: cancel() reaches it while it lives
};

durable::options options_from(const config& c);
std::vector<setting_doc> settings();

inline const bool registered = register_backend<backend_impl>(durable::name, settings(), &options_from);

// Fault injection for the crash tests: called at the named points of the journal's writes
// ("result.before_commit", "result.after_commit", "run.before_complete", "run.after_complete").
// A hook that kills the process there shows what a crash at that point leaves behind.
using crash_hook = void (*)(std::string_view point);
void set_crash_hook(crash_hook hook) noexcept;

}  // namespace durable_detail

template <class Backend>
class client;

template <>
class client<durable> {
public:
    client() : client(durable::options{}) {}
    explicit client(durable::options opts) : backend_(std::move(opts)) {}

    template <workflow_type W>
    run<typename W::output> start(W, typename W::input input, run_options opts = {}) {
        const typename W::input_tuple in(std::move(input));
        return run<typename W::output>(backend_.start(json_erasure<W>, &in, std::move(opts)));
    }
    template <workflow_type W>
        requires(std::tuple_size_v<typename W::input_tuple> == 0)
    run<typename W::output> start(W, run_options opts = {}) {
        const std::tuple<> in;
        return run<typename W::output>(backend_.start(json_erasure<W>, &in, std::move(opts)));
    }

    // Resumes the unfinished runs of `wf` found in the journal. A run recorded with another DAG is
    // refused (config_error naming it and both hashes) unless options::resume_changed; the others are
    // resumed first.
    template <workflow_type W>
    std::vector<run<typename W::output>> resume(W, run_options opts = {}) {
        std::vector<run<typename W::output>> out;
        for (auto& r : backend_.resume(json_erasure<W>, std::move(opts))) out.emplace_back(std::move(r));
        return out;
    }

    // A handle on run `id` of `wf`, started by any process on this journal.
    template <workflow_type W>
    run<typename W::output> attach(W, std::string_view id, run_options opts = {}) {
        return run<typename W::output>(backend_.attach(json_erasure<W>, id, std::move(opts)));
    }

    // Cancels run `id` of any workflow, whichever process drives it (it needs no step code: a run
    // refused for a changed DAG can be cancelled). False when the run had closed already.
    bool cancel(std::string_view id) { return backend_.cancel(id); }

    // Run `id` of any workflow as the journal describes it (weft/run_description.hpp), whichever
    // process drives it; queued until a step has begun.
    run_description describe(std::string_view id) { return backend_.describe(id); }
    // The newest runs of the workflow named `workflow` in the journal, newest first.
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit = 20) { return backend_.list(workflow, limit); }

    const std::string& journal() const noexcept { return backend_.journal(); }

private:
    durable_detail::backend_impl backend_;
};

}  // namespace weft
