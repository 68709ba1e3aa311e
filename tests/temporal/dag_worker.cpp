// A weft Temporal worker process serving the test workflows (dags.hpp): the SIGKILL test, the Python
// interop scripts, the fixture capture and the benchmarks start it.
//
//     dag_worker --task-queue Q [--ready-file F] [--max-seconds N] [--concurrency N] [--pollers N]
//                [--heartbeat-ms N] [--activities-only] [--backoff-max-ms N]
//
// Server from WEFT_TEMPORAL_ADDRESS / WEFT_TEMPORAL_NAMESPACE. Stops on SIGTERM/SIGINT or after
// --max-seconds, so a test that dies cannot leave it behind.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <weft/temporal.hpp>

#include "dags.hpp"

int main(int argc, char** argv) {
    weft::temporal::worker_options opts{weft::temporal_detail::options_from(weft::config::from_env())};
    std::string ready_file;
    int max_seconds = 600;
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
        else if (a == "--backoff-max-ms") opts.backoff.maximum = std::chrono::milliseconds(std::stoi(next()));
        else if (a == "--activities-only") opts.workflows = false;
        else {
            std::fprintf(stderr, "dag_worker: unknown argument %s\n", a.c_str());
            return 2;
        }
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
