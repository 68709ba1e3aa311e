// The seam every backend plugs into: the backend interface and the registry of backends linked into
// the program. A backend receives an erased_workflow (<weft/erased.hpp>): a server backend lowers its
// graph and uses its codec hooks, an in-process engine uses its step hooks.
//
// include/ names no backend: each backend registers itself (register_backend) from its own header.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <weft/config.hpp>
#include <weft/dsl/meta.hpp>
#include <weft/erased.hpp>
#include <weft/run.hpp>
#include <weft/run_description.hpp>

namespace weft {

// Where a routing backend would send a run, and why (`weft flags eval`).
struct route_decision {
    std::string backend;     // where the run goes
    std::string shadow;      // where its shadow run goes; empty: none
    std::string why;         // the rule that decided, for a human
    std::string shadow_why;
    std::string flag;        // the flag that decided, if any
    std::string variant;     // its variant; empty when no flag applied
};

// A step with step_policy::transactional writes to the database its backend keeps results in, and
// commits those writes with its result. A backend without such a database refuses the workflow: at
// compile time in its typed client and worker (no_transactional_steps), at start() when it was
// chosen by configuration (refuse_transactional_steps).
template <class Step>
struct ERROR_this_step_is_transactional_and_the_backend_keeps_no_database_it_can_write_to;

template <workflow_type W>
consteval std::size_t first_transactional_step() {
    for (std::size_t i = 0; i < W::size; ++i)
        if (W::policies[i].transactional) return i;
    return W::size;
}

// False (with one diagnostic naming the step) when W has a transactional step.
template <workflow_type W>
consteval bool no_transactional_steps() {
    constexpr std::size_t culprit = first_transactional_step<W>();
    if constexpr (culprit != W::size)
        WEFT_DIAGNOSE("weft: this step sets step_policy::transactional: its writes commit with its result in the "
                      "database that holds the run's results, and this backend keeps none it can write to. Run the "
                      "workflow on a backend with a journal database (docs/backends.md lists them), or make the step "
                      "idempotent and drop `transactional`",
                      ERROR_this_step_is_transactional_and_the_backend_keeps_no_database_it_can_write_to<
                          typename W::template step<culprit>>);
    return culprit == W::size;
}

inline void refuse_transactional_steps(const graph_view& g, std::string_view backend) {
    for (std::size_t i = 0; i < g.size(); ++i)
        if (g.policies[i].transactional)
            throw config_error("weft: step '" + std::string(g.names[i]) + "' of workflow '" + std::string(g.name) +
                               "' sets step_policy::transactional (its writes commit with its result in the database "
                               "that holds the run's results), and backend '" + std::string(backend) +
                               "' keeps no database it can write to: run it on a backend with a journal database "
                               "(docs/backends.md lists them), or make the step idempotent and drop `transactional`");
}

// One finding of backend::doctor(): what was checked, whether it passed, what was seen, and (when it
// failed) what to do about it. A warning is a check that passes with a detail worth reading.
struct health_check {
    std::string name;    // "redis.auth", "temporal.namespace", ...
    bool ok = false;
    std::string detail;  // what the server said or what was seen; never a secret
    std::string fix;     // empty when ok
};

class backend {
public:
    virtual ~backend() = default;
    virtual std::string_view name() const noexcept = 0;
    // input: the workflow's input tuple.
    virtual std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) = 0;
    // A handle on a run of `wf` started elsewhere (another handle, another process), by its id().
    // Throws run_not_found when the backend has no such run, config_error when the run it finds is
    // of another workflow.
    virtual std::shared_ptr<run_control> attach(const erased_workflow& wf, std::string_view id) = 0;
    // The run `id` (weft's id, or the backend's native id of a run started by someone else) as the
    // backend's own records describe it, without the workflow's type. Throws run_not_found.
    virtual run_description describe(std::string_view id) = 0;
    // The most recent runs of workflow `workflow`, newest first, at most `limit`. A backend that keeps
    // no index of runs throws config_error saying so.
    virtual std::vector<run_summary> list(std::string_view workflow, std::size_t limit) = 0;
    // Registers `wf` with the server where the backend needs it (the CLI's `register`), or on a dry
    // run only says what would be sent; returns that, for a human. Backends whose workers declare
    // what they serve as they start have nothing to register.
    virtual std::string register_workflow(const erased_workflow& wf, bool dry_run) {
        (void)dry_run;
        return std::string(name()) + ": nothing to register for '" + std::string(wf.graph.name) +
               "': the workers that serve its steps declare them when they start";
    }
    // Whether a run outlives the process that started it (a server keeps it, or a journal does):
    // false for an engine that holds runs in memory, whose ids mean nothing once this process ends.
    virtual bool keeps_runs() const noexcept { return true; }
    // A backend that sends each run to one of several others (a router): those, in its order. Empty
    // for any other backend.
    virtual std::vector<backend*> routed_backends() { return {}; }
    // Where a run of `workflow` with `opts` (its key and attributes) would go now, and why.
    virtual route_decision route(std::string_view workflow, const run_options& opts) {
        (void)opts;
        return {std::string(name()), {}, "backend '" + std::string(name()) + "' runs every run of '" + std::string(workflow) + "' itself", {}, {}, {}};
    }
    // The CLI's `doctor`: checks against the backend's server (reachable, credentials, versions, the
    // configured names exist), each with its own verdict. The default asks for a run that does not
    // exist, which every backend answers with run_not_found when it is reachable and lets us in.
    virtual std::vector<health_check> doctor() {
        health_check c{std::string(name()) + ".connection", false, {}, {}};
        try {
            (void)describe("weft-doctor-probe-0000");
            c.ok = true;
            c.detail = "the backend answered";
        } catch (const run_not_found&) {
            c.ok = true;
            c.detail = "the backend answered (no such run, as expected)";
        } catch (const std::exception& e) {
            c.detail = e.what();
            c.fix = "check the backend's settings (`weft doctor` names where each came from)";
        }
        return {c};
    }
};

// A backend's worker, as a program that picks its backend by configuration runs it (weft::cli's
// `worker`): the same calls on every backend. stop() lets the steps in hand finish.
class worker_control {
public:
    virtual ~worker_control() = default;
    virtual void serve(const graph_view& wf, std::span<const erased_step> steps) = 0;
    virtual void start() = 0;
    virtual void stop() = 0;
};

// What the command line may say about a worker over the configuration.
struct worker_settings {
    std::vector<std::string> queues;  // empty: the backend's default
    unsigned concurrency = 0;         // 0: the backend's default
    std::string name;                 // the worker's identity on its server; empty: the backend's default
    bool task_events = false;         // monitoring events per task, where the backend sends them (Celery's -E)
};

// Backends linked into this program, by name. Each backend's header adds itself (register_backend),
// so linking a backend and including its header makes it selectable by configuration.
// One setting a backend reads: under [name] in a file, or WEFT_<NAME>_<KEY> in the environment.
// Backends describe theirs in one table (weft/kit/settings.hpp) that also reads them, so the keys a
// backend accepts, its error messages, --help text and docs cannot drift apart.
struct setting_doc {
    std::string key;
    std::string type;           // "string", "duration", "whole number", "true|false", "none|tls", ...
    std::string default_value;  // as text; empty for none
    std::string help;
};

class backend_registry {
public:
    struct entry {
        std::string name;
        std::vector<setting_doc> settings;
        std::function<std::unique_ptr<backend>(const config&)> make;
        // Null for a backend without workers (an in-process engine runs steps where runs start).
        std::function<std::unique_ptr<worker_control>(const config&, const worker_settings&)> make_worker = {};
    };

    static backend_registry& instance() {
        static backend_registry r;
        return r;
    }

    bool add(entry e) {
        for (auto& x : entries_)
            if (x.name == e.name) return false;
        entries_.push_back(std::move(e));
        return true;
    }

    std::unique_ptr<backend> make(const config& c) const { return checked(c).make(c); }

    std::unique_ptr<worker_control> make_worker(const config& c, const worker_settings& s) const {
        const entry& e = checked(c);
        if (!e.make_worker)
            throw config_error("weft: backend '" + e.name + "' (from " + c.backend_origin() +
                               ") has no workers: it runs each step in the process that started the run");
        return e.make_worker(c, s);
    }

    // Adds the worker maker of a backend added before (its header's second registration line).
    bool add_worker(std::string_view name,
                    std::function<std::unique_ptr<worker_control>(const config&, const worker_settings&)> make) {
        for (auto& e : entries_)
            if (e.name == name) {
                e.make_worker = std::move(make);
                return true;
            }
        return false;
    }

    const std::vector<entry>& entries() const noexcept { return entries_; }

    // The entry `c` selects, once its sections and keys are checked.
    const entry& checked(const config& c) const {
        const std::string wanted = c.backend();
        // A section for a backend this program does not link is someone else's (config files are
        // shared between programs); one a letter or two off a linked backend's name is a typo.
        for (auto& sec : c.sections())
            if (!find(sec))
                if (const entry* near = nearest(sec))
                    throw config_error("weft: unknown backend section [" + sec + "] (from " + c.origin_of_section(sec) +
                                       "); known backends: " + names() + " (did you mean [" + near->name + "]?)");
        const entry* e = find(wanted);
        if (!e)
            throw config_error("weft: unknown backend '" + wanted + "' (from " + c.backend_origin() +
                               "); known backends: " + names() + not_linked_hint(wanted));
        std::vector<std::string_view> keys;
        for (auto& s : e->settings) keys.push_back(s.key);
        c.check_keys(e->name, keys);
        return *e;
    }

    const entry* find(std::string_view name) const {
        for (auto& e : entries_)
            if (e.name == name) return &e;
        return nullptr;
    }

    std::string names() const {
        std::string n;
        for (auto& e : entries_) n += (n.empty() ? "" : ", ") + e.name;
        return n;
    }

private:
    // The linked backend whose name is at most two edits from `name` (and not equal), if any.
    const entry* nearest(std::string_view name) const {
        for (auto& e : entries_) {
            const std::string& n = e.name;
            // Optimal string alignment distance, on two rows plus the one before them.
            std::vector<std::size_t> prev2(n.size() + 1), prev(n.size() + 1), cur(n.size() + 1);
            for (std::size_t j = 0; j <= n.size(); ++j) prev[j] = j;
            for (std::size_t i = 1; i <= name.size(); ++i) {
                cur[0] = i;
                for (std::size_t j = 1; j <= n.size(); ++j) {
                    cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (name[i - 1] != n[j - 1])});
                    if (i > 1 && j > 1 && name[i - 1] == n[j - 2] && name[i - 2] == n[j - 1])
                        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
                }
                prev2.swap(prev);
                prev.swap(cur);
            }
            if (prev[n.size()] <= 2 && name.size() >= 3) return &e;
        }
        return nullptr;
    }
    // The registry cannot know every backend that exists, only those linked in: say how one joins.
    static std::string not_linked_hint(std::string_view name) {
        return ". A backend is known once this program links its library (weft::" + std::string(name) +
               ") and includes its header (<weft/" + std::string(name) + ".hpp>)";
    }
    std::vector<entry> entries_;
};

// Adds a backend to the registry, built from its settings by `options_from`. A backend's header
// calls it from an inline variable, so including the header (and linking the backend) is enough:
//     inline const bool registered = register_backend<backend_impl>(my_backend::name, settings(), &options_from);
template <class Impl, class Options>
bool register_backend(std::string_view name, std::vector<setting_doc> settings, Options (*options_from)(const config&)) {
    return backend_registry::instance().add({
        std::string(name),
        std::move(settings),
        [options_from](const config& c) -> std::unique_ptr<backend> { return std::make_unique<Impl>(options_from(c)); },
    });
}

// A backend's worker class as a worker_control. Its options come from the configuration
// (`options_from`) with the command line's settings over them (`apply`), both the backend's own.
template <class Worker>
class worker_adapter final : public worker_control {
public:
    template <class Options>
    explicit worker_adapter(Options o) : w_(std::move(o)) {}
    void serve(const graph_view& wf, std::span<const erased_step> steps) override { w_.serve(wf, steps); }
    void start() override { w_.start(); }
    void stop() override { w_.stop(); }

private:
    Worker w_;
};

template <class Worker, class WorkerOptions>
bool register_worker(std::string_view name, WorkerOptions (*options_from)(const config&, const worker_settings&)) {
    backend_registry::instance().add_worker(name, [options_from](const config& c, const worker_settings& s) {
        return std::unique_ptr<worker_control>(std::make_unique<worker_adapter<Worker>>(options_from(c, s)));
    });
    return true;
}

}  // namespace weft
