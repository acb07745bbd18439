/* compare.c - the regression gate (see compare.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "plugin.h"
#include "report.h"

typedef enum { V_SAME, V_WITHIN, V_IMPROVED, V_REGRESSED, V_INFO, V_MISSING } verdict;

/* One value to compare and how it is judged. */
typedef struct measure {
    const char *group;      /* task name, "memory" or "timings" */
    const char *name;
    sb_direction direction;
    bool explicit_only;     /* gated only when a tolerance names it */
    double base, cur;       /* cur NAN when absent */
} measure;

/* Where the lines of one baseline run go. */
typedef struct run_out {
    const sb_compare_opts *opts;
    FILE *table;
    FILE *failures;         /* this run's regressions, for JUnit; may be NULL */
    const char *run_id;
    char who[768];          /* model/method */
    char task[256];
    int regressions;
    sb_compare_summary *summary;
} run_out;

/* ---- names, tolerances, verdicts ---------------------------------------------- */

static bool find_tolerance(const sb_compare_opts *o, const char *group, const char *name, double *tol) {
    char key[384];
    snprintf(key, sizeof key, "%s:%s", group, name);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < o->n_tolerances; i++)
            if (strcmp(o->tolerances[i].metric, pass == 0 ? key : name) == 0) {
                *tol = o->tolerances[i].rel;
                return true;
            }
    return false;
}

static bool is_ignored(const sb_compare_opts *o, const char *group, const char *name) {
    char key[384];
    snprintf(key, sizeof key, "%s:%s", group, name);
    for (int i = 0; i < o->n_ignore; i++)
        if (strcmp(o->ignore[i], name) == 0 || strcmp(o->ignore[i], key) == 0 || strcmp(o->ignore[i], group) == 0)
            return true;
    return false;
}

static double relative_change(double base, double cur) {
    return base != 0 ? (cur - base) / fabs(base) : cur - base;
}

/* The verdict on m; *rel and *tol (NAN when not gated) receive the change
 * and the tolerance applied. */
static verdict judge(const sb_compare_opts *o, const measure *m, double *rel, double *tol) {
    bool named = find_tolerance(o, m->group, m->name, tol);
    bool gated = named || (!m->explicit_only && m->direction != SB_NO_DIRECTION);
    if (!named) *tol = gated ? o->default_tolerance : NAN;
    *rel = isnan(m->cur) ? NAN : relative_change(m->base, m->cur);
    if (isnan(m->cur)) return gated ? V_MISSING : V_INFO;
    if (!gated) return V_INFO;
    double worse = m->direction == SB_LOWER_IS_BETTER ? *rel : m->direction == SB_HIGHER_IS_BETTER ? -*rel : fabs(*rel);
    if (worse > *tol) return V_REGRESSED;
    if (*rel == 0) return V_SAME;
    return worse < 0 ? V_IMPROVED : V_WITHIN;
}

static const char *verdict_text(verdict v) {
    switch (v) {
    case V_SAME: return "same";
    case V_WITHIN: return "ok (within tolerance)";
    case V_IMPROVED: return "improved";
    case V_REGRESSED: return "REGRESSION";
    case V_INFO: return "info (not gated)";
    case V_MISSING: return "REGRESSION (missing in current)";
    }
    return "?";
}

/* ---- table lines ----------------------------------------------------------------- */

static void print_header(FILE *t) {
    fprintf(t, "%-16s  %-36s  %-30s  %-22s  %14s  %14s  %9s  %s\n", "run_id", "model/method", "task", "metric",
            "baseline", "current", "change", "verdict");
}

static void print_run_line(const run_out *r, const char *what) {
    fprintf(r->table, "%-16s  %-36s  %-30s  %s\n", r->run_id, r->who, r->task, what);
    if (r->failures && strncmp(what, "REGRESSION", 10) == 0) fprintf(r->failures, "%s\n", what);
}

static void print_measure(run_out *r, const measure *m, verdict v, double rel, double tol) {
    char key[384], base[48], cur[48], change[48] = "", note[96] = "";
    snprintf(key, sizeof key, "%s:%s", m->group, m->name);
    sb_format_human(m->base, base, sizeof base);
    sb_format_human(m->cur, cur, sizeof cur);
    if (!isnan(rel)) snprintf(change, sizeof change, "%+.2f%%", rel * 100);
    if (!isnan(tol)) snprintf(note, sizeof note, " (tolerance %.2f%%, %s is better)", tol * 100,
                              m->direction == SB_LOWER_IS_BETTER ? "lower" : m->direction == SB_HIGHER_IS_BETTER ? "higher" : "neither");
    fprintf(r->table, "%-16s  %-36s  %-30s  %-22s  %14s  %14s  %9s  %s%s\n", r->run_id, r->who, r->task, key, base,
            isnan(m->cur) ? "-" : cur, change, verdict_text(v), v == V_REGRESSED || v == V_MISSING ? note : "");
    if (r->failures && (v == V_REGRESSED || v == V_MISSING))
        fprintf(r->failures, "%s: baseline %s, current %s, change %s%s\n", key, base, isnan(m->cur) ? "missing" : cur,
                change[0] ? change : "-", note);
}

static void compare_measure(run_out *r, const measure *m) {
    if (isnan(m->base) || is_ignored(r->opts, m->group, m->name)) return;
    double rel, tol;
    verdict v = judge(r->opts, m, &rel, &tol);
    r->summary->metrics++;
    if (v == V_REGRESSED || v == V_MISSING) r->regressions++;
    if (v == V_IMPROVED) r->summary->improvements++;
    print_measure(r, m, v, rel, tol);
}

/* ---- one run ---------------------------------------------------------------------- */

static double number_at(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static sb_direction direction_of(const cJSON *metric) {
    const char *d = sb_record_str(metric, "direction", "none");
    return strcmp(d, "lower") == 0 ? SB_LOWER_IS_BETTER : strcmp(d, "higher") == 0 ? SB_HIGHER_IS_BETTER : SB_NO_DIRECTION;
}

static void compare_metrics(run_out *r, const cJSON *base, const cJSON *cur) {
    const cJSON *bm = sb_record_at(base, "metrics"), *cm = sb_record_at(cur, "metrics");
    const char *task = sb_record_str(base, "task.name", "?");
    for (const cJSON *m = cJSON_IsObject(bm) ? bm->child : NULL; m; m = m->next) {
        const cJSON *c = cJSON_IsObject(cm) ? cJSON_GetObjectItemCaseSensitive(cm, m->string) : NULL;
        measure x = {task, m->string, direction_of(m), false, number_at(m, "value"), number_at(c, "value")};
        compare_measure(r, &x);
    }
}

static void compare_resources(run_out *r, const cJSON *base, const cJSON *cur) {
    static const char *const exact[] = {"bits_per_weight", "weight_bytes"};
    const cJSON *bmem = sb_record_at(base, "memory"), *cmem = sb_record_at(cur, "memory");
    for (size_t i = 0; i < 2; i++) {
        measure x = {"memory", exact[i], SB_LOWER_IS_BETTER, false, number_at(bmem, exact[i]), number_at(cmem, exact[i])};
        compare_measure(r, &x);
    }
    measure rss = {"memory", "peak_rss_bytes", SB_LOWER_IS_BETTER, true, number_at(bmem, "peak_rss_bytes"),
                   number_at(cmem, "peak_rss_bytes")};
    compare_measure(r, &rss);
    const cJSON *bt = sb_record_at(base, "timings"), *ct = sb_record_at(cur, "timings");
    for (const cJSON *t = cJSON_IsObject(bt) ? bt->child : NULL; t; t = t->next) {
        measure x = {"timings", t->string, SB_LOWER_IS_BETTER, true, cJSON_IsNumber(t) ? t->valuedouble : NAN,
                     number_at(ct, t->string)};
        compare_measure(r, &x);
    }
}

static void compare_run(run_out *r, const cJSON *base, const cJSON *cur) {
    if (!sb_record_ok(base)) {
        print_run_line(r, cur && sb_record_ok(cur) ? "baseline run failed; fixed in current"
                                                    : "baseline run failed; nothing to compare");
        return;
    }
    if (!cur) {
        print_run_line(r, "REGRESSION: run missing from current");
        r->regressions++;
        return;
    }
    if (!sb_record_ok(cur)) {
        char what[1200];
        snprintf(what, sizeof what, "REGRESSION: run failed in current: %s", sb_record_str(cur, "error", "no message"));
        print_run_line(r, what);
        r->regressions++;
        return;
    }
    compare_metrics(r, base, cur);
    compare_resources(r, base, cur);
}

/* ---- JUnit ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s that XML 1.0 allows, 0 if none. */
static int xml_char_len(const unsigned char *s) {
    if (s[0] < 0x80) return s[0] >= 0x20 || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' ? 1 : 0;
    int n = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    /* overlong forms, surrogates, beyond U+10FFFF, and U+FFFE/U+FFFF */
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) || (s[0] == 0xF0 && s[1] < 0x90) ||
        (s[0] == 0xF4 && s[1] > 0x8F) || (s[0] == 0xEF && s[1] == 0xBF && s[2] >= 0xBE))
        return 0;
    return n;
}

void sb_xml_escape(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = xml_char_len(p);
        if (n == 0) { fputc('?', f); p++; continue; }
        if (*p == '&') fputs("&amp;", f);
        else if (*p == '<') fputs("&lt;", f);
        else if (*p == '>') fputs("&gt;", f);
        else if (*p == '"') fputs("&quot;", f);
        else if (*p == '\'') fputs("&apos;", f);
        else fwrite(p, 1, (size_t)n, f);
        p += n;
    }
}

static void junit_case(FILE *j, const run_out *r, const char *failures) {
    fputs("    <testcase classname=\"", j);
    sb_xml_escape(j, r->who);
    fputs("\" name=\"", j);
    sb_xml_escape(j, r->task);
    fputs("\" time=\"0\">\n", j);
    if (r->regressions) {
        fprintf(j, "      <failure message=\"%d regression%s in run ", r->regressions, r->regressions == 1 ? "" : "s");
        sb_xml_escape(j, r->run_id);
        fputs("\" type=\"regression\">", j);
        sb_xml_escape(j, failures);
        fputs("</failure>\n", j);
    }
    fputs("    </testcase>\n", j);
}

static void junit_document(FILE *j, const sb_compare_summary *s, const char *cases) {
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", j);
    fprintf(j, "<testsuites name=\"slimbench compare\" tests=\"%d\" failures=\"%d\" errors=\"0\">\n", s->baseline_runs,
            s->failed_runs);
    fprintf(j, "  <testsuite name=\"slimbench compare\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"0\">\n",
            s->baseline_runs, s->failed_runs);
    fputs(cases, j);
    fputs("  </testsuite>\n</testsuites>\n", j);
}

/* ---- all runs ---------------------------------------------------------------------- */

static void label_run(run_out *r, const cJSON *rec) {
    char model[256], method[512];
    sb_record_model_label(rec, model, sizeof model);
    sb_record_method_label(rec, method, sizeof method);
    snprintf(r->who, sizeof r->who, "%s/%s", model, method);
    sb_record_task_label(rec, true, r->task, sizeof r->task);
    r->run_id = sb_record_str(rec, "run_id", "?");
}

/* Compares one baseline run, appending its testcase to cases when not NULL. */
static int one_baseline_run(run_out *r, const cJSON *base, const cJSON *cur, FILE *cases, sb_err *err) {
    char *fails = NULL;
    size_t fails_len = 0;
    r->failures = cases ? open_memstream(&fails, &fails_len) : NULL;
    if (cases && !r->failures) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    r->regressions = 0;
    label_run(r, base);
    compare_run(r, base, cur);
    if (r->failures) {
        fclose(r->failures);
        r->failures = NULL;
        junit_case(cases, r, fails ? fails : "");
    }
    free(fails);
    r->summary->regressions += r->regressions;
    r->summary->failed_runs += r->regressions > 0;
    return SB_OK;
}

static void list_new_runs(run_out *r, const sb_results *baseline, const cJSON *const *cur, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (sb_results_find(baseline, sb_record_str(cur[i], "run_id", ""))) continue;
        label_run(r, cur[i]);
        print_run_line(r, "new run (not in baseline)");
        r->summary->new_runs++;
    }
}

static int compare_all(run_out *r, const sb_results *current, const cJSON *const *base, size_t nb,
                       const cJSON *const *cur, size_t nc, const sb_results *baseline, FILE *cases, sb_err *err) {
    print_header(r->table);
    for (size_t i = 0; i < nb; i++) {
        r->summary->baseline_runs++;
        const cJSON *c = sb_results_find(current, sb_record_str(base[i], "run_id", ""));
        if (one_baseline_run(r, base[i], c, cases, err) != SB_OK) return SB_EINTERNAL;
    }
    list_new_runs(r, baseline, cur, nc);
    const sb_compare_summary *s = r->summary;
    fprintf(r->table, "compare: %d baseline runs, %d values compared, %d improved, %d regression%s in %d run%s, %d new run%s: %s\n",
            s->baseline_runs, s->metrics, s->improvements, s->regressions, s->regressions == 1 ? "" : "s",
            s->failed_runs, s->failed_runs == 1 ? "" : "s", s->new_runs, s->new_runs == 1 ? "" : "s",
            s->regressions ? "FAIL" : "OK");
    return SB_OK;
}

int sb_compare(const sb_results *current, const sb_results *baseline, const sb_compare_opts *opts, FILE *table,
               FILE *junit, sb_compare_summary *summary, sb_err *err) {
    memset(summary, 0, sizeof *summary);
    const cJSON **base = NULL, **cur = NULL;
    size_t nb = 0, nc = 0;
    char *cases = NULL;
    size_t cases_len = 0;
    FILE *cases_f = NULL;
    int rc = sb_results_winners(baseline, &base, &nb, err);
    if (rc == SB_OK) rc = sb_results_winners(current, &cur, &nc, err);
    if (rc == SB_OK && junit && !(cases_f = open_memstream(&cases, &cases_len))) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
    run_out r = {.opts = opts, .table = table, .summary = summary};
    if (rc == SB_OK) rc = compare_all(&r, current, base, nb, cur, nc, baseline, cases_f, err);
    if (cases_f) fclose(cases_f);
    if (rc == SB_OK && junit) junit_document(junit, summary, cases ? cases : "");
    if (rc == SB_OK && junit && (ferror(junit) || fflush(junit) != 0))
        rc = sb_err_set(err, SB_EINTERNAL, "writing the JUnit file failed");
    free(cases);
    free(base);
    free(cur);
    return rc;
}
