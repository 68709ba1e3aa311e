// Which workflow shapes the Celery backend lowers, and to which stages (weft/celery/lowering.hpp).
#include <catch2/catch.hpp>

#include <weft/celery/lowering.hpp>
#include <weft/dsl.hpp>

using weft::step;

namespace {
struct a { static constexpr std::string_view name = "a"; int operator()(int x) const { return x; } };
struct b { static constexpr std::string_view name = "b"; int operator()(int x) const { return x; } };
struct c { static constexpr std::string_view name = "c"; int operator()(int x) const { return x; } };
struct d { static constexpr std::string_view name = "d"; int operator()(int x, int y) const { return x + y; } };
struct e { static constexpr std::string_view name = "e"; int operator()(int x) const { return x; } };

template <class W>
constexpr weft::celery_wire::lowering lower(W) {
    return weft::celery_wire::lower_to_stages(W::size, W::topological_order, [](std::size_t i) { return W::parent_count(i); },
                                              [](std::size_t i, std::size_t k) { return W::parent(i, k); });
}

constexpr auto chain = weft::workflow<"chain">(step<a> >> step<b> >> step<c>);
constexpr auto diamond = weft::workflow<"diamond">(step<a> >> (step<b>, step<c>) >> step<d> >> step<e>);
constexpr auto fan_in = weft::workflow<"fan_in">((step<b>, step<c>) >> step<d>);
constexpr auto fan_out = weft::workflow<"fan_out">(step<a> >> (step<b>, step<c>));
// b feeds d, and a feeds both b and d: d's parents are not one stage.
constexpr auto skip = weft::workflow<"skip">(step<a> >> step<b> >> step<d>, step<a> >> step<d>);
// Two parallel stages in a row: group followed by group has no canvas form.
struct f { static constexpr std::string_view name = "f"; int operator()(int x, int y) const { return x * y; } };
constexpr auto grid = weft::workflow<"grid">((step<b>, step<c>) >> step<d>, (step<b>, step<c>) >> step<f>);

// Compile-time facts: the check runs in constant evaluation (client<celery> static_asserts on it).
static_assert(lower(chain).ok && lower(diamond).ok && lower(fan_in).ok && lower(fan_out).ok);
static_assert(!lower(skip).ok && !lower(grid).ok);
}  // namespace

TEST_CASE("a chain lowers to one step per stage") {
    auto l = lower(chain);
    REQUIRE(l.stages.size() == 3);
    for (auto& s : l.stages) CHECK(s.size() == 1);
}

TEST_CASE("a fan-out followed by a join lowers to a parallel stage between single steps") {
    auto l = lower(diamond);
    REQUIRE(l.stages.size() == 4);
    CHECK(l.stages[0].size() == 1);
    CHECK(l.stages[1].size() == 2);
    CHECK(l.stages[2].size() == 1);
    CHECK(diamond.names[l.stages[2][0]] == "d");
}

TEST_CASE("a step fed by only part of the previous stage is named as the culprit") {
    auto l = lower(skip);
    REQUIRE(!l.ok);
    CHECK(skip.names[l.culprit] == "d");
    auto g = lower(grid);
    REQUIRE(!g.ok);
    CHECK((grid.names[g.culprit] == "d" || grid.names[g.culprit] == "f"));
}
