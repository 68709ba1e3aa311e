#include <weft/local/engine.hpp>
#include <weft/local/backend.hpp>
#include <weft/kit/settings.hpp>
#include <weft/run_description.hpp>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <deque>
#include <map>
#include <new>
#include <random>
#include <thread>
#include <type_traits>

#include <weft/telemetry.hpp>
#include <weft/this_step.hpp>

namespace weft::local_detail {

namespace {

constexpr std::size_t npos = static_cast<std::size_t>(-1);

constexpr std::uint32_t pack(std::uint32_t attempt, step_state s) noexcept {
    return (attempt << 8) | static_cast<std::uint32_t>(s);
}
constexpr step_state state_of(std::uint32_t w) noexcept { return static_cast<step_state>(w & 0xff); }
constexpr std::uint32_t attempt_of(std::uint32_t w) noexcept { return w >> 8; }

// "local:<workflow>:<32 hex digits>" (run_id).
std::string make_run_id(std::string_view workflow) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    constexpr char hex[] = "0123456789abcdef";
    std::string id = run_id{local::name, workflow, "00000000000000000000000000000000"}.str();  // one allocation
    char* key = id.data() + id.size() - 32;
    for (std::size_t half = 0; half < 2; ++half)  // 16 hex digits per draw
        for (std::uint64_t bits = rng(), i = 0; i < 16; ++i, bits >>= 4) key[half * 16 + i] = hex[bits & 15];
    return id;
}

// Watches `ready` for a few tens of microseconds (about what a futex sleep and wake-up cost) before
// the caller blocks. Yields now and then so a spinner never holds a core another thread needs.
template <class Ready>
bool spin_until(Ready ready) {
    constexpr auto budget = std::chrono::microseconds(50);
    const auto deadline = std::chrono::steady_clock::now() + budget;
    for (unsigned i = 1;; ++i) {
        if (ready()) return true;
        if (i % 64 == 0) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::yield();
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        asm volatile("yield");
#endif
    }
}

std::string describe_timeout(milliseconds t) { return "timed out after " + std::to_string(t.count()) + " ms"; }

class local_step_context final : public step_context {
public:
    local_step_context(const run_core& run, std::size_t node, std::uint32_t attempt_no) : run_(run), node_(node) {
        workflow = run.graph().name;
        step = run.graph().names[node];
        attempt = static_cast<int>(attempt_no);
        metadata = &run.metadata();
    }
    bool stop_requested() const override {
        return run_.stop_requested(node_, static_cast<std::uint32_t>(attempt));
    }

private:
    const run_core& run_;
    std::size_t node_;
};

}  // namespace

// ---- engine: worker threads, one ready queue, one timer thread -----------------------------------

struct engine::impl {
    std::mutex mutex;
    std::condition_variable ready_cv;
    std::deque<task> ready;
    std::atomic<std::size_t> queued{0};  // ready.size(), readable without the lock by spinning workers
    unsigned idle = 0;                   // workers asleep on ready_cv
    unsigned spinning = 0;               // workers watching `queued` before they sleep
    bool stopping = false;
    std::vector<std::thread> workers;

    std::mutex timer_mutex;
    std::condition_variable timer_cv;
    struct timer_entry {
        std::shared_ptr<run_core> run;
        std::size_t node;
        std::uint32_t attempt;
        timer_kind kind;
    };
    std::multimap<std::chrono::steady_clock::time_point, timer_entry> timers;
    std::mutex runs_mutex;
    std::condition_variable runs_cv;
    std::vector<std::pair<run_core*, std::weak_ptr<run_core>>> runs;  // active runs, to cancel at shutdown
    // The last runs to finish, for attach while a handle on them remains: a ring, so finishing a
    // run costs one weak_ptr copy and holds no output alive.
    static constexpr std::size_t recent_size = 1024;
    std::vector<std::weak_ptr<run_core>> recent = std::vector<std::weak_ptr<run_core>>(recent_size);
    std::size_t recent_next = 0;
    bool timer_stopping = false;
    std::thread timer_thread;

    void work() {
        std::unique_lock lock(mutex);
        for (;;) {
            if (ready.empty() && !stopping && spinning == 0) {
                // Sleeping costs a futex call on both sides and a wake-up of several microseconds; a
                // worker that runs dry first watches the queue for a moment, which catches the next
                // step of a run or the next run. One spinner at most, and posters do not wake anyone
                // for the task it will take.
                ++spinning;
                lock.unlock();
                spin_until([this] { return queued.load(std::memory_order_relaxed) != 0; });
                lock.lock();
                --spinning;
            }
            while (ready.empty() && !stopping) {
                ++idle;
                ready_cv.wait(lock);
                --idle;
            }
            if (ready.empty()) return;
            task t = ready.front();
            ready.pop_front();
            queued.store(ready.size(), std::memory_order_relaxed);
            lock.unlock();
            t.run->execute(t.node, t.attempt);
            lock.lock();
        }
    }

    // Wakes `n` new tasks' worth of sleepers, minus those a spinning worker will pick up. Called with
    // `mutex` held; a spinner takes the lock and looks at the queue again before it sleeps.
    unsigned to_wake(std::size_t n) const noexcept {
        std::size_t uncovered = n > spinning ? n - spinning : 0;
        return static_cast<unsigned>(std::min<std::size_t>(uncovered, idle));
    }

    void time() {
        std::unique_lock lock(timer_mutex);
        while (!timer_stopping) {
            if (timers.empty()) {
                timer_cv.wait(lock);
                continue;
            }
            auto first = timers.begin();
            if (first->first > std::chrono::steady_clock::now()) {
                timer_cv.wait_until(lock, first->first);
                continue;
            }
            timer_entry e = std::move(first->second);
            timers.erase(first);
            lock.unlock();
            if (e.kind == timer_kind::retry) e.run->retry(e.node, e.attempt);
            else e.run->on_failure(e.node, e.attempt, describe_timeout(e.run->graph().policies[e.node].timeout), true);
            e.run.reset();
            lock.lock();
        }
    }
};

engine::engine(engine_options opts) : impl_(std::make_unique<impl>()) {
    unsigned n = opts.threads ? opts.threads : std::max(1u, std::thread::hardware_concurrency());
    impl_->workers.reserve(n);
    for (unsigned i = 0; i < n; ++i) impl_->workers.emplace_back([this] { impl_->work(); });
    impl_->timer_thread = std::thread([this] { impl_->time(); });
}

engine::~engine() {
    {
        std::unique_lock lock(impl_->runs_mutex);
        while (!impl_->runs.empty()) {
            auto active = impl_->runs;
            lock.unlock();
            for (auto& [raw, weak] : active)
                if (auto r = weak.lock()) r->cancel();
            lock.lock();
            impl_->runs_cv.wait_for(lock, std::chrono::milliseconds(50));
        }
    }
    {
        std::lock_guard lock(impl_->timer_mutex);
        impl_->timer_stopping = true;
    }
    impl_->timer_cv.notify_all();
    impl_->timer_thread.join();
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->ready_cv.notify_all();
    for (auto& w : impl_->workers) w.join();
}

void engine::run_started(run_core* run) {
    std::lock_guard lock(impl_->runs_mutex);
    impl_->runs.emplace_back(run, run->self_);
}

void engine::run_finished(run_core* run) {
    {
        std::lock_guard lock(impl_->runs_mutex);
        std::erase_if(impl_->runs, [run](const auto& r) { return r.first == run; });
        impl_->recent[impl_->recent_next++ % impl::recent_size] = run->self_;
    }
    impl_->runs_cv.notify_all();
}

std::vector<std::shared_ptr<run_core>> engine::recent(std::string_view workflow, std::size_t limit) const {
    std::vector<std::shared_ptr<run_core>> out;
    {
        std::lock_guard lock(impl_->runs_mutex);
        for (auto& [raw, weak] : impl_->runs)
            if (raw->graph().name == workflow)
                if (auto r = weak.lock()) out.push_back(std::move(r));
        for (auto& weak : impl_->recent)
            if (auto r = weak.lock(); r && r->graph().name == workflow) out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a->created() > b->created(); });
    if (out.size() > limit) out.resize(limit);
    return out;
}

std::shared_ptr<run_core> engine::find(std::string_view id) const {
    std::lock_guard lock(impl_->runs_mutex);
    for (auto& [raw, weak] : impl_->runs)
        if (raw->id() == id) return weak.lock();
    for (auto& weak : impl_->recent)
        if (auto r = weak.lock(); r && r->id() == id) return r;
    return nullptr;
}

unsigned engine::threads() const noexcept { return static_cast<unsigned>(impl_->workers.size()); }

void engine::post(task t) { post_many(&t, 1); }

void engine::post_many(const task* ts, std::size_t n) {
    if (n == 0) return;
    unsigned wake;
    {
        std::lock_guard lock(impl_->mutex);
        impl_->ready.insert(impl_->ready.end(), ts, ts + n);
        impl_->queued.store(impl_->ready.size(), std::memory_order_relaxed);
        wake = impl_->to_wake(n);
    }
    if (wake == 0) return;
    if (wake == 1) impl_->ready_cv.notify_one();
    else impl_->ready_cv.notify_all();
}

void engine::post_after(std::chrono::steady_clock::duration delay, std::shared_ptr<run_core> run, std::size_t node,
                        std::uint32_t attempt, timer_kind kind) {
    {
        std::lock_guard lock(impl_->timer_mutex);
        impl_->timers.emplace(std::chrono::steady_clock::now() + delay,
                              impl::timer_entry{std::move(run), node, attempt, kind});
    }
    impl_->timer_cv.notify_one();
}

struct run_core::outcome {
    explicit outcome(std::size_t steps) : steps(steps) {}
    // The slot of a step's error, made on the first error: a run that succeeds allocates none.
    std::string& error(std::size_t node) {
        if (errors.empty()) errors.resize(steps);
        return errors[node];
    }
    std::string_view error_of(std::size_t node) const { return node < errors.size() ? errors[node] : std::string_view(); }
    std::size_t steps;
    std::mutex mutex;  // guards what follows
    std::condition_variable done_cv;
    bool done = false;
    run_state final = run_state::running;
    std::chrono::system_clock::time_point finished;
    std::vector<std::string> errors;
    std::size_t first_failure = npos;
    std::mutex event_mutex;  // one on_step call at a time; guards attempt_started
    std::vector<std::chrono::steady_clock::time_point> attempt_started;  // for telemetry's durations
};

// ---- run_core: the state machine of one run ----------------------------------------------------

namespace {
// A run's storage (input and step outputs, laid out by its steps) and its node slots share one
// allocation: one malloc per run fewer.
std::size_t slots_offset(const in_process_steps& s) {
    return (s.storage_size + alignof(node_slot) - 1) / alignof(node_slot) * alignof(node_slot);
}
std::align_val_t block_align(const in_process_steps& s) {
    return std::align_val_t(std::max(s.storage_align, alignof(node_slot)));
}
}  // namespace

run_core::run_core(engine& eng, const erased_workflow& wf, const void* input, run_options opts)
    : engine_(eng), graph_(wf.graph), steps_(*wf.steps), opts_(std::move(opts)),
      observed_(opts_.on_step || telemetry::wanted(telemetry::severity::debug)), id_(make_run_id(graph_.name)),
      started_(std::chrono::steady_clock::now()), created_(std::chrono::system_clock::now()),
      outcome_(::new (outcome_buffer_) outcome(graph_.size())) {
    static_assert(sizeof(outcome) <= outcome_space && alignof(outcome) <= 16, "run_core::outcome_buffer_ is too small");
    try {
        storage_ = ::operator new(slots_offset(steps_) + graph_.size() * sizeof(node_slot), block_align(steps_));
    } catch (...) {
        outcome_->~outcome();
        throw;
    }
    nodes_ = ::new (static_cast<char*>(storage_) + slots_offset(steps_)) node_slot[graph_.size()];
    try {
        steps_.construct(storage_, input);
    } catch (...) {
        ::operator delete(storage_, block_align(steps_));
        outcome_->~outcome();
        throw;
    }
    for (std::size_t i = 0; i < graph_.size(); ++i)
        nodes_[i].waiting_parents.store(static_cast<std::uint32_t>(graph_.parent_count(i)), std::memory_order_relaxed);
}

run_core::~run_core() {
    steps_.destroy(storage_);
    static_assert(std::is_trivially_destructible_v<node_slot>);
    ::operator delete(storage_, block_align(steps_));
    outcome_->~outcome();
}

void run_core::start(std::shared_ptr<run_core> self, bool here) {
    self_ = std::move(self);
    engine_.run_started(this);
    if (telemetry::wanted(telemetry::severity::debug))
        telemetry::emit({.level = telemetry::severity::debug, .event = "run.started", .backend = "local",
                         .workflow = graph_.name, .run_id = id_});
    constexpr std::size_t local_capacity = 8;  // most workflows have a source or two: no allocation
    engine::task local[local_capacity];
    std::vector<engine::task> many;
    if (graph_.sources.size() > local_capacity) many.reserve(graph_.sources.size());
    std::size_t n = 0;
    for (std::size_t s : graph_.sources) {
        std::uint32_t expected = pack(0, step_state::pending);
        if (!nodes_[s].word.compare_exchange_strong(expected, pack(1, step_state::running))) continue;
        if (many.capacity() > 0) many.push_back({this, s, 1});
        else local[n++] = {this, s, 1};
    }
    engine::task* first = many.empty() ? local : many.data();
    const std::size_t count = many.empty() ? n : many.size();
    hold(count);
    if (!here || count == 0) {
        engine_.post_many(first, count);
        return;
    }
    // A run waited for at once costs no hand-off to a worker and back: the caller runs its first
    // source and continues inline, as oneTBB's wait_for_all runs a graph on the waiting thread.
    engine_.post_many(first + 1, count - 1);
    execute(first->node, first->attempt);
}

void run_core::execute(std::size_t node, std::uint32_t attempt) {
    // The caller's hold covers this execution and, by transfer, every child it runs inline.
    while (node != npos) {
        emit(node, step_state::running, attempt, {});
        const milliseconds timeout = graph_.policies[node].timeout;
        if (timeout.count() > 0) engine_.post_after(timeout, self_, node, attempt, engine::timer_kind::timeout);
        std::size_t next = npos;
        try {
            local_step_context ctx(*this, node, attempt);
            detail::step_scope scope(&ctx);
            struct owner {
                run_core* run;
                std::size_t node;
                std::uint32_t attempt;
            } o{this, node, attempt};
            auto commit = [](void* p) {
                auto& c = *static_cast<owner*>(p);
                return c.run->begin_commit(c.node, c.attempt);
            };
            if (steps_.steps[node](storage_, node, commit, &o)) next = finish_commit(node, attempt);
        } catch (const std::exception& e) {
            on_failure(node, attempt, e.what(), false);
        } catch (...) {
            on_failure(node, attempt, "a step threw an exception that is not a std::exception", false);
        }
        node = next;
        attempt = 1;
    }
    release();
}

bool run_core::begin_commit(std::size_t node, std::uint32_t attempt) {
    std::uint32_t expected = pack(attempt, step_state::running);
    return nodes_[node].word.compare_exchange_strong(expected, pack(attempt, step_state::succeeded),
                                                     std::memory_order_acq_rel);
}

// Whether this call made `child` ready and claimed it for running (it may have been cancelled or
// skipped meanwhile).
inline bool run_core::release_child(std::size_t child) {
    // Only a child with several parents needs the shared countdown: a single parent is the only one
    // who releases it.
    if (graph_.parent_count(child) != 1 &&
        nodes_[child].waiting_parents.fetch_sub(1, std::memory_order_acq_rel) != 1)
        return false;
    std::uint32_t expected = pack(0, step_state::pending);
    return nodes_[child].word.compare_exchange_strong(expected, pack(1, step_state::running),
                                                      std::memory_order_acq_rel);
}

std::size_t run_core::finish_commit(std::size_t node, std::uint32_t attempt) {
    emit(node, step_state::succeeded, attempt, {});
    // The first child released runs next on this thread; the rest, if any, go to the queue.
    std::size_t inline_child = npos;
    const std::size_t* c = graph_.child_list.data() + graph_.child_offset[node];
    const std::size_t* const end = graph_.child_list.data() + graph_.child_offset[node + 1];
    for (; c != end; ++c)
        if (release_child(*c)) {
            inline_child = *c++;
            break;
        }
    if (c != end) post_released(c, end);
    finish_node();
    return inline_child;
}

// Posts the children in [first, last) that this commit releases, together.
void run_core::post_released(const std::size_t* first, const std::size_t* last) {
    constexpr std::size_t local_capacity = 32;
    engine::task local[local_capacity];
    std::vector<engine::task> many;  // a wide fan-out: allocated once, filled in one pass
    std::size_t n = 0;
    for (; first != last; ++first) {
        if (!release_child(*first)) continue;
        if (n < local_capacity) {
            local[n++] = {this, *first, 1};
            continue;
        }
        if (many.empty()) {
            many.reserve(static_cast<std::size_t>(last - first) + n);
            many.assign(local, local + n);
        }
        many.push_back({this, *first, 1});
    }
    const engine::task* tasks = many.empty() ? local : many.data();
    const std::size_t count = many.empty() ? n : many.size();
    if (count == 0) return;
    hold(count);
    engine_.post_many(tasks, count);
}

void run_core::on_failure(std::size_t node, std::uint32_t attempt, std::string error, bool timed_out) {
    (void)timed_out;
    auto& word = nodes_[node].word;
    std::uint32_t expected = pack(attempt, step_state::running);
    if (cancel_requested_.load(std::memory_order_acquire)) {
        if (!word.compare_exchange_strong(expected, pack(attempt, step_state::cancelled))) return;
        set_error(node, std::move(error));
        emit(node, step_state::cancelled, attempt, {});
        skip_descendants(node);
        finish_node();
        return;
    }
    const retry_policy& rp = graph_.policies[node].retry;
    if (static_cast<int>(attempt) < rp.max_attempts) {
        if (!word.compare_exchange_strong(expected, pack(attempt, step_state::retrying))) return;
        set_error(node, error);
        emit(node, step_state::retrying, attempt, error);
        engine_.post_after(rp.delay_before(static_cast<int>(attempt) + 1), self_, node, attempt + 1,
                            engine::timer_kind::retry);
        return;
    }
    if (!word.compare_exchange_strong(expected, pack(attempt, step_state::failed))) return;
    {
        std::lock_guard lock(outcome_->mutex);
        outcome_->error(node) = error;
        if (outcome_->first_failure == npos) outcome_->first_failure = node;
    }
    emit(node, step_state::failed, attempt, error);
    skip_descendants(node);
    finish_node();
}

void run_core::retry(std::size_t node, std::uint32_t attempt) {
    std::uint32_t expected = pack(attempt - 1, step_state::retrying);
    if (!nodes_[node].word.compare_exchange_strong(expected, pack(attempt, step_state::running))) return;
    hold(1);
    engine_.post({this, node, attempt});
}

void run_core::skip_descendants(std::size_t node) {
    for (std::size_t child : graph_.children(node)) {
        std::uint32_t expected = pack(0, step_state::pending);
        if (!nodes_[child].word.compare_exchange_strong(expected, pack(0, step_state::skipped))) continue;
        emit(child, step_state::skipped, 0, {});
        skip_descendants(child);
        finish_node();
    }
}

void run_core::finish_node() {
    if (finished_.fetch_add(1, std::memory_order_acq_rel) + 1 == graph_.size()) complete();
}

void run_core::complete() {
    {
        std::lock_guard lock(outcome_->mutex);
        outcome_->done = true;
        outcome_->finished = std::chrono::system_clock::now();
        if (cancel_requested_.load()) outcome_->final = run_state::cancelled;
        else if (outcome_->first_failure != npos) outcome_->final = run_state::failed;
        else outcome_->final = run_state::succeeded;
        report_end();  // before anyone waiting can see the run done
        done_flag_.store(true, std::memory_order_release);
    }
    outcome_->done_cv.notify_all();
    engine_.run_finished(this);
    release();
}

void run_core::release() {
    if (holds_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        auto last = std::move(self_);  // may destroy *this when it goes out of scope
    }
}

void run_core::cancel() {
    {
        std::lock_guard lock(outcome_->mutex);
        if (outcome_->done) return;
    }
    cancel_requested_.store(true, std::memory_order_release);
    for (std::size_t i = 0; i < graph_.size(); ++i) {
        auto& word = nodes_[i].word;
        std::uint32_t w = word.load();
        while (state_of(w) == step_state::pending || state_of(w) == step_state::retrying) {
            if (word.compare_exchange_weak(w, pack(attempt_of(w), step_state::cancelled))) {
                emit(i, step_state::cancelled, attempt_of(w), {});
                finish_node();
                break;
            }
        }
    }
}

bool run_core::stop_requested(std::size_t node, std::uint32_t attempt) const {
    return cancel_requested_.load(std::memory_order_relaxed) ||
           nodes_[node].word.load(std::memory_order_relaxed) != pack(attempt, step_state::running);
}

run_state run_core::state() const {
    std::lock_guard lock(outcome_->mutex);
    return outcome_->final;
}

std::optional<std::chrono::system_clock::time_point> run_core::finished() const {
    std::lock_guard lock(outcome_->mutex);
    if (!outcome_->done) return std::nullopt;
    return outcome_->finished;
}

std::vector<step_status> run_core::steps() const {
    std::vector<step_status> out;
    out.reserve(graph_.size());
    std::lock_guard lock(outcome_->mutex);
    for (std::size_t i = 0; i < graph_.size(); ++i) {
        std::uint32_t w = nodes_[i].word.load(std::memory_order_acquire);
        out.push_back({std::string(graph_.names[i]), state_of(w), static_cast<int>(attempt_of(w)), std::string(outcome_->error_of(i))});
    }
    return out;
}

void run_core::wait() const {
    // A finished run answers without its lock. (Spinning here as well was measured and dropped: with
    // the caller and a worker both spinning, two cores were oversubscribed and nothing was gained.)
    if (done_flag_.load(std::memory_order_acquire)) return;
    std::unique_lock lock(outcome_->mutex);
    outcome_->done_cv.wait(lock, [&] { return outcome_->done; });
}

bool run_core::wait_for(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(outcome_->mutex);
    return outcome_->done_cv.wait_for(lock, timeout, [&] { return outcome_->done; });
}

const void* run_core::result() const {
    wait();
    std::lock_guard lock(outcome_->mutex);
    if (outcome_->final == run_state::cancelled) throw run_cancelled(graph_.name);
    if (outcome_->final == run_state::failed) {
        std::uint32_t w = nodes_[outcome_->first_failure].word.load();
        throw step_failed(std::string(graph_.names[outcome_->first_failure]), std::string(outcome_->error_of(outcome_->first_failure)),
                          static_cast<int>(attempt_of(w)));
    }
    return steps_.output(storage_);
}

void run_core::set_error(std::size_t node, std::string error) {
    std::lock_guard lock(outcome_->mutex);
    outcome_->error(node) = std::move(error);
}

void run_core::emit_event(std::size_t node, step_state s, std::uint32_t attempt, std::string_view error) {
    std::lock_guard lock(outcome_->event_mutex);
    const auto now = std::chrono::steady_clock::now();
    if (opts_.on_step)
        opts_.on_step(step_event{graph_.name, graph_.names[node], s, static_cast<int>(attempt), error, now - started_});
    const telemetry::step_change e = telemetry::step_change_of(s);
    if (e.level == telemetry::severity::off || !telemetry::wanted(e.level)) return;
    auto& t0 = outcome_->attempt_started;
    if (t0.empty()) t0.resize(graph_.size());
    std::optional<double> ms;
    if (s == step_state::running) t0[node] = now;
    else if (s != step_state::skipped && t0[node] != std::chrono::steady_clock::time_point{})
        ms = std::chrono::duration<double, std::milli>(now - t0[node]).count();
    telemetry::emit({.level = e.level, .event = e.event, .backend = "local", .workflow = graph_.name, .run_id = id_,
                     .step = graph_.names[node], .attempt = static_cast<int>(attempt), .duration_ms = ms, .error = error});
}

void run_core::report_end() const {
    using telemetry::severity;
    const run_state st = outcome_->final;
    const severity l = st == run_state::failed ? severity::warning : st == run_state::cancelled ? severity::info : severity::debug;
    if (!telemetry::wanted(l)) return;
    std::string error;
    if (st == run_state::failed && outcome_->first_failure != npos)
        error = "step '" + std::string(graph_.names[outcome_->first_failure]) + "': " + std::string(outcome_->error_of(outcome_->first_failure));
    telemetry::emit({.level = l, .event = st == run_state::failed ? "run.failed" : st == run_state::cancelled ? "run.cancelled" : "run.succeeded",
                     .backend = "local", .workflow = graph_.name, .run_id = id_,
                     .duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_).count(),
                     .error = error});
}

// ---- starting runs, and the backend behind any_client -------------------------------------------

namespace {
std::shared_ptr<run_control> begin_run(engine& eng, const erased_workflow& wf, const void* input, run_options opts,
                                       bool here) {
    check_metadata(opts.metadata);
    auto r = std::make_shared<run_core>(eng, wf, input, std::move(opts));
    r->start(r, here);
    return r;
}
}  // namespace

std::shared_ptr<run_control> start(engine& eng, const erased_workflow& wf, const void* input, run_options opts) {
    return begin_run(eng, wf, input, std::move(opts), false);
}

std::shared_ptr<run_control> run_here(engine& eng, const erased_workflow& wf, const void* input, run_options opts) {
    return begin_run(eng, wf, input, std::move(opts), true);
}

std::shared_ptr<run_control> attach(engine& eng, const erased_workflow& wf, std::string_view id) {
    auto r = eng.find(id);
    if (!r)
        throw run_not_found("local", wf.graph.name, id,
                            "the embedded engine keeps a run in the process that started it, while it runs and "
                            "while a handle on it remains; for runs that outlive a process, use a durable backend");
    if (r->graph().name != wf.graph.name)
        throw config_error("weft: local run '" + std::string(id) + "' is a run of workflow '" + std::string(r->graph().name) +
                           "', not '" + std::string(wf.graph.name) + "'");
    return r;
}

// The engine records no per-step times and keeps outputs as C++ objects: steps carry states, attempts
// and errors; the run its creation and end. A run's first steps are running from start() on (the
// engine posts them then), so a local run is never queued.
run_description describe(const engine& eng, std::string_view id) {
    auto r = eng.find(id);
    if (!r)
        throw run_not_found("local", {}, id,
                            "the embedded engine keeps a run in the process that started it, while it runs and "
                            "while a handle on it remains");
    run_description d;
    d.backend = local::name;
    d.workflow = std::string(r->graph().name);
    d.id = r->id();
    d.created = d.started = r->created();
    d.finished = r->finished();
    d.state = r->state();
    for (auto& s : r->steps()) {
        if (s.state == step_state::failed && d.failed_step.empty() && d.state == run_state::failed) {
            d.failed_step = s.name;
            d.error = s.error;
        }
        d.steps.push_back({std::move(s.name), s.state, s.attempts, std::move(s.error), {}, {}});
    }
    return d;
}

std::vector<run_summary> list(const engine& eng, std::string_view workflow, std::size_t limit) {
    std::vector<run_summary> out;
    for (auto& r : eng.recent(workflow, limit)) out.push_back({r->id(), std::string(workflow), r->state(), r->created(), r->created()});
    return out;
}

local_backend::local_backend(local::options opts)
    : engine_(std::make_unique<engine>(engine_options{opts.threads})) {}
local_backend::~local_backend() = default;

std::shared_ptr<run_control> local_backend::start(const erased_workflow& wf, const void* input, run_options opts) {
    if (!wf.steps)
        throw config_error("weft: the local backend runs steps in this process, but workflow '" +
                           std::string(wf.graph.name) +
                           "' was handed over without its step code (by a server backend's client): start it "
                           "through weft::any_client or weft::client<weft::local>");
    refuse_transactional_steps(wf.graph, local::name);
    return local_detail::start(*engine_, wf, input, std::move(opts));
}

std::shared_ptr<run_control> local_backend::attach(const erased_workflow& wf, std::string_view id) {
    return local_detail::attach(*engine_, wf, id);
}

run_description local_backend::describe(std::string_view id) { return local_detail::describe(*engine_, id); }
std::vector<run_summary> local_backend::list(std::string_view workflow, std::size_t limit) {
    return local_detail::list(*engine_, workflow, limit);
}

namespace {
// A function's static, not a namespace-scope one: the registry reads it during static initialization.
const kit::settings_table<local::options>& table() {
    static const kit::settings_table<local::options> t{
    "local",
    {
        {"threads", &local::options::threads, "worker threads; 0: one per hardware thread", 4096},
    }};
    return t;
}
}  // namespace

local::options options_from(const config& c) { return table().read(c); }
std::vector<setting_doc> settings() { return table().docs(); }

}  // namespace weft::local_detail

namespace weft {
run_description client<local>::describe(std::string_view id) const { return local_detail::describe(*engine_, id); }
}  // namespace weft
