/* cmd_results.c - the commands that read result stores:
 *
 *   slimbench report DIR [--format md|csv|html|json] [--group-by KEY]
 *                        [--metrics m1,m2] [--relative-to METHOD] [--out FILE]
 *   slimbench compare CURRENT BASELINE [--tolerance METRIC=REL ...]
 *                        [--default-tolerance REL] [--ignore METRIC ...] [--junit FILE]
 *   slimbench merge OUT_DIR DIR...
 *
 * DIR, CURRENT and BASELINE are result directories or runs.jsonl files.
 * --tolerance and --ignore may be repeated or take comma-separated lists;
 * REL is a fraction (0.01) or a percentage (1%).  compare exits 1 on any
 * regression, 0 otherwise; every command exits 2 on bad input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "compare.h"
#include "report.h"
#include "results.h"

enum { MAX_POSITIONAL = 256, MAX_LIST = 64 };

static bool in_list(const char *s, const char *const *list) {
    for (; list && *list; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

/* Separates positional arguments from flags, checking that every flag is
 * known and has its value. */
static int split_args(int argc, char **argv, const char *const *with_value, const char *const *switches,
                      char **positional, int *n_positional, sb_err *err) {
    *n_positional = 0;
    for (int i = 0; i < argc; i++) {
        if (in_list(argv[i], with_value)) {
            if (++i >= argc) return sb_err_set(err, SB_EINPUT, "flag %s needs a value", argv[i - 1]);
        } else if (in_list(argv[i], switches)) {
            continue;
        } else if (strncmp(argv[i], "--", 2) == 0 || *n_positional >= MAX_POSITIONAL) {
            return sb_err_set(err, SB_EINPUT, "unknown argument '%s'", argv[i]);
        } else {
            positional[(*n_positional)++] = argv[i];
        }
    }
    return SB_OK;
}

/* ---- report --------------------------------------------------------------------- */

static int parse_format(const char *s, sb_report_format *f, sb_err *err) {
    static const char *const names[] = {"md", "csv", "html", "json"};
    static const sb_report_format formats[] = {SB_REPORT_MD, SB_REPORT_CSV, SB_REPORT_HTML, SB_REPORT_JSON};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) { *f = formats[i]; return SB_OK; }
    return sb_err_set(err, SB_EINPUT, "--format %s: expected md, csv, html or json", s);
}

/* Writes via FILE.tmp and a rename, so a failed report never leaves half a file. */
static int write_report_file(const sb_report *rep, sb_report_format f, const char *title, const char *path, sb_err *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return sb_err_set(err, SB_EINPUT, "--out %s: path too long", path);
    FILE *out = fopen(tmp, "w");
    if (!out) return sb_err_set(err, SB_EINPUT, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = sb_report_write(rep, f, title, out, err);
    if (fclose(out) != 0 && rc == SB_OK) rc = sb_err_set(err, SB_EINTERNAL, "%s: write failed", tmp);
    if (rc == SB_OK && rename(tmp, path) != 0) rc = sb_err_set(err, SB_EINPUT, "%s: cannot write: %s", path, strerror(errno));
    if (rc != SB_OK) remove(tmp);
    return rc;
}

static int run_report(const char *dir, const sb_report_opts *opts, sb_report_format f, const char *out_path, sb_err *err) {
    sb_results *res;
    if (sb_results_load(dir, &res, err) != SB_OK) return err->code;
    const cJSON **recs = NULL;
    size_t n = 0;
    sb_report *rep = NULL;
    int rc = sb_results_winners(res, &recs, &n, err);
    if (rc == SB_OK) rc = sb_report_build(recs, n, opts, &rep, err);
    if (rc == SB_OK && rep->n_collisions)
        fprintf(stderr, "slimbench: warning: %d report cells have more than one run; showing one "
                        "(use --group-by to separate them)\n", rep->n_collisions);
    if (rc == SB_OK && out_path) rc = write_report_file(rep, f, sb_results_path(res), out_path, err);
    else if (rc == SB_OK) rc = sb_report_write(rep, f, sb_results_path(res), stdout, err);
    sb_report_free(rep);
    free(recs);
    sb_results_close(res);
    return rc;
}

int sb_cmd_report(int argc, char **argv) {
    static const char *const with_value[] = {"--format", "--group-by", "--metrics", "--relative-to", "--out", NULL};
    sb_err err = {0};
    char *pos[MAX_POSITIONAL];
    int n_pos;
    if (split_args(argc, argv, with_value, NULL, pos, &n_pos, &err) != SB_OK) return sb_cli_fail(&err);
    if (n_pos != 1) {
        sb_err_set(&err, SB_EINPUT, "report needs exactly one results DIR (got %d)", n_pos);
        return sb_cli_fail(&err);
    }
    sb_report_format f = SB_REPORT_MD;
    const char *format = sb_flag_value(argc, argv, "--format");
    if (format && parse_format(format, &f, &err) != SB_OK) return sb_cli_fail(&err);
    sb_report_opts opts = {sb_flag_value(argc, argv, "--group-by"), sb_flag_value(argc, argv, "--metrics"),
                           sb_flag_value(argc, argv, "--relative-to")};
    if (run_report(pos[0], &opts, f, sb_flag_value(argc, argv, "--out"), &err) != SB_OK) return sb_cli_fail(&err);
    return 0;
}

/* ---- compare -------------------------------------------------------------------- */

/* "0.01" or "1%" into a fraction >= 0; flag and arg name the argument in errors. */
static int parse_rel(const char *s, const char *flag, const char *arg, double *out, sb_err *err) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && *end == '%') { v /= 100; end++; }
    if (end == s || *end || errno || !(v >= 0) || v > 1e9)
        return sb_err_set(err, SB_EINPUT, "%s %s: expected a relative tolerance >= 0 such as 0.01 or 1%%", flag, arg);
    *out = v;
    return SB_OK;
}

typedef struct compare_args {
    sb_tolerance tol[MAX_LIST];
    int n_tol;
    char ignore_buf[MAX_LIST][192];
    const char *ignore[MAX_LIST];
    int n_ignore;
} compare_args;

static int add_tolerance(compare_args *a, const char *item, size_t n, sb_err *err) {
    char text[256];
    if (n >= sizeof text || a->n_tol >= MAX_LIST) return sb_err_set(err, SB_EINPUT, "--tolerance: too long or too many");
    memcpy(text, item, n);
    text[n] = 0;
    char *eq = strchr(text, '=');
    if (!eq || eq == text || (size_t)(eq - text) >= sizeof a->tol[0].metric)
        return sb_err_set(err, SB_EINPUT, "--tolerance %s: expected METRIC=REL", text);
    sb_tolerance *t = &a->tol[a->n_tol];
    double rel;
    if (parse_rel(eq + 1, "--tolerance", text, &rel, err) != SB_OK) return SB_EINPUT;
    *eq = 0;
    memcpy(t->metric, text, (size_t)(eq - text) + 1);   /* length checked above */
    t->rel = rel;
    a->n_tol++;
    return SB_OK;
}

static int add_ignore(compare_args *a, const char *item, size_t n, sb_err *err) {
    if (n == 0 || n >= sizeof a->ignore_buf[0] || a->n_ignore >= MAX_LIST)
        return sb_err_set(err, SB_EINPUT, "--ignore: empty, too long or too many names");
    memcpy(a->ignore_buf[a->n_ignore], item, n);
    a->ignore_buf[a->n_ignore][n] = 0;
    a->ignore[a->n_ignore] = a->ignore_buf[a->n_ignore];
    a->n_ignore++;
    return SB_OK;
}

/* Every --tolerance and --ignore value, each a comma-separated list. */
static int collect_lists(int argc, char **argv, compare_args *a, sb_err *err) {
    for (int i = 0; i + 1 < argc; i++) {
        bool tol = strcmp(argv[i], "--tolerance") == 0, ign = strcmp(argv[i], "--ignore") == 0;
        if (!tol && !ign) continue;
        const char *p = argv[++i];
        do {
            size_t n = strcspn(p, ",");
            int rc = tol ? add_tolerance(a, p, n, err) : add_ignore(a, p, n, err);
            if (rc != SB_OK) return rc;
            p += n + (p[n] == ',');
        } while (*p);
    }
    return SB_OK;
}

static int run_compare(const char *cur_path, const char *base_path, const sb_compare_opts *opts, const char *junit_path,
                       int *regressions, sb_err *err) {
    sb_results *cur = NULL, *base = NULL;
    if (sb_results_load(cur_path, &cur, err) != SB_OK || sb_results_load(base_path, &base, err) != SB_OK) {
        sb_results_close(cur);
        return err->code;
    }
    FILE *junit = junit_path ? fopen(junit_path, "w") : NULL;
    int rc = junit_path && !junit ? sb_err_set(err, SB_EINPUT, "%s: cannot create: %s", junit_path, strerror(errno)) : SB_OK;
    sb_compare_summary s;
    if (rc == SB_OK) rc = sb_compare(cur, base, opts, stdout, junit, &s, err);
    if (junit && fclose(junit) != 0 && rc == SB_OK) rc = sb_err_set(err, SB_EINTERNAL, "%s: write failed", junit_path);
    if (rc == SB_OK) *regressions = s.regressions;
    sb_results_close(cur);
    sb_results_close(base);
    return rc;
}

int sb_cmd_compare(int argc, char **argv) {
    static const char *const with_value[] = {"--tolerance", "--default-tolerance", "--ignore", "--junit", NULL};
    sb_err err = {0};
    char *pos[MAX_POSITIONAL];
    int n_pos;
    compare_args *a = calloc(1, sizeof *a);
    if (!a) { sb_err_set(&err, SB_EINTERNAL, "out of memory"); return sb_cli_fail(&err); }
    sb_compare_opts opts = {.default_tolerance = SB_COMPARE_DEFAULT_TOLERANCE};
    const char *dflt = sb_flag_value(argc, argv, "--default-tolerance");
    int rc = split_args(argc, argv, with_value, NULL, pos, &n_pos, &err);
    if (rc == SB_OK && n_pos != 2) rc = sb_err_set(&err, SB_EINPUT, "compare needs CURRENT and BASELINE (got %d paths)", n_pos);
    if (rc == SB_OK && dflt) rc = parse_rel(dflt, "--default-tolerance", dflt, &opts.default_tolerance, &err);
    if (rc == SB_OK) rc = collect_lists(argc, argv, a, &err);
    int regressions = 0;
    if (rc == SB_OK) {
        opts.tolerances = a->tol;
        opts.n_tolerances = a->n_tol;
        opts.ignore = a->ignore;
        opts.n_ignore = a->n_ignore;
        rc = run_compare(pos[0], pos[1], &opts, sb_flag_value(argc, argv, "--junit"), &regressions, &err);
    }
    free(a);
    if (rc != SB_OK) return sb_cli_fail(&err);
    return regressions ? 1 : 0;
}

/* ---- merge ---------------------------------------------------------------------- */

int sb_cmd_merge(int argc, char **argv) {
    sb_err err = {0};
    char *pos[MAX_POSITIONAL];
    int n_pos;
    if (split_args(argc, argv, NULL, NULL, pos, &n_pos, &err) != SB_OK) return sb_cli_fail(&err);
    if (n_pos < 2) {
        sb_err_set(&err, SB_EINPUT, "merge needs OUT_DIR and at least one DIR");
        return sb_cli_fail(&err);
    }
    size_t n_records = 0, n_runs = 0;
    if (sb_results_merge(pos[0], (const char *const *)(pos + 1), n_pos - 1, &n_records, &n_runs, &err) != SB_OK)
        return sb_cli_fail(&err);
    printf("merge: %zu records from %d dirs -> %zu runs in %s/runs.jsonl\n", n_records, n_pos - 1, n_runs, pos[0]);
    return 0;
}
