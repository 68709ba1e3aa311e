// The quickstart workflow: read a folder of text files, analyse them three ways at once, and join the
// results into one report. Declared in a header that includes only the DSL, so any program or worker
// can share it, whatever backend runs it.
#pragma once

#include <map>
#include <string>
#include <vector>
#include <weft/dsl.hpp>

namespace corpus {

using namespace std::chrono_literals;

struct request {
    std::string directory;
    int top_words = 8;
};
BOOST_DESCRIBE_STRUCT(request, (), (directory, top_words))

struct document {
    std::string name;
    std::string title;  // the first line
    std::string body;
};
BOOST_DESCRIBE_STRUCT(document, (), (name, title, body))

struct documents {
    std::vector<document> items;
    int top_words = 8;
};
BOOST_DESCRIBE_STRUCT(documents, (), (items, top_words))

struct word_count {
    std::string word;
    int count = 0;
};
BOOST_DESCRIBE_STRUCT(word_count, (), (word, count))

struct frequencies {
    std::vector<word_count> top;
    int total_words = 0;
    int distinct_words = 0;
};
BOOST_DESCRIBE_STRUCT(frequencies, (), (top, total_words, distinct_words))

struct document_readability {
    std::string name;
    int sentences = 0;
    double words_per_sentence = 0;
};
BOOST_DESCRIBE_STRUCT(document_readability, (), (name, sentences, words_per_sentence))

struct readability {
    std::vector<document_readability> per_document;
    double average_words_per_sentence = 0;
};
BOOST_DESCRIBE_STRUCT(readability, (), (per_document, average_words_per_sentence))

struct title_index {
    std::map<std::string, std::string> titles;  // file name -> title
};
BOOST_DESCRIBE_STRUCT(title_index, (), (titles))

struct report {
    frequencies words;
    readability reading;
    title_index index;
    std::string hardest_to_read;
};
BOOST_DESCRIBE_STRUCT(report, (), (words, reading, index, hardest_to_read))

// Reading files can fail transiently (network mounts): retry with backoff.
struct scan {
    static constexpr std::string_view name = "corpus.scan";
    static constexpr weft::step_policy policy{
        .retry = {.max_attempts = 3, .initial = 100ms, .multiplier = 2.0, .maximum = 1s}, .timeout = 30s};
    documents operator()(const request& r) const;
};

struct count_words {
    static constexpr std::string_view name = "corpus.count_words";
    static constexpr weft::step_policy policy{.timeout = 30s};
    frequencies operator()(const documents& docs) const;
};

struct measure_readability {
    static constexpr std::string_view name = "corpus.measure_readability";
    static constexpr weft::step_policy policy{.timeout = 30s};
    readability operator()(const documents& docs) const;
};

struct index_titles {
    static constexpr std::string_view name = "corpus.index_titles";
    title_index operator()(const documents& docs) const;
};

// The join: one parameter per parent, in the order the parents are declared below.
struct compile_report {
    static constexpr std::string_view name = "corpus.compile_report";
    report operator()(const frequencies& f, const readability& r, const title_index& i) const;
};

using weft::step;
inline constexpr auto workflow = weft::workflow<"corpus_report">(
    step<scan> >> (step<count_words>, step<measure_readability>, step<index_titles>) >> step<compile_report>);

}  // namespace corpus
