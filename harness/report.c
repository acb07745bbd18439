/* report.c - the report table (see report.h): building it from records,
 * then writing it as markdown, CSV (libcsv), HTML or JSON. */
#include <csv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "results.h"

/* ---- numbers ------------------------------------------------------------------ */

void sb_format_exact(double v, char *buf, size_t n) {
    if (!isfinite(v)) { snprintf(buf, n, "%s", isnan(v) ? "" : v > 0 ? "inf" : "-inf"); return; }
    snprintf(buf, n, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, n, "%.17g", v);
}

void sb_format_human(double v, char *buf, size_t n) {
    if (!isfinite(v)) snprintf(buf, n, "%s", isnan(v) ? "" : v > 0 ? "inf" : "-inf");
    else if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, n, "%.0f", v);
    else if (fabs(v) >= 100) snprintf(buf, n, "%.1f", v);
    else snprintf(buf, n, "%.4g", v);
}

static double json_num(const cJSON *v) { return cJSON_IsNumber(v) ? v->valuedouble : NAN; }

static sb_direction parse_direction(const char *s) {
    if (strcmp(s, "lower") == 0) return SB_LOWER_IS_BETTER;
    if (strcmp(s, "higher") == 0) return SB_HIGHER_IS_BETTER;
    return SB_NO_DIRECTION;
}

static const char *direction_name(sb_direction d) {
    return d == SB_LOWER_IS_BETTER ? "lower" : d == SB_HIGHER_IS_BETTER ? "higher" : "none";
}

/* ---- task labels: parameters shown only where they differ ---------------------- */

typedef struct task_info {
    char name[128];
    cJSON *first;     /* the first record's task params */
    cJSON *varying;   /* names of the parameters whose value differs between records (array of strings) */
} task_info;

typedef struct task_table {
    task_info *items;
    int n;
} task_table;

static void task_table_free(task_table *t) {
    for (int i = 0; i < t->n; i++) {
        cJSON_Delete(t->items[i].first);
        cJSON_Delete(t->items[i].varying);
    }
    free(t->items);
}

static bool in_names(const cJSON *names, const char *key) {
    const cJSON *k;
    cJSON_ArrayForEach(k, names) if (strcmp(k->valuestring, key) == 0) return true;
    return false;
}

static bool same_value(const cJSON *a, const cJSON *b) {
    char *x = a ? sb_json_canonical(a) : NULL, *y = b ? sb_json_canonical(b) : NULL;
    bool same = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return same;
}

/* Marks every parameter of params whose value differs from ti->first's (either way round). */
static void note_differences(task_info *ti, const cJSON *params) {
    const cJSON *pairs[2][2] = {{params, ti->first}, {ti->first, params}};
    for (int side = 0; side < 2; side++) {
        const cJSON *k;
        cJSON_ArrayForEach(k, pairs[side][0]) {
            if (in_names(ti->varying, k->string)) continue;
            if (!same_value(k, cJSON_GetObjectItemCaseSensitive(pairs[side][1], k->string)))
                cJSON_AddItemToArray(ti->varying, cJSON_CreateString(k->string));
        }
    }
}

static int task_table_note(task_table *t, const cJSON *rec, sb_err *err) {
    const char *name = sb_record_str(rec, "task.name", "?");
    const cJSON *params = sb_record_at(rec, "task.params");
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->items[i].name, name) == 0) {
            note_differences(&t->items[i], params);
            return SB_OK;
        }
    task_info *items = realloc(t->items, (size_t)(t->n + 1) * sizeof *items);
    if (!items) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    t->items = items;
    task_info *ti = &t->items[t->n];
    snprintf(ti->name, sizeof ti->name, "%s", name);
    ti->first = params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject();
    ti->varying = cJSON_CreateArray();
    if (!ti->first || !ti->varying) {
        cJSON_Delete(ti->first);
        cJSON_Delete(ti->varying);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    t->n++;
    return SB_OK;
}

/* "mc(data=recall.jsonl)": the task with only the parameters that tell its
 * records apart (a path shown by its last component), so a column header
 * stays readable when a sweep varies one parameter of a long list. */
static void task_label(const task_table *t, const cJSON *rec, char *buf, size_t n) {
    const char *name = sb_record_str(rec, "task.name", "?");
    const cJSON *varying = NULL, *params = sb_record_at(rec, "task.params");
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->items[i].name, name) == 0) varying = t->items[i].varying;
    size_t used = (size_t)snprintf(buf, n, "%s", name);
    const cJSON *k;
    int shown = 0;
    cJSON_ArrayForEach(k, varying) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, k->valuestring);
        char value[160];
        if (cJSON_IsString(v)) {
            const char *slash = strrchr(v->valuestring, '/');
            snprintf(value, sizeof value, "%s", slash ? slash + 1 : v->valuestring);
        } else if (cJSON_IsNumber(v)) {
            snprintf(value, sizeof value, "%.10g", v->valuedouble);
        } else {
            snprintf(value, sizeof value, "%s", cJSON_IsTrue(v) ? "true" : cJSON_IsFalse(v) ? "false" : "-");
        }
        if (used < n) used += (size_t)snprintf(buf + used, n - used, "%s%s=%s", shown++ ? "," : "(", k->valuestring, value);
    }
    if (shown && used < n) snprintf(buf + used, n - used, ")");
}

/* ---- columns -------------------------------------------------------------------- */

/* Position of the --metrics entry matching (metric, key), INT32_MAX when
 * there is no list, -1 when the list leaves the metric out. */
static int metric_order(const char *list, const char *metric, const char *key) {
    if (!list) return INT32_MAX;
    int pos = 0;
    for (const char *p = list; *p; pos++) {
        size_t n = strcspn(p, ",");
        if ((strlen(metric) == n && strncmp(p, metric, n) == 0) || (strlen(key) == n && strncmp(p, key, n) == 0))
            return pos;
        p += n + (p[n] == ',');
    }
    return -1;
}

static int find_column(const sb_report *r, const char *key) {
    for (int i = 0; i < r->n_cols; i++)
        if (strcmp(r->cols[i].key, key) == 0) return i;
    return -1;
}

static int add_column(sb_report *r, const char *task, const cJSON *metric, int order, sb_err *err) {
    sb_report_column *cols = realloc(r->cols, (size_t)(r->n_cols + 1) * sizeof *cols);
    if (!cols) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    r->cols = cols;
    sb_report_column *c = &r->cols[r->n_cols++];
    memset(c, 0, sizeof *c);
    snprintf(c->task, sizeof c->task, "%s", task);
    snprintf(c->metric, sizeof c->metric, "%s", metric->string);
    snprintf(c->key, sizeof c->key, "%s:%s", task, metric->string);
    snprintf(c->unit, sizeof c->unit, "%s", sb_record_str(metric, "unit", ""));
    c->direction = parse_direction(sb_record_str(metric, "direction", "none"));
    c->order = order;
    return SB_OK;
}

static int collect_columns(sb_report *r, const task_table *tasks, const cJSON *const *recs, size_t n, const char *list,
                           sb_err *err) {
    for (size_t i = 0; i < n; i++) {
        const cJSON *metrics = sb_record_at(recs[i], "metrics");
        if (!sb_record_ok(recs[i]) || !cJSON_IsObject(metrics)) continue;
        char task[128], key[192];
        task_label(tasks, recs[i], task, sizeof task);
        for (const cJSON *m = metrics->child; m; m = m->next) {
            snprintf(key, sizeof key, "%s:%s", task, m->string);
            int order = metric_order(list, m->string, key);
            if (order < 0 || find_column(r, key) >= 0) continue;
            if (add_column(r, task, m, order, err) != SB_OK) return SB_EINTERNAL;
        }
    }
    return SB_OK;
}

/* Every --metrics entry must name some column: a typo is an error, not an
 * empty table. */
static int check_metrics_used(const sb_report *r, const char *list, sb_err *err) {
    if (!list) return SB_OK;
    int pos = 0;
    for (const char *p = list; *p; pos++) {
        size_t n = strcspn(p, ",");
        bool used = false;
        for (int i = 0; i < r->n_cols; i++) used |= r->cols[i].order == pos;
        if (!used) return sb_err_set(err, SB_EINPUT, "--metrics: no metric '%.*s' in the results", (int)n, p);
        p += n + (p[n] == ',');
    }
    return SB_OK;
}

static int cmp_columns(const void *a, const void *b) {
    const sb_report_column *x = a, *y = b;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    int c = strcmp(x->task, y->task);
    return c ? c : strcmp(x->metric, y->metric);
}

/* ---- rows ------------------------------------------------------------------------ */

static void group_value(const cJSON *rec, const char *group_by, char *buf, size_t n) {
    buf[0] = 0;
    if (!group_by) return;
    if (strcmp(group_by, "model") == 0) { sb_record_model_label(rec, buf, n); return; }
    if (strcmp(group_by, "method") == 0) { sb_record_method_label(rec, buf, n); return; }
    const cJSON *v = sb_record_at(rec, group_by);
    if (cJSON_IsString(v)) snprintf(buf, n, "%s", v->valuestring);
    else if (cJSON_IsNumber(v)) sb_format_exact(v->valuedouble, buf, n);
    else if (cJSON_IsBool(v)) snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (v) {
        char *s = sb_json_canonical(v);
        snprintf(buf, n, "%s", s ? s : "?");
        free(s);
    } else snprintf(buf, n, "-");
}

/* The row identity of a record: everything but the task. */
static char *row_key(const cJSON *rec, const char *group) {
    cJSON *id = cJSON_CreateObject();
    if (!id) return NULL;
    const char *fields[] = {"model.hash", "model.path", "backend"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        cJSON_AddStringToObject(id, fields[i], sb_record_str(rec, fields[i], ""));
    cJSON_AddNumberToObject(id, "seed", json_num(sb_record_at(rec, "seed")));
    cJSON_AddStringToObject(id, "group", group);
    const cJSON *method = sb_record_at(rec, "method");
    cJSON *m = cJSON_CreateObject();
    const char *parts[] = {"name", "params", "steps"};
    for (size_t i = 0; m && i < sizeof parts / sizeof parts[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(method, parts[i]);
        if (v) cJSON_AddItemToObject(m, parts[i], cJSON_Duplicate(v, 1));
    }
    if (m) cJSON_AddItemToObject(id, "method", m);
    char *key = sb_json_canonical(id);
    cJSON_Delete(id);
    return key;
}

static int find_row(const sb_report *r, const char *key) {
    for (int i = 0; i < r->n_rows; i++)
        if (strcmp(r->rows[i].key, key) == 0) return i;
    return -1;
}

static void init_row(sb_report_row *row, char *key, const char *group, const cJSON *rec) {
    memset(row, 0, sizeof *row);
    row->key = key;
    snprintf(row->group, sizeof row->group, "%s", group);
    sb_record_model_label(rec, row->model, sizeof row->model);
    sb_record_method_label(rec, row->method, sizeof row->method);
    snprintf(row->method_name, sizeof row->method_name, "%s", sb_record_str(rec, "method.name", "?"));
    snprintf(row->backend, sizeof row->backend, "%s", sb_record_str(rec, "backend", ""));
    row->seed = json_num(sb_record_at(rec, "seed"));
    row->method_obj = sb_record_at(rec, "method");
    row->bits_per_weight = row->weight_bytes = row->peak_rss_bytes = NAN;
}

/* The row of rec, added when new; -1 when out of memory. */
static int row_of(sb_report *r, const cJSON *rec, const char *group_by, sb_err *err) {
    char group[128];
    group_value(rec, group_by, group, sizeof group);
    char *key = row_key(rec, group);
    if (!key) return sb_err_set(err, SB_EINTERNAL, "out of memory"), -1;
    int i = find_row(r, key);
    if (i >= 0) { free(key); return i; }
    sb_report_row *rows = realloc(r->rows, (size_t)(r->n_rows + 1) * sizeof *rows);
    if (!rows) { free(key); return sb_err_set(err, SB_EINTERNAL, "out of memory"), -1; }
    r->rows = rows;
    init_row(&r->rows[r->n_rows], key, group, rec);
    return r->n_rows++;
}

/* Orders JSON values: numbers as numbers, strings as text, containers
 * element by element; then by type. */
static int cmp_json(const cJSON *a, const cJSON *b) {
    if (!a || !b) return (a != NULL) - (b != NULL);
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return (a->valuedouble > b->valuedouble) - (a->valuedouble < b->valuedouble);
    if (cJSON_IsString(a) && cJSON_IsString(b)) return strcmp(a->valuestring, b->valuestring);
    if ((a->type & 0xFF) != (b->type & 0xFF)) return (a->type & 0xFF) < (b->type & 0xFF) ? -1 : 1;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next) {
        int c = x->string && y->string ? strcmp(x->string, y->string) : 0;
        if (!c) c = cmp_json(x, y);
        if (c) return c;
    }
    return (x != NULL) - (y != NULL);
}

static int cmp_rows(const void *a, const void *b) {
    const sb_report_row *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    if (!c) c = strcmp(x->model, y->model);
    if (!c) c = (int)y->reference - (int)x->reference;   /* the reference first */
    if (!c) c = strcmp(x->method_name, y->method_name);
    if (!c) c = cmp_json(cJSON_GetObjectItemCaseSensitive(x->method_obj, "params"),
                         cJSON_GetObjectItemCaseSensitive(y->method_obj, "params"));
    if (!c) c = cmp_json(cJSON_GetObjectItemCaseSensitive(x->method_obj, "steps"),
                         cJSON_GetObjectItemCaseSensitive(y->method_obj, "steps"));
    if (!c) c = strcmp(x->backend, y->backend);
    if (!c) c = (x->seed > y->seed) - (x->seed < y->seed);
    return c ? c : strcmp(x->key, y->key);
}

/* ---- filling cells ------------------------------------------------------------- */

static void note_failure(sb_report_row *row, const char *task, const cJSON *rec) {
    if (!row->error) row->error = sb_record_str(rec, "error", "failed");
    size_t used = strlen(row->failed_tasks);
    snprintf(row->failed_tasks + used, sizeof row->failed_tasks - used, "%s%s", used ? ", " : "", task);
}

static void fill_memory(sb_report_row *row, const cJSON *rec) {
    double bpw = json_num(sb_record_at(rec, "memory.bits_per_weight"));
    double wb = json_num(sb_record_at(rec, "memory.weight_bytes"));
    double rss = json_num(sb_record_at(rec, "memory.peak_rss_bytes"));
    if (isnan(row->bits_per_weight)) row->bits_per_weight = bpw;
    if (isnan(row->weight_bytes)) row->weight_bytes = wb;
    if (isnan(row->peak_rss_bytes) || rss > row->peak_rss_bytes) row->peak_rss_bytes = rss;
}

static void fill_metric_cells(sb_report *r, sb_report_row *row, const char *task, const cJSON *rec) {
    const cJSON *metrics = sb_record_at(rec, "metrics");
    for (const cJSON *m = cJSON_IsObject(metrics) ? metrics->child : NULL; m; m = m->next) {
        char key[192];
        snprintf(key, sizeof key, "%s:%s", task, m->string);
        int c = find_column(r, key);
        if (c < 0) continue;
        sb_report_cell *cell = &row->cells[c];
        if (cell->state != SB_CELL_EMPTY) r->n_collisions++;
        cell->state = SB_CELL_OK;
        cell->value = json_num(cJSON_GetObjectItemCaseSensitive(m, "value"));
        cell->stderr_value = json_num(cJSON_GetObjectItemCaseSensitive(m, "stderr"));
        cell->run_id = sb_record_str(rec, "run_id", "");
    }
}

static void fill_failed_cells(sb_report *r, sb_report_row *row, const char *task, const cJSON *rec) {
    note_failure(row, task, rec);
    for (int c = 0; c < r->n_cols; c++) {
        if (strcmp(r->cols[c].task, task) != 0 || row->cells[c].state == SB_CELL_OK) continue;
        row->cells[c].state = SB_CELL_FAILED;
        row->cells[c].run_id = sb_record_str(rec, "run_id", "");
    }
}

static int fill_cells(sb_report *r, const task_table *tasks, const cJSON *const *recs, size_t n, const char *group_by,
                      sb_err *err) {
    for (int i = 0; i < r->n_rows; i++) {
        r->rows[i].cells = sb_calloc(err, (size_t)(r->n_cols ? r->n_cols : 1), sizeof(sb_report_cell));
        if (!r->rows[i].cells) return SB_EINTERNAL;
        for (int c = 0; c < r->n_cols; c++)
            r->rows[i].cells[c].value = r->rows[i].cells[c].stderr_value = r->rows[i].cells[c].retention_pct = NAN;
    }
    for (size_t i = 0; i < n; i++) {
        int k = row_of(r, recs[i], group_by, err);   /* finds, never adds: every row exists */
        if (k < 0) return SB_EINTERNAL;
        sb_report_row *row = &r->rows[k];
        char task[128];
        task_label(tasks, recs[i], task, sizeof task);
        if (sb_record_ok(recs[i])) {
            fill_memory(row, recs[i]);
            fill_metric_cells(r, row, task, recs[i]);
        } else {
            fill_failed_cells(r, row, task, recs[i]);
        }
    }
    return SB_OK;
}

/* ---- reference rows, retention, best -------------------------------------------- */

static int reference_of(const sb_report *r, const sb_report_row *row) {
    for (int i = 0; i < r->n_rows; i++) {
        const sb_report_row *ref = &r->rows[i];
        if (ref->reference && strcmp(ref->model, row->model) == 0 && strcmp(ref->backend, row->backend) == 0) return i;
    }
    return -1;
}

static double retention(double value, double base, sb_direction d) {
    if (d == SB_HIGHER_IS_BETTER && base != 0) return value / base * 100.0;
    if (d == SB_LOWER_IS_BETTER && value != 0) return base / value * 100.0;
    return NAN;
}

static int mark_reference(sb_report *r, const char *method, sb_err *err) {
    if (!method) return SB_OK;
    bool any = false;
    for (int i = 0; i < r->n_rows; i++) {
        r->rows[i].reference = strcmp(r->rows[i].method_name, method) == 0;
        any |= r->rows[i].reference;
    }
    if (!any) return sb_err_set(err, SB_EINPUT, "--relative-to %s: no run of method '%s' in the results", method, method);
    return SB_OK;
}

static void compute_retention(sb_report *r) {
    for (int i = 0; i < r->n_rows; i++) {
        int ref = reference_of(r, &r->rows[i]);
        if (ref < 0) continue;
        for (int c = 0; c < r->n_cols; c++) {
            const sb_report_cell *base = &r->rows[ref].cells[c];
            sb_report_cell *cell = &r->rows[i].cells[c];
            if (cell->state == SB_CELL_OK && base->state == SB_CELL_OK)
                cell->retention_pct = retention(cell->value, base->value, r->cols[c].direction);
        }
    }
}

static bool better(double a, double b, sb_direction d) { return d == SB_LOWER_IS_BETTER ? a < b : a > b; }

/* Marks the best cell(s) of column c among the rows [first, end) of a group. */
static void mark_best_in(sb_report *r, int c, int first, int end) {
    sb_direction d = r->cols[c].direction;
    double best = NAN;
    int competitors = 0;
    for (int i = first; i < end; i++) {
        const sb_report_cell *cell = &r->rows[i].cells[c];
        if (r->rows[i].reference || cell->state != SB_CELL_OK || isnan(cell->value)) continue;
        competitors++;
        if (isnan(best) || better(cell->value, best, d)) best = cell->value;
    }
    if (competitors < 2) return;
    for (int i = first; i < end; i++) {
        sb_report_cell *cell = &r->rows[i].cells[c];
        cell->best = !r->rows[i].reference && cell->state == SB_CELL_OK && cell->value == best;
    }
}

static void mark_best(sb_report *r) {
    for (int first = 0, end; first < r->n_rows; first = end) {
        for (end = first + 1; end < r->n_rows && strcmp(r->rows[end].group, r->rows[first].group) == 0; end++) {}
        for (int c = 0; c < r->n_cols; c++)
            if (r->cols[c].direction != SB_NO_DIRECTION) mark_best_in(r, c, first, end);
    }
}

/* Backend and seed get columns only when they tell rows apart. */
static void decide_shown_columns(sb_report *r) {
    for (int i = 1; i < r->n_rows; i++) {
        r->show_backend |= strcmp(r->rows[i].backend, r->rows[0].backend) != 0;
        bool a = isnan(r->rows[i].seed), b = isnan(r->rows[0].seed);
        r->show_seed |= a != b || (!a && r->rows[i].seed != r->rows[0].seed);
    }
}

/* ---- building -------------------------------------------------------------------- */

/* A --group-by path that no record has is a typo, not one group "-". */
static int check_group_by(const char *group_by, const cJSON *const *recs, size_t n, sb_err *err) {
    if (!group_by || strcmp(group_by, "model") == 0 || strcmp(group_by, "method") == 0) return SB_OK;
    for (size_t i = 0; i < n; i++)
        if (sb_record_at(recs[i], group_by)) return SB_OK;
    return n ? sb_err_set(err, SB_EINPUT, "--group-by %s: no record has this field", group_by) : SB_OK;
}

static int build(sb_report *r, const cJSON *const *recs, size_t n, const sb_report_opts *o, task_table *tasks,
                 sb_err *err) {
    if (check_group_by(o->group_by, recs, n, err) != SB_OK) return err->code;
    for (size_t i = 0; i < n; i++)
        if (task_table_note(tasks, recs[i], err) != SB_OK) return SB_EINTERNAL;
    if (collect_columns(r, tasks, recs, n, o->metrics, err) != SB_OK) return SB_EINTERNAL;
    if (check_metrics_used(r, o->metrics, err) != SB_OK) return err->code;
    if (r->n_cols > 1) qsort(r->cols, (size_t)r->n_cols, sizeof *r->cols, cmp_columns);
    for (size_t i = 0; i < n; i++)
        if (row_of(r, recs[i], o->group_by, err) < 0) return SB_EINTERNAL;
    if (mark_reference(r, o->relative_to, err) != SB_OK) return err->code;
    if (r->n_rows > 1) qsort(r->rows, (size_t)r->n_rows, sizeof *r->rows, cmp_rows);
    if (fill_cells(r, tasks, recs, n, o->group_by, err) != SB_OK) return SB_EINTERNAL;
    compute_retention(r);
    mark_best(r);
    decide_shown_columns(r);
    return SB_OK;
}

int sb_report_build(const cJSON *const *records, size_t n, const sb_report_opts *opts, sb_report **out, sb_err *err) {
    *out = NULL;
    sb_report *r = sb_calloc(err, 1, sizeof *r);
    if (!r) return SB_EINTERNAL;
    r->show_group = opts->group_by != NULL;
    snprintf(r->group_by, sizeof r->group_by, "%s", opts->group_by ? opts->group_by : "");
    snprintf(r->relative_to, sizeof r->relative_to, "%s", opts->relative_to ? opts->relative_to : "");
    task_table tasks = {0};
    int rc = build(r, records, n, opts, &tasks, err);
    task_table_free(&tasks);
    if (rc != SB_OK) { sb_report_free(r); return rc; }
    *out = r;
    return SB_OK;
}

void sb_report_free(sb_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_rows; i++) {
        free(r->rows[i].key);
        free(r->rows[i].cells);
    }
    free(r->rows);
    free(r->cols);
    free(r);
}

int sb_report_column_index(const sb_report *r, const char *key) { return find_column(r, key); }

int sb_report_row_index(const sb_report *r, const char *model, const char *method) {
    for (int i = 0; i < r->n_rows; i++)
        if (strcmp(r->rows[i].model, model) == 0 && strcmp(r->rows[i].method, method) == 0) return i;
    return -1;
}

/* ---- writing: the cells as text (md and html) ----------------------------------- */

typedef enum { TEXT_MD, TEXT_HTML } text_style;

/* Writes s with the escapes of the style: '|' in markdown tables, the five
 * special characters in HTML. */
static void put_escaped(FILE *f, const char *s, text_style style) {
    for (; *s; s++) {
        if (style == TEXT_MD && *s == '|') fputs("\\|", f);
        else if (style == TEXT_MD && (*s == '\n' || *s == '\r')) fputc(' ', f);
        else if (style == TEXT_HTML && *s == '&') fputs("&amp;", f);
        else if (style == TEXT_HTML && *s == '<') fputs("&lt;", f);
        else if (style == TEXT_HTML && *s == '>') fputs("&gt;", f);
        else if (style == TEXT_HTML && *s == '"') fputs("&quot;", f);
        else if (style == TEXT_HTML && *s == '\'') fputs("&#39;", f);
        else fputc(*s, f);
    }
}

static void cell_text(const sb_report_cell *cell, char *buf, size_t n) {
    buf[0] = 0;
    if (cell->state == SB_CELL_FAILED) { snprintf(buf, n, "failed"); return; }
    if (cell->state != SB_CELL_OK) return;
    char v[48], e[48] = "", ret[48] = "";
    sb_format_human(cell->value, v, sizeof v);
    if (!isnan(cell->stderr_value)) {
        char s[40];
        sb_format_human(cell->stderr_value, s, sizeof s);
        snprintf(e, sizeof e, " ± %s", s);
    }
    if (!isnan(cell->retention_pct)) snprintf(ret, sizeof ret, " (%.1f%%)", cell->retention_pct);
    snprintf(buf, n, "%s%s%s", v, e, ret);
}

static void bytes_text(double b, char *buf, size_t n) {
    if (isnan(b)) buf[0] = 0;
    else if (b >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else snprintf(buf, n, "%.1f MiB", b / (1024.0 * 1024));
}

static void status_text(const sb_report_row *row, char *buf, size_t n) {
    if (row->failed_tasks[0]) snprintf(buf, n, "failed: %s", row->failed_tasks);
    else snprintf(buf, n, "ok");
}

/* Grouping by model or method needs no column of its own: the model or
 * method column already shows it (and md/html also title each group). */
static bool group_column(const sb_report *r) {
    return r->show_group && strcmp(r->group_by, "model") != 0 && strcmp(r->group_by, "method") != 0;
}

/* The label columns and the trailing columns, in one list for md and html. */
static int header_names(const sb_report *r, const char **names) {
    int k = 0;
    if (group_column(r)) names[k++] = r->group_by;
    names[k++] = "model";
    names[k++] = "method";
    if (r->show_backend) names[k++] = "backend";
    if (r->show_seed) names[k++] = "seed";
    return k;
}

static const char *const tail_names[] = {"bits/weight", "weights", "peak RSS", "status"};
enum { N_TAIL = 4 };

/* Text of the label columns of a row, in header_names order. */
static int row_labels(const sb_report *r, const sb_report_row *row, char labels[][512]) {
    int k = 0;
    if (group_column(r)) snprintf(labels[k++], 512, "%s", row->group);
    snprintf(labels[k++], 512, "%s", row->model);
    snprintf(labels[k++], 512, "%s", row->method);
    if (r->show_backend) snprintf(labels[k++], 512, "%s", row->backend);
    if (r->show_seed) sb_format_exact(row->seed, labels[k++], 512);
    return k;
}

static void row_tail(const sb_report_row *row, char tail[N_TAIL][300], double values[N_TAIL]) {
    sb_format_human(row->bits_per_weight, tail[0], sizeof tail[0]);
    bytes_text(row->weight_bytes, tail[1], sizeof tail[1]);
    bytes_text(row->peak_rss_bytes, tail[2], sizeof tail[2]);
    status_text(row, tail[3], sizeof tail[3]);
    values[0] = row->bits_per_weight;
    values[1] = row->weight_bytes;
    values[2] = row->peak_rss_bytes;
    values[3] = NAN;
}

static void column_header(const sb_report_column *c, char *buf, size_t n) {
    if (c->unit[0]) snprintf(buf, n, "%s (%s)", c->key, c->unit);
    else snprintf(buf, n, "%s", c->key);
}

/* ---- markdown -------------------------------------------------------------------- */

static void md_header(const sb_report *r, FILE *f) {
    const char *names[8];
    int k = header_names(r, names);
    fputs("|", f);
    for (int i = 0; i < k; i++) { fputc(' ', f); put_escaped(f, names[i], TEXT_MD); fputs(" |", f); }
    for (int c = 0; c < r->n_cols; c++) {
        char h[256];
        column_header(&r->cols[c], h, sizeof h);
        fputc(' ', f);
        put_escaped(f, h, TEXT_MD);
        fputs(" |", f);
    }
    for (int i = 0; i < N_TAIL; i++) fprintf(f, " %s |", tail_names[i]);
    fputs("\n|", f);
    for (int i = 0; i < k; i++) fputs("---|", f);
    for (int c = 0; c < r->n_cols + N_TAIL - 1; c++) fputs("---:|", f);
    fputs("---|\n", f);
}

static void md_row(const sb_report *r, const sb_report_row *row, FILE *f) {
    char labels[8][512], tail[N_TAIL][300], text[256];
    double values[N_TAIL];
    int k = row_labels(r, row, labels);
    fputs("|", f);
    for (int i = 0; i < k; i++) { fputc(' ', f); put_escaped(f, labels[i], TEXT_MD); fputs(" |", f); }
    for (int c = 0; c < r->n_cols; c++) {
        cell_text(&row->cells[c], text, sizeof text);
        fprintf(f, row->cells[c].best ? " **%s** |" : " %s |", text);
    }
    row_tail(row, tail, values);
    for (int i = 0; i < N_TAIL; i++) { fputc(' ', f); put_escaped(f, tail[i], TEXT_MD); fputs(" |", f); }
    fputc('\n', f);
}

static void write_md(const sb_report *r, const char *title, FILE *f) {
    fputs("# slimbench report: ", f);
    put_escaped(f, title, TEXT_MD);
    fputs("\n", f);
    if (r->relative_to[0])
        fprintf(f, "\nIn parentheses: percent retention vs %s (value/base for higher-is-better, base/value for "
                   "lower-is-better metrics).\n", r->relative_to);
    for (int first = 0, end; first < r->n_rows || first == 0; first = end) {
        end = first + 1;
        while (end < r->n_rows && strcmp(r->rows[end].group, r->rows[first].group) == 0) end++;
        if (r->show_group && first < r->n_rows) {
            fputs("\n## ", f);
            put_escaped(f, r->rows[first].group, TEXT_MD);
            fputs("\n", f);
        }
        fputs("\n", f);
        md_header(r, f);
        for (int i = first; i < end && i < r->n_rows; i++) md_row(r, &r->rows[i], f);
    }
}

/* ---- CSV (libcsv quoting) -------------------------------------------------------- */

/* One field; sep is written before it unless it is the first of the line. */
static int csv_field(FILE *f, const char *s, bool first) {
    if (!first && fputc(',', f) == EOF) return -1;
    return csv_fwrite(f, s, strlen(s)) == 0 ? 0 : -1;
}

static int csv_number(FILE *f, double v) {
    char buf[64];
    sb_format_exact(v, buf, sizeof buf);
    return csv_field(f, buf, false);
}

static int csv_header(const sb_report *r, FILE *f) {
    const char *names[8];
    int k = header_names(r, names), bad = 0;
    for (int i = 0; i < k; i++) bad |= csv_field(f, names[i], i == 0);
    for (int c = 0; c < r->n_cols; c++) {
        char h[256];
        bad |= csv_field(f, r->cols[c].key, false);
        snprintf(h, sizeof h, "%s:stderr", r->cols[c].key);
        bad |= csv_field(f, h, false);
        if (!r->relative_to[0]) continue;
        snprintf(h, sizeof h, "%s:retention_pct", r->cols[c].key);
        bad |= csv_field(f, h, false);
    }
    const char *tail[] = {"bits_per_weight", "weight_bytes", "peak_rss_bytes", "status", "best"};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) bad |= csv_field(f, tail[i], false);
    return bad | (fputc('\n', f) == EOF);
}

static int csv_row(const sb_report *r, const sb_report_row *row, FILE *f) {
    char labels[8][512], status[300], best[2048] = "";
    int k = row_labels(r, row, labels), bad = 0;
    for (int i = 0; i < k; i++) bad |= csv_field(f, labels[i], i == 0);
    for (int c = 0; c < r->n_cols; c++) {
        const sb_report_cell *cell = &row->cells[c];
        bool ok = cell->state == SB_CELL_OK;
        bad |= ok ? csv_number(f, cell->value) : csv_field(f, cell->state == SB_CELL_FAILED ? "failed" : "", false);
        bad |= csv_number(f, ok ? cell->stderr_value : NAN);
        if (r->relative_to[0]) bad |= csv_number(f, cell->retention_pct);
        if (cell->best) {
            size_t used = strlen(best);
            snprintf(best + used, sizeof best - used, "%s%s", used ? ";" : "", r->cols[c].key);
        }
    }
    bad |= csv_number(f, row->bits_per_weight) | csv_number(f, row->weight_bytes) | csv_number(f, row->peak_rss_bytes);
    status_text(row, status, sizeof status);
    bad |= csv_field(f, status, false) | csv_field(f, best, false);
    return bad | (fputc('\n', f) == EOF);
}

static int write_csv(const sb_report *r, FILE *f) {
    int bad = csv_header(r, f);
    for (int i = 0; i < r->n_rows; i++) bad |= csv_row(r, &r->rows[i], f);
    return bad;
}

/* ---- HTML ------------------------------------------------------------------------ */

static const char *const html_head =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>slimbench report</title>\n"
    "<style>\n"
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}\n"
    "th,td{border:1px solid #ccc;padding:4px 8px}td.n{text-align:right}th{cursor:pointer;background:#eee}\n"
    "tr.ref{background:#f6f6ff}td.failed{color:#b00}\n"
    "</style>\n</head>\n<body>\n";

/* Click a header to sort by it; again to reverse.  Cells carry their
 * number in data-v so "16.8 ± 1.2" sorts as 16.8. */
static const char *const html_script =
    "<script>\n"
    "document.querySelectorAll('table.sb th').forEach(function(th){\n"
    "  th.addEventListener('click',function(){\n"
    "    var t=th.closest('table'),b=t.tBodies[0],i=th.cellIndex,up=th.dataset.dir!=='asc';\n"
    "    th.dataset.dir=up?'asc':'desc';\n"
    "    var key=function(r){var c=r.cells[i];return c.dataset.v!==undefined?parseFloat(c.dataset.v):c.textContent;};\n"
    "    Array.from(b.rows).sort(function(x,y){var a=key(x),c=key(y);\n"
    "      var d=(typeof a==='number'&&typeof c==='number')?a-c:String(a).localeCompare(String(c));\n"
    "      return up?d:-d;}).forEach(function(r){b.appendChild(r);});\n"
    "  });\n"
    "});\n"
    "</script>\n";

static void html_text_cell(FILE *f, const char *s) {
    fputs("<td>", f);
    put_escaped(f, s, TEXT_HTML);
    fputs("</td>", f);
}

static void html_num_cell(FILE *f, const char *text, double v, bool best, bool failed) {
    char num[64];
    sb_format_exact(v, num, sizeof num);
    fprintf(f, "<td class=\"n%s\"", failed ? " failed" : "");
    if (!isnan(v)) fprintf(f, " data-v=\"%s\"", num);
    fputs(best ? "><b>" : ">", f);
    put_escaped(f, text, TEXT_HTML);
    fputs(best ? "</b></td>" : "</td>", f);
}

static void html_header(const sb_report *r, FILE *f) {
    const char *names[8];
    int k = header_names(r, names);
    fputs("<table class=\"sb\">\n<thead><tr>", f);
    for (int i = 0; i < k; i++) { fputs("<th>", f); put_escaped(f, names[i], TEXT_HTML); fputs("</th>", f); }
    for (int c = 0; c < r->n_cols; c++) {
        char h[256];
        column_header(&r->cols[c], h, sizeof h);
        fprintf(f, "<th title=\"%s is better\">", direction_name(r->cols[c].direction));
        put_escaped(f, h, TEXT_HTML);
        fputs("</th>", f);
    }
    for (int i = 0; i < N_TAIL; i++) fprintf(f, "<th>%s</th>", tail_names[i]);
    fputs("</tr></thead>\n<tbody>\n", f);
}

static void html_row(const sb_report *r, const sb_report_row *row, FILE *f) {
    char labels[8][512], tail[N_TAIL][300], text[256];
    double values[N_TAIL];
    int k = row_labels(r, row, labels);
    fputs(row->reference ? "<tr class=\"ref\">" : "<tr>", f);
    for (int i = 0; i < k; i++) html_text_cell(f, labels[i]);
    for (int c = 0; c < r->n_cols; c++) {
        const sb_report_cell *cell = &row->cells[c];
        cell_text(cell, text, sizeof text);
        html_num_cell(f, text, cell->state == SB_CELL_OK ? cell->value : NAN, cell->best, cell->state == SB_CELL_FAILED);
    }
    row_tail(row, tail, values);
    for (int i = 0; i < N_TAIL - 1; i++) html_num_cell(f, tail[i], values[i], false, false);
    html_text_cell(f, tail[N_TAIL - 1]);
    fputs("</tr>\n", f);
}

static void write_html(const sb_report *r, const char *title, FILE *f) {
    fputs(html_head, f);
    fputs("<h1>slimbench report: ", f);
    put_escaped(f, title, TEXT_HTML);
    fputs("</h1>\n<p>Best value per column in bold.", f);
    if (r->relative_to[0]) {
        fputs(" In parentheses: percent retention vs ", f);
        put_escaped(f, r->relative_to, TEXT_HTML);
        fputs(" (value/base for higher-is-better, base/value for lower-is-better metrics).", f);
    }
    fputs(" Click a column header to sort.</p>\n", f);
    for (int first = 0, end; first < r->n_rows || first == 0; first = end) {
        end = first + 1;
        while (end < r->n_rows && strcmp(r->rows[end].group, r->rows[first].group) == 0) end++;
        if (r->show_group && first < r->n_rows) {
            fputs("<h2>", f);
            put_escaped(f, r->rows[first].group, TEXT_HTML);
            fputs("</h2>\n", f);
        }
        html_header(r, f);
        for (int i = first; i < end && i < r->n_rows; i++) html_row(r, &r->rows[i], f);
        fputs("</tbody>\n</table>\n", f);
    }
    fputs(html_script, f);
    fputs("</body>\n</html>\n", f);
}

/* ---- JSON ------------------------------------------------------------------------ */

/* A number, or null for NAN (JSON has no NaN). */
static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static cJSON *json_columns(const sb_report *r) {
    cJSON *cols = cJSON_CreateArray();
    for (int c = 0; cols && c < r->n_cols; c++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) { cJSON_Delete(cols); return NULL; }
        cJSON_AddItemToArray(cols, o);
        cJSON_AddStringToObject(o, "key", r->cols[c].key);
        cJSON_AddStringToObject(o, "task", r->cols[c].task);
        cJSON_AddStringToObject(o, "metric", r->cols[c].metric);
        cJSON_AddStringToObject(o, "direction", direction_name(r->cols[c].direction));
        cJSON_AddStringToObject(o, "unit", r->cols[c].unit);
    }
    return cols;
}

static cJSON *json_cell(const sb_report_cell *cell) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "status", cell->state == SB_CELL_OK ? "ok" : "failed");
    if (cell->state == SB_CELL_OK) {
        cJSON_AddItemToObject(o, "value", num_or_null(cell->value));
        cJSON_AddItemToObject(o, "stderr", num_or_null(cell->stderr_value));
        cJSON_AddItemToObject(o, "retention_pct", num_or_null(cell->retention_pct));
        cJSON_AddBoolToObject(o, "best", cell->best);
    }
    cJSON_AddStringToObject(o, "run_id", cell->run_id ? cell->run_id : "");
    return o;
}

static cJSON *json_row(const sb_report *r, const sb_report_row *row) {
    cJSON *o = cJSON_CreateObject(), *cells = cJSON_CreateObject();
    if (!o || !cells) { cJSON_Delete(o); cJSON_Delete(cells); return NULL; }
    if (r->show_group) cJSON_AddStringToObject(o, "group", row->group);
    cJSON_AddStringToObject(o, "model", row->model);
    cJSON_AddStringToObject(o, "method", row->method);
    cJSON_AddItemToObject(o, "method_spec", cJSON_Duplicate(row->method_obj, 1));
    cJSON_AddStringToObject(o, "backend", row->backend);
    cJSON_AddItemToObject(o, "seed", num_or_null(row->seed));
    cJSON_AddBoolToObject(o, "reference", row->reference);
    cJSON_AddStringToObject(o, "status", row->failed_tasks[0] ? "failed" : "ok");
    if (row->error) cJSON_AddStringToObject(o, "error", row->error);
    cJSON_AddItemToObject(o, "bits_per_weight", num_or_null(row->bits_per_weight));
    cJSON_AddItemToObject(o, "weight_bytes", num_or_null(row->weight_bytes));
    cJSON_AddItemToObject(o, "peak_rss_bytes", num_or_null(row->peak_rss_bytes));
    cJSON_AddItemToObject(o, "cells", cells);
    for (int c = 0; c < r->n_cols; c++)
        if (row->cells[c].state != SB_CELL_EMPTY) cJSON_AddItemToObject(cells, r->cols[c].key, json_cell(&row->cells[c]));
    return o;
}

static int write_json(const sb_report *r, const char *title, FILE *f, sb_err *err) {
    cJSON *doc = cJSON_CreateObject(), *rows = cJSON_CreateArray();
    if (doc && rows) {
        cJSON_AddStringToObject(doc, "title", title);
        cJSON_AddItemToObject(doc, "group_by", r->show_group ? cJSON_CreateString(r->group_by) : cJSON_CreateNull());
        cJSON_AddItemToObject(doc, "relative_to",
                              r->relative_to[0] ? cJSON_CreateString(r->relative_to) : cJSON_CreateNull());
        cJSON_AddItemToObject(doc, "columns", json_columns(r));
        cJSON_AddItemToObject(doc, "rows", rows);
        for (int i = 0; i < r->n_rows; i++) cJSON_AddItemToArray(rows, json_row(r, &r->rows[i]));
    } else {
        cJSON_Delete(rows);
    }
    char *s = doc ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!s) return sb_err_set(err, SB_EINTERNAL, "out of memory writing the JSON report");
    fprintf(f, "%s\n", s);
    free(s);
    return SB_OK;
}

int sb_report_write(const sb_report *r, sb_report_format format, const char *title, FILE *out, sb_err *err) {
    int rc = SB_OK;
    switch (format) {
    case SB_REPORT_MD: write_md(r, title, out); break;
    case SB_REPORT_CSV: if (write_csv(r, out) != 0) rc = sb_err_set(err, SB_EINTERNAL, "writing the CSV report failed"); break;
    case SB_REPORT_HTML: write_html(r, title, out); break;
    case SB_REPORT_JSON: rc = write_json(r, title, out, err); break;
    }
    if (rc == SB_OK && (ferror(out) || fflush(out) != 0)) rc = sb_err_set(err, SB_EINTERNAL, "writing the report failed");
    return rc;
}
