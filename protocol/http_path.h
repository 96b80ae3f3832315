// Request-target helpers: split, percent-decode, query parameters, static-file path sanitising.
// Rule: a static path that could name anything outside the served folder is refused, never repaired.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace roomcast::protocol {

// Splits "/a/b?x=1" into path "/a/b" and query "x=1" (no '?').
void split_target(std::string_view target, std::string_view* path, std::string_view* query);

// Decodes %XX escapes (and '+' as space when plus_is_space). Returns false on a bad escape or a NUL byte.
bool percent_decode(std::string_view in, std::string* out, bool plus_is_space = false);

// Returns the decoded value of the first `name` parameter of a query string, or nullopt.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

// Maps a request path to a file name relative to the static folder ("/" -> "index.html").
// Returns nullopt for anything that is not a plain relative name: "..", ".", empty segments,
// backslashes, NUL or control bytes, before or after decoding.
std::optional<std::string> static_file_path(std::string_view path);

// Content-Type for a file name, by extension ("application/octet-stream" when unknown).
const char* content_type_for(std::string_view file_name);

}  // namespace roomcast::protocol
