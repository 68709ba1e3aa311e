// The durable backend's face: start / resume / attach / cancel, run handles on kit::remote_run that
// read the journal (or the engine's memory, for the runs this process drives), and the settings table.
#include "engine.hpp"

#include <weft/kit/remote_run.hpp>
#include <weft/kit/settings.hpp>

#include <algorithm>
#include <atomic>
#include <limits>
#include <thread>

namespace weft::durable_detail {

namespace {

// What the journal says of one step of a run that this process does not drive (rec: null when the
// journal has nothing of the step).
step_status status_from(std::string name, const run_row& row, const step_record* rec) {
    step_status s{std::move(name)};
    const bool open = row.state == run_state::running;
    if (rec && rec->result) {
        s.state = rec->result->succeeded ? step_state::succeeded : step_state::failed;
        s.attempts = std::max(rec->last_attempt, rec->result->attempt);
        s.error = rec->result->error;
    } else if (rec && rec->last_attempt > 0) {
        s.attempts = rec->last_attempt;
        s.error = rec->last_error;
        s.state = !open              ? step_state::cancelled
                  : rec->last_open     ? step_state::running
                  : rec->last_failed   ? step_state::retrying
                                       : step_state::pending;  // stopped by a shutdown, to run again
    } else {
        s.state = open ? step_state::pending
                       : row.state == run_state::cancelled ? step_state::cancelled : step_state::skipped;
    }
    return s;
}

std::vector<step_status> steps_from(const graph_view& g, const run_row& row, const std::vector<step_record>& records) {
    std::vector<step_status> out;
    for (std::size_t i = 0; i < g.size(); ++i) {
        const step_record* rec = nullptr;
        for (const auto& r : records)
            if (r.step == g.names[i]) rec = &r;
        out.push_back(status_from(std::string(g.names[i]), row, rec));
    }
    return out;
}

std::chrono::system_clock::time_point time_of(millis ms) {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

// A run still open whose steps have not begun an attempt (in any process) is queued.
run_state state_from(const run_row& row, bool begun) {
    return row.state == run_state::running && !begun ? run_state::queued : row.state;
}

class durable_run final : public kit::remote_run {
public:
    durable_run(const erased_workflow& wf, std::string id, std::shared_ptr<journal> j, std::weak_ptr<engine> eng,
                std::shared_ptr<live_run> live, std::chrono::milliseconds poll, bool attached = false)
        : remote_run(wf, id, durable::name, attached), id_(std::move(id)), journal_(std::move(j)), engine_(std::move(eng)), live_(std::move(live)),
          poll_(poll) {}

    std::vector<step_status> steps() const override {
        if (auto l = driven()) return l->steps();
        auto row = read();
        return steps_from(wf_.graph, row, journal_->steps_of(id_));
    }

    void cancel() override {
        journal_->cancel_run(id_);
        if (auto l = live())
            if (auto eng = engine_.lock()) eng->cancel(*l);
    }

private:
    std::shared_ptr<live_run> live() const {
        std::lock_guard l(m_);
        return live_;
    }
    // The run as this process drives it, if it does.
    std::shared_ptr<live_run> driven() const {
        auto r = live();
        if (!r) return nullptr;
        std::lock_guard l(r->m);
        return r->detached ? nullptr : r;
    }

    run_row read() const {
        auto row = journal_->read_run(id_);
        if (!row)
            throw durable::journal_error("weft: durable: run " + id_ + " is no longer in the journal '" + journal_->path() +
                                             "' (removed after durable.retention_s, or by something other than weft)",
                                         journal_->path(), 0);
        return *row;
    }

    run_state live_state() const override {
        if (auto r = live()) {
            std::lock_guard l(r->m);
            if (r->closed) return r->row.state;
            if (!r->detached) return begun() ? run_state::running : run_state::queued;
        }
        auto row = read();
        return row.state == run_state::running && !begun() ? run_state::queued : row.state;
    }
    // Whether a step of the run has begun an attempt; once it has, it stays so (no more reads).
    bool begun() const {
        if (begun_.load(std::memory_order_relaxed)) return true;
        if (!journal_->has_attempts(id_)) return false;
        begun_.store(true, std::memory_order_relaxed);
        return true;
    }

    std::optional<outcome> await(std::chrono::milliseconds timeout) const override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        if (auto r = live()) {
            if (!r->wait_for(timeout)) return std::nullopt;
            std::lock_guard l(r->m);
            if (r->closed) return outcome_of(r->row);
            if (r->error) return outcome{run_state::failed, {}, r->error};
            // Detached without an error: the engine stopped; another process may finish the run.
        }
        for (;;) {
            run_row row = read();
            if (row.state != run_state::running) return outcome_of(row);
            // Its process stopped (released it, died, or let its lease lapse): drive it here.
            if (auto eng = engine_.lock(); eng && eng->claimable(row.owner, row.lease_until))
                if (auto r = eng->take_over(wf_, row, {})) {
                    {
                        std::lock_guard l(m_);
                        live_ = r;
                    }
                    const auto now = std::chrono::steady_clock::now();
                    return await(std::chrono::duration_cast<std::chrono::milliseconds>(std::max(deadline - now, std::chrono::steady_clock::duration::zero())));
                }
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) return std::nullopt;
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(poll_, deadline - now));
        }
    }

    outcome outcome_of(const run_row& row) const {
        switch (row.state) {
        case run_state::succeeded: return {run_state::succeeded, json::parse(row.output), {}};
        case run_state::cancelled: return cancelled();
        default:
            return {run_state::failed, {}, std::make_exception_ptr(step_failed(row.failed_step, row.error, row.attempts))};
        }
    }

    std::string id_;
    std::shared_ptr<journal> journal_;
    std::weak_ptr<engine> engine_;
    mutable std::mutex m_;
    mutable std::shared_ptr<live_run> live_;  // null: another process drives the run, or it had closed
    mutable std::atomic<bool> begun_{false};
    std::chrono::milliseconds poll_;
};

void require_json_steps(const erased_workflow& wf) {
    if (!wf.json_steps || !wf.codec)
        throw config_error("weft: the durable backend runs steps in this process and records their outputs as JSON, but "
                           "workflow '" + std::string(wf.graph.name) +
                           "' was handed over without its JSON steps (by another backend's client): start it through "
                           "weft::any_client or weft::client<weft::durable>");
}

}  // namespace

backend_impl::backend_impl(durable::options opts) : engine_(std::make_shared<engine>(std::move(opts))) {}
backend_impl::~backend_impl() = default;

const std::string& backend_impl::journal() const noexcept { return engine_->journal_ptr()->path(); }

std::vector<health_check> backend_impl::doctor() { return engine_->journal_ptr()->checks(); }

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    require_json_steps(wf);
    auto live = engine_->start(wf, input, std::move(opts));
    return std::make_shared<durable_run>(wf, live->id, engine_->journal_ptr(), engine_, live, engine_->options().poll_interval);
}

std::vector<std::shared_ptr<run_control>> backend_impl::resume(const erased_workflow& wf, run_options opts) {
    require_json_steps(wf);
    const auto& j = engine_->journal_ptr();
    std::vector<std::shared_ptr<run_control>> out;
    std::string refused;
    for (const std::string& id : j->unfinished_runs(wf.graph.name)) {
        auto row = j->read_run(id);
        if (!row || row->state != run_state::running) continue;
        std::shared_ptr<live_run> live;
        try {
            live = engine_->take_over(wf, *row, opts);
        } catch (const config_error& e) {
            refused += std::string(refused.empty() ? "" : "\n") + e.what();
            continue;
        }
        if (live) out.push_back(std::make_shared<durable_run>(wf, id, j, engine_, live, engine_->options().poll_interval, true));
    }
    if (!refused.empty())
        throw config_error(refused + (out.empty() ? "" : "\n(the other " + std::to_string(out.size()) +
                                                           " unfinished runs were resumed)"));
    return out;
}

std::shared_ptr<run_control> backend_impl::attach(const erased_workflow& wf, std::string_view id, run_options opts) {
    require_json_steps(wf);
    const auto& j = engine_->journal_ptr();
    auto row = j->read_run(id);
    if (!row)
        throw run_not_found("durable", wf.graph.name, id,
                            "the journal '" + j->path() + "' has no such run (finished runs are removed " +
                                std::to_string(engine_->options().retention.count()) +
                                " s after they end: durable.retention_s)");
    if (row->workflow != wf.graph.name)
        throw config_error("weft: durable: run " + std::string(id) + " is a run of workflow '" + row->workflow +
                           "', not of '" + std::string(wf.graph.name) + "'");
    std::shared_ptr<live_run> live = engine_->find(id);
    if (live && opts.on_step)
        throw config_error("weft: durable: run " + std::string(id) +
                           " already runs in this process: give on_step to the start() or attach() that began driving it");
    if (!live && row->state == run_state::running) {
        live = engine_->take_over(wf, *row, opts);
        // Driven by another process: its step states come from the journal, polled (a state held for
        // less than poll_ms may not be seen).
        if (!live && opts.on_step)
            engine_->watchers().watch(wf.graph, std::move(opts.on_step),
                                      [j, &g = wf.graph, run = std::string(id)](std::vector<step_status>& steps, std::stop_token) {
                                          auto now = j->read_run(run);
                                          if (!now) return true;
                                          steps = steps_from(g, *now, j->steps_of(run));
                                          return now->state != run_state::running;
                                      },
                                      engine_->options().poll_interval);
    }
    return std::make_shared<durable_run>(wf, std::string(id), j, engine_, live, engine_->options().poll_interval, true);
}

// From the journal alone, whichever process drives the run: read-only (describe never takes a run
// over). Steps are those the journal has a record of (begun, or with a committed result), in the
// order they began; while this process drives the run, every node of its workflow, in node order.
run_description backend_impl::describe(std::string_view id) {
    const auto& j = engine_->journal_ptr();
    auto row = j->read_run(id);
    if (!row)
        throw run_not_found("durable", {}, id,
                            "the journal '" + j->path() + "' has no such run (finished runs are removed " +
                                std::to_string(engine_->options().retention.count()) +
                                " s after they end: durable.retention_s)");
    auto records = j->steps_of(id);
    run_description d;
    d.backend = durable::name;
    d.workflow = row->workflow;
    d.id = row->id;
    d.state = state_from(*row, !records.empty());
    d.created = time_of(row->created_at);
    if (row->finished_at > 0) d.finished = time_of(row->finished_at);
    auto times = [&](step_description& s, const step_record* rec) {
        if (!rec) return;
        if (rec->first_started_at > 0) s.started = time_of(rec->first_started_at);
        if ((rec->result || !rec->last_open) && rec->last_finished_at > 0) s.finished = time_of(rec->last_finished_at);
    };
    auto describe_step = [&](step_status st, const step_record* rec) {
        step_description s{std::move(st.name), st.state, st.attempts, std::move(st.error), {}, {}};
        times(s, rec);
        d.steps.push_back(std::move(s));
    };
    auto record_of = [&](std::string_view step) -> const step_record* {
        for (const auto& r : records)
            if (r.step == step) return &r;
        return nullptr;
    };
    if (auto live = engine_->find(id); live && row->state == run_state::running) {
        for (auto& st : live->steps()) {
            const step_record* rec = record_of(st.name);
            if (!rec && st.state == step_state::running) {  // posted to the pool, not begun yet
                st.state = step_state::pending;
                st.attempts = 0;
            }
            describe_step(std::move(st), rec);
        }
    } else {
        std::vector<const step_record*> begun;
        for (const auto& r : records) begun.push_back(&r);
        constexpr millis never = std::numeric_limits<millis>::max();
        std::stable_sort(begun.begin(), begun.end(), [](auto* a, auto* b) {
            // a step with a result but no attempt row (removed by hand) sorts last; within one ms,
            // the one that ended first most likely began first (a parent ends before its child begins)
            const millis sa = a->first_started_at ? a->first_started_at : never, sb = b->first_started_at ? b->first_started_at : never;
            return sa != sb ? sa < sb : a->last_finished_at < b->last_finished_at;
        });
        for (auto* r : begun) describe_step(status_from(r->step, *row, r), r);
    }
    for (const auto& r : records)
        if (r.first_started_at > 0 && (!d.started || time_of(r.first_started_at) < *d.started)) d.started = time_of(r.first_started_at);
    if (row->state == run_state::succeeded) d.output = json::parse(row->output);
    if (row->state == run_state::failed) {
        d.failed_step = row->failed_step;
        d.error = row->error;
    }
    return d;
}

std::vector<run_summary> backend_impl::list(std::string_view workflow, std::size_t limit) {
    std::vector<run_summary> out;
    for (auto& r : engine_->journal_ptr()->recent_runs(workflow, limit)) {
        run_summary s{r.id, std::string(workflow), r.state, time_of(r.created_at), {}};
        if (r.first_started_at > 0) s.started = time_of(r.first_started_at);
        else if (r.state == run_state::running) s.state = run_state::queued;
        out.push_back(std::move(s));
    }
    return out;
}

bool backend_impl::cancel(std::string_view id) {
    const bool closed_now = engine_->journal_ptr()->cancel_run(id);
    if (auto live = engine_->find(id)) engine_->cancel(*live);
    return closed_now;
}

namespace {
// A function's static, not a namespace-scope one: the registry reads it during static initialization.
const kit::settings_table<durable::options>& table() {
    using o = durable::options;
    static const kit::settings_table<o> t{
        "durable",
        {
            {"journal", &o::journal,
             "the SQLite file that records runs, attempts and results (created if missing), or a postgresql:// URL: "
             "the schema weft_durable of that database"},
            {"threads", &o::threads, "steps run at once; 0: one per hardware thread", 4096},
            {"busy_timeout_ms", &o::busy_timeout, "how long a write waits for another connection's lock before it fails"},
            {"synchronous", &o::synchronous,
             "full: a committed result survives power loss; normal: it survives a crash of the process", 0,
             [](const o& v, const config::setting& s) {
                 if (v.synchronous != "full" && v.synchronous != "normal")
                     throw config_error("weft: durable.synchronous = '" + s.value + "' (from " + s.origin +
                                        "): expected full or normal");
             }},
            {"reconnect_ms", &o::reconnect,
             "PostgreSQL: how long a journal write waits for a lost server to come back before it fails"},
            {"lease_ms", &o::lease, "a run whose process stopped renewing it this long is taken over by another"},
            {"poll_ms", &o::poll_interval, "how often a handle reads a run that another process drives"},
            {"retention_s", &o::retention, "finished runs are removed this long after they end; 0: kept for ever"},
            {"max_interrupts", &o::max_interrupts,
             "a step whose process died this often while it ran fails instead of running again; 0: no bound", 1000000},
            {"resume", &o::resume, "the first start() of a workflow resumes its unfinished runs"},
            {"resume_changed", &o::resume_changed,
             "resume runs recorded with a different DAG than this program's (results matched by step name)"},
        }};
    return t;
}
}  // namespace

durable::options options_from(const config& c) { return table().read(c); }
std::vector<setting_doc> settings() { return table().docs(); }

}  // namespace weft::durable_detail
