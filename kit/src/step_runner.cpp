#include <weft/kit/step_runner.hpp>

#include <cstdlib>
#include <cxxabi.h>
#include <typeinfo>

namespace weft::kit {

std::string current_exception_type() {
    const std::type_info* t = abi::__cxa_current_exception_type();
    if (!t) return "unknown";
    int status = 0;
    char* name = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
    std::string s = status == 0 && name ? name : t->name();
    std::free(name);
    return s;
}

step_outcome run_step(const erased_step& step, const json::array& args, const step_context& ctx) {
    step_outcome r;
    try {
        detail::step_scope scope(&ctx);
        r.output = step.invoke(args);
        r.what = step_outcome::kind::succeeded;
    } catch (const json::decode_error& e) {
        return bad_payload(e);
    } catch (const std::exception& e) {
        r.error = e.what();
        r.error_type = current_exception_type();
        r.exception = std::current_exception();
    } catch (...) {
        r.error = "a non-standard exception";
        r.error_type = current_exception_type();
        r.exception = std::current_exception();
    }
    return r;
}

step_outcome bad_payload(const json::decode_error& e) {
    step_outcome r;
    r.what = step_outcome::kind::bad_payload;
    r.error = e.what();
    r.error_type = bad_payload_type;
    r.path = e.path();
    r.expected = e.expected();
    r.got = e.got();
    return r;
}

}  // namespace weft::kit
