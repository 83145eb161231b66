#pragma once

// What a fuzz target uses to state an invariant: a failed check prints what broke and aborts,
// which libFuzzer reports as a crash (and saves the input) and the replay driver as a failed test.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)
