/*
 * test.h — a tiny test harness: each tests/test_*.c defines test functions
 * and a TEST_LIST; the generated main runs them all (or the one named on
 * the command line) and prints "N passed, N failed".
 *
 *     static void test_add(void) { CHECK(1 + 1 == 2); CHECK_OK(fp_something()); }
 *     TEST_LIST = { {"add", test_add}, {NULL, NULL} };
 */
#ifndef FP_TEST_H
#define FP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fogpipe/status.h"

struct fp_test { const char *name; void (*fn)(void); };
extern const struct fp_test fp_tests[];
#define TEST_LIST const struct fp_test fp_tests[]

static int fp_test_failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            fp_test_failures++;                                                  \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            fp_test_failures++;                                                  \
        }                                                                        \
    } while (0)

#define CHECK_ERR(expr, want)                                                    \
    do {                                                                         \
        fp_status got_ = (expr);                                                 \
        if (got_ != (want)) {                                                    \
            fprintf(stderr, "  %s:%d: %s returned %s, expected %s (%s)\n", __FILE__, \
                    __LINE__, #expr, fp_status_name(got_), fp_status_name(want), \
                    fp_last_error());                                            \
            fp_test_failures++;                                                  \
        }                                                                        \
    } while (0)

#define CHECK_OK(expr) CHECK_ERR(expr, FP_OK)

/* |a-b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol)                                                    \
    do {                                                                         \
        double a_ = (a), b_ = (b);                                               \
        double s_ = fabs(b_) > 1 ? fabs(b_) : 1;                                 \
        if (!(fabs(a_ - b_) <= (tol) * s_)) {                                    \
            fprintf(stderr, "  %s:%d: %s = %.9g, expected %.9g\n", __FILE__, __LINE__, #a, a_, b_); \
            fp_test_failures++;                                                  \
        }                                                                        \
    } while (0)

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (const struct fp_test *t = fp_tests; t->name; t++) {
        if (argc > 1 && strcmp(argv[1], t->name) != 0) continue;
        int before = fp_test_failures;
        t->fn();
        if (fp_test_failures == before) {
            passed++;
            printf("ok   %s\n", t->name);
        } else {
            failed++;
            printf("FAIL %s\n", t->name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : (passed ? 0 : 1);
}

#endif /* FP_TEST_H */
