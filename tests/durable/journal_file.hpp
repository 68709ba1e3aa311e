// A scratch journal for one test (removed with its -wal and -shm files), and a way to read it with
// SQLite itself, as an operator would with the sqlite3 shell.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

#include <sqlite3.h>
#include <unistd.h>

namespace durable_test {

struct journal_file {
    std::string path;
    explicit journal_file(const std::string& name)
        : path((std::filesystem::temp_directory_path() /
                ("weft-durable-" + name + "-" + std::to_string(::getpid()) + ".db")).string()) {
        remove();
    }
    ~journal_file() { remove(); }
    journal_file(const journal_file&) = delete;
    journal_file& operator=(const journal_file&) = delete;
    void remove() const {
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    }
};

// The rows of `sql`, one line each, columns joined by '|' (NULL as empty).
inline std::string query(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        throw std::runtime_error("cannot open " + path);
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        std::string e = sqlite3_errmsg(db);
        sqlite3_close(db);
        throw std::runtime_error(e + " in: " + sql);
    }
    std::string out;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (!out.empty()) out += '\n';
        for (int c = 0; c < sqlite3_column_count(s); ++c) {
            if (c) out += '|';
            if (auto t = sqlite3_column_text(s, c)) out += reinterpret_cast<const char*>(t);
        }
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    if (rc != SQLITE_DONE) throw std::runtime_error("query failed: " + sql);
    return out;
}

}  // namespace durable_test
