/* runner.h - executes a sweep's run matrix and records every run.
 *
 * Each model is loaded once; for each (seed, method variant) the model is
 * restored from its snapshot, the method's steps are applied in order, and
 * every task variant runs on the result.  Each run becomes one record in
 * DIR/runs.jsonl, appended and fsynced before the next run starts.  A run
 * that fails (model load, method or task) is recorded as failed with its
 * error and the sweep goes on.  With resume, runs whose record is already
 * there with status ok are skipped; without it, a non-empty DIR is refused
 * rather than mixed into. */
#ifndef SB_RUNNER_H
#define SB_RUNNER_H

#include <stdbool.h>

#include "sweep.h"

typedef struct sb_runner_opts {
    const char *out_dir;
    bool resume;
    int shard_k, shard_n;    /* this process runs every shard_n-th run from shard_k (0-based) */
    bool quiet;
    int threads;             /* 0: the sweep's setting, else one per core */
    bool print_metrics;      /* print each run's metrics on stdout (eval) */
} sb_runner_opts;

typedef struct sb_runner_summary {
    int planned, skipped, ok, failed;
} sb_runner_summary;

/* Returns SB_OK when the sweep ran (individual runs may have failed: see
 * summary), or an error when it could not start or a record could not be
 * written. */
int sb_runner_run(const sb_sweep *s, const sb_runner_opts *o, sb_runner_summary *summary, sb_err *err);

/* The same sweep shared by the ranks of an MPI job (built with make MPI=1):
 * rank 0 hands out runs and writes every record; summary is rank 0's. */
int sb_runner_run_mpi(const sb_sweep *s, const sb_runner_opts *o, sb_runner_summary *summary, sb_err *err);

#endif
