// The only include needed to declare workflows and run them on the embedded engine.
// Backends that talk to servers have their own headers: <weft/celery.hpp>, <weft/temporal.hpp>,
// <weft/hatchet.hpp>; the configurable client is <weft/any_client.hpp>.
#pragma once

#include <weft/dsl.hpp>
#include <weft/local.hpp>
#include <weft/run.hpp>
#include <weft/this_step.hpp>
