#include <weft/kit/metadata.hpp>

#include <stdexcept>
#include <string>

#include <boost/json/serialize.hpp>

namespace weft::kit {

json::object metadata_object(const run_metadata& m) {
    json::object o;
    o.reserve(m.size());
    for (const auto& [k, v] : m) o.emplace(k, v);
    return o;
}

void read_metadata(const json::object& carrier, run_metadata& out) {
    for (const auto& [k, v] : carrier) {
        const std::string_view key(k.data(), k.size());
        if (key.empty() || reserved_metadata_key(key)) continue;
        if (v.is_string())
            out.insert_or_assign(std::string(key), std::string(v.get_string()));
        else
            out.insert_or_assign(std::string(key), boost::json::serialize(v));
    }
}

void read_metadata(const json::value& carrier, std::string_view where, run_metadata& out) {
    if (carrier.is_null()) return;
    if (!carrier.is_object())
        throw std::invalid_argument("weft: the run's metadata in " + std::string(where) + " is " +
                                    json::detail::describe(carrier) + ", not an object of strings");
    read_metadata(carrier.get_object(), out);
}

}  // namespace weft::kit
