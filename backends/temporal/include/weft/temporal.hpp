// weft's Temporal backend: the only include you need.
//
//   - weft::temporal::client: a typed client for workflows served by any Temporal worker (Python, Go,
//     TypeScript, ...);
//   - weft::temporal::worker: serves weft DAGs as Temporal workflows and runs their steps as activities;
//   - weft::client<weft::temporal> and the `temporal` entry of the backend registry, so
//     WEFT_BACKEND=temporal runs any weft workflow on Temporal without code changes.
#pragma once

#include <weft/temporal/backend.hpp>
#include <weft/temporal/client.hpp>
#include <weft/temporal/errors.hpp>
#include <weft/temporal/worker.hpp>
