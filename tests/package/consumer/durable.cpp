// A consumer of weft::durable through the public API only: the typed client and any_client run the
// workflow on a journal in the temp directory, and a second client reads the run back by its id.
#include <weft/any_client.hpp>
#include <weft/durable.hpp>

#include <filesystem>
#include <unistd.h>

#include "common.hpp"

int main() {
    const char* me = "consumer_durable";
    const std::string journal =
        (std::filesystem::temp_directory_path() / ("weft-consumer-" + std::to_string(::getpid()) + ".db")).string();
    bool ok = true;
    {
        std::string id;
        {
            weft::client<weft::durable> typed(weft::durable::options{.journal = journal});
            auto run = typed.start(consumer::greeting, std::string("weft"));
            ok &= consumer::check(run.get() == "hello weft!", me, "the typed client's run is wrong");
            id = run.id();
        }
        weft::client<weft::durable> again(weft::durable::options{.journal = journal});
        ok &= consumer::check(again.attach(consumer::greeting, id).get() == "hello weft!", me, "attach by id is wrong");
        auto configured = weft::any_client(
            weft::config::parse("backend = durable\n[durable]\njournal = " + journal + "\n", "consumer.conf"));
        ok &= consumer::check(configured.backend() == "durable", me, "any_client with backend = durable is not durable");
        ok &= consumer::check(configured.start(consumer::greeting, std::string("you")).get() == "hello you!", me,
                              "any_client's run is wrong");
    }
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(journal + suffix);
    ok &= consumer::check(consumer::local_runs(), me, "the local run is wrong");
    return ok ? 0 : 1;
}
