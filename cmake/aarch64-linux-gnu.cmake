# aarch64-linux-gnu.cmake — cross-compiles fogpipe for arm64 (Raspberry Pi OS
# 64-bit, Debian arm64) on an amd64 Debian machine with Debian's cross
# toolchain and the arm64 -dev packages installed next to the amd64 ones
# (multiarch; scripts/setup-arm64.sh installs all of it):
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-arm64 && ctest --test-dir build-arm64     # make cross-test ARCH=arm64
#
# ctest runs the arm64 test binaries under qemu-aarch64-static (user-mode
# emulation; CMAKE_CROSSCOMPILING_EMULATOR), so no binfmt_misc registration
# is needed. tests/tests.cmake registers only what runs that way (see there).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(FP_CROSS_TRIPLET aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${FP_CROSS_TRIPLET}-gcc)
# Multiarch: find_library looks in /usr/lib/aarch64-linux-gnu (never in
# /usr/lib/x86_64-linux-gnu) and the cross C library's own root.
set(CMAKE_LIBRARY_ARCHITECTURE ${FP_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH /usr/${FP_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER) # build tools are the host's
# Libraries and headers: the arm64 ones live in the host's /usr (multiarch
# directories), so search there as well as under the root path.
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config reads only the arm64 .pc files (and the architecture-independent
# ones), never the amd64 ones in /usr/lib/x86_64-linux-gnu/pkgconfig.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${FP_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# How ctest (and try_run) run arm64 programs here. The arm64 -dev packages
# bring libc6:arm64, whose loader (/lib/ld-linux-aarch64.so.1) finds every
# arm64 library in /usr/lib/aarch64-linux-gnu by itself. Without it, only the
# cross C library exists: qemu's -L then resolves the loader and the libraries
# under /usr/aarch64-linux-gnu. (-L with libc6:arm64 present would pair the
# cross loader with the multiarch libc.so.6, two different glibc builds.)
find_program(FP_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(FP_QEMU_AARCH64)
  if(EXISTS /lib/ld-linux-aarch64.so.1)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${FP_QEMU_AARCH64})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR ${FP_QEMU_AARCH64} -L /usr/${FP_CROSS_TRIPLET})
  endif()
endif()
