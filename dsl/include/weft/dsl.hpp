// Everything needed to declare workflows, and nothing that runs them: no backend, no gRPC, no Redis,
// no JSON library. Include <weft/weft.hpp> to run workflows as well.
#pragma once

#include <weft/dsl/export.hpp>
#include <weft/dsl/graph.hpp>
#include <weft/dsl/policy.hpp>
#include <weft/dsl/step.hpp>
#include <weft/dsl/workflow.hpp>
#include <weft/payload.hpp>
