// The ceiling for a Celery worker and client on one Redis: the Redis commands Celery's protocol needs
// per task, issued by the cheapest client that can issue them (docs/benchmarks.md, "Celery backend").
//
//     bench.celery_ceiling drain <redis url> <queue> <n> <batch> <threads>
//     bench.celery_ceiling enqueue <redis url> <list> <n> <per round trip> [records]
//
// drain: <n> tasks already queued on <queue>; <threads> connections each loop, until the queue is
//   empty: the worker's own fetch script for <batch> messages (RPOP with a count, kombu's unacked
//   ZADD + HSET, the MGET of the tasks' metas, as the C++ worker runs it), then one pipeline of a
//   SETEX + PUBLISH of a SUCCESS meta per task (the worker's bytes, encode_meta) and the batch's
//   ack (ZREM + HDEL). It decodes nothing and runs nothing: what is left is Redis's own work and
//   the round trips. Prints {"tasks", "seconds", "rate"}, timed from the first fetch that got
//   something to the last ack.
// enqueue: <n> LPUSHes of a task envelope as weft's client writes it (encode_envelope), <per round
//   trip> to a pipeline (1: one round trip per task); with `records`, each also with what weft's
//   client writes for describe() and list() (the run's record, SET with EX, and the workflow's run
//   index: ZADD, two trims, EXPIRE), in the same pipeline. Prints {"tasks", "seconds", "rate"}.
#include "codec.hpp"
#include "kombu.hpp"
#include "transport.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace cw = weft::celery_wire;
using clock_type = std::chrono::steady_clock;

namespace {

const std::string meta_prefix = "celery-task-meta-";

// The span the threads' batches cover: the earliest fetch that got something, the latest ack.
void widen(std::atomic<clock_type::rep>& bound, clock_type::time_point t, bool earlier) {
    const auto v = t.time_since_epoch().count();
    for (auto cur = bound.load(); earlier ? v < cur : v > cur;)
        if (bound.compare_exchange_weak(cur, v)) break;
}

// A SUCCESS meta as the worker stores it, for a task id of the same length as every real one.
std::string meta_template(const std::string& id) {
    cw::task_meta m{.task_id = id, .state = cw::task_state::success, .result = boost::json::value(1)};
    m.date_done = cw::iso_utc(std::chrono::system_clock::now());
    m.retries = 0;
    return cw::encode_meta(m);
}

int drain(const cw::redis_url& url, const std::string& queue, long n, unsigned batch, int threads) {
    const cw::kombu q("", {queue}, meta_prefix);
    std::vector<std::string> head{"EVALSHA", "", "6", "unacked", "unacked_index"};
    for (int p : {0, 3, 6, 9}) head.push_back(q.list_of(queue, p));
    const std::string expires = "86400";
    std::atomic<long> done{0};
    std::atomic<clock_type::rep> first{clock_type::time_point::max().time_since_epoch().count()}, last{0};
    auto loop = [&] {
        cw::redis_connection c(url);
        auto fetch = head;
        fetch[1] = q.load_script(c);
        fetch.insert(fetch.end(), {std::to_string(batch), "", meta_prefix});
        const std::string placeholder(36, 'x');  // a task id's length: the template's id, replaced per task
        const std::string tmpl = meta_template(placeholder);
        const std::size_t at = tmpl.find(placeholder);
        std::vector<std::string> tags;
        std::vector<std::vector<std::string>> cmds;
        while (done.load() < n) {
            char score[32];
            std::snprintf(score, sizeof score, "%.6f",
                          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
            fetch[fetch.size() - 2] = score;
            const auto t0 = clock_type::now();
            auto r = c.pipeline({fetch}).front();
            if (r.type == cw::redis_reply::kind::error) throw cw::redis_error("the fetch script failed: " + r.str);
            if (r.elements.empty()) break;  // the queue is empty: the other threads hold the rest
            widen(first, t0, true);
            tags.clear();
            cmds.clear();
            for (std::size_t i = 0; i + 6 < r.elements.size(); i += 7) {
                const std::string& id = r.elements[i + 5].str;
                std::string text = tmpl;
                text.replace(at, placeholder.size(), id);
                cmds.push_back({"SETEX", meta_prefix + id, expires, text});
                cmds.push_back({"PUBLISH", meta_prefix + id, std::move(text)});
                tags.push_back(r.elements[i + 2].str);
            }
            for (auto& a : q.ack_commands(tags)) cmds.push_back(std::move(a));
            c.pipeline(cmds);
            done += static_cast<long>(tags.size());
            widen(last, clock_type::now(), false);
        }
    };
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) ts.emplace_back(loop);
    for (auto& t : ts) t.join();
    const double s = std::chrono::duration<double>(clock_type::duration(last.load() - first.load())).count();
    std::printf("{\"tasks\": %ld, \"seconds\": %.6f, \"rate\": %.1f}\n", done.load(), s, done.load() / s);
    return done.load() == n ? 0 : 1;
}

int enqueue(const cw::redis_url& url, const std::string& list, long n, int per_trip, bool records) {
    cw::message m;
    m.task = "weft.bench.noop";
    m.id = m.root_id = m.delivery_tag = "00000000-0000-0000-0000-000000000000";  // a uuid's length
    m.args = boost::json::array{1};
    m.queue = list;
    const std::string envelope = cw::encode_envelope(m);
    const std::string record = R"({"workflow":"noop","started":"2026-12-04T19:27:25.522274+00:00","steps":["weft.bench.noop"],)"
                               R"("root":0,"sinks":[0],"order":[0],"queue_list":")" + list + R"("})";
    cw::redis_connection c(url);
    std::vector<std::vector<std::string>> cmds;
    const auto t0 = clock_type::now();
    for (long i = 0; i < n; i += per_trip) {
        cmds.clear();
        for (long j = i; j < std::min(n, i + per_trip); ++j) {
            if (records) {  // as a start() writes them, a record of the same size and the index's upkeep
                const std::string id = "celery:noop:" + std::to_string(100000000000 + j) + "-0000-0000-000000000000";
                const std::string index = "weft-runs-ceiling-" + list, now = std::to_string(1796000000000 + j);
                cmds.push_back({"SET", "weft-run-" + id, record, "EX", "600"});
                cmds.push_back({"ZADD", index, now, id});
                cmds.push_back({"ZREMRANGEBYSCORE", index, "-inf", "(" + std::to_string(1795999400000 + j)});
                cmds.push_back({"ZREMRANGEBYRANK", index, "0", "-1001"});
                cmds.push_back({"EXPIRE", index, "600"});
            }
            cmds.push_back({"LPUSH", list, envelope});
        }
        c.pipeline(cmds);
    }
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("{\"tasks\": %ld, \"seconds\": %.6f, \"rate\": %.1f}\n", n, s, n / s);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "drain" && argc == 7)
            return drain(cw::redis_url::parse(argv[2]), argv[3], std::atol(argv[4]), unsigned(std::atoi(argv[5])),
                         std::atoi(argv[6]));
        if (mode == "enqueue" && (argc == 6 || (argc == 7 && std::string_view(argv[6]) == "records")))
            return enqueue(cw::redis_url::parse(argv[2]), argv[3], std::atol(argv[4]), std::atoi(argv[5]), argc == 7);
        std::fprintf(stderr, "usage: %s drain <redis url> <queue> <n> <batch> <threads>\n"
                             "       %s enqueue <redis url> <list> <n> <per round trip> [records]\n", argv[0], argv[0]);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench.celery_ceiling: %s\n", e.what());
        return 1;
    }
}
