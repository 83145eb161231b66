# Runs one compile-fail fragment: cmake -DCONFIG=<file> -P check.cmake
# CONFIG (written by herald_compile_fail() in tests/CMakeLists.txt) sets:
#   CXX     the compiler           RSP     response file with -std=c++20 -fsyntax-only and includes
#   SOURCE  the fragment           EXPECT  "fail" (must not compile, output must match REGEX) or "ok"
#   REGEX   the expected diagnostic (for EXPECT=fail)
cmake_minimum_required(VERSION 3.21)
if(NOT CONFIG OR NOT EXISTS "${CONFIG}")
  message(FATAL_ERROR "check.cmake: pass -DCONFIG=<file>")
endif()
include("${CONFIG}")

execute_process(
  COMMAND "${CXX}" "@${RSP}" "${SOURCE}"
  RESULT_VARIABLE result
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
set(output "${out}${err}")

if(EXPECT STREQUAL "ok")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} to compile, but the compiler said (${result}):\n${output}")
  endif()
  message(STATUS "compiles, as expected: ${SOURCE}")
else()
  if(result EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} NOT to compile, but it compiled")
  endif()
  if(NOT output MATCHES "${REGEX}")
    message(FATAL_ERROR
      "${SOURCE} failed to compile as expected, but its diagnostics do not match\n"
      "  regex: ${REGEX}\n"
      "compiler output:\n${output}")
  endif()
  message(STATUS "fails to compile with the expected diagnostic: ${SOURCE}")
endif()
