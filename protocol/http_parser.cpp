// HTTP/1.1 request-head parser: llhttp underneath, with the limits and checks roomcast adds.
// Rule: every byte of a head is pre-scanned before llhttp sees it (bare CR, size), since Debian's
// llhttp 8.1.0 reads "x:\rTransfer-Encoding" as a header named "ransfer-Encoding" (CVE-2023-30589).
#include "protocol/http_parser.h"

#include <llhttp.h>

#include <cctype>
#include <cstring>

namespace roomcast::protocol {

const std::string* HttpRequest::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return &value;
  return nullptr;
}

struct HttpParser::Impl {
  llhttp_t parser;
  llhttp_settings_t settings;
};

namespace {

HttpParser* self(llhttp_t* p) { return static_cast<HttpParser*>(p->data); }

// RFC 9110 token: a header name is one, and llhttp 8.1 lets some non-token bytes through.
bool is_token(const std::string& s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (std::isalnum(c)) continue;
    if (!std::strchr("!#$%&'*+-.^_`|~", c) || c == 0) return false;
  }
  return true;
}

}  // namespace

HttpParser::HttpParser(HttpLimits limits) : impl_(std::make_unique<Impl>()), limits_(limits) {
  llhttp_settings_init(&impl_->settings);
  auto& s = impl_->settings;
  s.on_message_begin = [](llhttp_t* p) {
    self(p)->started_ = true;
    return 0;
  };
  s.on_url = [](llhttp_t* p, const char* at, size_t len) {
    self(p)->request_.target.append(at, len);
    return 0;
  };
  s.on_method = [](llhttp_t* p, const char* at, size_t len) {
    self(p)->request_.method.append(at, len);
    return 0;
  };
  s.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
    HttpParser* h = self(p);
    if (h->in_value_) {
      h->request_.headers.emplace_back(std::move(h->field_), std::move(h->value_));
      h->field_.clear();
      h->value_.clear();
      h->in_value_ = false;
    }
    for (size_t i = 0; i < len; i++) h->field_.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(at[i]))));
    return 0;
  };
  s.on_header_field_complete = [](llhttp_t* p) {
    HttpParser* h = self(p);
    if (h->request_.headers.size() + 1 > h->limits_.max_headers) return -1;
    if (!is_token(h->field_)) {
      h->bad_field_ = true;
      return -1;
    }
    return 0;
  };
  s.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
    HttpParser* h = self(p);
    h->value_.append(at, len);
    h->in_value_ = true;
    return 0;
  };
  s.on_header_value_complete = [](llhttp_t* p) {
    self(p)->in_value_ = true;
    return 0;
  };
  s.on_headers_complete = [](llhttp_t* p) {
    HttpParser* h = self(p);
    HttpRequest& r = h->request_;
    if (h->in_value_ || !h->field_.empty()) {
      r.headers.emplace_back(std::move(h->field_), std::move(h->value_));
      h->field_.clear();
      h->value_.clear();
      h->in_value_ = false;
    }
    r.http_major = p->http_major;
    r.http_minor = p->http_minor;
    r.keep_alive = llhttp_should_keep_alive(p) != 0;
    r.upgrade = p->upgrade != 0;
    // No chunked bodies, no smuggling: any Transfer-Encoding is refused.
    if (r.header("transfer-encoding")) return -1;
    if (p->content_length > 0) {
      if (r.method != "POST") return -1;
      // The server API takes JSON bodies up to max_api_body (413 beyond); other POSTs stay tiny.
      if (r.target.rfind("/api/", 0) == 0) {
        if (p->content_length > h->limits_.max_api_body) {
          h->body_too_large_ = true;
          return -1;
        }
      } else if (p->content_length > h->limits_.max_body) {
        return -1;
      }
    }
    return 0;
  };
  s.on_body = [](llhttp_t* p, const char* at, size_t len) {
    self(p)->request_.body.append(at, len);
    return 0;
  };
  s.on_message_complete = [](llhttp_t* p) {
    HttpParser* h = self(p);
    h->complete_ = true;
    // An upgrade makes llhttp return HPE_PAUSED_UPGRADE by itself; a plain request pauses here
    // so that pipelined requests are answered one at a time.
    return p->upgrade ? 0 : static_cast<int>(HPE_PAUSED);
  };
  llhttp_init(&impl_->parser, HTTP_REQUEST, &impl_->settings);
  impl_->parser.data = this;
}

HttpParser::~HttpParser() = default;

HttpResult HttpParser::fail(int status, const char* reason) {
  error_status_ = status;
  error_reason_ = reason;
  return HttpResult::Error;
}

// Pre-scans head bytes: a CR must be followed by LF, and the head must end within max_head.
// Returns false on a violation (error_status_ set).
bool HttpParser::scan_head(const char* data, size_t len) {
  for (size_t i = 0; i < len && !head_done_; i++) {
    uint8_t c = static_cast<uint8_t>(data[i]);
    if ((tail_ & 0xff) == '\r' && c != '\n') {
      fail(400, "bare CR in request head");
      return false;
    }
    if (++head_bytes_ > limits_.max_head) {
      fail(431, "request head too large");
      return false;
    }
    if (!line_started_) {
      // llhttp skips empty lines before a request line; they must not look like the end of a head.
      if (c == '\r' || c == '\n') {
        tail_ = c == '\r' ? '\r' : 0;
        continue;
      }
      line_started_ = true;
      tail_ = 0;
    }
    tail_ = (tail_ << 8) | c;
    if (tail_ == 0x0d0a0d0a) head_done_ = true;
  }
  return true;
}

HttpResult HttpParser::feed(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (error_status_) return HttpResult::Error;
  if (len > 0) started_ = true;
  if (!scan_head(data, len)) return HttpResult::Error;
  llhttp_t* p = &impl_->parser;
  llhttp_errno_t err = llhttp_execute(p, data, len);
  if (err == HPE_OK) {
    *consumed = len;
    return HttpResult::NeedMore;
  }
  const char* pos = llhttp_get_error_pos(p);
  size_t used = pos && pos >= data && pos <= data + len ? static_cast<size_t>(pos - data) : len;
  if (err == HPE_PAUSED && complete_) {
    *consumed = used;
    return HttpResult::Request;
  }
  if (err == HPE_PAUSED_UPGRADE && complete_) {
    *consumed = used;
    return HttpResult::Upgrade;
  }
  if (err == HPE_CB_HEADER_FIELD_COMPLETE)
    return bad_field_ ? fail(400, "invalid header name") : fail(431, "too many headers");
  if (err == HPE_CB_HEADERS_COMPLETE) {
    if (request_.header("transfer-encoding")) return fail(400, "Transfer-Encoding is not accepted");
    if (body_too_large_) return fail(413, "request body over 64 KiB");
    return fail(400, "a body is not accepted here");
  }
  return fail(400, llhttp_get_error_reason(p) ? llhttp_get_error_reason(p) : "malformed request");
}

void HttpParser::next() {
  request_ = HttpRequest();
  field_.clear();
  value_.clear();
  in_value_ = head_done_ = started_ = complete_ = bad_field_ = body_too_large_ = line_started_ = false;
  head_bytes_ = 0;
  tail_ = 0;
  llhttp_resume(&impl_->parser);
}

}  // namespace roomcast::protocol
