// The same on a server backend's typed client: Celery's result backend is no database a step writes to.
#include <weft/celery.hpp>
struct debit {
    static constexpr std::string_view name = "debit";
    static constexpr weft::step_policy policy{.transactional = true};
    int operator()(int cents) const { return cents; }
};
constexpr auto pay = weft::workflow<"pay">(weft::step<debit>);
int main() {
    weft::client<weft::celery> client({});
    return client.start(pay, 5).get();
}
