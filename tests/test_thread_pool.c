/* test_thread_pool.c - every task runs exactly once, job after job, with
 * more threads than cores and with jobs larger than one claim word holds. */
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"
#include "thread_pool.h"

typedef struct {
    atomic_int *hits;
    int n_threads;
    atomic_int bad_worker;
} count_job;

static void count_task(void *arg, int task, int worker) {
    count_job *j = arg;
    atomic_fetch_add(&j->hits[task], 1);
    if (worker < 0 || worker >= j->n_threads) atomic_store(&j->bad_worker, 1);
}

static void run_jobs(const char *name, int threads, int n_tasks, int jobs) {
    test_begin(name);
    sb_pool *p;
    sb_err err = {0};
    if (test_expect(sb_pool_new(threads, &p, &err) == SB_OK, "%s", err.msg)) {
        atomic_int *hits = calloc((size_t)n_tasks, sizeof *hits);
        count_job j = {hits, sb_pool_threads(p), 0};
        for (int r = 0; r < jobs; r++) sb_pool_run(p, count_task, &j, n_tasks - r % 3);
        /* job r runs n_tasks - r % 3 tasks: the last task only when r % 3 == 0,
         * the one before it unless r % 3 == 2 */
        for (int t = 0; t < n_tasks; t++) {
            int want = t < n_tasks - 2 ? jobs : t == n_tasks - 1 ? (jobs + 2) / 3 : jobs - jobs / 3;
            if (!test_expect(atomic_load(&hits[t]) == want, "task %d ran %d times, expected %d", t, atomic_load(&hits[t]), want))
                break;
        }
        test_expect(!atomic_load(&j.bad_worker), "worker index out of range");
        free(hits);
        sb_pool_free(p);
    }
    test_end();
}

int main(void) {
    run_jobs("pool_many_small_jobs", 2, 5, 20000);
    run_jobs("pool_oversubscribed", 8, 37, 3000);
    run_jobs("pool_single_thread", 1, 100, 10);
    run_jobs("pool_job_larger_than_claim_word", 2, (1 << 20) + 5, 2);
    return test_status();
}
