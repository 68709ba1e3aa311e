// What every fuzz target shares: the bytes as text, and a check that cannot be compiled out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace weft::fuzz {

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// A broken property is a finding: abort, so libFuzzer keeps the input (assert vanishes in release).
inline void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "weft fuzz: property broken: %s\n", what);
        std::abort();
    }
}

}  // namespace weft::fuzz
