// Shared helpers of the protocol fuzzers: an always-on check macro and the chunk splitter.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

// A failed invariant prints where and why, then aborts so libFuzzer saves the input as crash-*.
#define FUZZ_CHECK(cond, ...)                                                           \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "\nINVARIANT FAILED %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                \
      std::fprintf(stderr, "\n");                                                       \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace fuzz {

// Chunk sizes chosen by the fuzzer: the stream is cut into pieces of size a, b, a, b, ...
// (0 means "all that is left"). Inputs start with the two size bytes, so a seed is "\0\0" + stream.
struct Splitter {
  size_t a = 0, b = 0;
  bool second = false;
  size_t next(size_t left) {
    size_t n = second ? b : a;
    second = !second;
    if (n == 0 || n > left) n = left;
    return n;
  }
};

// Strict UTF-8 check written independently of the code under test (RFC 3629: no overlongs,
// no surrogates, nothing above U+10FFFF).
inline bool strict_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
    i += len;
  }
  return true;
}

// Hex of up to max bytes, for messages.
inline void print_hex(const char* what, const void* p, size_t n, size_t max = 64) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  std::fprintf(stderr, "  %s (%zu bytes): ", what, n);
  for (size_t i = 0; i < n && i < max; i++) std::fprintf(stderr, "%02x", b[i]);
  std::fprintf(stderr, n > max ? "...\n" : "\n");
}

}  // namespace fuzz
