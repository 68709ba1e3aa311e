// The worker-side view of a workflow: each step callable with JSON arguments.
#include <catch2/catch.hpp>

#include <weft/step_table.hpp>

using weft::step;

namespace {
struct item { std::string sku; unsigned qty = 0; };
BOOST_DESCRIBE_STRUCT(item, (), (sku, qty))
struct order { std::vector<item> items; };
BOOST_DESCRIBE_STRUCT(order, (), (items))

struct count_items { static constexpr std::string_view name = "shop.count";
    static constexpr weft::step_policy policy{.retry = {.max_attempts = 5}, .queue = "cpp"};
    unsigned operator()(const order& o) const { unsigned n = 0; for (auto& i : o.items) n += i.qty; return n; } };
struct price { static constexpr std::string_view name = "shop.price"; double operator()(const order& o) const { return 2.5 * o.items.size(); } };
struct invoice { static constexpr std::string_view name = "shop.invoice";
    std::string operator()(unsigned n, double total) const {
        if (n == 0) throw std::domain_error("empty order");
        return std::to_string(n) + " items, " + std::to_string(total); } };
constexpr auto wf = weft::workflow<"shop">(step<count_items> >> step<invoice>, step<price> >> step<invoice>);

const weft::erased_step& find(std::string_view name) {
    for (auto& s : weft::step_table(wf))
        if (s.name() == name) return s;
    throw std::logic_error("no such step");
}

TEST_CASE("the step table lists every step with its wire name, policy and arity") {
    auto t = weft::step_table(wf);
    REQUIRE(t.size() == 3);
    CHECK(find("shop.count").policy().retry.max_attempts == 5);
    CHECK(find("shop.count").policy().queue == "cpp");
    CHECK(find("shop.invoice").arity() == 2);
    CHECK(t[0].workflow() == "shop");
    CHECK(t[0].graph == &weft::graph_of<decltype(wf)>);  // names and policies are read from the one graph view
}

TEST_CASE("a step called with JSON arguments returns its JSON result") {
    auto args = weft::json::parse(R"([{"items":[{"sku":"a","qty":2},{"sku":"b","qty":3}]}])").as_array();
    CHECK(find("shop.count").invoke(args).as_uint64() == 5u);
    auto join_args = weft::json::parse(R"([5, 7.5])").as_array();
    CHECK(find("shop.invoice").invoke(join_args).as_string() == "5 items, 7.500000");
}

TEST_CASE("a wrong payload names the argument and the field") {
    auto args = weft::json::parse(R"([{"items":[{"sku":"a","qty":"two"}]}])").as_array();
    try {
        find("shop.count").invoke(args);
        FAIL("should throw");
    } catch (const weft::json::decode_error& e) {
        CHECK(e.path() == "$[0].items[0].qty");
        CHECK_THAT(e.what(), Catch::Contains("expected unsigned 32-bit integer"));
    }
}

TEST_CASE("the wrong number of arguments is an error naming the step") {
    auto args = weft::json::parse("[5]").as_array();
    CHECK_THROWS_WITH(find("shop.invoice").invoke(args), Catch::Contains("an array of 2 arguments for step 'shop.invoice'"));
}

TEST_CASE("what the step throws reaches the caller") {
    auto args = weft::json::parse("[0, 1.0]").as_array();
    CHECK_THROWS_AS(find("shop.invoice").invoke(args), std::domain_error);
}
}  // namespace
