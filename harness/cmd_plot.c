/* cmd_plot.c - slimbench plot DIR [--out OUTDIR] [--format png|svg|both]
 *                              [--metric TASK:METRIC ...]
 *
 * Writes the plot data files and gnuplot scripts of DIR/runs.jsonl (plot.h)
 * into OUTDIR (default: DIR/plots), then runs gnuplot on each script to draw
 * PNG and/or SVG files (default both).  --metric, repeatable, limits the
 * quality plots to the metrics named ("perplexity:ppl", "mc:acc", or a bare
 * metric name).  $SLIMBENCH_PLOTS names a directory of templates to use
 * instead of the built-in copies of the .gp files in plots/.
 *
 * gnuplot is looked up on PATH and run directly (fork + execv, no shell),
 * from inside OUTDIR, one process per script.  When it is not installed the
 * data and scripts are still written, one line says so, and the exit status
 * is 0: the plots are an extra, the records and tables do not depend on them.
 * Exit 2 on bad input (DIR, flags), 1 when gnuplot fails on a script. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "plot.h"
#include "results.h"

enum { MAX_METRIC_FLAGS = 64, PATH_LEN = 4096 };

typedef struct plot_args {
    const char *dir, *out_dir, *format;
    const char *metrics[MAX_METRIC_FLAGS];
    int n_metrics;
} plot_args;

static int parse_args(int argc, char **argv, plot_args *a, sb_err *err) {
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        bool takes_value = strcmp(arg, "--out") == 0 || strcmp(arg, "--format") == 0 || strcmp(arg, "--metric") == 0;
        if (takes_value && i + 1 >= argc) return sb_err_set(err, SB_EINPUT, "flag %s needs a value", arg);
        if (strcmp(arg, "--out") == 0) a->out_dir = argv[++i];
        else if (strcmp(arg, "--format") == 0) a->format = argv[++i];
        else if (strcmp(arg, "--metric") == 0 && a->n_metrics < MAX_METRIC_FLAGS) a->metrics[a->n_metrics++] = argv[++i];
        else if (strcmp(arg, "--metric") == 0) return sb_err_set(err, SB_EINPUT, "--metric: more than %d given", MAX_METRIC_FLAGS);
        else if (strncmp(arg, "--", 2) == 0 || a->dir) return sb_err_set(err, SB_EINPUT, "unknown argument '%s'", arg);
        else a->dir = arg;
    }
    if (!a->dir) return sb_err_set(err, SB_EINPUT, "plot needs a results DIR");
    return SB_OK;
}

static int parse_formats(const char *s, unsigned *formats, sb_err *err) {
    if (!s || strcmp(s, "both") == 0) *formats = SB_PLOT_PNG | SB_PLOT_SVG;
    else if (strcmp(s, "png") == 0) *formats = SB_PLOT_PNG;
    else if (strcmp(s, "svg") == 0) *formats = SB_PLOT_SVG;
    else return sb_err_set(err, SB_EINPUT, "--format %s: expected png, svg or both", s);
    return SB_OK;
}

/* DIR/plots, or beside the file when DIR is a runs.jsonl file. */
static int default_out_dir(const char *dir, char *buf, sb_err *err) {
    struct stat st;
    int k;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        k = snprintf(buf, PATH_LEN, "%s/plots", dir);
    } else {
        const char *slash = strrchr(dir, '/');
        k = slash ? snprintf(buf, PATH_LEN, "%.*s/plots", (int)(slash - dir), dir) : snprintf(buf, PATH_LEN, "plots");
    }
    if (k >= PATH_LEN) return sb_err_set(err, SB_EINPUT, "%s: path too long", dir);
    return SB_OK;
}

/* ---- gnuplot ----------------------------------------------------------------------- */

/* The absolute path of an executable `gnuplot` on PATH, false when none. */
static bool find_gnuplot(char *out) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    for (const char *p = path;;) {
        size_t n = strcspn(p, ":");
        char candidate[PATH_LEN];
        int k = n ? snprintf(candidate, sizeof candidate, "%.*s/gnuplot", (int)n, p) : snprintf(candidate, sizeof candidate, "./gnuplot");
        struct stat st;
        bool found = k < (int)sizeof candidate && stat(candidate, &st) == 0 && S_ISREG(st.st_mode) &&
                     access(candidate, X_OK) == 0;
        /* Absolute: the child changes into OUTDIR before exec. */
        if (found && realpath(candidate, out)) return true;
        if (!p[n]) return false;
        p += n + 1;
    }
}

/* Runs `gnuplot NAME.gp` inside out_dir; its exit status, or -1 when it did not exit normally. */
static int run_gnuplot(const char *gnuplot, const char *out_dir, const char *name) {
    char script[SB_PLOT_NAME_MAX + 8];
    snprintf(script, sizeof script, "%s.gp", name);
    char *const args[] = {(char *)"gnuplot", script, NULL};
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (chdir(out_dir) != 0) _exit(126);
        execv(gnuplot, args);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Draws every plot; prints each image written.  Returns the number of failures. */
static int draw_all(const char *gnuplot, const char *out_dir, const sb_plot_set *set, unsigned formats) {
    int failures = 0;
    for (int i = 0; i < set->n; i++) {
        int status = run_gnuplot(gnuplot, out_dir, set->names[i]);
        if (status != 0) {
            fprintf(stderr, "slimbench: plot: gnuplot failed on %s/%s.gp (status %d)\n", out_dir, set->names[i], status);
            failures++;
            continue;
        }
        if (formats & SB_PLOT_PNG) printf("%s/%s.png\n", out_dir, set->names[i]);
        if (formats & SB_PLOT_SVG) printf("%s/%s.svg\n", out_dir, set->names[i]);
    }
    return failures;
}

/* ---- the command ------------------------------------------------------------------- */

static int prepare(const plot_args *a, const sb_plot_opts *opts, sb_plot_set *set, sb_err *err) {
    sb_results *res;
    if (sb_results_load(a->dir, &res, err) != SB_OK) return err->code;
    const cJSON **recs = NULL;
    size_t n = 0;
    int rc = sb_results_winners(res, &recs, &n, err);
    if (rc == SB_OK) rc = sb_plot_prepare(recs, n, sb_results_path(res), opts, stderr, set, err);
    free(recs);
    sb_results_close(res);
    return rc;
}

int sb_cmd_plot(int argc, char **argv) {
    sb_err err = {0};
    plot_args a = {0};
    char out_dir[PATH_LEN];
    sb_plot_opts opts = {0};
    if (parse_args(argc, argv, &a, &err) != SB_OK || parse_formats(a.format, &opts.formats, &err) != SB_OK)
        return sb_cli_fail(&err);
    if (!a.out_dir && default_out_dir(a.dir, out_dir, &err) != SB_OK) return sb_cli_fail(&err);
    opts.out_dir = a.out_dir ? a.out_dir : out_dir;
    opts.metrics = a.metrics;
    opts.n_metrics = a.n_metrics;
    opts.templates_dir = getenv("SLIMBENCH_PLOTS");
    if (opts.templates_dir && !*opts.templates_dir) opts.templates_dir = NULL;
    sb_plot_set set;
    if (prepare(&a, &opts, &set, &err) != SB_OK) return sb_cli_fail(&err);
    char gnuplot[PATH_MAX];
    int failures = 0;
    if (set.n == 0) {
        fprintf(stderr, "slimbench: plot: nothing to plot in %s\n", a.dir);
    } else if (!find_gnuplot(gnuplot)) {
        fprintf(stderr, "slimbench: gnuplot not found: wrote the data and scripts to %s; install gnuplot to draw them\n",
                opts.out_dir);
    } else {
        failures = draw_all(gnuplot, opts.out_dir, &set, opts.formats);
        printf("plot: %d of %d plots drawn in %s\n", set.n - failures, set.n, opts.out_dir);
    }
    sb_plot_set_free(&set);
    return failures ? SB_EINTERNAL : 0;
}
