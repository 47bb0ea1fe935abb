/* pool.c — a small persistent fork-join thread pool for kernels.
 * fpi_parallel_for hands out task indices from a shared counter; the caller
 * works too and returns when every task is done. Hand-written because the
 * engine needs only this one primitive and must not pull in OpenMP. */
#include <pthread.h>
#include <stdatomic.h>

#include "common/common.h"
#include "engine/net_impl.h"

struct fpi_pool {
    int n_threads;              /* worker threads (the caller is extra) */
    pthread_t *threads;         /* n_threads handles */
    pthread_mutex_t mu;         /* guards the fields below */
    pthread_cond_t work_cv;     /* signalled when a job is posted or on stop */
    pthread_cond_t done_cv;     /* signalled when the last worker leaves a job */
    unsigned long generation;   /* bumps with every job */
    int stop;                   /* workers exit */
    int active;                 /* workers still inside the current job */
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
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        fpi_pool_drain(p);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
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
    p->stop = 1;
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    p->active = p->n_threads;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    fpi_pool_drain(p);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
