// A scratch journal for one test, and a way to read it as an operator would (the sqlite3 shell, psql).
//
// By default a SQLite file in the temp directory (removed with its -wal and -shm files). With
// WEFT_TEST_DURABLE_JOURNAL=postgres the same tests run on PostgreSQL: each journal is a database of
// its own on the server WEFT_POSTGRES_URL names (scripts/with-services --need postgres sets it),
// dropped afterwards. Test cases tagged [sqlite] are about the file alone and are not run so.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

namespace durable_test {

inline bool postgres() {
    const char* v = std::getenv("WEFT_TEST_DURABLE_JOURNAL");
    return v && std::string(v) == "postgres";
}

// The server's URL, with its database replaced by `database`.
inline std::string postgres_url(const std::string& database) {
    const char* base = std::getenv("WEFT_POSTGRES_URL");
    if (!base || !*base)
        throw std::runtime_error("WEFT_POSTGRES_URL is not set: run this test through `scripts/with-services --need postgres` "
                                 "(start the server with: scripts/services up postgres)");
    std::string url = base;
    const auto start = url.find('/', url.find("://") + 3);
    const auto end = url.find('?', start);
    return url.substr(0, start + 1) + database + (end == std::string::npos ? "" : url.substr(end));
}

namespace detail {
// Runs `sql` on the PostgreSQL URL; the rows as query() gives them.
inline std::string pg_query(const std::string& url, const std::string& sql) {
    PGconn* c = PQconnectdb(url.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
        std::string e = PQerrorMessage(c);
        PQfinish(c);
        throw std::runtime_error("cannot connect to " + url + ": " + e);
    }
    PQclear(PQexec(c, "SET search_path = weft_durable, public; SET client_min_messages = warning"));
    PGresult* r = PQexec(c, sql.c_str());
    const auto status = PQresultStatus(r);
    std::string out;
    if (status == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); ++i) {
            if (i) out += '\n';
            for (int col = 0; col < PQnfields(r); ++col) {
                if (col) out += '|';
                out += PQgetvalue(r, i, col);
            }
        }
    }
    const std::string error = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) throw std::runtime_error(error + " in: " + sql);
    return out;
}

// The SQLite functions the tests' queries use, for PostgreSQL.
constexpr const char* sqlite_compat = R"sql(
CREATE FUNCTION ifnull(text, text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT coalesce($1, $2)';
CREATE FUNCTION group_concat_step(text, text, text) RETURNS text LANGUAGE sql IMMUTABLE
  AS 'SELECT CASE WHEN $2 IS NULL THEN $1 WHEN $1 IS NULL THEN $2 ELSE $1 || $3 || $2 END';
CREATE FUNCTION group_concat_step(text, text) RETURNS text LANGUAGE sql IMMUTABLE
  AS 'SELECT group_concat_step($1, $2, '','')';
CREATE AGGREGATE group_concat(text, text) (SFUNC = group_concat_step, STYPE = text);
CREATE AGGREGATE group_concat(text) (SFUNC = group_concat_step, STYPE = text);
)sql";
}  // namespace detail

struct journal_file {
    std::string path;  // what durable.journal is set to: the file, or the database's URL
    std::string database;
    explicit journal_file(const std::string& name) {
        if (postgres()) {
            database = "weft_durable_" + name + "_" + std::to_string(::getpid());
            remove();
            detail::pg_query(postgres_url("postgres"), "CREATE DATABASE " + database);
            path = postgres_url(database);
            detail::pg_query(path, detail::sqlite_compat);
            return;
        }
        path = (std::filesystem::temp_directory_path() / ("weft-durable-" + name + "-" + std::to_string(::getpid()) + ".db")).string();
        remove();
    }
    ~journal_file() {
        try {
            remove();
        } catch (const std::exception&) {
        }
    }
    journal_file(const journal_file&) = delete;
    journal_file& operator=(const journal_file&) = delete;
    void remove() const {
        if (!database.empty()) {
            detail::pg_query(postgres_url("postgres"), "DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
            return;
        }
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    }
};

// The rows of `sql`, one line each, columns joined by '|' (NULL as empty).
inline std::string query(const std::string& path, const std::string& sql) {
    if (path.starts_with("postgresql://") || path.starts_with("postgres://")) return detail::pg_query(path, sql);
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
