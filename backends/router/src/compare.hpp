// Outputs of a run and its shadow, compared as JSON.
#pragma once

#include <string>
#include <vector>

#include <weft/json.hpp>

namespace weft::router_detail {

// Where `a` and `b` differ, as "<JSON pointer>: <a> != <b>" (at most `limit`, then "..."). Numbers
// compare by value (1 and 1.0 are equal: peers encode them differently); object key order does not
// matter. `ignore` holds JSON pointers whose values may differ; a segment `*` matches any key or
// index ("/items/*/fetched_at").
std::vector<std::string> json_differences(const json::value& a, const json::value& b,
                                          const std::vector<std::string>& ignore, std::size_t limit = 5);

// The comma-separated items of `text`, trimmed, empty ones left out.
std::vector<std::string> split_list(std::string_view text);

// The comma-separated pointers of a flag's "compareIgnore" metadata, each checked to be a JSON
// pointer; throws config_error naming the flag otherwise.
std::vector<std::string> ignore_list(std::string_view text, std::string_view flag);

}  // namespace weft::router_detail
