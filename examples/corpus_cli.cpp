// The quickstart as an operator's tool: the same corpus_report workflow behind weft's command line.
//
//     build/examples/corpus run corpus_report --input '{"directory": "examples/data/corpus"}'
//     WEFT_BACKEND=celery build/examples/corpus worker --concurrency 4 --metrics-address 127.0.0.1:9464
//     build/examples/corpus describe corpus_report --format mermaid
//
// The backends it can pick are the ones it includes and links (docs/cli.md).
#include <weft/cli.hpp>
#include <weft/weft.hpp>
#if WEFT_EXAMPLE_CELERY
#include <weft/celery.hpp>
#endif
#if WEFT_EXAMPLE_TEMPORAL
#include <weft/temporal.hpp>
#endif
#if WEFT_EXAMPLE_HATCHET
#include <weft/hatchet.hpp>
#endif
#if WEFT_EXAMPLE_DURABLE
#include <weft/durable.hpp>
#endif
#if WEFT_EXAMPLE_ROUTER
#include <weft/router.hpp>  // backend = router: each run to one of the others, by a flag (docs/migration.md)
#endif

#include "corpus_report.hpp"

int main(int argc, char** argv) { return weft::cli::main(argc, argv, corpus::workflow); }
