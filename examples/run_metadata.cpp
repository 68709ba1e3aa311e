// Run metadata: the caller tags a run (a tenant, a request id) and every step reads the tag, on
// whichever backend runs it (WEFT_BACKEND; weft::local when unset). docs/design.md, "Run metadata".
#include <weft/any_client.hpp>

#include <iostream>
#include <string>

struct greet {
    static constexpr std::string_view name = "example.greet";
    std::string operator()(const std::string& who) const {
        // Steps started by a Python caller read its metadata the same way (its Celery header, Temporal
        // memo or Hatchet additional_metadata).
        const auto tenant = weft::this_step::metadata("tenant");
        return "hello " + who + " from " + std::string(tenant.value_or("nobody"));
    }
};
constexpr auto greeting = weft::workflow<"example_metadata">(weft::step<greet>);

int main() {
    auto client = weft::any_client::from_env();
    auto run = client.start(greeting, std::string("ada"), {.metadata = {{"tenant", "acme"}, {"request_id", "r-17"}}});
    std::cout << run.get() << "\n";
}
