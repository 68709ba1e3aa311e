// The payload concept lives with the DSL; this path stays for existing includes.
#pragma once
#include <weft/dsl/payload.hpp>
