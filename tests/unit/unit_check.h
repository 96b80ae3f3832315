// Shared checks of the cmocka units: EXPECT reports a failing row and goes on, so a table shows every
// failing row at once (the teardown then fails the test); REQUIRE stops the test.
#pragma once
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
extern "C" {
#include <cmocka.h>
}

static int g_failures = 0;
#define EXPECT(cond, fmt, ...)                                                                   \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      g_failures++;                                                                              \
      print_error("%s:%d: %s: " fmt "\n", __FILE__, __LINE__, #cond, ##__VA_ARGS__);           \
    }                                                                                            \
  } while (0)
#define REQUIRE(cond, fmt, ...)                                                                  \
  do {                                                                                           \
    if (!(cond)) fail_msg("%s:%d: %s: " fmt, __FILE__, __LINE__, #cond, ##__VA_ARGS__);       \
  } while (0)
static inline int reset_failures(void**) {
  g_failures = 0;
  return 0;
}
static inline int check_failures(void**) {
  if (g_failures) print_error("%d check(s) failed\n", g_failures);
  return g_failures ? -1 : 0;
}
#define TEST(f) cmocka_unit_test_setup_teardown(f, reset_failures, check_failures)

// xorshift64*: a deterministic generator for the model-based random tests, seeded per test.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};
