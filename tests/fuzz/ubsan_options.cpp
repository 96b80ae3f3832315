// Default sanitizer options of every fuzzer: UBSan reports are fatal (pointer-overflow is built
// recoverable only so that ubsan.supp can silence rapidjson 1.1.0's known report), with stacks.
extern "C" const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1:suppressions=" FUZZ_UBSAN_SUPP;
}
