// weft's Temporal backend: the only include you need.
//
// Today: weft::temporal::client, a typed client for workflows served by any Temporal worker (Python,
// Go, TypeScript, ...). Next: the workers that run a weft DAG as a Temporal workflow, and with them the
// `temporal` entry of the backend registry (docs/temporal.md says what it needs).
#pragma once

#include <weft/temporal/client.hpp>
#include <weft/temporal/errors.hpp>
