/* thread_pool.c - workers that spin briefly, then sleep.
 *
 * The forward pass hands the pool hundreds of small jobs per token.  A
 * worker woken through a condition variable takes tens of microseconds to
 * start on this kind of machine, which at decode time costs more than the
 * work itself; so after a job each worker polls for the next one for a
 * while (SPIN_ROUNDS) before it goes to sleep.  Jobs are published by
 * bumping `generation` after their fields are written (release), and
 * workers read it with acquire, so they see a complete job. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static void cpu_relax(void) { _mm_pause(); }
#else
static void cpu_relax(void) {}
#endif

enum { SPIN_ROUNDS = 1 << 15 }; /* about 0.1-0.5 ms of polling */

struct sb_pool {
    int n_threads;              /* including the caller */
    pthread_t *threads;         /* n_threads - 1 workers */
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* a new job or shutdown, for sleeping workers */
    atomic_ulong generation;    /* bumped once per job */
    atomic_int pending_workers; /* workers that have not finished the current job */
    atomic_int shutting_down;
    sb_pool_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next_task;
};

typedef struct {
    sb_pool *pool;
    int index;
} worker_start;

static void take_tasks(sb_pool *p, int worker) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
        if (t >= p->n_tasks) return;
        p->fn(p->arg, t, worker);
    }
}

/* Returns the generation of the next job (or of shutdown). */
static unsigned long wait_for_job(sb_pool *p, unsigned long seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned long g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen || atomic_load(&p->shutting_down)) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen && !atomic_load(&p->shutting_down))
        pthread_cond_wait(&p->wake, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return atomic_load_explicit(&p->generation, memory_order_acquire);
}

static void *worker_main(void *raw) {
    worker_start *ws = raw;
    sb_pool *p = ws->pool;
    int index = ws->index;
    free(ws);
    unsigned long seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load(&p->shutting_down)) break;
        take_tasks(p, index);
        atomic_fetch_sub_explicit(&p->pending_workers, 1, memory_order_release);
    }
    return NULL;
}

int sb_pool_new(int n_threads, sb_pool **out, sb_err *err) {
    if (n_threads <= 0) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads <= 0) n_threads = 1;
    sb_pool *p = sb_calloc(err, 1, sizeof *p);
    if (!p) return SB_EINTERNAL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = sb_calloc(err, (size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        p->n_threads = 1;
        sb_pool_free(p);
        return SB_EINTERNAL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_start *ws = malloc(sizeof *ws);
        if (ws) *ws = (worker_start){p, i};
        if (!ws || pthread_create(&p->threads[i - 1], NULL, worker_main, ws) != 0) {
            free(ws);
            p->n_threads = i; /* only workers 1..i-1 exist */
            sb_pool_free(p);
            return sb_err_set(err, SB_EINTERNAL, "cannot start worker thread %d", i);
        }
    }
    *out = p;
    return SB_OK;
}

void sb_pool_free(sb_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->shutting_down, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->n_threads && p->threads; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

int sb_pool_threads(const sb_pool *p) { return p ? p->n_threads : 1; }

void sb_pool_run(sb_pool *p, sb_pool_fn fn, void *arg, int n_tasks) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending_workers, p->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->lock); /* wakes workers that went to sleep */
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    take_tasks(p, 0);
    /* A worker may have been descheduled (more threads than free cores):
     * after a short spin, yield the core to it instead of burning it. */
    for (int i = 0; atomic_load_explicit(&p->pending_workers, memory_order_acquire) > 0; i++) {
        if (i < 4096)
            cpu_relax();
        else
            sched_yield();
    }
}
