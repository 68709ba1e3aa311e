// One program for the attach tests of every server backend (tests/attach/attach.py drives it): the
// backend comes from WEFT_BACKEND and its settings from the environment, as any_client reads them.
//
//   attach_peer serve <ready_file>      a worker of the backend serving weft_attach, until SIGTERM
//   attach_peer start <x> <delay_ms>    starts a run and prints {"id": ...}; the run goes on without it
//   attach_peer attach <id>             attaches, waits, prints {"result", "state", "steps"}
//   attach_peer attach-as-other <id>    attaches with another workflow: prints the error
//   attach_peer describe <id>           prints client.describe(id): no workflow type involved
//   attach_peer list <workflow> <n>     prints client.list(workflow, n)
//   attach_peer start-idle <x>          starts a run of weft_attach_idle, which no worker serves
//   attach_peer cancel-idle <id>        cancels that run
//
// Built once per backend, with WEFT_ATTACH_CELERY, _TEMPORAL or _HATCHET defined.
#include <weft/any_client.hpp>
#include <weft/json.hpp>
#include <weft/run_description.hpp>

#if defined(WEFT_ATTACH_CELERY)
#include <weft/celery.hpp>
#elif defined(WEFT_ATTACH_TEMPORAL)
#include <weft/temporal.hpp>
#elif defined(WEFT_ATTACH_HATCHET)
#include <weft/hatchet.hpp>
#endif

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

using weft::step;

namespace steps {
struct seed {
    static constexpr std::string_view name = "weft_attach.seed";
    int operator()(int x, int delay_ms) const {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));  // time to attach mid-run
        return x;
    }
};
struct square {
    static constexpr std::string_view name = "weft_attach.square";
    int operator()(int x) const { return x * x; }
};
struct negate {
    static constexpr std::string_view name = "weft_attach.negate";
    int operator()(int x) const { return -x; }
};
struct total {
    static constexpr std::string_view name = "weft_attach.total";
    std::string operator()(int sq, int neg) const { return std::to_string(sq) + "/" + std::to_string(neg); }
};
struct idle_step {
    static constexpr std::string_view name = "weft_attach.idle";
    int operator()(int x) const { return x; }
};
struct other_step {
    static constexpr std::string_view name = "weft_attach.other";
    int operator()(int x) const { return x; }
};
}  // namespace steps

constexpr auto wf = weft::workflow<"weft_attach">(step<steps::seed> >> (step<steps::square>, step<steps::negate>) >>
                                                  step<steps::total>);
constexpr auto other = weft::workflow<"weft_attach_other">(step<steps::other_step>);
constexpr auto idle = weft::workflow<"weft_attach_idle">(step<steps::idle_step>);

namespace {

std::atomic<bool> stop{false};

int serve(const std::string& ready_file) {
    const weft::config c = weft::config::from_env();
#if defined(WEFT_ATTACH_CELERY)
    weft::celery::worker_options o{weft::celery_detail::options_from(c)};
    o.queues = {o.queue};
    o.concurrency = 4;
    weft::celery::worker w(o);
    for (const weft::erased_step& s : weft::step_table(wf)) w.serve(s);
#elif defined(WEFT_ATTACH_TEMPORAL)
    weft::temporal::worker_options o{weft::temporal_detail::options_from(c)};
    weft::temporal::worker w(o);
    w.serve(wf);
#elif defined(WEFT_ATTACH_HATCHET)
    weft::hatchet::worker_options o{weft::hatchet_detail::options_from(c)};
    o.worker_name = "weft-attach";
    o.concurrency = 4;
    weft::hatchet::worker w(o);
    w.serve(wf);
#endif
    std::signal(SIGTERM, [](int) { stop = true; });
    w.start();
    std::ofstream(ready_file) << "ready\n";
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    w.stop();
    return 0;
}

template <class Run>
void print_run(weft::json::object& out, Run& r) {
    if (!r.wait_for(std::chrono::seconds(60))) throw std::runtime_error("timed out waiting for run " + r.id());
    out["result"] = r.get();
    out["state"] = std::string(weft::to_string(r.state()));
    weft::json::object steps;
    for (auto& s : r.steps()) steps[s.name] = std::string(weft::to_string(s.state));
    out["steps"] = std::move(steps);
}

// Milliseconds since the epoch, or null.
weft::json::value ms(const std::optional<std::chrono::system_clock::time_point>& t) {
    if (!t) return nullptr;
    return std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
}

weft::json::object described(const weft::run_description& d) {
    weft::json::object out;
    out["backend"] = d.backend;
    out["workflow"] = d.workflow;
    out["id"] = d.id;
    out["state"] = std::string(weft::to_string(d.state));
    weft::json::array steps;
    for (auto& s : d.steps)
        steps.push_back(weft::json::object{{"name", s.name},
                                           {"state", std::string(weft::to_string(s.state))},
                                           {"attempts", s.attempts},
                                           {"error", s.error},
                                           {"started", ms(s.started)},
                                           {"finished", ms(s.finished)}});
    out["steps"] = std::move(steps);
    out["created"] = ms(d.created);
    out["started"] = ms(d.started);
    out["finished"] = ms(d.finished);
    out["output"] = d.output;
    out["failed_step"] = d.failed_step;
    out["error"] = d.error;
    if (auto parts = weft::run_id::parse(d.id))
        out["id_parts"] = weft::json::array{std::string(parts->backend), std::string(parts->workflow), std::string(parts->key)};
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: attach_peer serve <ready_file> | start <x> <delay_ms> | attach <id> | attach-as-other <id> | "
                     "describe <id> | list <workflow> <n> | start-idle <x> | cancel-idle <id>\n";
        return 2;
    }
    const std::string mode = argv[1];
    if (mode == "serve") return serve(argv[2]);
    weft::json::object out;
    try {
        auto client = weft::any_client::from_env();
        out["backend"] = std::string(client.backend());
        if (mode == "start" && argc >= 4) {
            auto r = client.start(wf, {std::stoi(argv[2]), std::stoi(argv[3])});
            out["id"] = r.id();
        } else if (mode == "attach") {
            auto r = client.attach(wf, argv[2]);
            out["id"] = r.id();
            out["state_at_attach"] = std::string(weft::to_string(r.state()));
            print_run(out, r);
        } else if (mode == "describe") {
            out["description"] = described(client.describe(argv[2]));
        } else if (mode == "list" && argc >= 4) {
            weft::json::array runs;
            for (auto& r : client.list(argv[2], std::stoul(argv[3])))
                runs.push_back(weft::json::object{
                    {"id", r.id}, {"workflow", r.workflow}, {"state", std::string(weft::to_string(r.state))}, {"created", ms(r.created)}});
            out["runs"] = std::move(runs);
        } else if (mode == "start-idle") {
            auto r = client.start(idle, std::stoi(argv[2]));
            out["id"] = r.id();
            out["state"] = std::string(weft::to_string(r.state()));
        } else if (mode == "cancel-idle") {
            auto r = client.attach(idle, argv[2]);
            r.cancel();
            out["id"] = r.id();
        } else if (mode == "attach-as-other") {
            auto r = client.attach(other, argv[2]);
            out["id"] = r.id();
        } else {
            std::cerr << "attach_peer: unknown mode " << mode << "\n";
            return 2;
        }
    } catch (const weft::run_not_found& e) {
        out["error"] = "run_not_found";
        out["what"] = e.what();
    } catch (const weft::config_error& e) {
        out["error"] = "config_error";
        out["what"] = e.what();
    } catch (const std::exception& e) {
        out["error"] = "exception";
        out["what"] = e.what();
    }
    std::cout << weft::json::value(out) << std::endl;
    return out.contains("error") ? 1 : 0;
}
