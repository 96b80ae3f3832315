// HTTP/1.1 request-head parser: llhttp underneath, with the limits and checks roomcast adds.
// Rule: bytes in, one complete request (or an upgrade, or an error status) out; no I/O here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace roomcast::protocol {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // request-target as sent ("/rooms/x?y")
  uint8_t http_major = 0, http_minor = 0;                    // version numbers
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values as sent
  std::string body;                                          // a POST's body (Content-Length only, bounded below)
  bool keep_alive = false;                                   // llhttp's verdict for this request
  bool upgrade = false;                                      // llhttp's upgrade flag (any method)

  // Returns the first header with that lower-case name, or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

enum class HttpResult { NeedMore, Request, Upgrade, Error };

struct HttpLimits {
  size_t max_head = 16 * 1024;  // request line + headers, bytes
  size_t max_headers = 100;
  size_t max_body = 1024;       // only POST may carry a body at all
  size_t max_api_body = 64 * 1024;  // a POST to /api/... (the server API, section 9); over it: 413
};

class HttpParser {
 public:
  explicit HttpParser(HttpLimits limits = {});
  ~HttpParser();
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  // Feeds bytes; *consumed gets how many were used. Request/Upgrade: request() is complete (for
  // Upgrade the bytes after *consumed belong to the new protocol). Error: error_status() is 400/431,
  // or 413 for a POST to /api/... announcing a body over max_api_body.
  HttpResult feed(const char* data, size_t len, size_t* consumed);
  // After a Request was handled: clears it and continues with the next one (keep-alive).
  void next();
  const HttpRequest& request() const { return request_; }
  int error_status() const { return error_status_; }
  const char* error_reason() const { return error_reason_; }
  // True once any byte of a request has been seen and the request is not complete.
  bool in_progress() const { return started_; }

 private:
  struct Impl;
  HttpResult fail(int status, const char* reason);
  bool scan_head(const char* data, size_t len);

  std::unique_ptr<Impl> impl_;      // llhttp_t and its settings
  HttpLimits limits_;
  HttpRequest request_;             // the request being parsed
  std::string field_, value_;       // header being assembled across spans
  bool in_value_ = false;           // last span was a header value
  bool head_done_ = false;          // the pre-scan saw the end of the head
  bool line_started_ = false;       // the pre-scan is past the empty lines before the request line
  bool started_ = false;            // bytes of a request seen
  bool complete_ = false;           // on_message_complete fired
  bool bad_field_ = false;          // a header name was not a token
  bool body_too_large_ = false;     // an /api/ POST announced a body over max_api_body
  size_t head_bytes_ = 0;           // bytes of the head scanned so far
  uint32_t tail_ = 0;               // last bytes seen by the pre-scan, for CRLFCRLF and bare CR
  int error_status_ = 0;
  const char* error_reason_ = "";
};

}  // namespace roomcast::protocol
