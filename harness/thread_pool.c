/* thread_pool.c - workers that spin briefly, then sleep; jobs that never
 * wait for a worker that is not there.
 *
 * The forward pass hands the pool hundreds of small jobs per token.  A
 * worker woken through a condition variable takes tens of microseconds to
 * start on this kind of machine, which at decode time costs more than the
 * work itself; so after a job each worker polls for the next one for a
 * while (SPIN_ROUNDS) before it sleeps.
 *
 * Tasks are claimed from one 64-bit word holding (job generation, task
 * count, next task).  A worker claims task i of job g by a compare-and-swap
 * that only succeeds while the word still says job g, so a worker that was
 * descheduled and wakes late can never run a task of the wrong job, and the
 * caller only waits for tasks to finish, never for every worker to show up
 * (which, with more threads than free cores, could take a whole time slice). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
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

/* The claim word: generation (24 bits) | task count (20) | next task (20). */
enum { COUNT_BITS = 20 };
#define MAX_TASKS ((1u << COUNT_BITS) - 1)

static uint64_t claim_word(uint64_t gen, uint64_t n_tasks, uint64_t next) {
    return (gen & 0xFFFFFF) << (2 * COUNT_BITS) | n_tasks << COUNT_BITS | next;
}
static uint64_t word_gen(uint64_t w) { return w >> (2 * COUNT_BITS); }
static int word_tasks(uint64_t w) { return (int)(w >> COUNT_BITS & MAX_TASKS); }
static int word_next(uint64_t w) { return (int)(w & MAX_TASKS); }

struct sb_pool {
    int n_threads;                 /* including the caller */
    pthread_t *threads;            /* n_threads - 1 workers */
    pthread_mutex_t lock;
    pthread_cond_t wake;           /* a new job or shutdown, for sleeping workers */
    _Atomic uint64_t claim;
    _Atomic(sb_pool_fn) fn;
    _Atomic(void *) arg;
    atomic_int done;               /* tasks of the current job finished */
    atomic_int shutting_down;
    int pinned;                    /* sb_pool_pin has run: pinning again would read the caller's one-core mask */
};

typedef struct {
    sb_pool *pool;
    int index;
} worker_start;

/* Runs tasks of job `gen` until none is left; returns how many it ran. */
static int take_tasks(sb_pool *p, uint64_t gen, int worker) {
    int ran = 0;
    uint64_t w = atomic_load_explicit(&p->claim, memory_order_acquire);
    while (word_gen(w) == (gen & 0xFFFFFF) && word_next(w) < word_tasks(w)) {
        sb_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&p->arg, memory_order_relaxed);
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &w, w + 1, memory_order_acq_rel, memory_order_acquire))
            continue; /* w now holds the fresh word */
        fn(arg, word_next(w), worker);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        ran++;
        w = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
    return ran;
}

/* Waits until the claim word shows a generation other than `seen`. */
static uint64_t wait_for_job(sb_pool *p, uint64_t seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        uint64_t g = word_gen(atomic_load_explicit(&p->claim, memory_order_acquire));
        if (g != seen || atomic_load(&p->shutting_down)) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    while (word_gen(atomic_load_explicit(&p->claim, memory_order_acquire)) == seen && !atomic_load(&p->shutting_down))
        pthread_cond_wait(&p->wake, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return word_gen(atomic_load_explicit(&p->claim, memory_order_acquire));
}

static void *worker_main(void *raw) {
    worker_start *ws = raw;
    sb_pool *p = ws->pool;
    int index = ws->index;
    free(ws);
    uint64_t seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load(&p->shutting_down)) break;
        take_tasks(p, seen, index);
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

static void run_inline(sb_pool_fn fn, void *arg, int n_tasks) {
    for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
}

typedef struct {
    sb_pool_fn fn;
    void *arg;
    int base;
} offset_job;

static void offset_task(void *raw, int task, int worker) {
    offset_job *j = raw;
    j->fn(j->arg, j->base + task, worker);
}

void sb_pool_run(sb_pool *p, sb_pool_fn fn, void *arg, int n_tasks) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        run_inline(fn, arg, n_tasks);
        return;
    }
    if (n_tasks > (int)MAX_TASKS) { /* in pieces the claim word can count */
        for (int base = 0; base < n_tasks; base += (int)MAX_TASKS) {
            offset_job j = {fn, arg, base};
            int n = n_tasks - base < (int)MAX_TASKS ? n_tasks - base : (int)MAX_TASKS;
            sb_pool_run(p, offset_task, &j, n);
        }
        return;
    }
    /* All tasks of the previous job are finished, so no worker reads these now. */
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint64_t gen = word_gen(atomic_load(&p->claim)) + 1;
    atomic_store_explicit(&p->claim, claim_word(gen, (uint64_t)n_tasks, 0), memory_order_release);
    pthread_mutex_lock(&p->lock); /* wakes workers that went to sleep */
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    take_tasks(p, gen, 0);
    /* A worker holding a task may have been descheduled (more threads than
     * free cores): after a short spin, yield the core instead of burning it. */
    for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; i++) {
        if (i < 4096)
            cpu_relax();
        else
            sched_yield();
    }
}

/* The n-th core of the process's affinity mask (n taken modulo their count). */
static int nth_allowed_cpu(const cpu_set_t *allowed, int n) {
    int count = CPU_COUNT(allowed), seen = 0;
    if (count <= 0) return -1;
    n %= count;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, allowed) && seen++ == n) return cpu;
    return -1;
}

static int pin_thread(pthread_t t, int cpu, int worker, sb_err *err) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    int rc = pthread_setaffinity_np(t, sizeof one, &one);
    return rc ? sb_err_set(err, SB_EINTERNAL, "cannot pin worker %d to core %d (error %d)", worker, cpu, rc) : SB_OK;
}

int sb_pool_pin(sb_pool *p, sb_err *err) {
    if (p && p->pinned) return SB_OK;
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return sb_err_set(err, SB_EINTERNAL, "cannot read this process's CPU affinity");
    int n = sb_pool_threads(p);
    for (int i = 0; i < n; i++) {
        int cpu = nth_allowed_cpu(&allowed, i);
        if (cpu < 0) return sb_err_set(err, SB_EINTERNAL, "no core to pin worker %d to", i);
        int rc = pin_thread(i == 0 ? pthread_self() : p->threads[i - 1], cpu, i, err);
        if (rc) return rc;
    }
    if (p) p->pinned = 1;
    return SB_OK;
}
