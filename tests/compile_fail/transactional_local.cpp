// A transactional step commits its writes with its result in a journal database; weft::local keeps
// results in memory, so starting such a workflow there must not compile.
#include <weft/local.hpp>
struct debit {
    static constexpr std::string_view name = "debit";
    static constexpr weft::step_policy policy{.transactional = true};
    int operator()(int cents) const { return cents; }
};
struct notify { static constexpr std::string_view name = "notify"; int operator()(int n) const { return n; } };
constexpr auto pay = weft::workflow<"pay">(weft::step<notify> >> weft::step<debit>);
int main() {
    weft::client<weft::local> client;
    return client.start(pay, 5).get();
}
