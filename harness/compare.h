/* compare.h - the regression gate: `slimbench compare CURRENT BASELINE`.
 *
 * Runs are matched by run id (the winner of each, see results.h).  For
 * every baseline run, in run-id order:
 *   - missing from CURRENT, or failed in CURRENT: a regression;
 *   - failed in the baseline: nothing to compare (listed; "fixed" when
 *     CURRENT has it ok);
 *   - otherwise every metric of the baseline record is compared.  The
 *     relative change is (current - baseline) / |baseline| (the plain
 *     difference when the baseline is 0).  A regression is a change in the
 *     bad direction beyond the tolerance: a lower-is-better metric rising
 *     by more than tol, a higher-is-better one falling by more than tol.
 *     A metric missing (or null) in CURRENT is a regression.
 *
 * Metrics with direction "none" are listed but never regress, unless a
 * tolerance is named for them explicitly: then a change beyond it in
 * either direction regresses (the harness cannot tell which way is good).
 * Besides "metrics", the record's memory.bits_per_weight and
 * memory.weight_bytes (exact, lower is better) are gated like metrics, and
 * memory.peak_rss_bytes and every timings.* entry (lower is better, but
 * noisy across machines) are listed and gated only with an explicit
 * tolerance, e.g. --tolerance task_s=0.25.
 *
 * A tolerance or ignore name matches a metric by its name ("ppl"), its
 * qualified key ("perplexity:ppl", "timings:task_s", "memory:peak_rss_bytes")
 * or, for --ignore only, its whole group ("timings", "memory", a task
 * name).  A qualified tolerance wins over a bare one.  The default
 * tolerance is SB_COMPARE_DEFAULT_TOLERANCE (0.1 %): the same run on the
 * same backend is deterministic, but another BLAS build or CPU may sum in
 * another order; any real change in a metric shows far above that. */
#ifndef SB_COMPARE_H
#define SB_COMPARE_H

#include <stdio.h>

#include "error.h"
#include "results.h"

#define SB_COMPARE_DEFAULT_TOLERANCE 0.001

typedef struct sb_tolerance {
    char metric[192];
    double rel;        /* >= 0, relative (0.01 = 1 %) */
} sb_tolerance;

typedef struct sb_compare_opts {
    const sb_tolerance *tolerances;
    int n_tolerances;
    double default_tolerance;
    const char *const *ignore;
    int n_ignore;
} sb_compare_opts;

typedef struct sb_compare_summary {
    int baseline_runs;
    int metrics;           /* compared values */
    int regressions;       /* regressed metrics, missing and failed runs */
    int failed_runs;       /* baseline runs with at least one regression */
    int improvements;
    int new_runs;          /* in CURRENT only */
} sb_compare_summary;

/* Writes the table of changes to table and, when junit is not NULL, a
 * JUnit XML document (one testcase per baseline run: classname
 * "model/method", name the task; a <failure> listing its regressions). */
int sb_compare(const sb_results *current, const sb_results *baseline, const sb_compare_opts *opts, FILE *table,
               FILE *junit, sb_compare_summary *summary, sb_err *err);

/* Writes s as XML character data or attribute text: the five special
 * characters escaped, characters XML 1.0 forbids (control characters,
 * invalid UTF-8) replaced by '?'. */
void sb_xml_escape(FILE *f, const char *s);

#endif
