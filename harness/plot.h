/* plot.h - plots rebuilt from result records: `slimbench plot`.
 *
 * From the winning records of a results store (results.h), grouped like
 * `slimbench report` groups them (report.h: one row per model x method
 * variant), sb_plot_prepare writes, per model:
 *
 *   quality_<model>_<task>_<metric>  each quality metric (a metric with a
 *       direction that is not a speed or size figure) against bits per
 *       weight, one point per method variant, the Pareto front (variants no
 *       other beats on both fewer-or-equal bits and a better-or-equal value)
 *       as a line, the dense run as a horizontal reference line;
 *   retention_<model>   each method variant's retention against the dense
 *       run, in percent, per quality metric (report's --relative-to rule);
 *   latency_<model>, throughput_<model>   speed task metrics per variant
 *       (mean latencies in ms, throughputs in tokens/s);
 *   memory_<model>      weight memory and peak RSS per variant, in MiB.
 *
 * Each plot NAME is OUTDIR/NAME.dat (plain whitespace-separated columns,
 * with a header comment naming the source, the runs it draws on and the
 * number of failed runs left out) and OUTDIR/NAME.gp, a gnuplot script
 * made from a template in plots/ that draws NAME.png and/or NAME.svg when
 * run from OUTDIR.  A plot whose data are absent is skipped with a note.
 * Output depends only on the set of records, not on their order.
 *
 * Templates.  The .gp files in plots/ are the source of truth; the build compiles them
 * into the binary (plots/embed.awk generates sb_plot_templates[]), so the
 * command works from any directory.  opts->templates_dir (the command sets
 * it from $SLIMBENCH_PLOTS) reads NAME.gp from a directory instead, to try
 * out an edited template without rebuilding.  In a template, @NAME@
 * placeholders on lines that are not comments are replaced; text is
 * escaped for gnuplot's single-quoted strings ('' for ', no control
 * characters), and the terminal is set with "noenhanced" so that labels
 * such as "bits_per_weight" are printed as written. */
#ifndef SB_PLOT_H
#define SB_PLOT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "error.h"

enum { SB_PLOT_PNG = 1, SB_PLOT_SVG = 2 };
enum { SB_PLOT_NAME_MAX = 160 };

/* A template as built into the binary: the file name ("quality_vs_bits.gp")
 * and its text.  Defined in the generated plot_templates.c. */
typedef struct sb_plot_template {
    const char *name;
    const char *text;
} sb_plot_template;

extern const sb_plot_template sb_plot_templates[];
extern const int sb_plot_n_templates;

typedef struct sb_plot_opts {
    const char *out_dir;           /* created when missing */
    unsigned formats;              /* SB_PLOT_PNG | SB_PLOT_SVG */
    const char *const *metrics;    /* quality metrics to plot: "TASK:METRIC" or "METRIC"; n_metrics 0: all */
    int n_metrics;
    const char *templates_dir;     /* NULL: the built-in templates */
} sb_plot_opts;

/* The plots written: names[i] is NAME (see above). */
typedef struct sb_plot_set {
    char (*names)[SB_PLOT_NAME_MAX];
    int n;
} sb_plot_set;

/* Writes the data files and scripts of every plot the records allow.
 * source names the records in the header comments (the runs.jsonl path);
 * notes receives one line per skipped plot.  A --metric entry that matches
 * no metric, or an unusable OUTDIR, is SB_EINPUT. */
int sb_plot_prepare(const cJSON *const *records, size_t n, const char *source, const sb_plot_opts *opts, FILE *notes,
                    sb_plot_set *out, sb_err *err);
void sb_plot_set_free(sb_plot_set *set);

#endif
