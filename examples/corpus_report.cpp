// The quickstart: run the corpus_report workflow on the backend the configuration names (by default
// the embedded engine), print each step's progress as it happens, then the typed result.
//
//     build/examples/corpus_report [folder]        WEFT_BACKEND=local by default
#include <cstdio>
#include <iostream>
#include <weft/any_client.hpp>

#include "corpus_report.hpp"

int main(int argc, char** argv) try {
    const std::string folder = argc > 1 ? argv[1] : WEFT_EXAMPLE_CORPUS;

    std::cout << "workflow " << corpus::workflow.name << ":\n" << weft::to_mermaid(corpus::workflow) << '\n';

    auto client = weft::any_client::from_env();
    std::cout << "backend: " << client.backend() << "\n\n";

    auto run = client.start(corpus::workflow, corpus::request{folder, 6}, {.on_step = [](const weft::step_event& e) {
        std::printf("%8.2f ms  %-28.*s %-9.*s", std::chrono::duration<double, std::milli>(e.elapsed).count(),
                    static_cast<int>(e.step.size()), e.step.data(), static_cast<int>(to_string(e.state).size()),
                    to_string(e.state).data());
        if (e.attempt > 1) std::printf(" (attempt %d)", e.attempt);
        if (!e.error.empty()) std::printf(" %.*s", static_cast<int>(e.error.size()), e.error.data());
        std::printf("\n");
    }});
    const corpus::report r = run.get();

    std::cout << "\n" << r.index.titles.size() << " documents, " << r.words.total_words << " words, "
              << r.words.distinct_words << " distinct (without stop words)\n\nmost frequent words:\n";
    for (auto& w : r.words.top) std::printf("  %-12s %d\n", w.word.c_str(), w.count);
    std::cout << "\nwords per sentence:\n";
    for (auto& d : r.reading.per_document)
        std::printf("  %-22s %5.1f  (%s)\n", d.name.c_str(), d.words_per_sentence, r.index.titles.at(d.name).c_str());
    std::printf("  %-22s %5.1f\n\nhardest to read: %s\n", "average", r.reading.average_words_per_sentence,
                r.hardest_to_read.c_str());
    return 0;
} catch (const std::exception& e) {
    std::cerr << e.what() << '\n';
    return 1;
}
