// A weft Temporal worker process serving the test workflows (dags.hpp): the SIGKILL test, the Python
// interop scripts, the fixture capture and the benchmarks start it.
//
//     dag_worker --task-queue Q [--ready-file F] [--max-seconds N] [--concurrency N] [--pollers N]
//                [--heartbeat-ms N] [--drain-ms N] [--activities-only] [--backoff-max-ms N]
//     dag_worker --task-queue Q --start-mixed N     a client only: runs weft_mixed(N), prints {"id", "result"}
//     --codec zlib | --codec aes:<key id>:<64 hex digits>   a payload codec for either (codecs.py)
//
// With OTEL_EXPORTER_OTLP_ENDPOINT set, spans go there (tests/temporal/traces.py).
// Server from WEFT_TEMPORAL_ADDRESS / WEFT_TEMPORAL_NAMESPACE. Stops on SIGTERM/SIGINT or after
// --max-seconds, so a test that dies cannot leave it behind.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <boost/json/serialize.hpp>
#include <weft/json.hpp>
#include <weft/temporal.hpp>
#ifdef WEFT_PEER_TRACES
#include <weft/cli/traces.hpp>
#endif

#include "../../examples/temporal_encryption.hpp"
#include "dags.hpp"

namespace {

std::shared_ptr<const weft::temporal::payload_codec> codec_from(const std::string& spec) {
    if (spec == "zlib") return weft::temporal::zlib_codec();
    if (spec.starts_with("aes:")) {
        const auto colon = spec.find(':', 4);
        const std::string hex = colon == std::string::npos ? "" : spec.substr(colon + 1);
        std::string key;
        for (std::size_t i = 0; i + 1 < hex.size(); i += 2) key += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
        return std::make_shared<example::aes_gcm_codec>(spec.substr(4, colon - 4), key);
    }
    std::fprintf(stderr, "dag_worker: --codec wants zlib or aes:<id>:<hex key>, not %s\n", spec.c_str());
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    weft::temporal::worker_options opts{weft::temporal_detail::options_from(weft::config::from_env())};
#ifdef WEFT_PEER_TRACES
    weft::cli::export_traces("");  // from OTEL_EXPORTER_OTLP_ENDPOINT; flushed at exit
#endif
    std::string ready_file;
    int max_seconds = 600;
    int start_mixed = -1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "dag_worker: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--task-queue") opts.task_queue = next();
        else if (a == "--ready-file") ready_file = next();
        else if (a == "--max-seconds") max_seconds = std::stoi(next());
        else if (a == "--concurrency") opts.concurrency = static_cast<unsigned>(std::stoi(next()));
        else if (a == "--pollers") opts.activity_pollers = opts.workflow_pollers = static_cast<unsigned>(std::stoi(next()));
        else if (a == "--heartbeat-ms") opts.heartbeat_timeout = std::chrono::milliseconds(std::stoi(next()));
        else if (a == "--drain-ms") opts.drain_timeout = std::chrono::milliseconds(std::stoi(next()));
        else if (a == "--backoff-max-ms") opts.backoff.maximum = std::chrono::milliseconds(std::stoi(next()));
        else if (a == "--activities-only") opts.workflows = false;
        else if (a == "--start-mixed") start_mixed = std::stoi(next());
        else if (a == "--codec") opts.codec = codec_from(next());
        else {
            std::fprintf(stderr, "dag_worker: unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    if (start_mixed >= 0) {
        weft::temporal::options c = weft::temporal_detail::options_from(weft::config::from_env());
        c.task_queue = opts.task_queue;
        c.codec = opts.codec;
        weft::client<weft::temporal> client(c);
        auto run = client.start(dags::mixed, start_mixed);
        weft::json::object out{{"id", run.id()}};
        try {
            out["result"] = run.get();
        } catch (const std::exception& e) {
            out["error"] = e.what();
        }
        std::printf("%s\n", boost::json::serialize(out).c_str());
        return out.contains("result") ? 0 : 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before the worker's threads exist, so they inherit it

    weft::temporal::worker w(opts);
    dags::for_each_workflow([&](auto wf) { w.serve(wf); });
    w.start();
    if (!ready_file.empty()) std::ofstream(ready_file) << "ready\n";
    std::fprintf(stderr, "dag_worker: serving on '%s'\n", opts.task_queue.c_str());

    timespec limit{max_seconds, 0};
    int sig = sigtimedwait(&set, nullptr, &limit);
    std::fprintf(stderr, "dag_worker: %s, stopping\n", sig > 0 ? "signal" : "time limit");
    w.stop();
    auto s = w.stats();
    std::fprintf(stderr, "dag_worker: workflow tasks %llu, steps ok %llu, failed %llu, cancelled %llu\n",
                 (unsigned long long)s.workflow_tasks, (unsigned long long)s.steps_succeeded,
                 (unsigned long long)s.steps_failed, (unsigned long long)s.steps_cancelled);
    return 0;
}
