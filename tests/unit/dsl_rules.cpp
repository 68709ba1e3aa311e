// The DSL's rules, run the way every backend runs a workflow: on weft::local, and through the step
// table as remote workers do (each parent's output encoded to JSON, the child's erased step invoked
// with it). What the rules reject is in tests/compile_fail; docs/design.md states them.
#include <catch2/catch.hpp>

#include <weft/json.hpp>
#include <weft/step_table.hpp>
#include <weft/weft.hpp>

using weft::step;

namespace {

const weft::erased_step& find(std::span<const weft::erased_step> table, std::string_view name) {
    for (auto& s : table)
        if (s.name() == name) return s;
    throw std::logic_error("no step named " + std::string(name));
}

// Runs the chain of `wf` (one source, each step with one parent) through its step table, the way a
// worker would: encode, decode, call, encode again.
template <class W, class In>
weft::json::value run_table(W wf, const In& input) {
    auto table = weft::step_table(wf);
    weft::json::value v = weft::json::to_value(input);
    for (std::size_t i : W::topological_order) {
        weft::json::array args;
        args.push_back(v);
        v = find(table, W::names[i]).invoke(args);
    }
    return v;
}

// ---- edges: exact types after const and & -----------------------------------------------------
struct words { std::vector<std::string> items; };
BOOST_DESCRIBE_STRUCT(words, (), (items))

struct split { static constexpr std::string_view name = "rules.split";
    const words operator()(const std::string& s) const {  // a const result is still a `words`
        words w; std::string cur;
        for (char c : s) { if (c == ' ') { w.items.push_back(cur); cur.clear(); } else cur += c; }
        w.items.push_back(cur);
        return w; } };
struct count { static constexpr std::string_view name = "rules.count";
    int operator()(words w) const noexcept { return static_cast<int>(w.items.size()); } };  // by value
struct twice { static constexpr std::string_view name = "rules.twice";
    int operator()(const int& n) const& { return 2 * n; } };  // const& parameter, const& call operator
struct bump { static constexpr std::string_view name = "rules.bump";
    int calls = 0;
    int operator()(int n) { return n + 1 + calls++; } };  // non-const call operator: a fresh object per call
struct halve { static constexpr std::string_view name = "rules.halve";
    int operator()(int n) & { return n / 2; } };  // &-qualified: every engine calls a named object

constexpr auto chain = weft::workflow<"rules.chain">(step<split> >> step<count> >> step<twice> >> step<bump> >> step<halve>);

TEST_CASE("a chain whose edges match exactly after const and & runs on local") {
    weft::client<weft::local> client;
    CHECK(client.run_sync(chain, std::string("a b c")) == 3);
}

TEST_CASE("the same chain runs through the step table, as remote workers run it") {
    CHECK(run_table(chain, std::string("a b c")).as_int64() == 3);
}

// ---- joins: one parameter per parent, in declaration order, exact types -------------------------
struct width { static constexpr std::string_view name = "rules.width"; int operator()(int n) const { return n; } };
struct ratio { static constexpr std::string_view name = "rules.ratio"; double operator()(int n) const { return n / 4.0; } };
struct render { static constexpr std::string_view name = "rules.render";
    std::string operator()(int w, const double& r) const { return std::to_string(w) + "/" + std::to_string(r); } };

constexpr auto join = weft::workflow<"rules.join">((step<width>, step<ratio>) >> step<render>);

TEST_CASE("a join receives its parents' outputs in declaration order on local and through the step table") {
    weft::client<weft::local> client;
    CHECK(client.run_sync(join, 2) == "2/0.500000");

    auto table = weft::step_table(join);
    weft::json::array in;
    in.push_back(weft::json::to_value(2));
    weft::json::array args;
    args.push_back(find(table, "rules.width").invoke(in));
    args.push_back(find(table, "rules.ratio").invoke(in));
    CHECK(find(table, "rules.render").invoke(args).as_string() == "2/0.500000");
}

// ---- recursive payloads --------------------------------------------------------------------------
struct tree { std::string label; std::vector<tree> children; std::optional<std::vector<tree>> spare; };
BOOST_DESCRIBE_STRUCT(tree, (), (label, children, spare))
static_assert(weft::payload<tree>);

struct grow { static constexpr std::string_view name = "rules.grow";
    tree operator()(int depth) const {
        tree t{"d" + std::to_string(depth), {}, std::nullopt};
        if (depth > 0) { t.children.push_back((*this)(depth - 1)); t.children.push_back((*this)(depth - 1)); }
        return t; } };
struct size_of_tree { static constexpr std::string_view name = "rules.size";
    int operator()(const tree& t) const { int n = 1; for (auto& c : t.children) n += (*this)(c); return n; } };

constexpr auto trees = weft::workflow<"rules.trees">(step<grow> >> step<size_of_tree>);

TEST_CASE("a struct holding a vector of itself round-trips through weft::json") {
    tree t = grow{}(2);
    t.spare = std::vector<tree>{tree{"x", {}, std::nullopt}};
    const std::string text = weft::json::encode(t);
    CHECK_THAT(text, Catch::Contains(R"("label":"d1")"));
    tree back = weft::json::decode<tree>(text);
    CHECK(weft::json::encode(back) == text);
    CHECK(size_of_tree{}(back) == 7);
    REQUIRE(back.spare.has_value());
    CHECK(back.spare->at(0).label == "x");
}

TEST_CASE("a recursive payload travels between steps on local and through the step table") {
    weft::client<weft::local> client;
    CHECK(client.run_sync(trees, 3) == 15);
    CHECK(run_table(trees, 3).as_int64() == 15);
}

// ---- payload detection ---------------------------------------------------------------------------
struct partly { long id; std::string note; };
BOOST_DESCRIBE_STRUCT(partly, (), (id))
struct fully { long id; std::string note; std::vector<int> values{1, 2}; };
BOOST_DESCRIBE_STRUCT(fully, (), (id, note, values))
struct with_ctor { with_ctor() = default; long id = 0; std::string note; };  // not an aggregate: not counted
BOOST_DESCRIBE_STRUCT(with_ctor, (), (id))
static_assert(!weft::payload<partly>, "a field left out of BOOST_DESCRIBE_STRUCT is detected");
static_assert(weft::payload<fully>);
static_assert(weft::payload<with_ctor>, "documented limit: only aggregates are counted");

// ---- policies at the edges of their ranges, and names -------------------------------------------
struct urgent { static constexpr std::string_view name = "rules/urgent-v2.0_x";
    static constexpr weft::step_policy policy{
        .retry = {.max_attempts = 1, .initial = weft::milliseconds{0}, .multiplier = 1.0, .maximum = weft::milliseconds{0}},
        .timeout = weft::milliseconds{0}, .priority = 9};
    int operator()(int n) const { return n; } };

constexpr auto edges_of_ranges = weft::workflow<"rules.ranges-v1/x">(step<urgent> >> step<urgent, "rules.urgent.again">);

TEST_CASE("policies at the ends of their ranges and names with . - / _ are accepted and kept") {
    using W = decltype(edges_of_ranges);
    CHECK(W::policy(0).priority == 9);
    CHECK(W::policy(0).retry.max_attempts == 1);
    CHECK(W::names[0] == "rules/urgent-v2.0_x");
    CHECK(W::names[1] == "rules.urgent.again");
    weft::client<weft::local> client;
    CHECK(client.run_sync(edges_of_ranges, 5) == 5);
    CHECK(run_table(edges_of_ranges, 5).as_int64() == 5);
}

}  // namespace
