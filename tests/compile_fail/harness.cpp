// Harness self-check for herald_compile_fail(): no herald header involved. This fragment must fail
// with the static_assert text below; its twin harness_ok.cpp must compile. If this pair breaks, the
// compile_fail mechanism (flags, include paths, regex matching) is broken, not the library.
#include <cstdlib>
#include <string>

template <typename T>
constexpr bool always_false = false;

template <typename T>
void misuse() {
  static_assert(always_false<T>, "herald compile_fail harness: expected failure");
}

int main() {
  misuse<int>();
  return EXIT_SUCCESS;
}
