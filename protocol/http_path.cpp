// Request-target helpers: split, percent-decode, query parameters, static-file path sanitising.
// Rule: decode once, then judge the decoded segments; never re-decode.
#include "protocol/http_path.h"

namespace roomcast::protocol {

void split_target(std::string_view target, std::string_view* path, std::string_view* query) {
  size_t q = target.find('?');
  *path = target.substr(0, q);
  *query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool percent_decode(std::string_view in, std::string* out, bool plus_is_space) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); i++) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return false;
    out->push_back(c);
  }
  return true;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string key;
    if (!percent_decode(pair.substr(0, eq), &key, true) || key != name) continue;
    std::string value;
    if (eq != std::string_view::npos && !percent_decode(pair.substr(eq + 1), &value, true)) return std::nullopt;
    return value;
  }
  return std::nullopt;
}

std::optional<std::string> static_file_path(std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  std::string decoded;
  if (!percent_decode(path, &decoded)) return std::nullopt;
  if (decoded == "/") return std::string("index.html");
  std::string_view rest = std::string_view(decoded).substr(1);
  // Every segment must be a plain, non-dot name.
  size_t start = 0;
  while (start <= rest.size()) {
    size_t slash = rest.find('/', start);
    std::string_view seg = rest.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") return std::nullopt;
    for (char c : seg)
      if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return std::string(rest);
}

const char* content_type_for(std::string_view name) {
  struct Type { const char* ext; const char* type; };
  static const Type types[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".json", "application/json"},
      {".svg", "image/svg+xml"},             {".png", "image/png"},
      {".ico", "image/x-icon"},              {".txt", "text/plain; charset=utf-8"},
      {".webmanifest", "application/manifest+json"},
  };
  for (const Type& t : types) {
    std::string_view ext(t.ext);
    if (name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext) return t.type;
  }
  return "application/octet-stream";
}

}  // namespace roomcast::protocol
