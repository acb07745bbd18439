#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "thread_pool.h"

struct sb_pool {
    int n_threads;             /* including the caller */
    pthread_t *threads;        /* n_threads - 1 workers */
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* a new job or shutdown */
    pthread_cond_t done;       /* the last worker left the job */
    unsigned long generation;  /* bumped for each job, so workers know it is new */
    int busy_workers;
    int shutting_down;
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
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->n_tasks) return;
        p->fn(p->arg, t, worker);
    }
}

static void *worker_main(void *raw) {
    worker_start *ws = raw;
    sb_pool *p = ws->pool;
    int index = ws->index;
    free(ws);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->shutting_down && p->generation == seen) pthread_cond_wait(&p->wake, &p->lock);
        if (p->shutting_down) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        take_tasks(p, index);
        pthread_mutex_lock(&p->lock);
        if (--p->busy_workers == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
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
    pthread_cond_init(&p->done, NULL);
    p->threads = sb_calloc(err, (size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
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
    p->shutting_down = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->n_threads && p->threads; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
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
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    p->busy_workers = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    take_tasks(p, 0);
    pthread_mutex_lock(&p->lock);
    while (p->busy_workers > 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
