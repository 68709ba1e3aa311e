// Compile-time facts about workflow graphs. This translation unit only has to compile.
#include <weft/dsl.hpp>

#include <boost/describe.hpp>
#include <string>
#include <vector>

namespace t {
struct url_list { std::vector<std::string> urls; };
BOOST_DESCRIBE_STRUCT(url_list, (), (urls))

struct fetch { static constexpr std::string_view name = "fetch"; std::string operator()(const url_list&) const; };
struct parse { static constexpr std::string_view name = "parse"; int operator()(const std::string&) const; };
struct index_page { static constexpr std::string_view name = "index"; double operator()(int) const; };
struct thumb { static constexpr std::string_view name = "thumb";
               static constexpr weft::step_policy policy{.retry = {.max_attempts = 4}, .queue = "images"};
               std::string operator()(int) const; };
struct store { static constexpr std::string_view name = "store"; bool operator()(double, const std::string&) const; };
struct a { static constexpr std::string_view name = "a"; int operator()(int) const; };
struct b { static constexpr std::string_view name = "b"; int operator()(int) const; };
struct c { static constexpr std::string_view name = "c"; int operator()(int) const; };
struct d { static constexpr std::string_view name = "d"; int operator()(int, int) const; };
struct nothing_in { static constexpr std::string_view name = "tick"; int operator()() const; };
}  // namespace t

using weft::step;
using namespace t;

constexpr auto diamond = weft::workflow<"ingest">(step<fetch> >> step<parse> >> (step<index_page>, step<thumb>) >> step<store>);
using D = decltype(diamond);
static_assert(D::name == "ingest");
static_assert(D::size == 5);
static_assert(D::edges.size() == 5);
static_assert(D::sources.size() == 1 && D::names[D::sources[0]] == "fetch");
static_assert(D::sinks.size() == 1 && D::names[D::sinks[0]] == "store");
static_assert(std::is_same_v<D::input_tuple, std::tuple<url_list>>);
static_assert(std::is_same_v<D::output, bool>);
// The join's parents come in declaration order.
static_assert(D::parent_count(D::index_of("store")) == 2);
static_assert(D::names[D::parent(D::index_of("store"), 0)] == "index");
static_assert(D::names[D::parent(D::index_of("store"), 1)] == "thumb");
static_assert(D::policy(D::index_of("thumb")).retry.max_attempts == 4);
static_assert(D::policy(D::index_of("thumb")).queue == "images");
static_assert(D::policy(D::index_of("fetch")).retry.max_attempts == 1);
// A topological order puts every parent before its children.
constexpr bool topo_ok = [] {
    std::array<std::size_t, D::size> pos{};
    for (std::size_t k = 0; k < D::size; ++k) pos[D::topological_order[k]] = k;
    for (auto e : D::edges) if (pos[e.from] >= pos[e.to]) return false;
    return true;
}();
static_assert(topo_ok);

// Not series-parallel: a->c, a->d, b->d, in the named-edge form.
constexpr auto mesh = weft::workflow<"mesh">(step<a> >> step<c>, step<a> >> step<d>, step<b> >> step<d>);
using M = decltype(mesh);
static_assert(M::size == 4 && M::edges.size() == 3);
static_assert(M::sources.size() == 2 && M::sinks.size() == 2);
static_assert(std::is_same_v<M::output, std::tuple<int, int>>);
static_assert(M::names[M::parent(M::index_of("d"), 0)] == "a" && M::names[M::parent(M::index_of("d"), 1)] == "b");

// The same step type twice, under an alias.
constexpr auto twice = weft::workflow<"twice">(step<a> >> step<a, "a_again"> >> step<b>);
using T2 = decltype(twice);
static_assert(T2::size == 3 && T2::names[1] == "a_again");
static_assert(std::is_same_v<T2::step<1>, a>);

// Repeating an edge or a fragment changes nothing.
constexpr auto repeated = weft::workflow<"rep">(step<a> >> step<b>, step<a> >> step<b>);
static_assert(decltype(repeated)::edges.size() == 1);

// A single step, and a source that takes nothing.
static_assert(decltype(weft::workflow<"one">(step<a>))::size == 1);
static_assert(std::is_same_v<decltype(weft::workflow<"tick">(step<nothing_in> >> step<b>))::input_tuple, std::tuple<>>);

// Retry backoff.
constexpr weft::retry_policy rp{.max_attempts = 5, .initial = weft::milliseconds{100}, .multiplier = 2.0, .maximum = weft::milliseconds{300}};
static_assert(rp.delay_before(2) == weft::milliseconds{100});
static_assert(rp.delay_before(3) == weft::milliseconds{200});
static_assert(rp.delay_before(4) == weft::milliseconds{300});

// Declaring workflows pulls in no JSON library, gRPC or Redis client.
#if defined(BOOST_JSON_VALUE_HPP) || defined(GRPCPP_GRPCPP_H) || defined(HIREDIS_H) || defined(RAPIDJSON_RAPIDJSON_H_)
#error "a DSL header included a backend or JSON header"
#endif



// A class with private described members would lose them on the wire: not a payload.
namespace t {
class hidden {
    int secret = 0;
public:
    int shown = 0;
    BOOST_DESCRIBE_CLASS(hidden, (), (shown), (), (secret))
};
}  // namespace t
static_assert(!weft::payload<t::hidden>);
int main() {}
