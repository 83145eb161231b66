// Twin of harness.cpp without the misuse: must compile with the same flags (this also proves the
// response file leaves the standard library's include order intact).
#include <cstdlib>
#include <string>

template <typename T>
constexpr bool always_false = false;

template <typename T>
void use() {
  static_assert(!always_false<T>, "herald compile_fail harness: expected failure");
}

int main() {
  use<int>();
  return EXIT_SUCCESS;
}
