// The router's flag engine: flag files in flagd's JSON format (https://flagd.dev/reference/flag-definitions/),
// evaluated in process with the semantics of the official flagd evaluator (the Python flagd-core package
// is the reference; docs/flags.md says where weft is stricter and where flagd's docs differ).
//
//     auto set = weft::flags::flag_set::parse(text, "flags.json");
//     auto e = set.evaluate("weft.ingest", {.targeting_key = run_key, .attributes = {{"tenant", "acme"}}});
//     // e.variant == "temporal", e.reason == "TARGETING_MATCH"
//
// Parsing checks everything it can (shapes, operators, fractional's arguments, $ref evaluators), so an
// evaluation fails only on what the context brings (a division by zero, a variant name computed from it).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace weft::flags {

// flagd's evaluation context.
struct context {
    std::string targeting_key;         // "targetingKey"; empty: none
    boost::json::object attributes;    // any other context fields (tenant, region, ...)
};

struct evaluation {
    std::string flag_key;
    boost::json::value value;          // the chosen variant's value (null when none)
    std::string variant;               // its name; empty when none
    std::string reason;                // STATIC, TARGETING_MATCH, DEFAULT, DISABLED, ERROR
    std::string error_code;            // FLAG_NOT_FOUND, PARSE_ERROR, TYPE_MISMATCH, GENERAL; empty when ok
    std::string error_message;
    std::string why;                   // for a human: which rule decided
};

// A flag file that cannot be used: "<origin>:<line>:<column>: <reason>".
class flag_error : public std::runtime_error {
public:
    flag_error(std::string origin, std::size_t line, std::size_t column, std::string reason);
    const std::string& origin() const noexcept { return origin_; }
    std::size_t line() const noexcept { return line_; }
    std::size_t column() const noexcept { return column_; }
    const std::string& reason() const noexcept { return reason_; }

private:
    std::string origin_;
    std::size_t line_, column_;
    std::string reason_;
};

namespace detail {
struct flag;
}

// The flags of one file, immutable once parsed (share it between threads freely).
class flag_set {
public:
    static flag_set parse(std::string_view text, std::string_view origin);   // throws flag_error
    evaluation evaluate(std::string_view flag_key, const context&) const;
    std::vector<std::string> keys() const;                                  // sorted
    const boost::json::object* metadata(std::string_view flag_key) const;   // the flag's "metadata", if any
    const boost::json::object& set_metadata() const;                        // the file's top-level "metadata"
    std::vector<std::string> variants(std::string_view flag_key) const;     // variant names, sorted

    flag_set(flag_set&&) noexcept;
    flag_set& operator=(flag_set&&) noexcept;
    ~flag_set();

private:
    flag_set();
    struct impl;
    std::unique_ptr<impl> impl_;
};

// A flag file that is reloaded when it changes, without a restart. current() checks stat() (mtime in
// ns, size, inode) at most every `poll`, lazily (no thread). A file that fails to parse, or that
// `validate(old, next)` refuses (a non-empty reason), is rejected: the rules in force stay in force,
// the error is logged (event "flags.rejected", level error) and kept for last_error(). A reload that
// succeeds logs "flags.reloaded". The first load throws flag_error instead.
class flag_file {
public:
    struct options {
        std::chrono::milliseconds poll{500};
        std::function<std::string(const flag_set& old, const flag_set& next)> validate;
    };
    explicit flag_file(std::string path);   // (a default argument `options = {}` does not compile for a nested struct)
    flag_file(std::string path, options);
    std::shared_ptr<const flag_set> current();   // thread-safe
    std::string last_error() const;
    const std::string& path() const { return path_; }

    struct file_id {
        std::int64_t mtime_ns = 0;
        std::int64_t size = -1;
        std::uint64_t inode = 0;
        bool operator==(const file_id&) const = default;
    };

private:
    void check();

    std::string path_;
    options options_;
    mutable std::mutex mutex_;
    std::shared_ptr<const flag_set> current_;
    std::chrono::steady_clock::time_point next_check_;
    file_id seen_;
    std::string last_error_;
};

// A flag evaluated remotely with the OpenFeature Remote Evaluation Protocol (OFREP): POST
// <base>/ofrep/v1/evaluate/flags/{key} with {"context": {...}}. A success reads {key, value, reason,
// variant, metadata}; an error {key, errorCode, errorDetails}, or the HTTP status when the body has
// none. Never throws: an unreachable server is reason ERROR, error_code GENERAL, saying why.
// Plain HTTP only (cpp-httplib as weft builds it has no TLS); one connection per evaluation.
class ofrep_source {
public:
    struct options {
        std::chrono::milliseconds timeout{1000};                    // connect, and then read
        std::vector<std::pair<std::string, std::string>> headers;   // e.g. {"Authorization", "Bearer ..."}
    };
    explicit ofrep_source(std::string base_url);   // "http://127.0.0.1:8016" or ".../prefix"
    ofrep_source(std::string base_url, options);
    evaluation evaluate(std::string_view flag_key, const context&) const;
    const std::string& base_url() const { return base_url_; }

private:
    std::string base_url_;
    std::string host_;   // scheme://host:port
    std::string prefix_; // the path before /ofrep, without a trailing slash
    options options_;
};

}  // namespace weft::flags
