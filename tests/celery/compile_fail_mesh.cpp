// client<celery> rejects a workflow that Celery canvas cannot express (not series-parallel),
// naming the first step whose parents are not the whole previous stage.
#include <weft/celery.hpp>

struct fetch { static constexpr std::string_view name = "fetch"; int operator()(int x) const { return x; } };
struct probe { static constexpr std::string_view name = "probe"; int operator()(int x) const { return x; } };
struct left { static constexpr std::string_view name = "left"; int operator()(int x) const { return x; } };
struct right { static constexpr std::string_view name = "right"; int operator()(int a, int b) const { return a + b; } };

// fetch feeds left and right, probe feeds only right: no chain/group/chord has this shape.
constexpr auto mesh = weft::workflow<"mesh">(weft::step<fetch> >> weft::step<left>, weft::step<fetch> >> weft::step<right>,
                                             weft::step<probe> >> weft::step<right>);

int main() {
    weft::client<weft::celery> client(weft::celery::options{});
    client.start(mesh, 1);
}
