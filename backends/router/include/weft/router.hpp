// weft::router: a backend made of other backends. Each run of a workflow goes to one of them, chosen
// by a feature flag in flagd's format (docs/flags.md), so a team moves its workflows from one engine
// to another by editing a file: all at once, by percentage, sticky by a key the caller gives, by
// allow- and deny-lists; and a sample of runs can also run on a candidate backend, as a shadow whose
// output is compared with the primary's (docs/migration.md).
//
//     backend = router
//     [router]
//     backends = celery, temporal       # the order a migration goes in: keys only ever move right
//     flags = /etc/weft/flags.json      # flag "weft.route.<workflow>": variants name backends
//     [celery]
//     broker_url = ...
//     [temporal]
//     address = ...
//
//     auto client = weft::any_client::from_env();
//     auto run = client.start(ingest, doc, {.key = tenant});   // the same tenant, the same backend
//
// A run stays on the backend that started it: its id is that backend's (`temporal:ingest:...`), and
// attach, describe and cancel go there. A started run is never submitted elsewhere; with
// `fallback = true` a run whose submission failed goes to the next backend that accepts it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <weft/backend.hpp>
#include <weft/codec.hpp>
#include <weft/config.hpp>
#include <weft/router/flags.hpp>
#include <weft/run.hpp>

namespace weft {

struct router {
    static constexpr std::string_view name = "router";

    struct options {
        std::string backends;           // comma-separated, in migration order; each built from its own section
        std::string flags;              // the flagd flag file; empty: every run goes to the first backend
        std::string flag_prefix = "weft.";  // flags are <prefix>route.<workflow> and <prefix>shadow.<workflow>
        std::chrono::milliseconds flags_poll{500};  // how often the file's stat() is checked for a change
        bool fallback = false;          // submit to the next backend when submission itself fails
        unsigned shadow_threads = 2;    // comparisons of shadow runs in flight at once
        unsigned shadow_queue = 1000;   // shadow runs waiting for a comparer; more are dropped (and counted)
        std::chrono::seconds shadow_timeout{600};  // a shadow comparison gives up after this long
        std::string workers;            // the router's worker serves these (comma-separated); empty: every routed backend with workers
        config parent;                  // the whole configuration, for the routed backends' sections
    };

    // How a run was routed, and why (`weft flags eval`).
    using decision = route_decision;

    // What the shadow comparisons of one workflow found (also in the metrics, docs/migration.md).
    struct shadow_counts {
        std::uint64_t started = 0, matched = 0, mismatched = 0, errors = 0, dropped = 0, skipped = 0;
    };
};

namespace router_detail {

class shadow_pool;

class backend_impl final : public backend {
public:
    explicit backend_impl(router::options opts);
    ~backend_impl() override;
    std::string_view name() const noexcept override { return router::name; }
    std::shared_ptr<run_control> start(const erased_workflow& wf, const void* input, run_options opts) override;
    // The backend the id names (`<backend>:<workflow>:<key>`); a native id is tried on each in turn.
    std::shared_ptr<run_control> attach(const erased_workflow& wf, std::string_view id) override;
    run_description describe(std::string_view id) override;
    // The recent runs of every routed backend that can list them, newest first.
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit) override;
    std::string register_workflow(const erased_workflow& wf, bool dry_run) override;
    std::vector<weft::backend*> routed_backends() override;
    // Every routed backend's checks, and the flag file's.
    std::vector<health_check> doctor() override;
    route_decision route(std::string_view workflow, const run_options& opts) override {
        return decide(workflow, opts.key, opts.attributes);
    }

    // Where a run of `workflow` with this key and attributes would go now, and why.
    router::decision decide(std::string_view workflow, std::string_view key,
                            const std::vector<std::pair<std::string, std::string>>& attributes);
    // The routed backends, in migration order.
    const std::vector<std::string>& backend_names() const noexcept { return names_; }
    weft::backend& routed(std::string_view name);
    router::shadow_counts shadows(std::string_view workflow) const;
    // Waits until every shadow comparison queued so far has finished (tests, orderly shutdown).
    void drain_shadows();
    // The flag file's last rejected version (its line and reason), or empty.
    std::string flags_error() const;

private:
    void start_shadow(const erased_workflow& wf, const void* input, const std::string& backend,
                      std::shared_ptr<run_control> primary);

    router::options opts_;
    std::vector<std::string> names_;
    std::vector<std::unique_ptr<weft::backend>> backends_;
    std::unique_ptr<flags::flag_file> flags_;
    std::unique_ptr<shadow_pool> shadows_;
};

router::options options_from(const config& c);
std::vector<setting_doc> settings();

inline const bool registered = register_backend<backend_impl>(router::name, settings(), &options_from);

// The router's worker: one worker per routed backend that has workers, in one process, so both sides
// of a migration are served while it lasts. `[router] workers = celery` serves only those named.
std::unique_ptr<worker_control> make_worker(const config& c, const worker_settings& s);
inline const bool registered_worker = backend_registry::instance().add_worker(router::name, &make_worker);

}  // namespace router_detail

template <class Backend>
class client;

// The typed client: any routed backend may run the workflow, so it passes every hook (full_erasure).
template <>
class client<router> {
public:
    explicit client(router::options opts) : backend_(std::move(opts)) {}
    explicit client(const config& c) : backend_(router_detail::options_from(c)) {}

    template <workflow_type W>
    run<typename W::output> start(W, typename W::input input, run_options opts = {}) {
        const typename W::input_tuple in(std::move(input));
        return run<typename W::output>(backend_.start(full_erasure<W>, &in, std::move(opts)));
    }
    template <workflow_type W>
    run<typename W::output> attach(W, std::string_view id) {
        return run<typename W::output>(backend_.attach(full_erasure<W>, id));
    }
    run_description describe(std::string_view id) { return backend_.describe(id); }
    std::vector<run_summary> list(std::string_view workflow, std::size_t limit = 20) { return backend_.list(workflow, limit); }
    router::decision decide(std::string_view workflow, std::string_view key,
                            const std::vector<std::pair<std::string, std::string>>& attributes = {}) {
        return backend_.decide(workflow, key, attributes);
    }
    router::shadow_counts shadows(std::string_view workflow) const { return backend_.shadows(workflow); }
    void drain_shadows() { backend_.drain_shadows(); }
    router_detail::backend_impl& backend() noexcept { return backend_; }

private:
    router_detail::backend_impl backend_;
};

}  // namespace weft
