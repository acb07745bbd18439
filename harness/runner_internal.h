/* runner_internal.h - the runner's steps, for the two ways of driving
 * them: one process walking the matrix (runner.c) and MPI ranks sharing
 * it (runner_mpi.c, built with make MPI=1). */
#ifndef SB_RUNNER_INTERNAL_H
#define SB_RUNNER_INTERNAL_H

#include "progress.h"
#include "results.h"
#include "runner.h"

typedef struct runner runner;

int sb_runner_new(const sb_sweep *s, const sb_runner_opts *o, bool with_store, bool with_engine, runner **out,
                  sb_err *err);
void sb_runner_free(runner *r);
int sb_runner_id(runner *r, const sb_run_spec *run, char id[SB_RUN_ID_LEN + 1], sb_err *err);
bool sb_runner_done(const runner *r, const char *id);
cJSON *sb_runner_perform(runner *r, const sb_run_spec *run, const char *id, bool *failed);
int sb_runner_record(runner *r, const cJSON *rec, bool failed, sb_runner_summary *sum, sb_err *err);
sb_progress *sb_runner_progress(runner *r);

#endif
