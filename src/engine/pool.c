/* pool.c — a small persistent fork-join thread pool for kernels.
 * fpi_parallel_for hands out task indices from a shared counter; the caller
 * works too and returns when every task is done. Hand-written because the
 * engine needs only this one primitive and must not pull in OpenMP.
 * A network runs one job per layer, back to back: between jobs the workers
 * spin a little (about 50-100 us) before they sleep, and so does the caller
 * waiting for the last of them, because waking a sleeping thread costs about
 * 50-100 us on a VM (measured here: a job of two tiny tasks took 100 us when
 * the worker had gone to sleep, 21 us otherwise). */
#include <pthread.h>
#include <stdatomic.h>

#include "common/common.h"
#include "engine/net_impl.h"

/* Spins (each a pause instruction) before a worker or the caller sleeps. */
enum { FPI_POOL_SPINS = 1 << 12 };

static inline void fpi_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

struct fpi_pool {
    int n_threads;              /* worker threads (the caller is extra) */
    pthread_t *threads;         /* n_threads handles */
    pthread_mutex_t mu;         /* guards sleepers, done_waiting and the waits */
    pthread_cond_t work_cv;     /* signalled when a job is posted or on stop */
    pthread_cond_t done_cv;     /* signalled when the last worker leaves a job */
    atomic_ulong generation;    /* bumps with every job (after fn, ctx, n are set) */
    atomic_int stop;            /* workers exit */
    atomic_int active;          /* workers still inside the current job */
    int sleepers;               /* workers waiting on work_cv */
    int done_waiting;           /* the caller waits on done_cv */
    fpi_task_fn fn;             /* current job */
    void *ctx;                  /* its context */
    int n;                      /* its task count */
    atomic_int next;            /* next task index to take */
};

/* Takes and runs tasks of the current job until none are left. */
static void fpi_pool_drain(struct fpi_pool *p)
{
    for (;;) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) break;
        p->fn(i, p->ctx);
    }
}

static void *fpi_pool_main(void *arg)
{
    struct fpi_pool *p = arg;
    unsigned long seen = 0, g = 0;
    for (;;) {
        /* the next job: spin a little, then sleep */
        for (int i = 0; i < FPI_POOL_SPINS && (g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop); i++)
            fpi_cpu_relax();
        if (g == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->work_cv, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = g;
        fpi_pool_drain(p);
        if (atomic_fetch_sub(&p->active, 1) == 1) {
            /* the last one out wakes the caller if it sleeps */
            pthread_mutex_lock(&p->mu);
            if (p->done_waiting) pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

fp_status fpi_pool_create(int threads, struct fpi_pool **out)
{
    struct fpi_pool *p = fpi_calloc(1, sizeof *p);
    if (!p) return fpi_error(FP_ENOMEM, "out of memory creating thread pool");
    p->n_threads = threads - 1;
    p->threads = fpi_calloc((size_t)(p->n_threads > 0 ? p->n_threads : 1), sizeof(pthread_t));
    if (!p->threads) {
        fpi_free(p);
        return fpi_error(FP_ENOMEM, "out of memory creating thread pool");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (int i = 0; i < p->n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, fpi_pool_main, p) != 0) {
            p->n_threads = i;
            fpi_pool_destroy(p);
            return fpi_error(FP_ENOMEM, "cannot start worker thread %d", i);
        }
    }
    *out = p;
    return FP_OK;
}

void fpi_pool_destroy(struct fpi_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    fpi_free(p->threads);
    fpi_free(p);
}

int fpi_pool_threads(const struct fpi_pool *p) { return p ? p->n_threads + 1 : 1; }

void fpi_parallel_for(struct fpi_pool *p, int n, fpi_task_fn fn, void *ctx)
{
    if (!p || p->n_threads == 0 || n <= 1) {
        for (int i = 0; i < n; i++) fn(i, ctx);
        return;
    }
    /* workers see fn, ctx and n once they see the new generation (seq_cst) */
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->active, p->n_threads);
    atomic_fetch_add(&p->generation, 1);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers) pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    fpi_pool_drain(p);
    /* every worker out of the job: spin a little, then sleep */
    for (int i = 0; i < FPI_POOL_SPINS && atomic_load(&p->active) > 0; i++) fpi_cpu_relax();
    if (atomic_load(&p->active) > 0) {
        pthread_mutex_lock(&p->mu);
        p->done_waiting = 1;
        while (atomic_load(&p->active) > 0) pthread_cond_wait(&p->done_cv, &p->mu);
        p->done_waiting = 0;
        pthread_mutex_unlock(&p->mu);
    }
}
