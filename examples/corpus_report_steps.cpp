// The step implementations of corpus_report.hpp: plain C++, no weft types in sight.
#include "corpus_report.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace corpus {

namespace {
std::vector<std::string> words_of(const std::string& text) {
    std::vector<std::string> out;
    std::string w;
    for (char c : text) {
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '\'') {
            w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        } else if (!w.empty()) {
            out.push_back(std::move(w));
            w.clear();
        }
    }
    if (!w.empty()) out.push_back(std::move(w));
    return out;
}

bool is_stop_word(const std::string& w) {
    static const char* stop[] = {"the", "a", "an", "and", "of", "to", "in", "on", "for", "was", "were", "is",
                                 "are", "at", "by", "this", "that", "their", "they", "two", "more", "than",
                                 "but", "most", "some", "will", "after", "before", "need", "needs", "with", "it"};
    return std::find(std::begin(stop), std::end(stop), w) != std::end(stop) || w.size() < 3;
}
}  // namespace

documents scan::operator()(const request& r) const {
    namespace fs = std::filesystem;
    if (!fs::is_directory(r.directory)) throw std::runtime_error("not a directory: " + r.directory);
    documents out{{}, r.top_words};
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(r.directory))
        if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (auto& p : files) {
        std::ifstream in(p);
        if (!in) throw std::runtime_error("cannot read " + p.string());
        document d{p.filename().string(), {}, {}};
        std::getline(in, d.title);
        std::stringstream rest;
        rest << in.rdbuf();
        d.body = rest.str();
        out.items.push_back(std::move(d));
    }
    if (out.items.empty()) throw std::runtime_error("no .txt files in " + r.directory);
    return out;
}

frequencies count_words::operator()(const documents& docs) const {
    std::unordered_map<std::string, int> counts;
    frequencies f;
    for (auto& d : docs.items)
        for (auto& w : words_of(d.body)) {
            ++f.total_words;
            if (!is_stop_word(w)) ++counts[w];
        }
    f.distinct_words = static_cast<int>(counts.size());
    for (auto& [w, n] : counts) f.top.push_back({w, n});
    std::sort(f.top.begin(), f.top.end(), [](auto& a, auto& b) { return a.count != b.count ? a.count > b.count : a.word < b.word; });
    if (f.top.size() > static_cast<std::size_t>(docs.top_words)) f.top.resize(docs.top_words);
    return f;
}

readability measure_readability::operator()(const documents& docs) const {
    readability r;
    double sum = 0;
    for (auto& d : docs.items) {
        int sentences = static_cast<int>(std::count_if(d.body.begin(), d.body.end(), [](char c) { return c == '.' || c == '!' || c == '?'; }));
        int words = static_cast<int>(words_of(d.body).size());
        double wps = sentences ? static_cast<double>(words) / sentences : words;
        r.per_document.push_back({d.name, sentences, wps});
        sum += wps;
    }
    r.average_words_per_sentence = r.per_document.empty() ? 0 : sum / r.per_document.size();
    return r;
}

title_index index_titles::operator()(const documents& docs) const {
    title_index t;
    for (auto& d : docs.items) t.titles[d.name] = d.title;
    return t;
}

report compile_report::operator()(const frequencies& f, const readability& r, const title_index& i) const {
    report out{f, r, i, {}};
    auto hardest = std::max_element(r.per_document.begin(), r.per_document.end(),
                                    [](auto& a, auto& b) { return a.words_per_sentence < b.words_per_sentence; });
    if (hardest != r.per_document.end()) out.hardest_to_read = i.titles.at(hardest->name);
    return out;
}

}  // namespace corpus
