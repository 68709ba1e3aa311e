// Per-task overhead of the embedded engine on no-op steps, against oneTBB's flow graph, in one process.
//
// Shapes: a 10,000-step chain, a 1 -> 10,000 -> 1 fan, a 100 x 100 lattice (each node waits for its
// left and upper neighbours), and chains of 1, 5 and 100 steps, the latter two also declared through
// the DSL and run with weft::client<weft::local>::run_sync, to show what the typed path adds.
// A 10,000-node graph cannot be declared through the DSL (10,000 types), so the large shapes drive
// the engine's type-erased core with a graph_view and no-op in-process steps built at run time.
//
// Both sides execute on 2 threads: for the "(core)" rows weft's pool has 2 workers and the caller
// only waits (start, then wait); for the "caller runs" and run_sync rows the caller runs steps too
// (run_here, as run_sync does) beside a pool of 1. TBB is capped at 2 with global_control and the
// caller joins in wait_for_all. TBB graphs are built once and fired
// again for every run, which is how flow graphs are meant to be reused; a weft run allocates its
// per-run state each time, which is included in its figure.
//
// Samples of weft and TBB alternate, so background load hits both alike. Prints ns per task: the
// median over the repetitions, and weft/TBB as the ratio of the medians.
//
//   cmake --build build -j2 --target bench.engine_overhead && build/benchmarks/bench.engine_overhead [reps [shape]]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tbb/flow_graph.h>
#include <tbb/global_control.h>

#include <weft/weft.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
namespace ld = weft::local_detail;

constexpr unsigned threads = 2;

// ---- a graph as edges, shared by both sides -----------------------------------------------------

struct shape {
    std::string name;
    std::size_t size = 0;
    std::vector<std::pair<std::size_t, std::size_t>> edges;  // from, to
};

shape chain(std::size_t n) {
    shape s{"chain " + std::to_string(n), n, {}};
    for (std::size_t i = 0; i + 1 < n; ++i) s.edges.emplace_back(i, i + 1);
    return s;
}

shape fan(std::size_t width) {  // node 0 -> 1..width -> width+1
    shape s{"fan 1->" + std::to_string(width) + "->1", width + 2, {}};
    for (std::size_t i = 1; i <= width; ++i) s.edges.emplace_back(0, i);
    for (std::size_t i = 1; i <= width; ++i) s.edges.emplace_back(i, width + 1);
    return s;
}

shape lattice(std::size_t side) {  // node r*side+c waits for (r, c-1) and (r-1, c)
    shape s{"lattice " + std::to_string(side) + "x" + std::to_string(side), side * side, {}};
    for (std::size_t r = 0; r < side; ++r)
        for (std::size_t c = 0; c < side; ++c) {
            if (c + 1 < side) s.edges.emplace_back(r * side + c, r * side + c + 1);
            if (r + 1 < side) s.edges.emplace_back(r * side + c, (r + 1) * side + c);
        }
    return s;
}

// ---- weft through the type-erased core ----------------------------------------------------------

// What a workflow's in-process hooks do for a step, minus the step: ask to commit, store nothing.
bool invoke_noop(void*, std::size_t, bool (*commit)(void*), void* ctx) { return commit(ctx); }
int noop_output = 0;
const weft::in_process_steps::invoke_fn noop_invoke = &invoke_noop;

struct runtime_workflow {
    std::vector<std::string> name_text;
    std::vector<std::string_view> names;
    std::vector<weft::step_policy> policies;
    std::vector<std::size_t> arity, parent_offset, parent_list, child_offset, child_list, order, sources, sinks;
    std::vector<weft::in_process_steps::invoke_fn> invokers;
    weft::in_process_steps steps{};
    weft::erased_workflow wf{};

    explicit runtime_workflow(const shape& s) {
        const std::size_t n = s.size;
        for (std::size_t i = 0; i < n; ++i) name_text.push_back("s" + std::to_string(i));
        names.assign(name_text.begin(), name_text.end());
        policies.assign(n, weft::step_policy{});
        arity.assign(n, 0);
        csr(s, n, parent_offset, parent_list, [](auto e) { return std::pair{e.second, e.first}; });
        csr(s, n, child_offset, child_list, [](auto e) { return e; });
        for (std::size_t i = 0; i < n; ++i) {
            order.push_back(i);  // every shape here numbers its nodes in a topological order
            if (parent_offset[i] == parent_offset[i + 1]) sources.push_back(i);
            if (child_offset[i] == child_offset[i + 1]) sinks.push_back(i);
        }
        invokers.assign(n, noop_invoke);
        steps = weft::in_process_steps{1, 1, [](void*, const void*) {}, [](void*) noexcept {}, invokers,
                                       [](void*) -> const void* { return &noop_output; }};
        wf = weft::erased_workflow{
            weft::graph_view{"bench", names, policies, arity, parent_offset, parent_list, child_offset, child_list,
                             order, sources, sinks},
            nullptr, &steps};
    }

    // Compressed rows of the edges keyed by key(edge).first, in declaration order.
    template <class Key>
    static void csr(const shape& s, std::size_t n, std::vector<std::size_t>& offset, std::vector<std::size_t>& list,
                    Key key) {
        offset.assign(n + 1, 0);
        for (auto e : s.edges) ++offset[key(e).first + 1];
        for (std::size_t i = 0; i < n; ++i) offset[i + 1] += offset[i];
        list.resize(s.edges.size());
        std::vector<std::size_t> fill(n, 0);
        for (auto e : s.edges) {
            auto [row, col] = key(e);
            list[offset[row] + fill[row]++] = col;
        }
    }

    // here: the caller runs the first steps itself (what run_sync does), else it only waits.
    void run_once(ld::engine& eng, bool here = false) const {
        const std::tuple<> in;
        auto r = here ? ld::run_here(eng, wf, &in, weft::run_options{}) : ld::start(eng, wf, &in, weft::run_options{});
        r->wait();
        if (r->state() != weft::run_state::succeeded) {
            std::fprintf(stderr, "weft run did not succeed\n");
            std::exit(1);
        }
    }
};

// ---- the same shapes in oneTBB ------------------------------------------------------------------

struct tbb_workflow {
    tbb::flow::graph g;
    std::deque<tbb::flow::continue_node<tbb::flow::continue_msg>> nodes;
    std::vector<std::size_t> sources;

    explicit tbb_workflow(const shape& s) {
        std::vector<std::size_t> in_degree(s.size, 0);
        for (std::size_t i = 0; i < s.size; ++i) nodes.emplace_back(g, [](const tbb::flow::continue_msg&) {});
        for (auto [from, to] : s.edges) {
            tbb::flow::make_edge(nodes[from], nodes[to]);
            ++in_degree[to];
        }
        for (std::size_t i = 0; i < s.size; ++i)
            if (in_degree[i] == 0) sources.push_back(i);
    }

    void run_once() {
        for (std::size_t i : sources) nodes[i].try_put(tbb::flow::continue_msg{});
        g.wait_for_all();
    }
};

// ---- the typed path: a 100-step chain declared with the DSL -------------------------------------

struct noop {
    static constexpr std::string_view name = "noop";
    int operator()(int x) const { return x; }
};

template <std::size_t I>
struct alias_text {  // "s000", "s001", ...
    static constexpr char value[] = {'s', char('0' + I / 100 % 10), char('0' + I / 10 % 10), char('0' + I % 10), 0};
};
template <std::size_t I>
inline constexpr auto noop_at = weft::step<noop, weft::fixed_string(alias_text<I>::value)>;

template <std::size_t... I>
constexpr auto chain_of(std::index_sequence<I...>) {
    return weft::workflow<"chain100">((noop_at<I> >> ...));
}
constexpr auto dsl_chain100 = chain_of(std::make_index_sequence<100>{});
static_assert(decltype(dsl_chain100)::size == 100);
constexpr auto dsl_chain5 = weft::workflow<"chain5">(noop_at<0> >> noop_at<1> >> noop_at<2> >> noop_at<3> >> noop_at<4>);

// ---- measurement --------------------------------------------------------------------------------

template <class F>
double ns_per_task(std::size_t tasks, int runs, F&& run_once) {
    auto t0 = clock_type::now();
    for (int i = 0; i < runs; ++i) run_once();
    auto t1 = clock_type::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / (double(tasks) * runs);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct row {
    std::string name;
    std::vector<double> weft, peer;
};

void print(const row& r) {
    double w = median(r.weft), p = median(r.peer);
    auto [wmin, wmax] = std::minmax_element(r.weft.begin(), r.weft.end());
    auto [pmin, pmax] = std::minmax_element(r.peer.begin(), r.peer.end());
    std::printf("%-26s %9.1f %9.1f %7.2f    [%.1f..%.1f] [%.1f..%.1f]\n", r.name.c_str(), w, p, w / p, *wmin, *wmax,
                *pmin, *pmax);
}

}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::atoi(argv[1]) : 15;
    tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, threads);
    weft::client<weft::local> client({.threads = threads});
    ld::engine& eng = client.engine();  // one pool for the core's start-and-wait rows
    // Where the caller runs steps too (run_sync, run_here), one worker: with the caller that is the
    // two threads TBB's capped arena has (its caller works inside wait_for_all).
    weft::client<weft::local> here_client({.threads = threads - 1});
    ld::engine& here_eng = here_client.engine();

    std::vector<shape> shapes{chain(10000), fan(10000), lattice(100), chain(1), chain(5), chain(100)};
    std::vector<std::unique_ptr<runtime_workflow>> weft_wfs;
    std::vector<std::unique_ptr<tbb_workflow>> tbb_wfs;
    for (auto& s : shapes) {
        weft_wfs.push_back(std::make_unique<runtime_workflow>(s));
        tbb_wfs.push_back(std::make_unique<tbb_workflow>(s));
    }
    // Each sample runs about 200,000 tasks, or 2,000 runs of a small graph.
    auto runs_for = [](std::size_t size) { return int(std::clamp<std::size_t>(200000 / size, 1, 2000)); };

    // Rows: every shape started and waited for (the caller only waits); the small ones also with the
    // caller running steps; and the typed path, run_sync of DSL-declared chains.
    struct measured {
        row r;
        std::size_t shape;  // the TBB graph it is compared with
        std::function<void()> weft;
    };
    std::vector<measured> rows;
    for (std::size_t k = 0; k < shapes.size(); ++k)
        rows.push_back({{shapes[k].name + " (core)", {}, {}}, k, [&, k] { weft_wfs[k]->run_once(eng); }});
    for (std::size_t k = 0; k < shapes.size(); ++k)
        if (shapes[k].size <= 100)
            rows.push_back({{shapes[k].name + " (core, caller runs)", {}, {}}, k, [&, k] { weft_wfs[k]->run_once(here_eng, true); }});
    const std::size_t k5 = 4, k100 = 5;
    rows.push_back({{"chain 5 (DSL, run_sync)", {}, {}}, k5, [&] {
                        if (here_client.run_sync(dsl_chain5, 1) != 1) std::exit(1);
                    }});
    rows.push_back({{"chain 100 (DSL, run_sync)", {}, {}}, k100, [&] {
                        if (here_client.run_sync(dsl_chain100, 1) != 1) std::exit(1);
                    }});
    // Warm up: threads started, allocator pools and caches primed.
    for (auto& m : rows) m.weft();
    for (auto& t : tbb_wfs) t->run_once();

    // An optional second argument picks the shapes whose name contains it (to profile one of them).
    const std::string_view only = argc > 2 ? argv[2] : "";
    auto picked = [&](const std::string& name) { return name.find(only) != std::string::npos; };
    for (int rep = 0; rep < reps; ++rep) {
        for (auto& m : rows) {
            if (!picked(m.r.name)) continue;
            const std::size_t n = shapes[m.shape].size;
            const int runs = runs_for(n);
            // Alternate which side goes first, so neither always follows the other.
            auto w = [&] { m.r.weft.push_back(ns_per_task(n, runs, m.weft)); };
            auto t = [&] { m.r.peer.push_back(ns_per_task(n, runs, [&] { tbb_wfs[m.shape]->run_once(); })); };
            if (rep % 2) w(), t();
            else t(), w();
        }
    }

    std::printf("ns per task, median of %d samples of ~200,000 tasks (2,000 runs of small graphs), %u threads each\n", reps, threads);
    std::printf("%-26s %9s %9s %7s    %s\n", "shape", "weft", "oneTBB", "ratio", "[weft min..max] [TBB min..max]");
    for (auto& m : rows)
        if (!m.r.weft.empty()) print(m.r);
}
