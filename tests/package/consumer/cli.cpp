// A consumer of weft::cli through the installed package: the command line runs the workflow on the
// embedded engine and describes it, as `consumer_cli run greeting --input '"weft"'` would.
#include <weft/cli.hpp>

#include "common.hpp"

int main() {
    const char* me = "consumer_cli";
    char prog[] = "consumer_cli", run[] = "run", wf[] = "greeting", flag[] = "--input", in[] = "\"weft\"",
         backend[] = "--backend", local[] = "local", describe[] = "describe", format[] = "--format", dot[] = "dot";
    char* run_argv[] = {prog, run, wf, flag, in, backend, local, nullptr};
    char* describe_argv[] = {prog, describe, wf, format, dot, nullptr};
    bool ok = consumer::check(weft::cli::main(7, run_argv, consumer::greeting) == 0, me, "`run greeting` did not succeed");
    ok &= consumer::check(weft::cli::main(5, describe_argv, consumer::greeting) == 0, me, "`describe greeting` failed");
    return ok ? 0 : 1;
}
