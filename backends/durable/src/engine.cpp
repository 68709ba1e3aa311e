#include "engine.hpp"

#include <weft/kit/metadata.hpp>
#include <weft/kit/step_runner.hpp>
#include <weft/telemetry.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <unistd.h>

namespace weft::durable_detail {

namespace {

std::string random_hex(std::size_t n) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    constexpr char hex[] = "0123456789abcdef";
    std::string s(n, '0');
    for (auto& c : s) c = hex[rng() & 15];
    return s;
}

std::string host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
    return buf;
}

std::string describe_timeout(milliseconds t) { return "timed out after " + std::to_string(t.count()) + " ms"; }

// The input or a step's output as the journal keeps it.
std::string text_of(const json::value& v) { return boost::json::serialize(v); }

// What the journal holds is weft's own writing: JSON that does not parse means the file was damaged.
json::value parse_recorded(const journal& j, std::string_view text, std::string_view what, std::string_view run) {
    try {
        return json::parse(text);
    } catch (const std::exception& e) {
        throw durable::journal_error("weft: durable: the journal '" + j.path() + "' holds " + std::string(what) + " of run " +
                                         std::string(run) + " that is not valid JSON (" + e.what() +
                                         "): the file was changed by something other than weft; restore it from a backup",
                                     j.path(), 11 /* SQLITE_CORRUPT */);
    }
}

class durable_step_context final : public step_context {
public:
    durable_step_context(const live_run& r, std::size_t node, int attempt_no, const kit::worker_threads& threads)
        : run_(r), node_(node), threads_(threads) {
        workflow = r.wf.graph.name;
        step = r.wf.graph.names[node];
        attempt = attempt_no;
        metadata = &r.opts.metadata;
    }
    // The engine stopping asks as well: the step runs again in the process that resumes the run.
    bool stop_requested() const override { return threads_.stopping() || run_.stop_requested(node_, attempt); }

private:
    const live_run& run_;
    std::size_t node_;
    const kit::worker_threads& threads_;
};

// The owners (host:pid:nonce) of the engines alive in this process. A run owned by one that is gone
// (its journal failed when it handed its runs back, a full disk) is this process's to take over at
// once, as a dead process's is, not after its lease lapses.
struct live_owners {
    std::mutex m;
    std::set<std::string, std::less<>> ids;
    static live_owners& get() {
        static live_owners l;
        return l;
    }
    bool alive(std::string_view owner) {
        std::lock_guard l(m);
        return ids.find(owner) != ids.end();
    }
};

}  // namespace

std::string dag_hash(const graph_view& g) {
    std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    auto add = [&](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 0x100000001b3ull;
        }
        h ^= 0xff;  // a separator no name holds
        h *= 0x100000001b3ull;
    };
    add(g.name);
    for (std::size_t i = 0; i < g.size(); ++i) {
        add(g.names[i]);
        add(std::to_string(g.arity[i]));
        for (std::size_t p : g.parents(i)) add(g.names[p]);
    }
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
    return out;
}

// ---- live_run -------------------------------------------------------------------------------------

bool live_run::wait_for(std::chrono::milliseconds timeout) const {
    std::unique_lock l(m);
    return cv.wait_for(l, timeout, [&] { return closed || detached; });
}

std::vector<step_status> live_run::steps() const {
    std::vector<step_status> out;
    std::lock_guard l(m);
    for (std::size_t i = 0; i < nodes.size(); ++i)
        out.push_back({std::string(wf.graph.names[i]), nodes[i].state, nodes[i].attempt, nodes[i].error});
    return out;
}

bool live_run::stop_requested(std::size_t node, int attempt) const {
    std::lock_guard l(m);
    return cancel_requested || detached || nodes[node].state != step_state::running || nodes[node].attempt != attempt;
}

// ---- engine: threads ------------------------------------------------------------------------------

engine::engine(durable::options opts) : opts_(std::move(opts)) {
    if (opts_.synchronous != "full" && opts_.synchronous != "normal")
        throw config_error("weft: durable: synchronous = '" + opts_.synchronous + "': expected full or normal");
    if (opts_.lease.count() <= 0) throw config_error("weft: durable: lease must be positive");
    journal_ = open_journal(opts_);
    owner_ = host_name() + ":" + std::to_string(::getpid()) + ":" + random_hex(8);
    {
        auto& live = live_owners::get();
        std::lock_guard l(live.m);
        live.ids.insert(owner_);
    }
    threads_.on_stop([this] {
        { std::lock_guard l(qm_); }  // a worker between its test and its wait sees the stop
        qcv_.notify_all();
        { std::lock_guard l(tm_); }
        tcv_.notify_all();
    });
    const unsigned n = opts_.threads ? opts_.threads : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) threads_.spawn([this] { work(); });
    threads_.spawn([this] { time(); });
    threads_.spawn([this] { heartbeat(); });
}

engine::~engine() {
    threads_.stop();  // a step that runs finishes, and its result commits; queued ones stay unstarted
    std::map<std::string, std::shared_ptr<live_run>, std::less<>> active;
    {
        std::lock_guard l(am_);
        active.swap(active_);
    }
    for (auto& [id, r] : active) {
        {
            std::lock_guard l(r->m);
            r->detached = true;
        }
        r->cv.notify_all();
    }
    try {
        journal_->release(owner_);  // another process may take them over at once
    } catch (const std::exception&) {
        // Their leases lapse instead for other processes; this one takes them over at once.
    }
    auto& live = live_owners::get();
    std::lock_guard l(live.m);
    live.ids.erase(owner_);
}

void engine::work() {
    for (;;) {
        task t;
        {
            std::unique_lock l(qm_);
            qcv_.wait(l, [&] { return !ready_.empty() || threads_.stopping(); });
            if (threads_.stopping()) return;
            t = std::move(ready_.front());
            ready_.pop_front();
        }
        execute(t);
    }
}

void engine::time() {
    std::unique_lock l(tm_);
    while (!threads_.stopping()) {
        if (timers_.empty()) {
            tcv_.wait(l);
            continue;
        }
        auto first = timers_.begin();
        if (first->first > std::chrono::steady_clock::now()) {
            tcv_.wait_until(l, first->first);
            continue;
        }
        timer e = std::move(first->second);
        timers_.erase(first);
        l.unlock();
        if (auto r = e.run.lock()) {
            if (e.kind == timer_kind::retry) retry(r, e.node, e.attempt);
            else failed(r, e.node, e.attempt, describe_timeout(r->wf.graph.policies[e.node].timeout), true, true);
        }
        l.lock();
    }
}

void engine::heartbeat() {
    const auto every = std::max(opts_.lease / 3, std::chrono::milliseconds(10));
    // Retention is enforced by whichever process has the journal open, at most once a minute (or
    // once per retention, if shorter), in batches that keep each write transaction short.
    const millis retention_ms = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.retention).count();
    const millis cleanup_every = std::min<millis>(60'000, std::max<millis>(retention_ms, 1));
    millis last_cleanup = 0, last_beat = now_ms();
    while (threads_.sleep_for(every)) {
        try {
            const millis now = now_ms();
            if (retention_ms > 0 && now - last_cleanup >= cleanup_every) {
                last_cleanup = now;
                while (journal_->remove_finished(now - retention_ms, 500) == 500 && !threads_.stopping()) {
                }
            }
            journal_->renew(owner_, now_ms() + opts_.lease.count());
            // A run closed by another process (cancelled there): stop its steps here too. Clocks of
            // other hosts may differ a little: look back one more beat.
            const millis since = last_beat - 2 * every.count();
            last_beat = now;
            for (const std::string& id : journal_->closed_since(since))
                if (auto r = find(id)) cancel(*r);
        } catch (const std::exception&) {
            // The next beat tries again. A lease that lapses meanwhile lets another process take the
            // run over; its steps' results still commit once.
        }
    }
}

void engine::post(std::vector<task> tasks) {
    if (tasks.empty()) return;
    {
        std::lock_guard l(qm_);
        for (auto& t : tasks) ready_.push_back(std::move(t));
    }
    if (tasks.size() == 1) qcv_.notify_one();
    else qcv_.notify_all();
}

void engine::post_after(std::chrono::steady_clock::duration d, const std::shared_ptr<live_run>& r, std::size_t node,
                        int attempt, timer_kind kind) {
    {
        std::lock_guard l(tm_);
        timers_.emplace(std::chrono::steady_clock::now() + d, timer{r, node, attempt, kind});
    }
    tcv_.notify_one();
}

// ---- engine: runs ---------------------------------------------------------------------------------

void engine::activate(const std::shared_ptr<live_run>& r) {
    std::lock_guard l(am_);
    active_.emplace(r->id, r);
}

std::shared_ptr<live_run> engine::find(std::string_view id) const {
    std::lock_guard l(am_);
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second;
}

std::shared_ptr<live_run> engine::start(const erased_workflow& wf, const void* input, run_options opts) {
    check_metadata(opts.metadata);
    if (opts_.resume) resume_once(wf);
    json::value in = wf.codec->encode_input(input);
    const millis now = now_ms();
    run_row row;
    row.id = run_id{durable::name, wf.graph.name, random_hex(32)}.str();  // durable:<workflow>:<hex>
    row.workflow = std::string(wf.graph.name);
    row.dag_hash = dag_hash(wf.graph);
    row.input = text_of(in);
    row.owner = owner_;
    row.lease_until = now + opts_.lease.count();
    row.created_at = now;
    if (!opts.metadata.empty()) row.metadata = text_of(kit::metadata_object(opts.metadata));
    journal_->insert_run(row);  // recorded before anything runs: from here on, a crash loses nothing

    auto r = std::make_shared<live_run>(wf, row.id, std::move(in.as_array()), std::move(opts));
    std::vector<task> first;
    {
        std::lock_guard l(r->m);
        for (std::size_t i = 0; i < wf.graph.size(); ++i) r->nodes[i].waiting = wf.graph.parent_count(i);
        for (std::size_t s : wf.graph.sources) {
            r->nodes[s].state = step_state::running;
            r->nodes[s].attempt = 1;
            first.push_back({r, s, 1});
        }
    }
    activate(r);
    post(std::move(first));
    return r;
}

bool engine::claimable(const std::string& owner, millis lease_until) const {
    if (owner.empty() || owner == owner_ || lease_until < now_ms()) return true;
    // host:pid:nonce. On this host a process that no longer exists cannot renew its lease: no need
    // to wait for it to lapse. In this process, only an engine still alive holds its runs.
    const auto a = owner.find(':'), b = owner.rfind(':');
    if (a == std::string::npos || b == a) return false;
    if (owner.substr(0, a) != host_name()) return false;
    const long pid = std::strtol(owner.c_str() + a + 1, nullptr, 10);
    if (pid == ::getpid()) return !live_owners::get().alive(owner);
    if (pid <= 0) return false;
    return ::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH;
}

std::shared_ptr<live_run> engine::take_over(const erased_workflow& wf, const run_row& row, run_options opts) {
    if (auto r = find(row.id)) return r;
    const std::string code_hash = dag_hash(wf.graph);
    if (row.dag_hash != code_hash && !opts_.resume_changed)
        throw config_error("weft: durable: run " + row.id + " of workflow '" + row.workflow + "' was recorded with DAG " +
                           row.dag_hash + ", but this program's workflow '" + std::string(wf.graph.name) + "' has DAG " +
                           code_hash + " (its steps or edges changed since the run started). Resume it with the program "
                           "that started it, cancel it (client.cancel(\"" + row.id + "\")), or set durable.resume_changed = "
                           "true to resume it with this DAG (committed results are matched to steps by name)");
    if (!claimable(row.owner, row.lease_until)) return nullptr;
    if (!journal_->claim(row.id, row.owner, row.lease_until, owner_, now_ms() + opts_.lease.count())) return nullptr;

    const auto& g = wf.graph;
    json::value input = parse_recorded(*journal_, row.input, "the input", row.id);
    if (!input.is_array())
        throw durable::journal_error("weft: durable: the journal '" + journal_->path() + "' holds an input of run " + row.id +
                                         " that is not a JSON array: restore the file from a backup",
                                     journal_->path(), 11);
    // The run's metadata is what it was started with, whatever the process resuming it passes.
    opts.metadata.clear();
    if (!row.metadata.empty()) {
        const json::value m = parse_recorded(*journal_, row.metadata, "the metadata", row.id);
        try {
            kit::read_metadata(m, "the journal's runs.metadata", opts.metadata);
        } catch (const std::invalid_argument& e) {
            throw durable::journal_error(std::string(e.what()) + " (run " + row.id + " in '" + journal_->path() +
                                             "'): restore the file from a backup",
                                         journal_->path(), 11);
        }
    }
    auto r = std::make_shared<live_run>(wf, row.id, std::move(input.as_array()), std::move(opts));
    std::vector<step_record> records = journal_->steps_of(row.id);
    std::vector<task> now;
    struct later {
        std::chrono::milliseconds delay;
        std::size_t node;
        int attempt;
    };
    std::vector<later> retries;
    std::vector<std::pair<std::size_t, std::string>> exhausted;  // failed attempts used up, no result recorded
    {
        std::lock_guard l(r->m);
        std::vector<const step_record*> of(g.size(), nullptr);
        for (const auto& rec : records) {
            const std::size_t i = g.index_of(rec.step);
            if (i == graph_view::npos) continue;  // a step the DAG no longer has (resume_changed)
            of[i] = &rec;
            auto& n = r->nodes[i];
            n.attempt = rec.last_attempt;
            n.failures = rec.failures;
            n.error = rec.last_error;
            if (!rec.result) continue;
            n.attempt = std::max(n.attempt, rec.result->attempt);
            if (rec.result->succeeded) {
                n.state = step_state::succeeded;
                n.output = parse_recorded(*journal_, rec.result->output, "the result of step '" + rec.step + "'", row.id);
            } else {
                n.state = step_state::failed;
                n.error = rec.result->error;
            }
        }
        const millis t = now_ms();
        for (std::size_t i : g.topological_order) {
            auto& n = r->nodes[i];
            if (is_final(n.state)) {
                ++r->finished;
                if (n.state == step_state::failed && r->first_failure == live_run::npos) r->first_failure = i;
                continue;
            }
            bool blocked = false;
            for (std::size_t p : g.parents(i)) {
                const step_state ps = r->nodes[p].state;
                if (ps == step_state::failed || ps == step_state::skipped) blocked = true;
                else if (ps != step_state::succeeded) ++n.waiting;
            }
            if (blocked) {
                n.state = step_state::skipped;
                ++r->finished;
                continue;
            }
            if (n.waiting != 0) continue;
            const retry_policy& rp = g.policies[i].retry;
            const step_record* rec = of[i];
            if (rec && rec->last_failed) {
                n.state = step_state::running;
                if (n.failures >= rp.max_attempts) {
                    exhausted.emplace_back(i, rec->last_error);
                    continue;
                }
                // Its last attempt failed: the retry is due when weft::local would run it.
                n.state = step_state::retrying;
                const millis due = rec->last_finished_at + rp.delay_before(n.failures + 1).count();
                retries.push_back({std::chrono::milliseconds(std::max<millis>(0, due - t)), i, n.attempt + 1});
                continue;
            }
            // Never started, or stopped, or its process died while it ran: run it (again), unless
            // it has killed its process too often (a crash loop otherwise).
            n.state = step_state::running;
            if (rec && opts_.max_interrupts > 0 && rec->interrupted >= static_cast<int>(opts_.max_interrupts)) {
                exhausted.emplace_back(i, "weft: durable: the process died " + std::to_string(rec->interrupted) +
                                              " times while this step ran, so it is not run again (durable.max_interrupts = " +
                                              std::to_string(opts_.max_interrupts) +
                                              "): find what ends the process during it (memory, a crash in the step)");
                continue;
            }
            n.attempt += 1;
            now.push_back({r, i, n.attempt});
        }
    }
    activate(r);
    post(std::move(now));
    for (auto& x : retries) post_after(x.delay, r, x.node, x.attempt, timer_kind::retry);
    for (auto& [i, error] : exhausted) failed(r, i, r->nodes[i].attempt, error, false, false);
    close_if_done(r);  // every step had committed: the process died while the run completed
    return r;
}

void engine::resume_once(const erased_workflow& wf) {
    {
        std::lock_guard l(am_);
        if (std::find(resumed_.begin(), resumed_.end(), wf.graph.name) != resumed_.end()) return;
        resumed_.emplace_back(wf.graph.name);
    }
    for (const std::string& id : journal_->unfinished_runs(wf.graph.name)) {
        auto row = journal_->read_run(id);
        if (!row || row->state != run_state::running) continue;
        try {
            take_over(wf, *row, {});
        } catch (const config_error& e) {
            // Refused, not lost: the run stays in the journal as it was. Said once, in weft's log.
            telemetry::emit({.level = telemetry::severity::error, .event = "run.refused", .backend = "durable",
                             .workflow = wf.graph.name, .run_id = id, .error = e.what()});
        }
    }
}

void engine::execute(const task& t) {
    live_run& r = *t.run;
    const std::size_t n = t.node;
    const int a = t.attempt;
    const auto& g = r.wf.graph;
    json::array args;
    {
        std::lock_guard l(r.m);
        if (r.detached || r.nodes[n].state != step_state::running || r.nodes[n].attempt != a) return;
        if (g.parent_count(n) == 0) args = r.input;
        else
            for (std::size_t p : g.parents(n)) args.push_back(r.nodes[p].output);
    }
    try {
        journal_->begin_attempt(r.id, g.names[n], a, owner_);
    } catch (...) {
        abandon(r, std::current_exception());
        return;
    }
    emit(r, n, step_state::running, a, {});
    if (const milliseconds timeout = g.policies[n].timeout; timeout.count() > 0)
        post_after(timeout, t.run, n, a, timer_kind::timeout);
    std::unique_ptr<step_transaction> tx;
    if (g.policies[n].transactional) {
        try {
            tx = journal_->begin_step();
        } catch (const std::exception& e) {  // e.g. the file's write lock not had within busy_timeout_ms
            failed(t.run, n, a, "weft: durable: cannot begin the transaction of step '" + std::string(g.names[n]) + "': " + e.what(),
                   true, false);
            return;
        }
    }
    durable_step_context ctx(r, n, a, threads_);
    current_transaction = tx.get();
    kit::step_outcome out = kit::run_step(r.wf.json_steps[n], args, ctx);
    current_transaction = nullptr;
    if (out.ok()) {
        succeeded(t.run, n, a, std::move(out.output), std::move(tx));
    } else {
        tx.reset();  // rolled back before anything else writes: on SQLite it holds the write lock
        failed(t.run, n, a, std::move(out.error), out.retryable(), false);
    }
}

void engine::succeeded(const std::shared_ptr<live_run>& rp, std::size_t n, int a, json::value output,
                       std::unique_ptr<step_transaction> tx) {
    live_run& r = *rp;
    bool cancelled = false;
    {
        std::lock_guard l(r.m);
        auto& nd = r.nodes[n];
        if (r.detached || nd.state != step_state::running || nd.attempt != a) return;  // timed out meanwhile: discarded
        cancelled = r.cancel_requested;
        nd.state = cancelled ? step_state::cancelled : step_state::succeeded;  // owns the node, against a timeout
        if (cancelled) ++r.finished;
    }
    if (cancelled) {
        tx.reset();  // its writes go with the attempt
        emit(r, n, step_state::cancelled, a, {});
        close_if_done(rp);
        return;
    }
    const std::string text = text_of(output);
    std::optional<step_result> won;
    try {
        won = commit(r, n, {true, text, {}, a}, std::move(tx));
    } catch (const step_conflict& e) {  // nothing of the attempt was kept: it failed, and may be retried
        {
            std::lock_guard l(r.m);
            r.nodes[n].state = step_state::running;
        }
        failed(rp, n, a, e.what(), true, false);
        return;
    }
    if (!won) return;
    if (!won->succeeded) {  // another process committed this step's failure first
        {
            std::lock_guard l(r.m);
            r.nodes[n].state = step_state::running;
        }
        fail_for_good(rp, n, a, won->error);
        return;
    }
    // The committed result is the one every child reads, whichever attempt or process wrote it.
    json::value value = won->output == text ? std::move(output) : parse_recorded(*journal_, won->output, "a step's result", r.id);
    std::vector<task> next;
    {
        std::lock_guard l(r.m);
        r.nodes[n].output = std::move(value);
        ++r.finished;
        next = release_children(rp, n);
    }
    emit(r, n, step_state::succeeded, a, {});
    post(std::move(next));
    close_if_done(rp);
}

std::optional<step_result> engine::commit(live_run& r, std::size_t n, const step_result& result,
                                          std::unique_ptr<step_transaction> tx) {
    std::optional<step_result> won;
    try {
        won = tx ? tx->commit(r.id, r.wf.graph.names[n], result) : journal_->commit_result(r.id, r.wf.graph.names[n], result);
        tx.reset();
    } catch (const step_conflict&) {
        throw;  // the caller retries the attempt
    } catch (...) {
        // A commit whose outcome is unknown: the journal keeps the truth (the result and the step's
        // writes, or neither) for the process that resumes the run.
        tx.reset();
        abandon(r, std::current_exception());
        return std::nullopt;
    }
    if (!won) {  // cancelled by another process meanwhile
        {
            std::lock_guard l(r.m);
            r.nodes[n].state = step_state::cancelled;
            ++r.finished;
        }
        cancel(r);
    }
    return won;
}

std::vector<engine::task> engine::release_children(const std::shared_ptr<live_run>& r, std::size_t n) {
    std::vector<task> out;
    for (std::size_t c : r->wf.graph.children(n)) {
        auto& ch = r->nodes[c];
        if (ch.state != step_state::pending || --ch.waiting != 0) continue;
        ch.state = step_state::running;
        ch.attempt += 1;
        out.push_back({r, c, ch.attempt});
    }
    return out;
}

void engine::failed(const std::shared_ptr<live_run>& rp, std::size_t n, int a, std::string error, bool retryable,
                    bool timed_out) {
    live_run& r = *rp;
    const auto& g = r.wf.graph;
    const retry_policy& policy = g.policies[n].retry;
    bool cancelled = false, retrying = false;
    int failures = 0;
    std::vector<std::size_t> skipped;
    {
        std::lock_guard l(r.m);
        auto& nd = r.nodes[n];
        if (r.detached || nd.state != step_state::running || nd.attempt != a) return;
        // Stopping: the attempt runs again where the run resumes.
        if (threads_.stopping()) {
            try {
                journal_->stop_attempt(r.id, g.names[n], a);
            } catch (const std::exception&) {
                // Left open, it reads as a crash on resume: one interruption more, nothing lost.
            }
            return;
        }
        nd.error = error;
        cancelled = r.cancel_requested;
        if (cancelled) {
            nd.state = step_state::cancelled;
            ++r.finished;
            skip_descendants(r, n, skipped);
        } else {
            failures = ++nd.failures;
            retrying = retryable && failures < policy.max_attempts;
            if (retrying) nd.state = step_state::retrying;
        }
    }
    if (cancelled) {
        emit(r, n, step_state::cancelled, a, {});
        for (std::size_t i : skipped) emit(r, i, step_state::skipped, 0, {});
        close_if_done(rp);
        return;
    }
    if (!retrying) {
        fail_for_good(rp, n, a, std::move(error));
        return;
    }
    try {
        journal_->fail_attempt(r.id, g.names[n], a, error, timed_out);
    } catch (...) {
        abandon(r, std::current_exception());
        return;
    }
    emit(r, n, step_state::retrying, a, error);
    post_after(policy.delay_before(failures + 1), rp, n, a + 1, timer_kind::retry);
}

void engine::fail_for_good(const std::shared_ptr<live_run>& rp, std::size_t n, int a, std::string error) {
    live_run& r = *rp;
    {
        std::lock_guard l(r.m);
        auto& nd = r.nodes[n];
        if (r.detached || nd.state != step_state::running || nd.attempt != a) return;
        nd.state = step_state::failed;  // owns the node, against a timeout of this attempt
    }
    const std::optional<step_result> won = commit(r, n, {false, {}, error, a});
    if (!won) return;
    if (won->succeeded) {  // another process committed a result first: that one stands
        {
            std::lock_guard l(r.m);
            r.nodes[n].state = step_state::running;
        }
        succeeded(rp, n, a, parse_recorded(*journal_, won->output, "a step's result", r.id), nullptr);
        return;
    }
    std::vector<std::size_t> skipped;
    {
        std::lock_guard l(r.m);
        r.nodes[n].error = won->error;
        ++r.finished;
        if (r.first_failure == live_run::npos) r.first_failure = n;
        skip_descendants(r, n, skipped);
    }
    emit(r, n, step_state::failed, a, won->error);
    for (std::size_t i : skipped) emit(r, i, step_state::skipped, 0, {});
    close_if_done(rp);
}

void engine::retry(const std::shared_ptr<live_run>& r, std::size_t n, int a) {
    {
        std::lock_guard l(r->m);
        auto& nd = r->nodes[n];
        if (r->detached || nd.state != step_state::retrying || nd.attempt != a - 1) return;
        nd.state = step_state::running;
        nd.attempt = a;
    }
    post({{r, n, a}});
}

void engine::skip_descendants(live_run& r, std::size_t n, std::vector<std::size_t>& skipped) {
    for (std::size_t c : r.wf.graph.children(n)) {
        auto& ch = r.nodes[c];
        if (ch.state != step_state::pending) continue;
        ch.state = step_state::skipped;
        ++r.finished;
        skipped.push_back(c);
        skip_descendants(r, c, skipped);
    }
}

void engine::cancel(live_run& r) {
    std::vector<std::pair<std::size_t, int>> cancelled;  // node, attempt
    {
        std::lock_guard l(r.m);
        if (r.closed || r.detached) return;
        r.cancel_requested = true;
        for (std::size_t i = 0; i < r.nodes.size(); ++i) {
            auto& nd = r.nodes[i];
            if (nd.state == step_state::pending || nd.state == step_state::retrying) {
                nd.state = step_state::cancelled;
                ++r.finished;
                cancelled.emplace_back(i, nd.attempt);
            }
        }
    }
    for (auto [i, attempt] : cancelled) emit(r, i, step_state::cancelled, attempt, {});
    if (auto self = find(r.id)) close_if_done(self);
}

void engine::close_if_done(const std::shared_ptr<live_run>& rp) {
    live_run& r = *rp;
    const auto& g = r.wf.graph;
    run_row row;
    {
        std::lock_guard l(r.m);
        if (r.closed || r.detached || r.finished != g.size() || r.closing) return;
        r.closing = true;
        row.id = r.id;
        if (r.cancel_requested) {
            row.state = run_state::cancelled;
        } else if (r.first_failure != live_run::npos) {
            row.state = run_state::failed;
            row.failed_step = std::string(g.names[r.first_failure]);
            row.error = r.nodes[r.first_failure].error;
            row.attempts = r.nodes[r.first_failure].attempt;
        } else {
            row.state = run_state::succeeded;
            if (g.sinks.size() == 1) {
                row.output = text_of(r.nodes[g.sinks[0]].output);
            } else {
                json::array sinks;
                for (std::size_t s : g.sinks) sinks.push_back(r.nodes[s].output);
                row.output = text_of(sinks);
            }
        }
    }
    try {
        if (!journal_->finish_run(row))
            if (auto actual = journal_->read_run(row.id)) row = *actual;  // closed by another process first
    } catch (...) {
        abandon(r, std::current_exception());
        return;
    }
    {
        std::lock_guard l(r.m);
        r.closed = true;
        r.row = std::move(row);
    }
    r.cv.notify_all();
    std::lock_guard l(am_);
    active_.erase(r.id);
}

void engine::abandon(live_run& r, std::exception_ptr e) {
    {
        std::lock_guard l(r.m);
        if (r.closed || r.detached) return;
        r.detached = true;
        r.error = std::move(e);
    }
    r.cv.notify_all();
    {
        std::lock_guard l(am_);
        active_.erase(r.id);
    }
    try {
        journal_->release(owner_, r.id);  // the run stays unfinished there, for a process that can resume it
    } catch (const std::exception&) {
        // The journal is failing. This process keeps renewing the run's lease (renew covers all its
        // runs), so it resumes once this process ends, or here by attach().
    }
}

void engine::emit(live_run& r, std::size_t n, step_state s, int attempt, std::string_view error) {
    const telemetry::step_change e = telemetry::step_change_of(s);
    const bool logged = e.level != telemetry::severity::off && telemetry::wanted(e.level);
    if ((!r.opts.on_step && !logged) || s == step_state::pending) return;
    std::lock_guard l(r.event_m);
    const auto now = std::chrono::steady_clock::now();
    if (r.opts.on_step) r.opts.on_step(step_event{r.wf.graph.name, r.wf.graph.names[n], s, attempt, error, now - r.started});
    if (!logged) return;
    auto& t0 = r.nodes[n].attempt_started;
    std::optional<double> ms;
    if (s == step_state::running) t0 = now;
    else if (s != step_state::skipped && t0 != std::chrono::steady_clock::time_point{})
        ms = std::chrono::duration<double, std::milli>(now - t0).count();
    telemetry::emit({.level = e.level, .event = e.event, .backend = "durable", .workflow = r.wf.graph.name,
                     .run_id = r.id, .step = r.wf.graph.names[n], .attempt = attempt, .duration_ms = ms, .error = error});
}

}  // namespace weft::durable_detail
