/* progress.h - what a long sweep shows while it works.
 *
 * On a terminal: one line on stderr redrawn in place, with the runs done,
 * a bar, the ETA of the whole sweep (from the time per run so far,
 * counting the current run's fraction) and the current run with its own
 * progress and rate (tokens/s inside a perplexity task, say).  Not on a
 * terminal (CI logs): one plain line when each run starts and ends.
 * --quiet: nothing. */
#ifndef SB_PROGRESS_H
#define SB_PROGRESS_H

#include <stdbool.h>

typedef struct sb_progress {
    bool tty, quiet;
    int total, done;
    double t0;             /* sweep start */
    double run_t0;         /* current run start */
    double inner_fraction; /* of the current run */
    double inner_rate;     /* units per second inside the current run */
    char unit[24];
    char current[160];
    double last_draw;
} sb_progress;

void sb_progress_init(sb_progress *p, int total, bool quiet);
void sb_progress_run_start(sb_progress *p, const char *label);
/* status: "ok", "failed: ...", "skipped (done)" */
void sb_progress_run_end(sb_progress *p, const char *status);
/* Matches sb_run_ctx.progress: user is the sb_progress. */
void sb_progress_inner(void *user, double done, double total, const char *unit);
void sb_progress_finish(sb_progress *p);

#endif
