// The router: routed backends built from their own sections, a route per run from the flag file,
// ids that lead back to the backend that has the run, fallback on a failed submission, and shadow
// runs compared off the caller's path.
#include <weft/router.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <weft/kit/settings.hpp>
#include <weft/run_description.hpp>
#include <weft/telemetry.hpp>

#include "compare.hpp"

namespace weft::router_detail {

namespace {

std::string joined(const std::vector<std::string>& names) {
    std::string s;
    for (auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

// A routed backend's configuration: the router's, with `backend` naming it.
config routed_config(const config& parent, const std::string& name) {
    config c = parent;
    c.set("backend", name, "router.backends");
    return c;
}

std::vector<std::string> checked_names(const router::options& o, const std::string& list, std::string_view key) {
    const auto origin = o.parent.find("router." + std::string(key));
    const std::string where = origin ? origin->origin : "the default";
    std::vector<std::string> names = split_list(list);
    if (names.empty())
        throw config_error("weft: router." + std::string(key) + " (from " + where +
                           ") names no backend: list the backends runs may go to, in migration order, e.g. "
                           "`backends = celery, temporal`");
    auto& reg = backend_registry::instance();
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] == router::name)
            throw config_error("weft: router." + std::string(key) + " (from " + where + ") names the router itself");
        if (std::find(names.begin(), names.begin() + i, names[i]) != names.begin() + i)
            throw config_error("weft: router." + std::string(key) + " (from " + where + ") names '" + names[i] + "' twice");
        if (!reg.find(names[i]))
            throw config_error("weft: router." + std::string(key) + " (from " + where + ") names '" + names[i] +
                               "', which this program does not link; linked backends: " + reg.names());
    }
    return names;
}

std::string random_key() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char hex[] = "0123456789abcdef";
    std::string k(16, '0');
    std::uint64_t v = rng();
    for (char& c : k) {
        c = hex[v & 15];
        v >>= 4;
    }
    return k;
}

std::string_view side_effect_step(const erased_workflow& wf) {
    for (std::size_t i = 0; i < wf.graph.policies.size(); ++i)
        if (wf.graph.policies[i].side_effects) return wf.graph.names[i];
    return {};
}

}  // namespace

// ---- shadow runs ---------------------------------------------------------------------------------

// Compares shadow runs on its own threads: the caller's start() only copies the input and queues.
class shadow_pool {
public:
    struct job {
        const erased_workflow* wf;
        std::shared_ptr<const void> input;
        weft::backend* primary_backend;
        weft::backend* candidate;
        std::shared_ptr<run_control> primary;
        std::vector<std::string> ignore;  // JSON pointers that may differ (the shadow flag's compareIgnore)
        run_metadata metadata;            // the primary's: its steps may read it, so the shadow's get it too
    };

    shadow_pool(unsigned threads, unsigned capacity, std::chrono::seconds timeout)
        : capacity_(capacity), timeout_(timeout) {
        for (unsigned i = 0; i < std::max(1u, threads); ++i) threads_.emplace_back([this] { loop(); });
    }
    ~shadow_pool() {
        {
            std::lock_guard l(m_);
            stopping_ = true;
            for (auto& j : queue_) count(*j.wf, *j.candidate, "dropped", "the router closed before it compared", {});
            queue_.clear();
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }

    // False when the queue is full (the job is dropped and counted).
    void push(job j) {
        {
            std::lock_guard l(m_);
            if (queue_.size() < capacity_) {
                queue_.push_back(std::move(j));
                cv_.notify_one();
                return;
            }
        }
        count(*j.wf, *j.candidate, "dropped", "the shadow queue is full (router.shadow_queue)", {}, j.primary->id());
    }

    void skipped(const erased_workflow& wf, weft::backend& candidate, std::string_view why) {
        count(wf, candidate, "skipped", why, {});
    }

    void drain() {
        std::unique_lock l(m_);
        idle_.wait(l, [&] { return queue_.empty() && active_ == 0; });
    }

    router::shadow_counts counts(std::string_view workflow) const {
        std::lock_guard l(counts_m_);
        auto it = counts_.find(std::string(workflow));
        return it == counts_.end() ? router::shadow_counts{} : it->second;
    }

private:
    void loop() {
        for (;;) {
            job j;
            {
                std::unique_lock l(m_);
                cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;
                j = std::move(queue_.front());
                queue_.pop_front();
                ++active_;
            }
            compare(j);
            {
                std::lock_guard l(m_);
                --active_;
            }
            idle_.notify_all();
        }
    }

    // Waits for `r` until the deadline, giving up early when the pool stops.
    bool wait(const run_control& r, std::chrono::steady_clock::time_point deadline) {
        while (std::chrono::steady_clock::now() < deadline) {
            if (r.wait_for(std::chrono::milliseconds(200))) return true;
            std::lock_guard l(m_);
            if (stopping_) return false;
        }
        return false;
    }

    void compare(const job& j) {
        const erased_workflow& wf = *j.wf;
        std::shared_ptr<run_control> shadow;
        try {
            shadow = j.candidate->start(wf, j.input.get(), {.metadata = j.metadata});
        } catch (const std::exception& e) {
            count(wf, *j.candidate, "failed", std::string("the shadow run did not start: ") + e.what(), {},
                  j.primary->id());
            return;
        }
        {
            std::lock_guard l(counts_m_);
            ++counts_[std::string(wf.graph.name)].started;
        }
        const auto deadline = std::chrono::steady_clock::now() + timeout_;
        try {
            if (!wait(*j.primary, deadline) || !wait(*shadow, deadline)) {
                count(wf, *j.candidate, "failed", "no outcome within router.shadow_timeout_s", shadow->id(), j.primary->id());
                return;
            }
            const ending p = ending_of(wf, *j.primary), s = ending_of(wf, *shadow);
            std::vector<std::string> diffs;
            if (p.state != s.state) {
                diffs.push_back("state: " + std::string(to_string(p.state)) + " on " + std::string(j.primary_backend->name()) +
                                ", " + std::string(to_string(s.state)) + " on " + std::string(j.candidate->name()) +
                                (s.error.empty() ? "" : " (" + s.error + ")"));
            } else if (p.state == run_state::failed && p.failed_step != s.failed_step) {
                diffs.push_back("failed step: '" + p.failed_step + "', '" + s.failed_step + "'");
            } else if (p.state == run_state::succeeded) {
                diffs = json_differences(p.output, s.output, j.ignore);
            }
            if (diffs.empty()) {
                count(wf, *j.candidate, "matched", {}, shadow->id(), j.primary->id());
            } else {
                std::string what;
                for (auto& d : diffs) what += (what.empty() ? "" : "; ") + d;
                count(wf, *j.candidate, "mismatched", what, shadow->id(), j.primary->id());
            }
        } catch (const std::exception& e) {
            count(wf, *j.candidate, "failed", e.what(), shadow->id(), j.primary->id());
        }
    }

    // How a run ended, from its handle: the output as JSON (the workflow's codec), or the step that failed.
    struct ending {
        run_state state;
        json::value output;
        std::string failed_step, error;
    };
    static ending ending_of(const erased_workflow& wf, const run_control& r) {
        ending e{r.state(), nullptr, {}, {}};
        try {
            const void* out = r.result();
            e.state = run_state::succeeded;
            e.output = wf.codec->encode_output(out);
        } catch (const step_failed& f) {
            e.state = run_state::failed;
            e.failed_step = f.step();
            e.error = f.what();
        } catch (const run_cancelled& c) {
            e.state = run_state::cancelled;
            e.error = c.what();
        }
        return e;
    }

    // Counts and logs one outcome: shadow.<outcome>, on the candidate backend.
    void count(const erased_workflow& wf, weft::backend& candidate, std::string_view outcome, std::string_view why,
               std::string_view shadow_id, std::string_view primary_id = {}) {
        {
            std::lock_guard l(counts_m_);
            router::shadow_counts& c = counts_[std::string(wf.graph.name)];
            if (outcome == "matched") ++c.matched;
            else if (outcome == "mismatched") ++c.mismatched;
            else if (outcome == "failed") ++c.errors;
            else if (outcome == "dropped") ++c.dropped;
            else if (outcome == "skipped") ++c.skipped;
        }
        const std::string event = "shadow." + std::string(outcome);
        const std::string message = primary_id.empty() ? std::string(why)
                                                       : "primary " + std::string(primary_id) + (why.empty() ? "" : ": ") + std::string(why);
        const auto level = outcome == "matched" ? telemetry::severity::debug
                           : outcome == "skipped" ? telemetry::severity::info
                                                  : telemetry::severity::warning;
        telemetry::emit({.level = level, .event = event, .backend = candidate.name(), .workflow = wf.graph.name,
                         .run_id = shadow_id, .message = message});
    }

    mutable std::mutex m_;
    std::condition_variable cv_, idle_;
    std::deque<job> queue_;
    mutable std::mutex counts_m_;
    std::map<std::string, router::shadow_counts, std::less<>> counts_;
    unsigned capacity_;
    std::chrono::seconds timeout_;
    unsigned active_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace weft::router_detail

namespace weft::router_detail {

namespace {

const kit::settings_table<router::options>& table() {
    using o = router::options;
    static const kit::settings_table<o> t{
        "router",
        {
            {"backends", &o::backends,
             "the backends runs may go to, comma-separated, in migration order (keys only ever move right); each is "
             "configured by its own section"},
            {"flags", &o::flags, "the flag file, in flagd's format (docs/flags.md); empty: every run goes to the first backend"},
            {"flag_prefix", &o::flag_prefix, "flags are <prefix>route.<workflow> and <prefix>shadow.<workflow>"},
            {"flags_poll_ms", &o::flags_poll, "how often the flag file is checked for a change"},
            {"fallback", &o::fallback,
             "when submitting a run fails, submit it to the next routed backend instead (never once it started)"},
            {"shadow_threads", &o::shadow_threads, "shadow runs compared at once", 256},
            {"shadow_queue", &o::shadow_queue, "shadow runs waiting to be compared; more are dropped and counted", 1000000},
            {"shadow_timeout_s", &o::shadow_timeout, "a shadow comparison gives up (counted as failed) after this long"},
            {"workers", &o::workers, "the backends the router's worker serves, comma-separated; empty: all that have workers"},
        }};
    return t;
}

// The flag's value as the name of a routed backend, or why it is not one.
std::string backend_of(const flags::evaluation& e, const std::vector<std::string>& names, std::string& why) {
    if (!e.value.is_string()) {
        why = "the value of variant '" + e.variant + "' is not a string naming a backend";
        return {};
    }
    std::string v(e.value.get_string());
    if (std::find(names.begin(), names.end(), v) == names.end()) {
        why = "variant '" + e.variant + "' names '" + v + "', which is not one of router.backends (" + joined(names) + ")";
        return {};
    }
    return v;
}

std::size_t index_of(const std::vector<std::string>& names, std::string_view n) {
    return std::size_t(std::find(names.begin(), names.end(), n) - names.begin());
}

constexpr int guard_samples = 4096;

// What a flag file must satisfy before the router uses it: route flags name routed backends, shadow
// flags name routed backends or none, and (against the rules in force) no key moves back to a
// backend earlier in router.backends unless the flag's metadata says allowRollback.
std::string check_flags(const flags::flag_set* old, const flags::flag_set& next, const std::string& prefix,
                        const std::vector<std::string>& names) {
    const std::string route = prefix + "route.", shadow = prefix + "shadow.";
    for (const std::string& key : next.keys()) {
        const bool is_route = key.starts_with(route), is_shadow = key.starts_with(shadow);
        if (!is_route && !is_shadow) continue;
        for (int i = 0; i < guard_samples; ++i) {
            flags::context ctx{"weft-guard-" + std::to_string(i), {{"workflow", key.substr((is_route ? route : shadow).size())}}};
            const flags::evaluation e = next.evaluate(key, ctx);
            if (!e.error_code.empty() && e.reason == "DISABLED") break;
            if (!e.error_code.empty())
                return "flag '" + key + "': " + e.error_code + ": " + e.error_message;
            if (is_shadow && (e.value.is_null() || (e.value.is_string() && e.value.get_string().empty()))) continue;
            std::string why;
            const std::string to = backend_of(e, names, why);
            if (to.empty()) return "flag '" + key + "': " + why;
            if (!is_route || !old) continue;
            const flags::evaluation before = old->evaluate(key, ctx);
            std::string ignored;
            const std::string from = before.error_code.empty() ? backend_of(before, names, ignored) : std::string();
            if (from.empty() || index_of(names, to) >= index_of(names, from)) continue;
            const json::object* meta = next.metadata(key);
            const json::value* allow = meta ? meta->if_contains("allowRollback") : nullptr;
            if (allow && allow->is_bool() && allow->get_bool()) continue;
            int moved = 0;
            for (int k = i; k < guard_samples; ++k) {
                flags::context c2{"weft-guard-" + std::to_string(k), ctx.attributes};
                std::string w;
                const std::string t2 = backend_of(next.evaluate(key, c2), names, w);
                const std::string f2 = backend_of(old->evaluate(key, c2), names, w);
                if (!t2.empty() && !f2.empty() && index_of(names, t2) < index_of(names, f2)) ++moved;
            }
            return "flag '" + key + "': " + std::to_string(moved) + " of " + std::to_string(guard_samples - i) +
                   " sampled keys would move back from " + from + " to " + to + " (router.backends: " + joined(names) +
                   "; keys only move forward). To roll back on purpose, add \"allowRollback\": true to the flag's metadata";
        }
    }
    return {};
}

}  // namespace

router::options options_from(const config& c) {
    router::options o = table().read(c);
    o.parent = c;
    return o;
}
std::vector<setting_doc> settings() { return table().docs(); }

backend_impl::backend_impl(router::options opts) : opts_(std::move(opts)) {
    names_ = checked_names(opts_, opts_.backends, "backends");
    auto& reg = backend_registry::instance();
    for (auto& n : names_) backends_.push_back(reg.make(routed_config(opts_.parent, n)));
    if (!opts_.flags.empty()) {
        const std::string prefix = opts_.flag_prefix;
        const std::vector<std::string> names = names_;
        flags_ = std::make_unique<flags::flag_file>(
            opts_.flags, flags::flag_file::options{
                             .poll = opts_.flags_poll,
                             .validate = [prefix, names](const flags::flag_set& old, const flags::flag_set& next) {
                                 return check_flags(&old, next, prefix, names);
                             }});
        if (std::string why = check_flags(nullptr, *flags_->current(), prefix, names); !why.empty())
            throw config_error("weft: router.flags = " + opts_.flags + ": " + why);
    }
    shadows_ = std::make_unique<shadow_pool>(opts_.shadow_threads, opts_.shadow_queue, opts_.shadow_timeout);
}

backend_impl::~backend_impl() = default;

weft::backend& backend_impl::routed(std::string_view name) {
    const std::size_t i = index_of(names_, name);
    if (i == names_.size())
        throw config_error("weft: the router routes to " + joined(names_) + ", not to '" + std::string(name) + "'");
    return *backends_[i];
}

std::string backend_impl::flags_error() const {
    if (!flags_) return {};
    (void)flags_->current();  // the file is read lazily: look at its latest version first
    return flags_->last_error();
}

router::decision backend_impl::decide(std::string_view workflow, std::string_view key,
                                      const std::vector<std::pair<std::string, std::string>>& attributes) {
    router::decision d;
    d.flag = opts_.flag_prefix + "route." + std::string(workflow);
    if (!flags_) {
        d.backend = names_.front();
        d.why = "no flag file (router.flags): the first of router.backends";
        return d;
    }
    const std::shared_ptr<const flags::flag_set> set = flags_->current();
    flags::context ctx{std::string(key), {}};
    ctx.attributes["workflow"] = workflow;
    for (auto& [k, v] : attributes) ctx.attributes[k] = v;

    const flags::evaluation e = set->evaluate(d.flag, ctx);
    if (e.error_code == "FLAG_NOT_FOUND") {
        d.backend = names_.front();
        d.why = "no flag '" + d.flag + "' in " + opts_.flags + ": the first of router.backends";
    } else if (!e.error_code.empty() && e.reason != "DISABLED") {
        d.backend = names_.front();
        d.why = "flag '" + d.flag + "' could not be evaluated (" + e.error_code + ": " + e.error_message +
                "): the first of router.backends";
    } else if (e.reason == "DISABLED") {
        d.backend = names_.front();
        d.why = "flag '" + d.flag + "' is disabled: the first of router.backends";
    } else {
        std::string why;
        d.backend = backend_of(e, names_, why);
        d.variant = e.variant;
        if (d.backend.empty()) {
            d.backend = names_.front();
            d.why = "flag '" + d.flag + "': " + why + ": the first of router.backends";
        } else {
            d.why = "flag '" + d.flag + "' " + e.reason + ": " + (e.why.empty() ? "variant " + e.variant : e.why);
        }
    }

    const std::string shadow_flag = opts_.flag_prefix + "shadow." + std::string(workflow);
    const flags::evaluation s = set->evaluate(shadow_flag, ctx);
    if (s.error_code.empty() && s.reason != "DISABLED" && s.value.is_string() && !s.value.get_string().empty()) {
        std::string why;
        d.shadow = backend_of(s, names_, why);
        if (d.shadow == d.backend) {
            d.shadow.clear();
            d.shadow_why = "flag '" + shadow_flag + "' names the primary backend itself: no shadow";
        } else {
            d.shadow_why = d.shadow.empty() ? "flag '" + shadow_flag + "': " + why
                                            : "flag '" + shadow_flag + "' " + s.reason + ": " + (s.why.empty() ? s.variant : s.why);
        }
    } else {
        d.shadow_why = s.error_code == "FLAG_NOT_FOUND" ? "no flag '" + shadow_flag + "': no shadow" : "no shadow (flag '" + shadow_flag + "': " + (s.error_code.empty() ? s.reason : s.error_code) + ")";
    }
    return d;
}

std::shared_ptr<run_control> backend_impl::start(const erased_workflow& wf, const void* input, run_options opts) {
    check_metadata(opts.metadata);  // a misuse, refused before any backend is tried (not a fallback)
    if (opts.key.empty()) opts.key = random_key();  // unkeyed: each run is bucketed on its own
    const router::decision d = decide(wf.graph.name, opts.key, opts.attributes);
    std::size_t i = index_of(names_, d.backend);
    std::shared_ptr<run_control> run;
    std::string failures;
    for (std::size_t tried = 0; tried < names_.size(); ++tried, i = (i + 1) % names_.size()) {
        try {
            run = backends_[i]->start(wf, input, opts);  // a copy: a fallback needs on_step too
        } catch (const config_error&) {
            throw;  // a misuse (a workflow this backend cannot run) is not an outage
        } catch (const std::exception& e) {
            if (!opts_.fallback) throw;
            failures += (failures.empty() ? "" : "; ") + names_[i] + ": " + e.what();
            telemetry::emit({.level = telemetry::severity::warning, .event = "route.failed", .backend = names_[i],
                             .workflow = wf.graph.name, .error = e.what(),
                             .message = "submission failed; trying the next routed backend (router.fallback)"});
            continue;
        }
        telemetry::emit({.level = telemetry::severity::debug, .event = tried == 0 ? "route.chosen" : "route.fallback",
                         .backend = names_[i], .workflow = wf.graph.name, .run_id = run->id(),
                         .message = tried == 0 ? d.why : "after " + failures});
        break;
    }
    if (!run)
        throw std::runtime_error("weft: router: no routed backend accepted the run of '" + std::string(wf.graph.name) +
                                 "': " + failures);

    if (!d.shadow.empty()) {
        weft::backend& candidate = routed(d.shadow);
        if (std::string_view step = side_effect_step(wf); !step.empty()) {
            shadows_->skipped(wf, candidate, "step '" + std::string(step) + "' has side effects (step_policy::side_effects): a shadow would repeat them");
        } else if (!wf.codec || !wf.codec->copy_input) {
            shadows_->skipped(wf, candidate, "the client passed no codec for the input");
        } else {
            std::vector<std::string> ignore;
            const std::string shadow_flag = opts_.flag_prefix + "shadow." + std::string(wf.graph.name);
            if (auto set = flags_->current(); const json::object* meta = set->metadata(shadow_flag))
                if (auto* v = meta->if_contains("compareIgnore"); v && v->is_string())
                    ignore = ignore_list(v->get_string(), shadow_flag);
            shadows_->push({&wf, wf.codec->copy_input(input), backends_[i].get(), &candidate, run, std::move(ignore),
                            opts.metadata});
        }
    }
    return run;
}

std::shared_ptr<run_control> backend_impl::attach(const erased_workflow& wf, std::string_view id) {
    if (auto r = run_id::parse(id); r && index_of(names_, r->backend) < names_.size()) return routed(r->backend).attach(wf, id);
    std::string looked;
    for (std::size_t i = 0; i < backends_.size(); ++i) {
        try {
            return backends_[i]->attach(wf, id);
        } catch (const run_not_found& e) {
            looked += (looked.empty() ? "" : "; ") + std::string(e.what());
        }
    }
    throw run_not_found(router::name, wf.graph.name, id, "no routed backend has it (" + looked + ")");
}

run_description backend_impl::describe(std::string_view id) {
    if (auto r = run_id::parse(id); r && index_of(names_, r->backend) < names_.size()) return routed(r->backend).describe(id);
    std::string looked;
    for (auto& b : backends_) {
        try {
            return b->describe(id);
        } catch (const run_not_found& e) {
            looked += (looked.empty() ? "" : "; ") + std::string(e.what());
        }
    }
    throw run_not_found(router::name, "", id, "no routed backend has it (" + looked + ")");
}

std::vector<run_summary> backend_impl::list(std::string_view workflow, std::size_t limit) {
    std::vector<run_summary> all;
    std::string refused;
    std::size_t listed = 0;
    for (auto& b : backends_) {
        try {
            auto runs = b->list(workflow, limit);
            all.insert(all.end(), std::make_move_iterator(runs.begin()), std::make_move_iterator(runs.end()));
            ++listed;
        } catch (const config_error& e) {
            refused += (refused.empty() ? "" : "; ") + std::string(e.what());
        }
    }
    if (listed == 0) throw config_error("weft: router: no routed backend lists runs: " + refused);
    std::stable_sort(all.begin(), all.end(), [](const run_summary& a, const run_summary& b) {
        return a.created.value_or(std::chrono::system_clock::time_point{}) > b.created.value_or(std::chrono::system_clock::time_point{});
    });
    if (all.size() > limit) all.resize(limit);
    return all;
}

std::string backend_impl::register_workflow(const erased_workflow& wf, bool dry_run) {
    std::string out;
    for (auto& b : backends_) out += (out.empty() ? "" : "\n") + b->register_workflow(wf, dry_run);
    return out;
}

std::vector<weft::backend*> backend_impl::routed_backends() {
    std::vector<weft::backend*> out;
    for (auto& b : backends_) out.push_back(b.get());
    return out;
}

std::vector<health_check> backend_impl::doctor() {
    std::vector<health_check> out;
    if (flags_) {
        const auto set = flags_->current();
        const std::string err = flags_->last_error();
        out.push_back({"router.flags", err.empty(),
                       err.empty() ? std::to_string(set->keys().size()) + " flags from " + opts_.flags : err,
                       err.empty() ? "" : "fix the file: until then the router keeps its last good version"});
    } else {
        out.push_back({"router.flags", true, "no flag file: every run goes to " + names_.front(), {}});
    }
    for (auto& b : backends_) {
        auto checks = b->doctor();
        out.insert(out.end(), std::make_move_iterator(checks.begin()), std::make_move_iterator(checks.end()));
    }
    return out;
}

router::shadow_counts backend_impl::shadows(std::string_view workflow) const { return shadows_->counts(workflow); }
void backend_impl::drain_shadows() { shadows_->drain(); }

// ---- the worker ----------------------------------------------------------------------------------

namespace {

class routed_workers final : public worker_control {
public:
    explicit routed_workers(std::vector<std::unique_ptr<worker_control>> w) : workers_(std::move(w)) {}
    void serve(const graph_view& wf, std::span<const erased_step> steps) override {
        for (auto& w : workers_) w->serve(wf, steps);
    }
    void start() override {
        for (auto& w : workers_) w->start();
    }
    // Every backend drains at once, so the drain deadline is one backend's, not their sum.
    void stop() override {
        std::vector<std::thread> stops;
        for (auto& w : workers_) stops.emplace_back([&w] { w->stop(); });
        for (auto& t : stops) t.join();
    }

private:
    std::vector<std::unique_ptr<worker_control>> workers_;
};

}  // namespace

std::unique_ptr<worker_control> make_worker(const config& c, const worker_settings& s) {
    const router::options o = options_from(c);
    const std::vector<std::string> routed = checked_names(o, o.backends, "backends");
    std::vector<std::string> names = o.workers.empty() ? routed : checked_names(o, o.workers, "workers");
    auto& reg = backend_registry::instance();
    std::vector<std::unique_ptr<worker_control>> workers;
    for (auto& n : names) {
        if (!o.workers.empty() && index_of(routed, n) == routed.size())
            throw config_error("weft: router.workers names '" + n + "', which is not one of router.backends (" + joined(routed) + ")");
        const auto* e = reg.find(n);
        if (!e->make_worker) {
            if (!o.workers.empty())
                throw config_error("weft: router.workers names '" + n + "', which has no workers (it runs steps where runs start)");
            continue;  // an in-process engine: its steps run in the client
        }
        workers.push_back(reg.make_worker(routed_config(c, n), s));
    }
    if (workers.empty())
        throw config_error("weft: router: none of router.backends (" + joined(routed) + ") has workers");
    return std::make_unique<routed_workers>(std::move(workers));
}

}  // namespace weft::router_detail
