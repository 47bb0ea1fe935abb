# Tests of cross builds only (included from tests/tests.cmake when
# CMAKE_CROSSCOMPILING; `make cross-test ARCH=arm64`): every tests/cross/*.sh,
# run by the host's bash, gets the target's fogpipe binary and the emulator
# that runs it (CMAKE_CROSSCOMPILING_EMULATOR), plus FP_HOST_FOGPIPE, a
# native fogpipe binary to compare with (the Makefile passes its build's;
# empty: the comparison skips, saying so).
set(FP_HOST_FOGPIPE "" CACHE FILEPATH "a native fogpipe binary the cross tests compare with")
file(GLOB FP_CROSS_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cross/*.sh)
string(REPLACE ";" " " FP_EMULATOR_CMD "${CMAKE_CROSSCOMPILING_EMULATOR}")
foreach(script ${FP_CROSS_TESTS})
  get_filename_component(name ${script} NAME_WE)
  add_test(NAME cross_${name} COMMAND bash ${script})
  set_tests_properties(cross_${name} PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 LABELS cross
    ENVIRONMENT "FOGPIPE=$<TARGET_FILE:fogpipe>;FP_EMULATOR=${FP_EMULATOR_CMD};FP_HOST_FOGPIPE=${FP_HOST_FOGPIPE};FP_SRC=${CMAKE_SOURCE_DIR}")
endforeach()
