# Fuzzing (docs/reliability.md). Included from tests/tests.cmake.
#
# Always: tests/test_fuzz_replay.c (registered like every tests/test_*.c)
# also gets the target bodies and cli/detect_out.c, and replays every file
# of tests/fuzz/corpus/<target>/ and tests/fuzz/regress/<target>/.
#
# With -DFP_FUZZ=ON (clang only, together with -DFP_SANITIZE=ON): the library
# is also built with -fsanitize=fuzzer-no-link, and one libFuzzer binary
# fuzz_<target> per parser is added. `make fuzz` does all of that in
# build-fuzz/ with CC=clang-14; the regular gcc build is not affected.
set(FPZ_SRC ${CMAKE_SOURCE_DIR}/tests/fuzz)
set(FPZ_NAMES cfg weights tfjs plan cluster frame image result http key stagew)

if(TARGET test_fuzz_replay)
  target_sources(test_fuzz_replay PRIVATE ${FPZ_SRC}/targets.c ${CMAKE_SOURCE_DIR}/cli/detect_out.c)
  target_include_directories(test_fuzz_replay PRIVATE ${FPZ_SRC} ${CMAKE_SOURCE_DIR}/cli)
  target_compile_definitions(test_fuzz_replay PRIVATE FPZ_DIR="${FPZ_SRC}")
endif()

# clang before 15 has no x86 _Float16: src/transport/codec.c then uses __fp16,
# whose conversions are calls into compiler-rt's builtins (__gnu_h2f_ieee),
# which libgcc lacks. Any such clang build (build-fuzz is one) links them.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND CMAKE_C_COMPILER_VERSION VERSION_LESS 15)
  execute_process(COMMAND ${CMAKE_C_COMPILER} --rtlib=compiler-rt -print-libgcc-file-name
                  OUTPUT_VARIABLE FPZ_CLANG_BUILTINS OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(EXISTS "${FPZ_CLANG_BUILTINS}")
    target_link_libraries(fogpipe_core PUBLIC ${FPZ_CLANG_BUILTINS})
  else()
    message(WARNING "no compiler-rt builtins for ${CMAKE_C_COMPILER}: fp16 conversions will not link (libclang-rt-14-dev)")
  endif()
endif()

option(FP_FUZZ "Build the libFuzzer targets (clang, with FP_SANITIZE=ON)" OFF)
if(FP_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "FP_FUZZ=ON needs clang (CC=clang-14); this is ${CMAKE_C_COMPILER_ID}")
  endif()
  if(NOT FP_SANITIZE)
    message(FATAL_ERROR "FP_FUZZ=ON needs FP_SANITIZE=ON (ASan+UBSan), as `make fuzz` passes")
  endif()
  # Coverage instrumentation for the library; ASan/UBSan come from FP_SANITIZE.
  target_compile_options(fogpipe_core PRIVATE -fsanitize=fuzzer-no-link)
  add_library(fpz_targets OBJECT ${FPZ_SRC}/targets.c ${CMAKE_SOURCE_DIR}/cli/detect_out.c)
  target_compile_options(fpz_targets PRIVATE -fsanitize=fuzzer-no-link)
  target_include_directories(fpz_targets PRIVATE ${FPZ_SRC} ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/cli
                             ${CMAKE_SOURCE_DIR}/include)
  target_link_libraries(fpz_targets PRIVATE fogpipe_core)
  foreach(name ${FPZ_NAMES})
    add_executable(fuzz_${name} ${FPZ_SRC}/fuzz_main.c $<TARGET_OBJECTS:fpz_targets>)
    target_compile_definitions(fuzz_${name} PRIVATE FPZ_TARGET=fpz_${name})
    target_include_directories(fuzz_${name} PRIVATE ${FPZ_SRC})
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${name} PRIVATE fogpipe_core)
  endforeach()
endif()
