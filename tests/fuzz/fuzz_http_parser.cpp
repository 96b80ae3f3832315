// Fuzzer 1: HttpParser::feed over arbitrary bytes split at fuzzer-chosen points (see http_drive.h).
#include "http_drive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::drive_http(data, size, [](const fuzz::HttpRequest& r, bool, const char*, size_t) {
    (void)r.header("host");
  });
  return 0;
}
