# Test registration. Quick tier: every tests/test_*.c (a unit test binary) and
# every tests/*.sh script (driving build/fogpipe); scripts that need Debian's
# darknet skip with exit code 77 when it is missing.
file(GLOB FP_UNIT_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.c)
foreach(src ${FP_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE fogpipe_core)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS unit)
endforeach()

# The darknet oracle: a small program linked against Debian's libdarknet.so
# (the host's: not in cross builds).
find_library(DARKNET_LIBRARY NAMES darknet PATHS /usr/lib/darknet NO_DEFAULT_PATH)
find_path(DARKNET_INCLUDE_DIR NAMES darknet.h PATHS /usr/lib/darknet/include NO_DEFAULT_PATH)
if(DARKNET_LIBRARY AND DARKNET_INCLUDE_DIR AND EXISTS ${CMAKE_SOURCE_DIR}/tests/oracle/darknet_oracle.c
   AND NOT CMAKE_CROSSCOMPILING)
  add_executable(darknet_oracle ${CMAKE_SOURCE_DIR}/tests/oracle/darknet_oracle.c)
  # darknet.h is not warning-clean; the oracle is test tooling, not product.
  target_compile_options(darknet_oracle PRIVATE -w -fno-sanitize=all)
  target_link_options(darknet_oracle PRIVATE -fno-sanitize=all)
  target_include_directories(darknet_oracle SYSTEM PRIVATE ${DARKNET_INCLUDE_DIR})
  target_link_libraries(darknet_oracle PRIVATE ${DARKNET_LIBRARY} m)
  set_target_properties(darknet_oracle PROPERTIES BUILD_RPATH /usr/lib/darknet)
endif()

# Test tools the script tests call.
add_executable(image_to_ppm ${CMAKE_SOURCE_DIR}/tests/tools/image_to_ppm.c)
target_link_libraries(image_to_ppm PRIVATE fogpipe_core)

# Cross builds (cmake/aarch64-linux-gnu.cmake, `make cross-test`) register
# only what runs under CMAKE_CROSSCOMPILING_EMULATOR: the unit test binaries
# above and tests/cross/ (cross.cmake). The script tests run the fogpipe
# binary directly (no emulator) together with host tools (darknet, node,
# podman, curl, the test tools built here); they run in the native build only.
set(FP_SCRIPT_TESTS)
if(CMAKE_CROSSCOMPILING)
  include(${CMAKE_SOURCE_DIR}/tests/cross/cross.cmake)
else()
  file(GLOB FP_SCRIPT_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/*.sh)
endif()
foreach(script ${FP_SCRIPT_TESTS})
  get_filename_component(name ${script} NAME_WE)
  add_test(NAME ${name} COMMAND bash ${script})
  # A script that says "# ctest: slow" is left out of the ASan tier (make asan).
  file(STRINGS ${script} slow REGEX "^# ctest: slow")
  set(labels script)
  if(slow)
    set(labels "script;slow")
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77 LABELS "${labels}"
    ENVIRONMENT "FOGPIPE=$<TARGET_FILE:fogpipe>;FP_BUILD=${CMAKE_BINARY_DIR};FP_SRC=${CMAKE_SOURCE_DIR}")
endforeach()
include(${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz.cmake)
