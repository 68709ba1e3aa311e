// What a step of the run-metadata tests returns, on every backend: the tenant it reads, and every
// entry as "k=v;" in key order, so one expected string checks the whole map.
#pragma once

#include <string>

#include <weft/this_step.hpp>

namespace metadata_text {

inline std::string tenant() { return std::string(weft::this_step::metadata("tenant").value_or("<none>")); }

inline std::string entries() {
    std::string s;
    for (const auto& [k, v] : weft::this_step::metadata()) s += k + "=" + v + ";";
    return s;
}

}  // namespace metadata_text
