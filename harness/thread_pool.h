/* thread_pool.h - one pool of worker threads for the whole run.
 *
 * The forward pass splits element-wise work (norms, rotary, softmax,
 * activations, attention heads) into tasks 0..n-1 and runs them here.
 * Matrix products go to CBLAS, which has threads of its own; the pool's
 * workers sleep on a condition variable between jobs so the two never
 * compete for the cores. */
#ifndef SB_THREAD_POOL_H
#define SB_THREAD_POOL_H

#include "error.h"

typedef struct sb_pool sb_pool;

/* fn(arg, task, worker): worker is in [0, n_threads) and indexes per-thread scratch. */
typedef void (*sb_pool_fn)(void *arg, int task, int worker);

/* n_threads <= 0 means one per online core. */
int sb_pool_new(int n_threads, sb_pool **out, sb_err *err);
void sb_pool_free(sb_pool *p);
int sb_pool_threads(const sb_pool *p);

/* Runs fn for every task in [0, n_tasks) and returns when all are done.
 * The calling thread works too. A NULL pool runs everything inline. */
void sb_pool_run(sb_pool *p, sb_pool_fn fn, void *arg, int n_tasks);

/* Binds worker i to the i-th core this process may run on (the caller, as
 * worker 0, to the first), wrapping around when there are more threads
 * than cores.  The binding lasts for the pool's life (the caller's for the
 * thread's); pinning again does nothing.  A pool never pinned keeps the
 * scheduler's placement. A NULL pool pins the caller to the first core. */
int sb_pool_pin(sb_pool *p, sb_err *err);

#endif
