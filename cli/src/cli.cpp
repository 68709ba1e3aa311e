#include <weft/cli.hpp>
#include <weft/cli/traces.hpp>

#include <weft/config.hpp>
#include <weft/run_description.hpp>
#include <weft/telemetry.hpp>

#include <weft/cli/serve.hpp>

#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace weft::cli {

namespace {

// docs/cli.md lists these; scripts rely on them.
enum exit_code : int {
    success = 0,
    run_failed = 1,        // the run ended failed
    usage = 2,             // bad flags, configuration or input
    not_found = 3,         // no run with that id, no such workflow
    unreachable = 4,       // the backend could not be reached or refused the call
    run_cancelled_code = 5,
    drain_timeout = 6,     // worker: steps still running when the drain deadline passed
    still_running = 7,     // result without --wait: the run has not ended
};

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct globals {
    std::string backend, config_file, log_format = "auto", log_level, output = "text", otlp_endpoint;
};

// Spans go to the collector while a command runs; what is queued is sent before main returns.
struct traces_exported {
    bool on;
    explicit traces_exported(const globals& g) : on(export_traces(g.otlp_endpoint)) {}
    ~traces_exported() {
        if (on) stop_traces();
    }
};

config load_config(const globals& g) {
    config c = g.config_file.empty() ? config::from_env() : [&] {
        ::setenv("WEFT_CONFIG", g.config_file.c_str(), 1);  // the file, with WEFT_* variables over it
        return config::from_env();
    }();
    if (!g.backend.empty()) c.set("backend", g.backend, "--backend");
    return c;
}

void configure_logs(const globals& g, telemetry::severity fallback) {
    telemetry::options o = telemetry::options_from_env({.min_level = fallback});
    if (g.log_format != "auto" || !std::getenv("WEFT_LOG_FORMAT")) o.format = telemetry::format_from(g.log_format, "--log-format");
    if (!g.log_level.empty()) o.min_level = telemetry::level_from(g.log_level, "--log-level");
    telemetry::configure(o);
}

std::string names_of(std::span<const workflow_entry> wfs) {
    std::string out;
    for (auto& e : wfs) out += (out.empty() ? "" : ", ") + std::string(e.wf->graph.name);
    return out;
}

const workflow_entry& find_workflow(std::span<const workflow_entry> wfs, std::string_view name) {
    for (auto& e : wfs)
        if (e.wf->graph.name == name) return e;
    throw usage_error("weft: this program declares no workflow '" + std::string(name) + "'; it declares: " + names_of(wfs));
}

std::string dump(const json::value& v) { return boost::json::serialize(v); }

// name=value options: --attr (run_options::attributes) and --meta (run_options::metadata).
std::vector<std::pair<std::string, std::string>> pairs_of(const std::vector<std::string>& values, std::string_view flag,
                                                          std::string_view example) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const std::string& a : values) {
        const auto eq = a.find('=');
        if (eq == std::string::npos || eq == 0)
            throw usage_error("weft: " + std::string(flag) + " '" + a + "': expected name=value, e.g. " + std::string(flag) +
                              " " + std::string(example));
        out.emplace_back(a.substr(0, eq), a.substr(eq + 1));
    }
    return out;
}
std::vector<std::pair<std::string, std::string>> attributes_of(const std::vector<std::string>& attrs) {
    return pairs_of(attrs, "--attr", "region=eu");
}
run_metadata metadata_of(const std::vector<std::string>& meta) {
    run_metadata out;
    for (auto& [k, v] : pairs_of(meta, "--meta", "tenant=acme")) out.insert_or_assign(std::move(k), std::move(v));
    try {
        check_metadata(out);
    } catch (const std::invalid_argument& e) {
        throw usage_error(e.what());
    }
    return out;
}

json::value read_input(const std::string& text) {
    std::string body = text;
    if (!text.empty() && text[0] == '@') {
        std::ifstream in(text.substr(1), std::ios::binary);
        if (!in) throw usage_error("weft: cannot read the input file '" + text.substr(1) + "' (from --input @file)");
        std::ostringstream s;
        s << in.rdbuf();
        body = s.str();
    }
    try {
        return json::parse(body);
    } catch (const std::exception& e) {
        throw usage_error(std::string("weft: --input is not JSON: ") + e.what());
    }
}

json::value steps_json(const std::vector<step_status>& steps) {
    json::array a;
    for (auto& s : steps) {
        json::object o{{"name", s.name}, {"state", std::string(to_string(s.state))}, {"attempts", s.attempts}};
        if (!s.error.empty()) o["error"] = s.error;
        a.push_back(std::move(o));
    }
    return a;
}

std::string pad(std::string s, std::size_t n) {
    if (s.size() < n) s.append(n - s.size(), ' ');
    return s;
}

std::string timestamp(const std::optional<std::chrono::system_clock::time_point>& t) {
    if (!t) return {};
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms % 1000));
    return buf;
}

json::value time_json(const std::optional<std::chrono::system_clock::time_point>& t) {
    return t ? json::value(boost::json::string(timestamp(t))) : json::value(nullptr);
}

json::value description_json(const run_description& d) {
    json::array steps;
    for (auto& s : d.steps) {
        json::object o{{"name", s.name}, {"state", std::string(to_string(s.state))}, {"attempts", s.attempts}};
        if (!s.error.empty()) o["error"] = s.error;
        if (s.started) o["started"] = time_json(s.started);
        if (s.finished) o["finished"] = time_json(s.finished);
        steps.push_back(std::move(o));
    }
    json::object o{{"id", d.id}, {"backend", d.backend}, {"workflow", d.workflow}, {"state", std::string(to_string(d.state))},
                   {"created", time_json(d.created)}, {"started", time_json(d.started)}, {"finished", time_json(d.finished)},
                   {"steps", steps}, {"output", d.output}};
    if (!d.failed_step.empty()) o["failed_step"] = d.failed_step;
    if (!d.error.empty()) o["error"] = d.error;
    return o;
}

void print_steps(const std::vector<step_status>& steps) {
    std::size_t w = 4;
    for (auto& s : steps) w = std::max(w, s.name.size());
    for (auto& s : steps) {
        std::printf("  %s  %-9s  %d attempt%s%s%s\n", pad(s.name, w).c_str(), std::string(to_string(s.state)).c_str(),
                    s.attempts, s.attempts == 1 ? "" : "s", s.error.empty() ? "" : "  ", s.error.c_str());
    }
}

// Live progress of one run: a table redrawn in place on a terminal, one line per change elsewhere.
class progress {
public:
    progress(const graph_view& g, bool live) : g_(g), live_(live), rows_(g.size()) {
        for (std::size_t i = 0; i < g.size(); ++i) rows_[i].name = std::string(g.names[i]);
        for (auto& r : rows_) width_ = std::max(width_, r.name.size());
        if (live_) draw(false);
    }

    void on_step(const step_event& e) {
        std::lock_guard l(m_);
        const std::size_t i = g_.index_of(e.step);
        if (i == graph_view::npos) return;
        show(i, e);
    }

    // The run has ended: the states the backend reports now, for steps whose last change the
    // watcher had not delivered yet (a server backend's watcher polls).
    void settle(const std::vector<step_status>& steps, double at) {
        std::lock_guard l(m_);
        for (auto& s : steps) {
            const std::size_t i = g_.index_of(s.name);
            if (i == graph_view::npos || (rows_[i].state == s.state && rows_[i].attempt == s.attempts)) continue;
            show(i, step_event{g_.name, g_.names[i], s.state, s.attempts, s.error,
                               std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(at))});
        }
    }

private:
    void show(std::size_t i, const step_event& e) {
        rows_[i].state = e.state;
        rows_[i].attempt = e.attempt;
        rows_[i].error = std::string(e.error);
        rows_[i].at = std::chrono::duration<double>(e.elapsed).count();
        if (live_) {
            draw(true);
        } else {
            std::fprintf(stderr, "%7.3fs %s %s (attempt %d)%s%s\n", rows_[i].at, rows_[i].name.c_str(),
                         std::string(to_string(e.state)).c_str(), e.attempt, e.error.empty() ? "" : ": ",
                         rows_[i].error.c_str());
            std::fflush(stderr);
        }
    }

    struct row {
        std::string name;
        step_state state = step_state::pending;
        int attempt = 0;
        std::string error;
        double at = 0;
    };
    static const char* mark(step_state s) {
        switch (s) {
        case step_state::pending: return "\x1b[2m·\x1b[0m";
        case step_state::running: return "\x1b[36m▸\x1b[0m";
        case step_state::retrying: return "\x1b[33m↻\x1b[0m";
        case step_state::succeeded: return "\x1b[32m✓\x1b[0m";
        case step_state::failed: return "\x1b[31m✗\x1b[0m";
        case step_state::cancelled: return "\x1b[33m⊘\x1b[0m";
        case step_state::skipped: return "\x1b[2m–\x1b[0m";
        }
        return "?";
    }
    void draw(bool again) {
        std::string out;
        if (again) out += "\x1b[" + std::to_string(rows_.size()) + "A";
        for (auto& r : rows_) {
            char buf[64];
            std::snprintf(buf, sizeof buf, " %-9s", std::string(to_string(r.state)).c_str());
            out += "\x1b[2K ";
            out += mark(r.state);
            out += " " + pad(r.name, width_) + buf;
            if (r.attempt > 1) out += " attempt " + std::to_string(r.attempt);
            if (!r.error.empty()) out += "  " + r.error.substr(0, 60);
            out += "\n";
        }
        std::fputs(out.c_str(), stderr);
        std::fflush(stderr);
    }

    const graph_view& g_;
    bool live_;
    std::vector<row> rows_;
    std::size_t width_ = 4;
    std::mutex m_;
};

// Prints how the run ended (its output on stdout) and returns the exit code.
int finish(const workflow_entry& e, run_control& run, const globals& g, progress* shown = nullptr,
           std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now()) {
    run.wait();
    if (shown) shown->settle(run.steps(), std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count());
    const run_state st = run.state();
    json::object o{{"id", run.id()}, {"workflow", std::string(e.wf->graph.name)}, {"state", std::string(to_string(st))}};
    int code = success;
    std::string error;
    try {
        o["output"] = e.output(run);
    } catch (const std::exception& ex) {
        error = ex.what();
        o["error"] = error;
        code = st == run_state::cancelled ? run_cancelled_code : run_failed;
    }
    if (g.output == "json") {
        o["steps"] = steps_json(run.steps());
        std::printf("%s\n", dump(o).c_str());
    } else if (code == success) {
        std::printf("%s\n", dump(o["output"]).c_str());
    } else {
        std::fprintf(stderr, "%s\n", error.c_str());
    }
    return code;
}

// A run of one of `wfs` by id: the one the id names, trying each workflow in turn (a backend
// refuses an id of another workflow with config_error, an unknown one with run_not_found).
std::pair<const workflow_entry*, std::shared_ptr<run_control>> find_run(backend& b, std::span<const workflow_entry> wfs,
                                                                         const std::string& id, const std::string& workflow) {
    if (!workflow.empty()) {
        const workflow_entry& e = find_workflow(wfs, workflow);
        return {&e, b.attach(*e.wf, id)};
    }
    if (auto parts = run_id::parse(id))  // a weft id names its workflow
        for (auto& e : wfs)
            if (e.wf->graph.name == parts->workflow) return {&e, b.attach(*e.wf, id)};
    std::string why;
    for (auto& e : wfs) {
        try {
            return {&e, b.attach(*e.wf, id)};
        } catch (const run_not_found& ex) {
            why = ex.what();
        } catch (const config_error&) {
            // a run of another workflow: try the next
        }
    }
    throw run_not_found(b.name(), names_of(wfs), id, why.empty() ? "it is a run of none of this program's workflows" : "");
}

std::string dot(const graph_view& g) {
    std::string out = "digraph \"" + std::string(g.name) + "\" {\n  rankdir=LR;\n";
    for (std::size_t i = 0; i < g.size(); ++i) out += "  \"" + std::string(g.names[i]) + "\";\n";
    for (std::size_t i = 0; i < g.size(); ++i)
        for (std::size_t c : g.children(i)) out += "  \"" + std::string(g.names[i]) + "\" -> \"" + std::string(g.names[c]) + "\";\n";
    return out + "}\n";
}

std::string mermaid(const graph_view& g) {
    std::string out = "flowchart LR\n";
    for (std::size_t i = 0; i < g.size(); ++i) out += "  n" + std::to_string(i) + "[\"" + std::string(g.names[i]) + "\"]\n";
    for (std::size_t i = 0; i < g.size(); ++i)
        for (std::size_t c : g.children(i)) out += "  n" + std::to_string(i) + " --> n" + std::to_string(c) + "\n";
    return out;
}

json::value graph_json(const workflow_entry& e) {
    const graph_view& g = e.wf->graph;
    json::value schema = e.schema();
    json::array steps;
    for (std::size_t i = 0; i < g.size(); ++i) {
        json::array parents, children;
        for (std::size_t p : g.parents(i)) parents.push_back(boost::json::string(g.names[p]));
        for (std::size_t c : g.children(i)) children.push_back(boost::json::string(g.names[c]));
        const step_policy& p = g.policies[i];
        json::object policy{{"max_attempts", p.retry.max_attempts},
                            {"initial_ms", p.retry.initial.count()},
                            {"multiplier", p.retry.multiplier},
                            {"maximum_ms", p.retry.maximum.count()},
                            {"timeout_ms", p.timeout.count()},
                            {"queue", boost::json::string(p.queue)},
                            {"priority", p.priority}};
        json::object s{{"name", boost::json::string(g.names[i])}, {"parents", parents}, {"children", children}, {"policy", policy}};
        if (auto* st = schema.as_object().at("steps").as_object().if_contains(g.names[i])) s["schema"] = *st;
        steps.push_back(std::move(s));
    }
    return json::object{{"name", boost::json::string(g.name)},
                        {"steps", steps},
                        {"input", schema.as_object().at("input")},
                        {"output", schema.as_object().at("output")}};
}

sigset_t termination_signals() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    return s;
}

int worker_command(std::span<const workflow_entry> wfs, const globals& g, const worker_settings& ws,
                   const std::vector<std::string>& only, const std::string& metrics_address, double drain_seconds) {
    // Blocked before any thread starts, so that every thread inherits the mask and the signal waits here.
    const sigset_t signals = termination_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const config c = load_config(g);
    std::unique_ptr<metrics_server> server;
    if (!metrics_address.empty()) server = std::make_unique<metrics_server>(metrics_address);
    auto w = backend_registry::instance().make_worker(c, ws);
    std::size_t served = 0;
    for (auto& e : wfs) {
        if (!only.empty() && std::find(only.begin(), only.end(), e.wf->graph.name) == only.end()) continue;
        w->serve(e.wf->graph, e.steps);
        ++served;
    }
    if (served == 0) throw usage_error("weft: --workflow names none of this program's workflows (" + names_of(wfs) + ")");
    w->start();
    telemetry::set_health("worker", true);
    const std::string backend_name = c.backend();
    telemetry::emit({.level = telemetry::severity::info, .event = "worker.started", .backend = backend_name,
                     .message = "serving " + std::to_string(served) + " workflow(s)" +
                                (server ? ", metrics on http://" + server->address() + "/metrics" : std::string())});
    int sig = 0;
    sigwait(&signals, &sig);
    telemetry::set_health("worker", false, "draining");
    telemetry::emit({.level = telemetry::severity::info, .event = "worker.draining", .backend = backend_name,
                     .message = std::string(sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": no more fetching; steps in hand get " +
                                std::to_string(drain_seconds) + " s to finish"});
    auto stopped = std::async(std::launch::async, [&] { w->stop(); });
    if (stopped.wait_for(std::chrono::duration<double>(drain_seconds)) != std::future_status::ready) {
        telemetry::emit({.level = telemetry::severity::error, .event = "worker.drain_timeout", .backend = backend_name,
                         .message = "steps still running after the drain deadline; exiting without them (the server "
                                    "gives them to another worker)"});
        std::fflush(nullptr);
        std::_Exit(drain_timeout);
    }
    telemetry::emit({.level = telemetry::severity::info, .event = "worker.stopped", .backend = backend_name});
    return success;
}

}  // namespace

int main(int argc, char** argv, std::span<const workflow_entry> wfs) {
    CLI::App app{"weft: workflows declared in C++, run on the backend the configuration picks"};
    app.require_subcommand(1);
    app.fallthrough();
    globals g;
    app.add_option("--backend", g.backend, "backend to use (over WEFT_BACKEND and the config file)");
    app.add_option("--config", g.config_file, "config file (as WEFT_CONFIG)");
    app.add_option("--log-format", g.log_format, "json, text, or auto (text on a terminal)")->check(CLI::IsMember({"json", "text", "auto"}));
    app.add_option("--log-level", g.log_level, "debug, info, warning, error or off");
    app.add_option("--output", g.output, "text or json (for scripts)")->check(CLI::IsMember({"text", "json"}));
    app.add_option("--otlp-endpoint", g.otlp_endpoint,
                   "send traces to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (as OTEL_EXPORTER_OTLP_ENDPOINT)");

    worker_settings ws;
    std::vector<std::string> only;
    std::string metrics_address;
    double drain_seconds = 30;
    auto* worker = app.add_subcommand("worker", "serve this program's steps until SIGTERM");
    worker->add_option("--queues", ws.queues, "queues to consume (comma separated)")->delimiter(',');
    worker->add_option("--concurrency", ws.concurrency, "steps run at once");
    worker->add_option("-n,--hostname", ws.name, "the worker's name on its server (Celery: %h, %n, %d expand)");
    worker->add_flag("-E,--task-events", ws.task_events, "send task events for monitors (Celery's -E)");
    worker->add_option("--workflow", only, "serve only these workflows")->delimiter(',');
    worker->add_option("--metrics-address", metrics_address, "host:port for /metrics and /healthz");
    worker->add_option("--drain-timeout", drain_seconds, "seconds running steps get to finish after SIGTERM");

    std::string workflow, input, id;
    bool no_wait = false, wait = false;
    auto* run = app.add_subcommand("run", "start a run and follow it");
    run->add_option("workflow", workflow, "the workflow's name")->required();
    run->add_option("--input", input, "the run's input as JSON, or @file");
    run->add_flag("--no-wait", no_wait, "print the run's id and return");
    std::string route_key;
    std::vector<std::string> route_attrs;
    run->add_option("--key", route_key, "what the run is about (tenant, document id): a router keeps one key on one backend");
    run->add_option("--attr", route_attrs, "a fact routing rules may test, name=value (repeatable)");
    std::vector<std::string> run_meta;
    run->add_option("--meta", run_meta, "run metadata every step reads (this_step::metadata), name=value (repeatable)");

    // A router's decisions and counts (docs/migration.md).
    auto* flags_cmd = app.add_subcommand("flags", "a router's flags");
    auto* flags_eval = flags_cmd->add_subcommand("eval", "where a run of the workflow with this key goes now, and why");
    flags_eval->add_option("workflow", workflow, "the workflow's name")->required();
    flags_eval->add_option("--key", route_key, "the run's key (tenant, document id)");
    flags_eval->add_option("--attr", route_attrs, "a fact routing rules may test, name=value (repeatable)");
    flags_cmd->require_subcommand(1);
    std::size_t status_limit = 200;
    auto* migration = app.add_subcommand("migration", "a router's migration");
    auto* migration_status = migration->add_subcommand("status", "per routed backend: runs in flight and done, among the recent ones");
    migration_status->add_option("--workflow", workflow, "only this workflow");
    migration_status->add_option("--limit", status_limit, "recent runs read per workflow and backend (200)");
    migration->require_subcommand(1);

    auto by_id = [&](const char* name, const char* help) {
        auto* c = app.add_subcommand(name, help);
        c->add_option("id", id, "the run's id")->required();
        c->add_option("--workflow", workflow, "the run's workflow (default: found from the id)");
        return c;
    };
    auto* status = by_id("status", "the state of a run");
    auto* steps = by_id("steps", "the state of each step of a run");
    auto* result = by_id("result", "the output of a run");
    result->add_flag("--wait", wait, "wait for the run to end");
    auto* cancel = by_id("cancel", "cancel a run");
    std::size_t limit = 20;
    auto* list = app.add_subcommand("list", "the recent runs of this program's workflows, newest first");
    list->add_option("--workflow", workflow, "only this workflow's runs");
    list->add_option("--limit", limit, "at most this many runs per workflow (20)");

    std::string format = "text";
    auto* describe = app.add_subcommand("describe", "a workflow's graph, steps and payload schemas");
    describe->add_option("workflow", workflow, "the workflow's name")->required();
    describe->add_option("--format", format, "text, dot, mermaid or json")->check(CLI::IsMember({"text", "dot", "mermaid", "json"}));

    auto* doctor = app.add_subcommand("doctor", "check the configured backend: settings, connection, access");
    bool dry_run = false;
    auto* reg = app.add_subcommand("register", "register this program's workflows where the backend needs it (Hatchet)");
    reg->add_option("--workflow", workflow, "only this workflow");
    reg->add_flag("--dry-run", dry_run, "print what would be registered, on every backend this program links");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? success : usage;
    }

    try {
        const bool is_worker = app.got_subcommand(worker);
        configure_logs(g, is_worker ? telemetry::severity::info : telemetry::severity::warning);
        const traces_exported traces(g);
        if (is_worker) return worker_command(wfs, g, ws, only, metrics_address, drain_seconds);

        if (app.got_subcommand(describe)) {
            const workflow_entry& e = find_workflow(wfs, workflow);
            if (format == "dot") std::fputs(dot(e.wf->graph).c_str(), stdout);
            else if (format == "mermaid") std::fputs(mermaid(e.wf->graph).c_str(), stdout);
            else if (format == "json" || g.output == "json") std::printf("%s\n", dump(graph_json(e)).c_str());
            else {
                const graph_view& gr = e.wf->graph;
                std::printf("workflow %s: %zu steps\n", std::string(gr.name).c_str(), gr.size());
                for (std::size_t i : gr.topological_order) {
                    std::string parents;
                    for (std::size_t p : gr.parents(i)) parents += (parents.empty() ? "" : ", ") + std::string(gr.names[p]);
                    std::printf("  %s%s%s\n", std::string(gr.names[i]).c_str(), parents.empty() ? "" : "  <- ", parents.c_str());
                }
            }
            return success;
        }

        const config c = load_config(g);
        if (app.got_subcommand(reg)) {
            if (!workflow.empty()) (void)find_workflow(wfs, workflow);
            // A dry run says it for every linked backend the configuration can build; a real one
            // registers on the configured backend.
            std::vector<std::string> names;
            if (dry_run)
                for (auto& e : backend_registry::instance().entries()) names.push_back(e.name);
            else
                names.push_back(c.backend());
            int code = success;
            for (auto& name : names) {
                // An engine runs steps where the run starts: nothing to register, and nothing to build
                // (a durable engine would create its journal).
                if (const auto* entry = backend_registry::instance().find(name); entry && !entry->make_worker) {
                    for (auto& e : wfs)
                        if (workflow.empty() || e.wf->graph.name == workflow)
                            std::printf("%s: nothing to register for '%s': the engine runs its steps in the process "
                                        "that starts the run\n", name.c_str(), std::string(e.wf->graph.name).c_str());
                    continue;
                }
                config each = c;
                each.set("backend", name, dry_run ? "register --dry-run" : c.backend_origin());
                std::unique_ptr<backend> b;
                try {
                    b = backend_registry::instance().make(each);
                } catch (const std::exception& ex) {
                    if (!dry_run) throw;
                    std::printf("%s: not configured here: %s\n", name.c_str(), telemetry::redact(ex.what()).c_str());
                    continue;
                }
                for (auto& e : wfs)
                    if (workflow.empty() || e.wf->graph.name == workflow)
                        std::printf("%s\n", telemetry::redact(b->register_workflow(*e.wf, dry_run)).c_str());
            }
            return code;
        }
        std::unique_ptr<backend> b = backend_registry::instance().make(c);

        if (app.got_subcommand(run)) {
            const workflow_entry& e = find_workflow(wfs, workflow);
            if (input.empty() && e.inputs > 0)
                throw usage_error("weft: workflow '" + workflow + "' takes an input: pass --input JSON or --input @file");
            if (no_wait && !b->keeps_runs())
                throw usage_error("weft: run --no-wait: backend '" + std::string(b->name()) +
                                  "' keeps runs in this process's memory, so the run would end with it and its id "
                                  "would name nothing: leave out --no-wait, or choose a backend that keeps runs "
                                  "(durable, or a server backend)");
            const json::value in = input.empty() ? json::value(nullptr) : read_input(input);
            std::shared_ptr<progress> shown;
            run_options opts{.key = route_key, .attributes = attributes_of(route_attrs), .metadata = metadata_of(run_meta)};
            if (!no_wait && g.output != "json") {
                shown = std::make_shared<progress>(e.wf->graph, isatty(2) != 0);
                opts.on_step = [shown](const step_event& ev) { shown->on_step(ev); };
            }
            std::shared_ptr<run_control> r;
            const auto since = std::chrono::steady_clock::now();
            try {
                r = e.start(*b, in, std::move(opts));
            } catch (const json::decode_error& ex) {
                throw usage_error(std::string("weft: --input does not fit workflow '") + workflow + "': " + ex.what());
            }
            if (no_wait) {
                if (g.output == "json") std::printf("%s\n", dump(json::object{{"id", r->id()}, {"workflow", workflow}}).c_str());
                else std::printf("%s\n", r->id().c_str());
                return success;
            }
            if (!shown || !isatty(2)) std::fprintf(stderr, "run %s of %s on %s\n", r->id().c_str(), workflow.c_str(),
                                                   std::string(b->name()).c_str());
            return finish(e, *r, g, shown.get(), since);
        }

        if (app.got_subcommand(doctor)) {
            // Each check is printed whatever the others found: an operator fixes them all in one go.
            const std::vector<health_check> checks = b->doctor();
            bool all_ok = true;
            json::array out;
            for (auto& h : checks) {
                all_ok = all_ok && h.ok;
                const std::string detail = telemetry::redact(h.detail), fix = telemetry::redact(h.fix);
                out.push_back(json::object{{"name", h.name}, {"ok", h.ok}, {"detail", detail}, {"fix", fix}});
            }
            if (g.output == "json") {
                std::printf("%s\n", dump(out).c_str());
            } else {
                std::printf("backend: %s (from %s)\n", std::string(b->name()).c_str(), c.backend_origin().c_str());
                for (auto& v : out) {
                    auto& o = v.as_object();
                    std::printf("%-4s %s  %s\n", o.at("ok").as_bool() ? "ok" : "FAIL",
                                std::string(o.at("name").as_string()).c_str(), std::string(o.at("detail").as_string()).c_str());
                    if (!o.at("fix").as_string().empty())
                        std::printf("      fix: %s\n", std::string(o.at("fix").as_string()).c_str());
                }
            }
            return all_ok ? success : unreachable;
        }

        if (app.got_subcommand(flags_cmd)) {
            (void)find_workflow(wfs, workflow);
            const route_decision d = b->route(workflow, run_options{.key = route_key, .attributes = attributes_of(route_attrs)});
            if (g.output == "json") {
                std::printf("%s\n", dump(json::object{{"workflow", workflow}, {"key", route_key}, {"backend", d.backend},
                                                      {"why", d.why}, {"flag", d.flag}, {"variant", d.variant},
                                                      {"shadow", d.shadow}, {"shadow_why", d.shadow_why}})
                                        .c_str());
            } else {
                std::printf("%s -> %s\n  %s\n", workflow.c_str(), d.backend.c_str(), d.why.c_str());
                std::printf("shadow: %s\n  %s\n", d.shadow.empty() ? "none" : d.shadow.c_str(), d.shadow_why.c_str());
            }
            return success;
        }

        if (app.got_subcommand(migration)) {
            const std::vector<backend*> routed = b->routed_backends();
            if (routed.empty())
                throw usage_error("weft: migration status needs a router (backend = router); the configured backend is '" +
                                  std::string(b->name()) + "' (from " + c.backend_origin() + ")");
            json::array rows;
            for (auto& e : wfs) {
                if (!workflow.empty() && e.wf->graph.name != workflow) continue;
                for (backend* r : routed) {
                    json::object row{{"workflow", e.wf->graph.name}, {"backend", r->name()}};
                    try {
                        std::int64_t queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
                        for (auto& s : r->list(e.wf->graph.name, status_limit)) switch (s.state) {
                                case run_state::queued: ++queued; break;
                                case run_state::running: ++running; break;
                                case run_state::succeeded: ++succeeded; break;
                                case run_state::failed: ++failed; break;
                                case run_state::cancelled: ++cancelled; break;
                            }
                        row["in_flight"] = queued + running;
                        row["done"] = succeeded + failed + cancelled;
                        row["queued"] = queued;
                        row["running"] = running;
                        row["succeeded"] = succeeded;
                        row["failed"] = failed;
                        row["cancelled"] = cancelled;
                    } catch (const config_error& ex) {
                        row["error"] = telemetry::redact(ex.what());
                    }
                    rows.push_back(std::move(row));
                }
            }
            if (!workflow.empty()) (void)find_workflow(wfs, workflow);
            if (g.output == "json") {
                std::printf("%s\n", dump(json::object{{"limit", status_limit}, {"backends", rows}}).c_str());
            } else {
                std::printf("%-24s %-10s %10s %10s %10s %10s\n", "workflow", "backend", "in flight", "succeeded", "failed", "cancelled");
                for (auto& v : rows) {
                    auto& o = v.as_object();
                    const std::string wfn(o.at("workflow").as_string()), bn(o.at("backend").as_string());
                    if (auto* err = o.if_contains("error"))
                        std::printf("%-24s %-10s %s\n", wfn.c_str(), bn.c_str(), std::string(err->as_string()).c_str());
                    else
                        std::printf("%-24s %-10s %10lld %10lld %10lld %10lld\n", wfn.c_str(), bn.c_str(),
                                    (long long)o.at("in_flight").as_int64(), (long long)o.at("succeeded").as_int64(),
                                    (long long)o.at("failed").as_int64(), (long long)o.at("cancelled").as_int64());
                }
                std::printf("(among the %zu most recent runs of each workflow on each backend)\n", status_limit);
            }
            return success;
        }

        if (app.got_subcommand(list)) {
            json::array runs;
            for (auto& e : wfs) {
                if (!workflow.empty() && e.wf->graph.name != workflow) continue;
                for (auto& s : b->list(e.wf->graph.name, limit))
                    runs.push_back(json::object{{"id", s.id}, {"workflow", s.workflow}, {"state", std::string(to_string(s.state))},
                                                {"created", time_json(s.created)}, {"started", time_json(s.started)}});
            }
            if (!workflow.empty()) (void)find_workflow(wfs, workflow);  // a name that is none of ours is an error
            if (g.output == "json") {
                std::printf("%s\n", dump(runs).c_str());
            } else {
                for (auto& v : runs) {
                    auto& o = v.as_object();
                    std::printf("%s  %-10s %s\n", std::string(o.at("id").as_string()).c_str(),
                                std::string(o.at("state").as_string()).c_str(),
                                o.at("created").is_string() ? std::string(o.at("created").as_string()).c_str() : "");
                }
            }
            return success;
        }

        if (app.got_subcommand(status) || app.got_subcommand(steps)) {
            const run_description d = b->describe(id);
            if (g.output == "json") {
                std::printf("%s\n", dump(description_json(d)).c_str());
            } else {
                std::printf("%s  %s  %s\n", d.id.c_str(), d.workflow.c_str(), std::string(to_string(d.state)).c_str());
                if (d.created) std::printf("  created   %s\n", timestamp(d.created).c_str());
                if (d.started) std::printf("  started   %s\n", timestamp(d.started).c_str());
                if (d.finished) std::printf("  finished  %s\n", timestamp(d.finished).c_str());
                if (!d.error.empty()) std::printf("  error     %s%s\n", d.failed_step.empty() ? "" : (d.failed_step + ": ").c_str(), d.error.c_str());
                if (app.got_subcommand(steps)) {
                    std::vector<step_status> st;
                    for (auto& s : d.steps) st.push_back({s.name, s.state, s.attempts, s.error});
                    print_steps(st);
                }
            }
            return success;
        }

        auto [e, r] = find_run(*b, wfs, id, workflow);
        if (app.got_subcommand(cancel)) {
            r->cancel();
            if (g.output == "json") std::printf("%s\n", dump(json::object{{"id", id}, {"cancelled", true}}).c_str());
            else std::printf("cancel requested for %s\n", id.c_str());
            return success;
        }
        if (app.got_subcommand(result)) {
            if (!wait && !r->wait_for(std::chrono::milliseconds(0))) {
                std::fprintf(stderr, "weft: run %s is still %s (use --wait)\n", id.c_str(), std::string(to_string(r->state())).c_str());
                return still_running;
            }
            return finish(*e, *r, g);
        }
        return success;
    } catch (const usage_error& e) {
        std::fprintf(stderr, "%s\n", telemetry::redact(e.what()).c_str());
        return usage;
    } catch (const config_error& e) {
        std::fprintf(stderr, "%s\n", telemetry::redact(e.what()).c_str());
        return usage;
    } catch (const run_not_found& e) {
        std::fprintf(stderr, "%s\n", telemetry::redact(e.what()).c_str());
        return not_found;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", telemetry::redact(e.what()).c_str());
        return unreachable;
    }
}

}  // namespace weft::cli
