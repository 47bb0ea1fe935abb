/* fuzz_main.c — the libFuzzer entry point of one target; FPZ_TARGET names
 * its fpz_<name> function (tests/fuzz/fuzz.cmake builds one binary each). */
#include <stdlib.h>

#include "targets.h"

#ifndef FPZ_TARGET
#error "define FPZ_TARGET, e.g. -DFPZ_TARGET=fpz_cfg"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    atexit(fpz_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return FPZ_TARGET(data, size);
}
