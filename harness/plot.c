/* plot.c - plot data files and gnuplot scripts from result records (see
 * plot.h).  The records are first grouped by sb_report_build, so a plot's
 * rows, labels, bits per weight, memory and retention are exactly those of
 * `slimbench report` (with --relative-to dense when there is a dense run). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plot.h"
#include "report.h"
#include "results.h"

enum { MAX_SERIES = 16, LABEL_MAX = 640, PATH_LEN = 4096 };

static const char DENSE_METHOD[] = "dense";
static const double MIB = 1024.0 * 1024.0;

/* ---- small text helpers ------------------------------------------------------- */

/* A file-name-safe form of s: letters, digits, '.', '-' kept, runs of anything else one '_'. */
static void slug(const char *s, char *buf, size_t n) {
    size_t k = 0;
    for (; *s && k + 1 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                    ch == '-';
        if (keep) buf[k++] = (char)ch;
        else if (k > 0 && buf[k - 1] != '_') buf[k++] = '_';
    }
    while (k > 0 && buf[k - 1] == '_') k--;
    buf[k] = 0;
}

/* Text inside a single-quoted gnuplot string: only '' needs escaping there;
 * a control character (a newline would end the command) becomes a space. */
static void put_gnuplot_text(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\'') fputs("''", f);
        else fputc(ch < 0x20 || ch == 0x7f ? ' ' : ch, f);
    }
}

/* A double-quoted string field of a data file.  gnuplot has no escapes
 * there, so a double quote becomes a single one. */
static void put_data_text(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        fputc(ch == '"' ? '\'' : ch < 0x20 || ch == 0x7f ? ' ' : ch, f);
    }
    fputc('"', f);
}

/* Plot numbers need no exact round trip; NaN is gnuplot's "no value". */
static void put_number(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.10g", v);
    else fputs("NaN", f);
}

static bool is_dense(const sb_report_row *row) { return strcmp(row->method_name, DENSE_METHOD) == 0; }

static const char *direction_text(sb_direction d) {
    return d == SB_LOWER_IS_BETTER ? "lower is better" : d == SB_HIGHER_IS_BETTER ? "higher is better" : "";
}

/* Steps of a composed method in a report label: "gptq(...) + eora(...)". */
static const char STEP_SEP[] = ") + ";

/* The value of parameter `key` in step `step` of a method label
 * "a(k=v,...) + b(...)" (the report's row label), as a pointer to its first character (length in
 * *len), or NULL when that step has no such parameter. */
static const char *label_param(const char *label, int step, const char *key, size_t key_len, size_t *len) {
    const char *s = label;
    for (int i = 0; i < step && s; i++) s = strstr(s, STEP_SEP), s = s ? s + strlen(STEP_SEP) : NULL;
    const char *open = s ? strchr(s, '(') : NULL, *end = s ? strstr(s, STEP_SEP) : NULL;
    for (const char *p = open; p && *p && (!end || p < end); p = strchr(p + 1, ',')) {
        const char *k = p + 1;
        if (strncmp(k, key, key_len) == 0 && k[key_len] == '=') {
            *len = strcspn(k + key_len + 1, ",)");
            return k + key_len + 1;
        }
        if (!strchr(p + 1, ',')) break;
    }
    return NULL;
}

/* Whether another row of the same model and method (the same steps) sets this
 * parameter differently: only such parameters tell variants apart. */
static bool param_varies(const sb_report *r, const sb_report_row *row, int step, const char *key, size_t key_len,
                         const char *value, size_t value_len) {
    for (int i = 0; i < r->n_rows; i++) {
        const sb_report_row *o = &r->rows[i];
        if (o == row || strcmp(o->model, row->model) != 0 || strcmp(o->method_name, row->method_name) != 0) continue;
        size_t len;
        const char *v = label_param(o->method, step, key, key_len, &len);
        if (!v || len != value_len || strncmp(v, value, len) != 0) return true;
    }
    return false;
}

/* "gptq(bits=2,group_size=64,...) + eora(rank=8,...)" -> "gptq(bits=2) + eora":
 * each step's name and only the parameters in which it differs from other
 * variants of the same method; the full labels are in the data files. */
static void short_method_label(const sb_report *r, const sb_report_row *row, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    const char *s = row->method;
    for (int step = 0; s && *s && used + 1 < n; step++) {
        const char *end = strstr(s, STEP_SEP), *open = strchr(s, '(');
        size_t name_len = open && (!end || open < end) ? (size_t)(open - s) : end ? (size_t)(end - s) : strlen(s);
        used += (size_t)snprintf(buf + used, n - used, "%s%.*s", step ? " + " : "", (int)name_len, s);
        int shown = 0;
        for (const char *p = open; p && (!end || p < end) && used + 1 < n; p = strchr(p + 1, ',')) {
            const char *key = p + 1, *eq = strchr(key, '=');
            if (!eq || (end && eq > end)) break;
            size_t vlen = strcspn(eq + 1, ",)");
            if (!param_varies(r, row, step, key, (size_t)(eq - key), eq + 1, vlen)) continue;
            used += (size_t)snprintf(buf + used, n - used, "%s%.*s", shown++ ? "," : "(", (int)(eq - key + 1 + (long)vlen), key);
        }
        if (shown && used + 1 < n) used += (size_t)snprintf(buf + used, n - used, ")");
        s = end ? end + strlen(STEP_SEP) : NULL;
        if (used >= n) used = n - 1;
    }
}

/* The label of a row in a plot: the method with the parameters that tell
 * its variants apart, and the backend and seed where the report shows them. */
static void row_label(const sb_report *r, const sb_report_row *row, char *buf, size_t n) {
    short_method_label(r, row, buf, n);
    int k = (int)strlen(buf);
    if (r->show_backend && k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, " [%s]", row->backend);
    if (r->show_seed && k >= 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, " seed=%g", row->seed);
}

/* ---- run id lists (the "runs:" header line) ------------------------------------ */

typedef struct id_list {
    const char **ids;   /* point into the records */
    int n, cap;
} id_list;

static int id_list_add(id_list *l, const char *id, sb_err *err) {
    if (!id || !*id) return SB_OK;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        const char **ids = realloc(l->ids, (size_t)cap * sizeof *ids);
        if (!ids) return sb_err_set(err, SB_EINTERNAL, "out of memory");
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return SB_OK;
}

static int cmp_strings(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Sorted and without repeats, so the header does not depend on record order. */
static void put_id_list(FILE *f, id_list *l) {
    if (l->n > 1) qsort(l->ids, (size_t)l->n, sizeof *l->ids, cmp_strings);
    fputs("# runs:", f);
    for (int i = 0; i < l->n; i++)
        if (i == 0 || strcmp(l->ids[i], l->ids[i - 1]) != 0) fprintf(f, " %s", l->ids[i]);
    fputc('\n', f);
}

/* ---- context -------------------------------------------------------------------- */

typedef struct plot_ctx {
    const sb_report *rep;
    const sb_plot_opts *opts;
    const char *source;
    size_t n_runs, n_failed;
    FILE *notes;
    bool *quality;        /* per report column: a quality metric selected for plotting */
    sb_plot_set *set;
} plot_ctx;

static void note_skip(const plot_ctx *c, const char *name, const char *why) {
    if (c->notes) fprintf(c->notes, "slimbench: plot: skipped %s: %s\n", name, why);
}

static int join_path(const plot_ctx *c, const char *name, const char *ext, char *buf, sb_err *err) {
    if (snprintf(buf, PATH_LEN, "%s/%s%s", c->opts->out_dir, name, ext) >= PATH_LEN)
        return sb_err_set(err, SB_EINPUT, "--out %s: path too long", c->opts->out_dir);
    return SB_OK;
}

static FILE *open_output(const plot_ctx *c, const char *name, const char *ext, sb_err *err) {
    char path[PATH_LEN];
    if (join_path(c, name, ext, path, err) != SB_OK) return NULL;
    FILE *f = fopen(path, "w");
    if (!f) sb_err_set(err, SB_EINPUT, "%s: cannot create: %s", path, strerror(errno));
    return f;
}

static int close_output(const plot_ctx *c, FILE *f, const char *name, const char *ext, sb_err *err) {
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        char path[PATH_LEN];
        if (join_path(c, name, ext, path, err) != SB_OK) return err->code;
        return sb_err_set(err, SB_EINTERNAL, "%s: write failed", path);
    }
    return SB_OK;
}

/* The common header of every data file. */
static void put_header(const plot_ctx *c, FILE *f, const char *name, const char *what, id_list *runs) {
    fprintf(f, "# slimbench plot data: %s\n# %s\n", name, what);
    fprintf(f, "# source: %s (%zu runs; failed runs excluded: %zu)\n", c->source, c->n_runs, c->n_failed);
    put_id_list(f, runs);
}

/* A name not yet taken by another plot (two metric keys may share a slug). */
static void unique_name(const plot_ctx *c, const char *base, char *name) {
    snprintf(name, SB_PLOT_NAME_MAX, "%s", base);
    for (int k = 2;; k++) {
        bool taken = false;
        for (int i = 0; i < c->set->n && !taken; i++) taken = strcmp(c->set->names[i], name) == 0;
        if (!taken) return;
        snprintf(name, SB_PLOT_NAME_MAX, "%.*s_%d", SB_PLOT_NAME_MAX - 12, base, k);
    }
}

static int add_name(plot_ctx *c, const char *name, sb_err *err) {
    char(*names)[SB_PLOT_NAME_MAX] = realloc(c->set->names, (size_t)(c->set->n + 1) * sizeof *names);
    if (!names) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    c->set->names = names;
    snprintf(names[c->set->n++], SB_PLOT_NAME_MAX, "%s", name);
    return SB_OK;
}

/* ---- templates and scripts ------------------------------------------------------ */

typedef struct subst {
    const char *name;     /* placeholder without the @s */
    const char *value;
    bool text;            /* escaped as gnuplot text; else written as is (numbers, commands) */
} subst;

static char *read_whole_file(const char *path, sb_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return sb_err_set(err, SB_EINPUT, "%s: cannot read template: %s", path, strerror(errno)), NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) { free(buf); buf = NULL; break; }
        buf = bigger;
        cap *= 2;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (!buf) return sb_err_set(err, SB_EINTERNAL, "out of memory reading %s", path), NULL;
    if (failed) { free(buf); return sb_err_set(err, SB_EINPUT, "%s: read failed", path), NULL; }
    buf[len] = 0;
    return buf;
}

/* The text of template `name`: from opts->templates_dir when set (malloc'ed,
 * *owned set), else built in. */
static const char *load_template(const plot_ctx *c, const char *name, char **owned, sb_err *err) {
    *owned = NULL;
    if (c->opts->templates_dir) {
        char path[PATH_LEN];
        if (snprintf(path, sizeof path, "%s/%s", c->opts->templates_dir, name) >= (int)sizeof path)
            return sb_err_set(err, SB_EINPUT, "SLIMBENCH_PLOTS: path too long"), NULL;
        *owned = read_whole_file(path, err);
        return *owned;
    }
    for (int i = 0; i < sb_plot_n_templates; i++)
        if (strcmp(sb_plot_templates[i].name, name) == 0) return sb_plot_templates[i].text;
    sb_err_set(err, SB_EINTERNAL, "no built-in plot template %s", name);
    return NULL;
}

static bool placeholder_char(char ch) { return (ch >= 'A' && ch <= 'Z') || ch == '_'; }

/* Writes one non-comment line, replacing @NAME@ placeholders.  An @ that
 * does not start a placeholder is copied; an unknown placeholder is an error
 * (a typo in a template would otherwise reach gnuplot). */
static int put_line(FILE *f, const char *line, size_t len, const subst *subs, int n_subs, const char *tmpl, sb_err *err) {
    for (size_t i = 0; i < len; i++) {
        size_t j = i + 1;
        while (line[i] == '@' && j < len && placeholder_char(line[j])) j++;
        if (line[i] != '@' || j == i + 1 || j >= len || line[j] != '@') { fputc(line[i], f); continue; }
        const subst *s = NULL;
        for (int k = 0; k < n_subs && !s; k++)
            if (strlen(subs[k].name) == j - i - 1 && strncmp(subs[k].name, line + i + 1, j - i - 1) == 0) s = &subs[k];
        if (!s) return sb_err_set(err, SB_EINPUT, "plot template %s: unknown placeholder %.*s", tmpl, (int)(j - i + 1), line + i);
        if (s->text) put_gnuplot_text(f, s->value);
        else fputs(s->value, f);
        i = j;
    }
    return SB_OK;
}

/* The template with its placeholders replaced; comment lines are copied as
 * they are, so their documentation of the placeholders survives. */
static int instantiate(FILE *f, const char *text, const subst *subs, int n_subs, const char *tmpl, sb_err *err) {
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        const char *p = line + strspn(line, " \t");
        if (*p == '#') fwrite(line, 1, len, f);
        else if (put_line(f, line, len, subs, n_subs, tmpl, err) != SB_OK) return err->code;
        if (line[len] == '\n') fputc('\n', f);
        line += len + (line[len] == '\n');
    }
    return SB_OK;
}

/* PNG through cairo when this gnuplot has it (antialiased), else libgd. */
static const char TERMINAL_PNG[] =
    "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo noenhanced size 1000,650 font 'sans,10' } "
    "else { set terminal png noenhanced size 1000,650 }";
static const char TERMINAL_SVG[] = "set terminal svg noenhanced size 1000,650 font 'sans,10' background rgb 'white'";

/* A second format draws the same plot again: replot into another terminal. */
static void put_second_format(FILE *f, const char *name) {
    fprintf(f, "\n# The same plot as SVG.\n%s\nset output '", TERMINAL_SVG);
    put_gnuplot_text(f, name);
    fputs(".svg'\nreplot\n", f);
}

typedef struct script_text {
    const char *title, *xlabel, *ylabel;
} script_text;

/* NAME.gp from template tmpl; extra: the template's own placeholders. */
static int write_script(const plot_ctx *c, const char *name, const char *tmpl, const script_text *t, const subst *extra,
                        int n_extra, sb_err *err) {
    char *owned;
    const char *text = load_template(c, tmpl, &owned, err);
    if (!text) return err->code;
    bool png = c->opts->formats & SB_PLOT_PNG;
    char data[SB_PLOT_NAME_MAX + 8], output[SB_PLOT_NAME_MAX + 8];
    snprintf(data, sizeof data, "%s.dat", name);
    snprintf(output, sizeof output, "%s.%s", name, png ? "png" : "svg");
    subst subs[16] = {
        {"TERMINAL", png ? TERMINAL_PNG : TERMINAL_SVG, false}, {"OUTPUT", output, true}, {"DATA", data, true},
        {"TITLE", t->title, true}, {"XLABEL", t->xlabel, true}, {"YLABEL", t->ylabel, true},
    };
    int n_subs = 6;
    for (int i = 0; i < n_extra && n_subs < 16; i++) subs[n_subs++] = extra[i];
    FILE *f = open_output(c, name, ".gp", err);
    int rc = f ? SB_OK : err->code;
    if (rc == SB_OK) {
        fprintf(f, "# Drawn by `slimbench plot` from %s: run `gnuplot %s.gp` in this directory to redraw.\n", tmpl, name);
        rc = instantiate(f, text, subs, n_subs, tmpl, err);
        if (rc == SB_OK && png && (c->opts->formats & SB_PLOT_SVG)) put_second_format(f, name);
        int rc_close = close_output(c, f, name, ".gp", err);
        if (rc == SB_OK) rc = rc_close;
    }
    free(owned);
    return rc;
}

/* ---- quality against bits per weight --------------------------------------------- */

typedef struct point {
    double bits, value, stderr_value;
    bool front;
    char label[LABEL_MAX];
} point;

static bool better_or_equal(double a, double b, sb_direction d) { return d == SB_LOWER_IS_BETTER ? a <= b : a >= b; }

/* Marks the points no other point dominates (fewer-or-equal bits and a
 * better-or-equal value, strictly better in one of the two). */
static void mark_front(point *p, int n, sb_direction d) {
    for (int i = 0; i < n; i++) {
        p[i].front = true;
        for (int j = 0; j < n && p[i].front; j++) {
            bool strictly = p[j].bits < p[i].bits || p[j].value != p[i].value;
            if (j != i && p[j].bits <= p[i].bits && better_or_equal(p[j].value, p[i].value, d) && strictly)
                p[i].front = false;
        }
    }
}

static int cmp_front_order(const void *a, const void *b) {
    const point *x = *(const point *const *)a, *y = *(const point *const *)b;
    if (x->bits != y->bits) return x->bits < y->bits ? -1 : 1;
    return (x->value > y->value) - (x->value < y->value);
}

/* How a metric is shown: fractions of one as percent for accuracy-like
 * metrics, and an axis label with the unit. */
typedef struct metric_view {
    double scale;
    char ylabel[128];
} metric_view;

static metric_view view_of(const sb_report_column *col, const point *p, int n, double dense) {
    metric_view v = {1.0, ""};
    bool fractions = strncmp(col->metric, "acc", 3) == 0 && col->unit[0] == 0 && col->direction == SB_HIGHER_IS_BETTER;
    for (int i = 0; i < n && fractions; i++) fractions = p[i].value >= 0 && p[i].value <= 1;
    if (fractions && isfinite(dense)) fractions = dense >= 0 && dense <= 1;
    if (fractions) v.scale = 100.0;
    if (fractions) snprintf(v.ylabel, sizeof v.ylabel, "%s (%%)", strcmp(col->metric, "acc") == 0 ? "accuracy" : col->metric);
    else if (strcmp(col->metric, "ppl") == 0) snprintf(v.ylabel, sizeof v.ylabel, "perplexity");
    else if (col->unit[0]) snprintf(v.ylabel, sizeof v.ylabel, "%s (%s)", col->metric, col->unit);
    else snprintf(v.ylabel, sizeof v.ylabel, "%s", col->metric);
    return v;
}

static void put_point(FILE *f, const point *p, double scale) {
    put_number(f, p->bits);
    fputc(' ', f);
    put_number(f, p->value * scale);
    fputc(' ', f);
    put_number(f, isfinite(p->stderr_value) ? p->stderr_value * scale : 0);
    fprintf(f, " %d ", p->front ? 1 : 0);
    put_data_text(f, p->label);
    fputc('\n', f);
}

typedef struct quality_plot {
    const sb_report_column *col;
    int x_col;               /* report column of the x axis; -1: bits per weight */
    const char *model;
    point *points;
    int n;
    double dense;            /* NAN without a dense run */
    id_list runs;
} quality_plot;

static int write_quality_data(const plot_ctx *c, const char *name, quality_plot *q, const metric_view *v, sb_err *err) {
    FILE *f = open_output(c, name, ".dat", err);
    if (!f) return err->code;
    char what[512];
    if (q->x_col < 0)
        snprintf(what, sizeof what, "%s (%s) of %s against effective bits per weight (memory.bits_per_weight)", q->col->key,
                 direction_text(q->col->direction), q->model);
    else
        snprintf(what, sizeof what, "%s (%s) of %s against %s", q->col->key, direction_text(q->col->direction), q->model,
                 c->rep->cols[q->x_col].key);
    put_header(c, f, name, what, &q->runs);
    fputs("# dense reference: ", f);
    put_number(f, q->dense * v->scale);
    fputs(isfinite(q->dense) ? "\n" : " (no dense run)\n", f);
    if (v->scale != 1.0) fprintf(f, "# values and stderr multiplied by %g (fractions shown as percent)\n", v->scale);
    fprintf(f, "# columns: %s value stderr(0: none recorded) on_pareto_front label\n",
            q->x_col < 0 ? "bits_per_weight" : c->rep->cols[q->x_col].metric);
    fputs("# index 0: every method variant\n", f);
    for (int i = 0; i < q->n; i++) put_point(f, &q->points[i], v->scale);
    fputs("\n\n# index 1: the Pareto front, by the x column\n", f);
    const point **front = malloc((size_t)(q->n > 0 ? q->n : 1) * sizeof *front);
    int n_front = 0;
    for (int i = 0; front && i < q->n; i++)
        if (q->points[i].front) front[n_front++] = &q->points[i];
    if (n_front > 1) qsort(front, (size_t)n_front, sizeof front[0], cmp_front_order);
    for (int i = 0; i < n_front; i++) put_point(f, front[i], v->scale);
    int rc = close_output(c, f, name, ".dat", err);
    if (rc == SB_OK && !front) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
    free(front);
    return rc;
}

static int write_quality(plot_ctx *c, quality_plot *q, sb_err *err) {
    char base[SB_PLOT_NAME_MAX], model_slug[48], key_slug[96], name[SB_PLOT_NAME_MAX];
    slug(q->model, model_slug, sizeof model_slug);
    slug(q->col->key, key_slug, sizeof key_slug);
    snprintf(base, sizeof base, "%s_%s_%s", q->x_col < 0 ? "quality" : "cost", model_slug, key_slug);
    unique_name(c, base, name);
    char xlabel[128];
    if (q->x_col < 0) snprintf(xlabel, sizeof xlabel, "bits per weight");
    else snprintf(xlabel, sizeof xlabel, "%s (%s)", c->rep->cols[q->x_col].metric, c->rep->cols[q->x_col].unit);
    if (q->n == 0) {
        note_skip(c, name, q->x_col < 0 ? "no run has both this metric and bits per weight" : "no run has both this metric and its cost");
        return SB_OK;
    }
    mark_front(q->points, q->n, q->col->direction);
    metric_view v = view_of(q->col, q->points, q->n, q->dense);
    char title[512], dense[64];
    snprintf(title, sizeof title, "%s: %s (%s) vs %s", q->model, q->col->key, direction_text(q->col->direction), xlabel);
    snprintf(dense, sizeof dense, "%.10g", q->dense * v.scale);
    subst extra[] = {{"DENSE", isfinite(q->dense) ? dense : "NaN", false}};
    script_text t = {title, xlabel, v.ylabel};
    int rc = write_quality_data(c, name, q, &v, err);
    if (rc == SB_OK) rc = write_script(c, name, "quality_vs_bits.gp", &t, extra, 1, err);
    if (rc == SB_OK) rc = add_name(c, name, err);
    return rc;
}

/* Collects the points of column col for the rows [first, end) of one model. */
static int collect_points(const plot_ctx *c, int col, int first, int end, quality_plot *q, sb_err *err) {
    const sb_report *r = c->rep;
    for (int i = first; i < end; i++) {
        const sb_report_row *row = &r->rows[i];
        const sb_report_cell *cell = &row->cells[col];
        if (cell->state != SB_CELL_OK || !isfinite(cell->value)) continue;
        if (is_dense(row)) {
            if (isnan(q->dense)) q->dense = cell->value;
            if (id_list_add(&q->runs, cell->run_id, err) != SB_OK) return err->code;
            continue;
        }
        const sb_report_cell *x = q->x_col >= 0 ? &row->cells[q->x_col] : NULL;
        double xv = !x ? row->bits_per_weight : x->state == SB_CELL_OK ? x->value : NAN;
        if (!isfinite(xv)) continue;
        point *p = &q->points[q->n++];
        p->bits = xv;
        p->value = cell->value;
        p->stderr_value = cell->stderr_value;
        row_label(r, row, p->label, sizeof p->label);
        if (id_list_add(&q->runs, cell->run_id, err) != SB_OK) return err->code;
    }
    return SB_OK;
}

static int plot_quality(plot_ctx *c, int col, int x_col, int first, int end, sb_err *err) {
    quality_plot q = {.col = &c->rep->cols[col], .x_col = x_col, .model = c->rep->rows[first].model, .dense = NAN};
    q.points = sb_calloc(err, (size_t)(end - first), sizeof *q.points);
    if (!q.points) return SB_EINTERNAL;
    int rc = collect_points(c, col, first, end, &q, err);
    if (rc == SB_OK) rc = write_quality(c, &q, err);
    free(q.points);
    free(q.runs.ids);
    return rc;
}

/* ---- bar charts: retention, latency, throughput, memory -------------------------- */

typedef struct bar_row {
    char label[LABEL_MAX];
    double v[MAX_SERIES];
} bar_row;

typedef struct bar_chart {
    char name[SB_PLOT_NAME_MAX];
    const char *tmpl;
    char title[512], ylabel[128], what[512];
    int n_series;
    char series[MAX_SERIES][200];
    bar_row *rows;
    int n_rows;
    id_list runs;
} bar_chart;

static int write_bar_data(const plot_ctx *c, const bar_chart *b, id_list *runs, sb_err *err) {
    FILE *f = open_output(c, b->name, ".dat", err);
    if (!f) return err->code;
    put_header(c, f, b->name, b->what, runs);
    fputs("# the first line names the columns; then one line per method variant (NaN: no value)\n", f);
    put_data_text(f, "method");
    for (int s = 0; s < b->n_series; s++) {
        fputc(' ', f);
        put_data_text(f, b->series[s]);
    }
    fputc('\n', f);
    for (int i = 0; i < b->n_rows; i++) {
        put_data_text(f, b->rows[i].label);
        for (int s = 0; s < b->n_series; s++) {
            fputc(' ', f);
            put_number(f, b->rows[i].v[s]);
        }
        fputc('\n', f);
    }
    return close_output(c, f, b->name, ".dat", err);
}

static int write_bars(plot_ctx *c, bar_chart *b, const char *why_empty, sb_err *err) {
    char base[SB_PLOT_NAME_MAX];
    snprintf(base, sizeof base, "%s", b->name);
    unique_name(c, base, b->name);
    if (b->n_rows == 0 || b->n_series == 0) {
        note_skip(c, b->name, why_empty);
        return SB_OK;
    }
    char last_column[16];
    snprintf(last_column, sizeof last_column, "%d", b->n_series + 1);
    subst extra[] = {{"LAST_COLUMN", last_column, false}};
    script_text t = {b->title, "method", b->ylabel};
    int rc = write_bar_data(c, b, &b->runs, err);
    if (rc == SB_OK) rc = write_script(c, b->name, b->tmpl, &t, extra, 1, err);
    if (rc == SB_OK) rc = add_name(c, b->name, err);
    return rc;
}

static bool any_finite(const double *v, int n) {
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) return true;
    return false;
}

/* One bar row per row of [first, end) from the report columns cols[]:
 * their retention (retention) or their value; rows without any value are left out. */
static int fill_from_columns(const plot_ctx *c, bar_chart *b, const int *cols, int first, int end, bool retention,
                             sb_err *err) {
    const sb_report *r = c->rep;
    for (int i = first; i < end; i++) {
        const sb_report_row *row = &r->rows[i];
        if (retention && is_dense(row)) continue;
        bar_row *br = &b->rows[b->n_rows];
        for (int s = 0; s < b->n_series; s++) {
            const sb_report_cell *cell = &row->cells[cols[s]];
            br->v[s] = cell->state != SB_CELL_OK ? NAN : retention ? cell->retention_pct : cell->value;
        }
        if (!any_finite(br->v, b->n_series)) continue;
        row_label(r, row, br->label, sizeof br->label);
        b->n_rows++;
        for (int s = 0; s < b->n_series; s++)
            if (row->cells[cols[s]].state == SB_CELL_OK && id_list_add(&b->runs, row->cells[cols[s]].run_id, err) != SB_OK)
                return err->code;
    }
    return SB_OK;
}

/* The dense runs a retention is computed against belong in its header too. */
static int add_dense_runs(const plot_ctx *c, bar_chart *b, const int *cols, int first, int end, sb_err *err) {
    for (int i = first; i < end; i++) {
        const sb_report_row *row = &c->rep->rows[i];
        for (int s = 0; is_dense(row) && s < b->n_series; s++)
            if (row->cells[cols[s]].state == SB_CELL_OK && id_list_add(&b->runs, row->cells[cols[s]].run_id, err) != SB_OK)
                return err->code;
    }
    return SB_OK;
}

/* A sweep over several models has columns of tasks only some models ran
 * (text tasks, image tasks): a model's plots use its own columns. */
static bool column_in_rows(const plot_ctx *c, int col, int first, int end) {
    for (int i = first; i < end; i++)
        if (c->rep->rows[i].cells[col].state != SB_CELL_EMPTY) return true;
    return false;
}

typedef bool (*column_filter)(const sb_report_column *col);

static bool is_size_or_speed_unit(const char *unit) {
    static const char *const units[] = {"ms", "s", "tokens/s", "images/s", "bytes", "GFLOP"};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i]) == 0) return true;
    return false;
}

/* FLOP counts and their ratios are costs (the x axis of cost plots), not quality. */
static bool is_quality_metric(const sb_report_column *col) {
    return col->direction != SB_NO_DIRECTION && !is_size_or_speed_unit(col->unit) && !strstr(col->metric, "flops");
}

/* Mean latencies and time to first token; the percentiles stay in the tables. */
static bool is_latency_metric(const sb_report_column *col) {
    size_t n = strlen(col->metric);
    const char suffix[] = "latency_ms_mean";
    bool mean = n >= sizeof suffix - 1 && strcmp(col->metric + n - (sizeof suffix - 1), suffix) == 0;
    return strcmp(col->unit, "ms") == 0 && (mean || strcmp(col->metric, "ttft_ms") == 0);
}

static bool is_throughput_metric(const sb_report_column *col) {
    return strcmp(col->unit, "tokens/s") == 0 || strcmp(col->unit, "images/s") == 0;
}

typedef struct bar_kind {
    const char *prefix, *tmpl, *title, *ylabel, *why_empty;
    column_filter filter;   /* NULL: the selected quality metrics */
    bool retention;
} bar_kind;

/* The columns of a bar chart: at most MAX_SERIES, in report order, of
 * those the model's rows [first, end) have values in. */
static int chart_columns(const plot_ctx *c, const bar_kind *k, bar_chart *b, int *cols, int first, int end) {
    int skipped = 0;
    for (int col = 0; col < c->rep->n_cols; col++) {
        bool wanted = (k->filter ? k->filter(&c->rep->cols[col]) : c->quality[col]) && column_in_rows(c, col, first, end);
        if (!wanted) continue;
        if (b->n_series == MAX_SERIES) { skipped++; continue; }
        cols[b->n_series] = col;
        snprintf(b->series[b->n_series++], sizeof b->series[0], "%s", k->filter ? c->rep->cols[col].metric : c->rep->cols[col].key);
    }
    return skipped;
}

static int plot_column_bars(plot_ctx *c, const bar_kind *k, int first, int end, sb_err *err) {
    const char *model = c->rep->rows[first].model;
    bar_chart *b = sb_calloc(err, 1, sizeof *b);
    if (!b) return SB_EINTERNAL;
    b->rows = sb_calloc(err, (size_t)(end - first), sizeof *b->rows);
    int cols[MAX_SERIES], rc = b->rows ? SB_OK : SB_EINTERNAL;
    char model_slug[64];
    slug(model, model_slug, sizeof model_slug);
    snprintf(b->name, sizeof b->name, "%s_%s", k->prefix, model_slug);
    b->tmpl = k->tmpl;
    snprintf(b->title, sizeof b->title, "%s: %s", model, k->title);
    snprintf(b->ylabel, sizeof b->ylabel, "%s", k->ylabel);
    snprintf(b->what, sizeof b->what, "%s of %s per method variant", k->title, model);
    int dropped = rc == SB_OK ? chart_columns(c, k, b, cols, first, end) : 0;
    if (dropped && c->notes) fprintf(c->notes, "slimbench: plot: %s: only the first %d metrics drawn\n", b->name, MAX_SERIES);
    bool no_dense = k->retention && !c->rep->relative_to[0];
    if (rc == SB_OK && !no_dense) rc = fill_from_columns(c, b, cols, first, end, k->retention, err);
    if (rc == SB_OK && k->retention) rc = add_dense_runs(c, b, cols, first, end, err);
    if (rc == SB_OK) rc = write_bars(c, b, no_dense ? "no dense run to compare against" : k->why_empty, err);
    free(b->runs.ids);
    free(b->rows);
    free(b);
    return rc;
}

/* Memory comes from the rows themselves (memory.* of their records). */
static int fill_memory(const plot_ctx *c, bar_chart *b, int first, int end, sb_err *err) {
    const sb_report *r = c->rep;
    for (int i = first; i < end; i++) {
        const sb_report_row *row = &r->rows[i];
        bar_row *br = &b->rows[b->n_rows];
        br->v[0] = row->weight_bytes / MIB;
        br->v[1] = row->peak_rss_bytes / MIB;
        if (!any_finite(br->v, 2)) continue;
        row_label(r, row, br->label, sizeof br->label);
        b->n_rows++;
        for (int col = 0; col < r->n_cols; col++)
            if (row->cells[col].state == SB_CELL_OK && id_list_add(&b->runs, row->cells[col].run_id, err) != SB_OK)
                return err->code;
    }
    return SB_OK;
}

static int plot_memory(plot_ctx *c, int first, int end, sb_err *err) {
    const char *model = c->rep->rows[first].model;
    bar_chart *b = sb_calloc(err, 1, sizeof *b);
    if (!b) return SB_EINTERNAL;
    b->rows = sb_calloc(err, (size_t)(end - first), sizeof *b->rows);
    int rc = b->rows ? SB_OK : SB_EINTERNAL;
    char model_slug[64];
    slug(model, model_slug, sizeof model_slug);
    snprintf(b->name, sizeof b->name, "memory_%s", model_slug);
    b->tmpl = "memory_bars.gp";
    snprintf(b->title, sizeof b->title, "%s: memory per method (lower is better)", model);
    snprintf(b->ylabel, sizeof b->ylabel, "memory (MiB)");
    snprintf(b->what, sizeof b->what, "weight memory and peak RSS of %s in MiB (memory.weight_bytes, memory.peak_rss_bytes)", model);
    b->n_series = 2;
    snprintf(b->series[0], sizeof b->series[0], "weight memory (MiB)");
    snprintf(b->series[1], sizeof b->series[1], "peak RSS (MiB)");
    if (rc == SB_OK) rc = fill_memory(c, b, first, end, err);
    if (rc == SB_OK) rc = write_bars(c, b, "no run records its memory", err);
    free(b->runs.ids);
    free(b->rows);
    free(b);
    return rc;
}

/* ---- per model ------------------------------------------------------------------ */

static const bar_kind RETENTION = {"retention", "retention_bars.gp", "retention vs dense per method (higher is better)",
                                   "retention vs dense (%)", "no dense run of this model, or no metric shared with it", NULL, true};
static const bar_kind LATENCY = {"latency", "latency_bars.gp", "latency per method (lower is better)", "latency (ms)",
                                 "no speed task latencies in the results", is_latency_metric, false};
static const bar_kind THROUGHPUT = {"throughput", "latency_bars.gp", "throughput per method (higher is better)",
                                    "throughput (tokens/s)", "no speed task throughputs in the results",
                                    is_throughput_metric, false};

/* The cost column of col's task (an image classifier's GFLOPs per image,
 * counted from the tokens each block ran with), or -1. */
static int cost_column(const plot_ctx *c, int col) {
    for (int x = 0; x < c->rep->n_cols; x++)
        if (strcmp(c->rep->cols[x].metric, "gflops_per_image") == 0 && strcmp(c->rep->cols[x].task, c->rep->cols[col].task) == 0)
            return x;
    return -1;
}

static int plot_model(plot_ctx *c, int first, int end, sb_err *err) {
    int rc = SB_OK;
    for (int col = 0; rc == SB_OK && col < c->rep->n_cols; col++) {
        if (!c->quality[col] || !column_in_rows(c, col, first, end)) continue;
        rc = plot_quality(c, col, -1, first, end, err);
        int x = cost_column(c, col);
        if (rc == SB_OK && x >= 0) rc = plot_quality(c, col, x, first, end, err); /* accuracy against FLOPs */
    }
    if (rc == SB_OK) rc = plot_column_bars(c, &RETENTION, first, end, err);
    if (rc == SB_OK) rc = plot_column_bars(c, &LATENCY, first, end, err);
    if (rc == SB_OK) rc = plot_column_bars(c, &THROUGHPUT, first, end, err);
    if (rc == SB_OK) rc = plot_memory(c, first, end, err);
    return rc;
}

/* ---- choosing the quality metrics (--metric) ------------------------------------ */

/* "TASK:METRIC" matches a column of that metric whose task label is TASK or
 * TASK(params...); a bare "METRIC" matches the metric of any task. */
static bool metric_matches(const char *want, const sb_report_column *col) {
    const char *colon = strrchr(want, ':');
    if (!colon) return strcmp(want, col->metric) == 0;
    size_t task_len = (size_t)(colon - want);
    if (strcmp(colon + 1, col->metric) != 0 || strncmp(want, col->task, task_len) != 0) return false;
    return col->task[task_len] == 0 || col->task[task_len] == '(';
}

static int select_quality(plot_ctx *c, sb_err *err) {
    const sb_report *r = c->rep;
    for (int col = 0; col < r->n_cols; col++) {
        c->quality[col] = is_quality_metric(&r->cols[col]);
        if (!c->quality[col] || c->opts->n_metrics == 0) continue;
        bool wanted = false;
        for (int i = 0; i < c->opts->n_metrics && !wanted; i++) wanted = metric_matches(c->opts->metrics[i], &r->cols[col]);
        c->quality[col] = wanted;
    }
    for (int i = 0; i < c->opts->n_metrics; i++) {
        bool found = false;
        for (int col = 0; col < r->n_cols && !found; col++)
            found = is_quality_metric(&r->cols[col]) && metric_matches(c->opts->metrics[i], &r->cols[col]);
        if (!found) return sb_err_set(err, SB_EINPUT, "--metric %s: no quality metric of that name in the results", c->opts->metrics[i]);
    }
    return SB_OK;
}

/* ---- entry point ---------------------------------------------------------------- */

/* mkdir -p: OUTDIR and its missing parents. */
static int make_dirs(const char *dir, sb_err *err) {
    char path[PATH_LEN];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return sb_err_set(err, SB_EINPUT, "--out %s: path too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char saved = *p;
        *p = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return sb_err_set(err, SB_EINPUT, "%s: cannot create directory: %s", path, strerror(errno));
        *p = saved;
        if (!saved) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return sb_err_set(err, SB_EINPUT, "%s: not a directory", dir);
    return SB_OK;
}

static bool has_dense_run(const cJSON *const *records, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (sb_record_ok(records[i]) && strcmp(sb_record_str(records[i], "method.name", ""), DENSE_METHOD) == 0) return true;
    return false;
}

static int plot_models(plot_ctx *c, sb_err *err) {
    const sb_report *r = c->rep;
    if (select_quality(c, err) != SB_OK) return err->code;
    for (int first = 0, end; first < r->n_rows; first = end) {
        for (end = first + 1; end < r->n_rows && strcmp(r->rows[end].model, r->rows[first].model) == 0; end++) {}
        if (plot_model(c, first, end, err) != SB_OK) return err->code;
    }
    return SB_OK;
}

int sb_plot_prepare(const cJSON *const *records, size_t n, const char *source, const sb_plot_opts *opts, FILE *notes,
                    sb_plot_set *out, sb_err *err) {
    *out = (sb_plot_set){0};
    if (make_dirs(opts->out_dir, err) != SB_OK) return err->code;
    plot_ctx c = {.opts = opts, .source = source, .n_runs = n, .notes = notes, .set = out};
    for (size_t i = 0; i < n; i++) c.n_failed += !sb_record_ok(records[i]);
    sb_report_opts ro = {NULL, NULL, has_dense_run(records, n) ? DENSE_METHOD : NULL};
    sb_report *rep = NULL;
    if (sb_report_build(records, n, &ro, &rep, err) != SB_OK) return err->code;
    c.rep = rep;
    c.quality = sb_calloc(err, (size_t)(rep->n_cols ? rep->n_cols : 1), sizeof *c.quality);
    int rc = c.quality ? plot_models(&c, err) : SB_EINTERNAL;
    free(c.quality);
    sb_report_free(rep);
    if (rc != SB_OK) sb_plot_set_free(out);
    return rc;
}

void sb_plot_set_free(sb_plot_set *set) {
    if (!set) return;
    free(set->names);
    *set = (sb_plot_set){0};
}
