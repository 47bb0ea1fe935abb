/* test_fuzz_replay.c — replays the fuzz seed corpora and every input that
 * once crashed a fuzz target (tests/fuzz/corpus/<target>/ and
 * tests/fuzz/regress/<target>/) through the same target bodies libFuzzer
 * drives (tests/fuzz/targets.c). A regression shows up as a crash or a
 * sanitizer report (the ASan tier), or as a target that has no seeds. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fogpipe/net.h"
#include "targets.h"
#include "weights_cfg.h"
#include "test.h"

#ifndef FPZ_DIR
#error "FPZ_DIR (tests/fuzz) comes from tests/fuzz/fuzz.cmake"
#endif

static int fpz_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Feeds every regular file of FPZ_DIR/<kind>/<target> to fn, in name order;
 * returns how many. */
static int replay_dir(const char *kind, const fpz_target *t)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s/%s", FPZ_DIR, kind, t->name);
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, (size_t)cap * sizeof *names);
            if (!names) abort();
        }
        names[n] = strdup(e->d_name);
        if (!names[n]) abort();
        n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, fpz_name_cmp);
    int done = 0;
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat sb;
        FILE *f = NULL;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) f = fopen(path, "rb");
        if (f) {
            size_t len = (size_t)sb.st_size;
            uint8_t *buf = malloc(len ? len : 1);
            CHECK(buf != NULL);
            if (buf && fread(buf, 1, len, f) == len) {
                t->fn(buf, len);
                done++;
            } else {
                CHECK_MSG(0, "cannot read %s", path);
            }
            free(buf);
            fclose(f);
        }
        free(names[i]);
    }
    free(names);
    return done;
}

/* The weights seeds are binary, so they are made here rather than kept in
 * the repository (tests/fuzz/make_seeds.sh writes the same four files for
 * `make fuzz`): a valid file for the fixed cfg, its 0.1-header (32-bit
 * "seen") and transposed-flag variants, and a truncated one. */
static int replay_weights_seeds(void)
{
    char path[] = "/tmp/fpz-weights-XXXXXX";
    int fd = mkstemp(path), done = 0;
    fp_net *net = NULL;
    uint8_t *w = NULL;
    long n = 0;
    if (fd >= 0 && !fp_net_parse_cfg(fpz_weights_cfg, "w.cfg", &net) && !fp_net_init_weights_random(net, 1) &&
        !fp_net_save_weights(net, path)) {
        FILE *f = fopen(path, "rb");
        if (f && !fseek(f, 0, SEEK_END) && (n = ftell(f)) > 20 && !fseek(f, 0, SEEK_SET) && (w = malloc((size_t)n)) &&
            fread(w, 1, (size_t)n, f) == (size_t)n) {
            static const uint8_t v01[16] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0};
            static const uint8_t tr[16] = {0xe9, 3, 0, 0, 0xe9, 3, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0};
            uint8_t *v = malloc((size_t)n - 4);
            fpz_weights(w, (size_t)n);
            fpz_weights(w, 100);
            done = 2;
            for (int k = 0; v && k < 2; k++, done++) {
                memcpy(v, k ? tr : v01, 16);
                memcpy(v + 16, w + 20, (size_t)n - 20);
                fpz_weights(v, (size_t)n - 4);
            }
            free(v);
        }
        if (f) fclose(f);
    }
    CHECK_MSG(done == 4, "could not make the weights seeds: %s", fp_last_error());
    free(w);
    fp_net_destroy(net);
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    return done;
}

/* Stage weights blobs (binary too): two ranges of the fixed cfg, each
 * whole, truncated, and with a parameter made NaN. */
static int replay_stagew_seeds(void)
{
    fp_net *net = NULL;
    int done = 0;
    if (!fp_net_parse_cfg(fpz_weights_cfg, "w.cfg", &net) && !fp_net_init_weights_random(net, 1)) {
        static const struct { int first, last; } ranges[] = {{0, 2}, {3, 5}};
        for (int r = 0; r < 2; r++) {
            void *blob = NULL;
            size_t len = 0;
            uint8_t *in = NULL;
            if (fp_net_stage_weights(net, ranges[r].first, ranges[r].last, &blob, &len) || !(in = malloc(len + 1))) {
                free(blob);
                break;
            }
            in[0] = (uint8_t)(ranges[r].first | (ranges[r].last - ranges[r].first) << 4);
            memcpy(in + 1, blob, len);
            fpz_stagew(in, len + 1);
            fpz_stagew(in, len / 2);
            in[len] = 0xff, in[len - 1] = 0xff;
            fpz_stagew(in, len + 1);
            done += 3;
            free(in);
            free(blob);
        }
    }
    CHECK_MSG(done == 6, "could not make the stage weights seeds: %s", fp_last_error());
    fp_net_destroy(net);
    return done;
}

static void replay(const char *name)
{
    static int registered;
    if (!registered++) atexit(fpz_cleanup); /* the HTTP server, temp files */
    for (const fpz_target *t = fpz_targets; t->name; t++) {
        if (strcmp(t->name, name)) continue;
        int seeds = replay_dir("corpus", t) + (!strcmp(name, "weights") ? replay_weights_seeds() : 0) +
                    (!strcmp(name, "stagew") ? replay_stagew_seeds() : 0);
        int regress = replay_dir("regress", t);
        CHECK_MSG(seeds > 0, "no seed inputs in %s/corpus/%s", FPZ_DIR, name);
        fprintf(stderr, "  %s: %d seeds, %d regression inputs\n", name, seeds, regress);
        return;
    }
    CHECK_MSG(0, "no fuzz target %s", name);
}

static void test_cfg(void) { replay("cfg"); }
static void test_weights(void) { replay("weights"); }
static void test_tfjs(void) { replay("tfjs"); }
static void test_plan(void) { replay("plan"); }
static void test_cluster(void) { replay("cluster"); }
static void test_frame(void) { replay("frame"); }
static void test_image(void) { replay("image"); }
static void test_result(void) { replay("result"); }
static void test_http(void) { replay("http"); }
static void test_key(void) { replay("key"); }
static void test_stagew(void) { replay("stagew"); }

TEST_LIST = {
    {"cfg", test_cfg},
    {"weights", test_weights},
    {"tfjs", test_tfjs},
    {"plan", test_plan},
    {"cluster", test_cluster},
    {"frame", test_frame},
    {"image", test_image},
    {"result", test_result},
    {"http", test_http},
    {"key", test_key},
    {"stagew", test_stagew},
    {NULL, NULL},
};
