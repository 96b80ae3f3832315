// Reference-counted bytes shared by every recipient of one event (fan-out frames once).
// Rule: whoever holds a pointer holds a reference; the last unref frees.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace roomcast::server {

class SharedBuf {
 public:
  // Takes the bytes; the new buffer has one reference.
  static SharedBuf* make(std::string bytes) { return new SharedBuf(std::move(bytes)); }
  SharedBuf* ref() {
    refs_++;
    return this;
  }
  void unref() {
    if (--refs_ == 0) delete this;
  }
  const char* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }

 private:
  explicit SharedBuf(std::string bytes) : bytes_(std::move(bytes)) {}
  uint32_t refs_ = 1;   // holders of this buffer
  std::string bytes_;   // a complete WebSocket frame (or HTTP response)
};

}  // namespace roomcast::server
