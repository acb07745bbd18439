/* test_report.c - reports from tests/fixtures/results/baseline (8 records:
 * 2 methods x 2 parameter values x 2 tasks, every schema field filled):
 * row and column layout, md/html/json output, the CSV read back with
 * libcsv to the same values, retention against dense, best marking,
 * failed runs, filters; and the JUnit XML of compare checked for
 * well-formedness with hostile text in it. */
#include <csv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "compare.h"
#include "report.h"
#include "results.h"

#define FIXTURE "tests/fixtures/results/baseline/runs.jsonl"

/* ---- helpers ---------------------------------------------------------------- */

/* The fixture's records plus extra ones (owned by the caller's array). */
typedef struct record_set {
    sb_results *store;
    const cJSON *recs[64];
    cJSON *extra[16];
    size_t n, n_extra;
} record_set;

static bool load_fixture(record_set *s) {
    memset(s, 0, sizeof *s);
    sb_err err = {0};
    if (!test_expect(sb_results_load(FIXTURE, &s->store, &err) == SB_OK, "%s", err.msg)) return false;
    for (size_t i = 0; i < sb_results_count(s->store); i++) s->recs[s->n++] = sb_results_get(s->store, i);
    return test_expect(s->n == 8, "fixture has %zu records, want 8", s->n);
}

static void free_set(record_set *s) {
    for (size_t i = 0; i < s->n_extra; i++) cJSON_Delete(s->extra[i]);
    sb_results_close(s->store);
}

static void set_number(cJSON *obj, const char *path, double v) {
    cJSON *x = (cJSON *)sb_record_at(obj, path);
    if (x) cJSON_SetNumberValue(x, v);
}

/* A copy of fixture record `from` as another method (params replaced). */
static cJSON *add_variant(record_set *s, size_t from, const char *run_id, const char *method, const char *params_json) {
    cJSON *r = cJSON_Duplicate(s->recs[from], 1);
    cJSON_ReplaceItemInObject(r, "run_id", cJSON_CreateString(run_id));
    cJSON *m = cJSON_GetObjectItem(r, "method");
    cJSON_ReplaceItemInObject(m, "name", cJSON_CreateString(method));
    cJSON_ReplaceItemInObject(m, "params", cJSON_Parse(params_json));
    s->extra[s->n_extra++] = r;
    s->recs[s->n++] = r;
    return r;
}

static char *render(const sb_report *r, sb_report_format f) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    sb_err err = {0};
    int rc = sb_report_write(r, f, "fixture", m, &err);
    fclose(m);
    test_expect(rc == SB_OK, "render: %s", err.msg);
    return buf;
}

static sb_report *build(const record_set *s, const char *group_by, const char *metrics, const char *relative_to) {
    sb_report_opts o = {group_by, metrics, relative_to};
    sb_report *r = NULL;
    sb_err err = {0};
    test_expect(sb_report_build(s->recs, s->n, &o, &r, &err) == SB_OK, "build: %s", err.msg);
    return r;
}

static const char *row_methods[] = {"gptq(bits=3,calib=wikitext2 \"raw\")", "gptq(bits=4,calib=wikitext2 \"raw\")",
                                    "rtn(bits=4,group=64)", "rtn(bits=4,group=128)"};

/* ---- CSV read back with libcsv ----------------------------------------------- */

typedef struct csv_table {
    char *cells[32][64];
    int n_fields[32];
    int n_rows;
} csv_table;

static void on_field(void *s, size_t len, void *data) {
    csv_table *t = data;
    if (t->n_rows >= 32 || t->n_fields[t->n_rows] >= 64) return;
    char *copy = malloc(len + 1);
    if (!copy) return;
    memcpy(copy, s ? s : "", len);
    copy[len] = 0;
    t->cells[t->n_rows][t->n_fields[t->n_rows]++] = copy;
}

static void on_row(int c, void *data) {
    (void)c;
    csv_table *t = data;
    if (t->n_rows < 32) t->n_rows++;
}

static bool parse_csv(const char *text, csv_table *t) {
    memset(t, 0, sizeof *t);
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) return false;
    size_t n = strlen(text);
    bool ok = csv_parse(&p, text, n, on_field, on_row, t) == n && csv_fini(&p, on_field, on_row, t) == 0;
    csv_free(&p);
    return ok;
}

static void free_csv(csv_table *t) {
    for (int i = 0; i < 32; i++)
        for (int j = 0; j < t->n_fields[i]; j++) free(t->cells[i][j]);
}

static int csv_col(const csv_table *t, const char *name) {
    for (int j = 0; j < t->n_fields[0]; j++)
        if (strcmp(t->cells[0][j], name) == 0) return j;
    return -1;
}

/* The CSV row of a method label, or -1. */
static int csv_row_of(const csv_table *t, const char *method) {
    int mc = csv_col(t, "method");
    for (int i = 1; i < t->n_rows; i++)
        if (mc >= 0 && strcmp(t->cells[i][mc], method) == 0) return i;
    return -1;
}

static bool field_equals(const csv_table *t, int row, const char *col, double want) {
    int c = csv_col(t, col);
    if (c < 0 || row < 0 || c >= t->n_fields[row]) return false;
    char *end;
    double got = strtod(t->cells[row][c], &end);
    return *end == 0 && end != t->cells[row][c] && got == want;
}

/* Every metric value, stderr and bits per weight of every fixture record
 * is in the CSV, exactly. */
static void check_csv_values(const csv_table *t, const record_set *s) {
    for (size_t i = 0; i < s->n; i++) {
        char method[512];
        sb_record_method_label(s->recs[i], method, sizeof method);
        int row = csv_row_of(t, method);
        if (!test_expect(row > 0, "no CSV row for %s", method)) continue;
        const char *task = sb_record_str(s->recs[i], "task.name", "");
        const cJSON *metrics = sb_record_at(s->recs[i], "metrics");
        for (const cJSON *m = metrics->child; m; m = m->next) {
            char key[192], skey[200];
            snprintf(key, sizeof key, "%s:%s", task, m->string);
            snprintf(skey, sizeof skey, "%s:stderr", key);
            test_expect(field_equals(t, row, key, cJSON_GetObjectItem(m, "value")->valuedouble), "%s %s", method, key);
            const cJSON *se = cJSON_GetObjectItem(m, "stderr");
            if (cJSON_IsNumber(se)) test_expect(field_equals(t, row, skey, se->valuedouble), "%s %s", method, skey);
            else test_expect(strcmp(t->cells[row][csv_col(t, skey)], "") == 0, "%s: null stderr not empty", skey);
        }
        test_expect(field_equals(t, row, "bits_per_weight", sb_record_at(s->recs[i], "memory.bits_per_weight")->valuedouble),
                    "%s bits_per_weight", method);
        test_expect(field_equals(t, row, "weight_bytes", sb_record_at(s->recs[i], "memory.weight_bytes")->valuedouble),
                    "%s weight_bytes", method);
    }
}

/* ---- cases -------------------------------------------------------------------- */

static void test_layout(void) {
    test_begin("report_rows_columns_best");
    record_set s;
    if (load_fixture(&s)) {
        sb_report *r = build(&s, NULL, NULL, NULL);
        const char *keys[] = {"mc:acc", "mc:acc_norm", "mc:n_questions", "perplexity:ppl"};
        if (r && test_expect(r->n_rows == 4 && r->n_cols == 4, "%d rows %d cols", r->n_rows, r->n_cols)) {
            for (int c = 0; c < 4; c++) test_expect(strcmp(r->cols[c].key, keys[c]) == 0, "column %d is %s", c, r->cols[c].key);
            for (int i = 0; i < 4; i++)   /* numeric parameter order: group 64 before 128 */
                test_expect(strcmp(r->rows[i].method, row_methods[i]) == 0, "row %d is %s", i, r->rows[i].method);
            int ppl = sb_report_column_index(r, "perplexity:ppl"), acc = sb_report_column_index(r, "mc:acc");
            int nq = sb_report_column_index(r, "mc:n_questions");
            for (int i = 0; i < 4; i++) {
                test_expect(r->rows[i].cells[ppl].best == (i == 1), "ppl best mark on row %d", i);
                test_expect(r->rows[i].cells[acc].best == (i == 1), "acc best mark on row %d", i);
                test_expect(!r->rows[i].cells[nq].best, "a metric without direction marked best");
            }
            test_expect(r->rows[1].cells[ppl].value == 17.25 && r->rows[1].cells[ppl].stderr_value == 1.25, "ppl cell");
            test_expect(r->rows[2].bits_per_weight == 4.5 && r->rows[2].peak_rss_bytes == 900000000, "memory columns");
            test_expect(!r->show_backend && !r->show_seed && r->n_collisions == 0, "backend/seed/collisions");
        }
        sb_report_free(r);
    }
    free_set(&s);
    test_end();
}

static void test_markdown_html_json(void) {
    test_begin("report_md_html_json");
    record_set s;
    if (load_fixture(&s)) {
        sb_report *r = build(&s, NULL, NULL, NULL);
        char *md = r ? render(r, SB_REPORT_MD) : NULL;
        if (md) {
            test_expect(strstr(md, "| model | method | mc:acc |") != NULL, "md header");
            test_expect(strstr(md, "**17.25 ± 1.25**") != NULL, "md best in bold");
            test_expect(strstr(md, "| llama-160m | rtn(bits=4,group=64) |") != NULL, "md row");
            int table_lines = 0;
            for (const char *p = md; (p = strstr(p, "\n|")); p++) table_lines++;
            test_expect(table_lines == 6, "md has %d table lines, want 6", table_lines);
        }
        char *html = r ? render(r, SB_REPORT_HTML) : NULL;
        if (html) {
            test_expect(strncmp(html, "<!DOCTYPE html>", 15) == 0, "html doctype");
            test_expect(strstr(html, "<b>17.25 ± 1.25</b>") && strstr(html, "<script>"), "html best/script");
            test_expect(strstr(html, "calib=wikitext2 &quot;raw&quot;") != NULL, "html escaping");
            test_expect(!strstr(html, "http") && !strstr(html, "src="), "html must be self-contained");
        }
        char *js = r ? render(r, SB_REPORT_JSON) : NULL;
        cJSON *doc = js ? cJSON_Parse(js) : NULL;
        if (test_expect(doc != NULL, "json does not parse")) {
            const cJSON *rows = cJSON_GetObjectItem(doc, "rows");
            test_expect(cJSON_GetArraySize(rows) == 4, "json rows");
            const cJSON *cell = sb_record_at(cJSON_GetArrayItem(rows, 1), "cells");
            cell = cJSON_GetObjectItem(cell, "perplexity:ppl");
            test_expect(cJSON_GetObjectItem(cell, "value")->valuedouble == 17.25 && cJSON_IsTrue(cJSON_GetObjectItem(cell, "best")),
                        "json cell");
            test_expect(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "columns")) == 4, "json columns");
        }
        cJSON_Delete(doc);
        free(md);
        free(html);
        free(js);
        sb_report_free(r);
    }
    free_set(&s);
    test_end();
}

static void test_csv_roundtrip(void) {
    test_begin("report_csv_parses_back_with_libcsv");
    record_set s;
    if (load_fixture(&s)) {
        sb_report *r = build(&s, NULL, NULL, NULL);
        char *csv = r ? render(r, SB_REPORT_CSV) : NULL;
        csv_table t;
        if (csv && test_expect(parse_csv(csv, &t), "libcsv rejected the CSV")) {
            test_expect(t.n_rows == 5, "%d CSV lines, want 5", t.n_rows);
            for (int i = 1; i < t.n_rows; i++)
                test_expect(t.n_fields[i] == t.n_fields[0], "row %d has %d fields, header %d", i, t.n_fields[i], t.n_fields[0]);
            for (int i = 0; i < 4; i++) test_expect(csv_row_of(&t, row_methods[i]) == i + 1, "method label %d lost", i);
            check_csv_values(&t, &s);
            int best = csv_col(&t, "best");
            test_expect(best >= 0 && strcmp(t.cells[2][best], "mc:acc;mc:acc_norm;perplexity:ppl") == 0, "best column: %s",
                        best >= 0 ? t.cells[2][best] : "missing");
            free_csv(&t);
        }
        free(csv);
        sb_report_free(r);
    }
    free_set(&s);
    test_end();
}

static void test_relative_to_dense(void) {
    test_begin("report_relative_to_dense");
    record_set s;
    if (load_fixture(&s)) {
        cJSON *ppl = add_variant(&s, 0, "ee01000000000001", "dense", "{}");
        set_number(ppl, "metrics.ppl.value", 16.0);
        set_number(ppl, "memory.bits_per_weight", 32);
        cJSON *mc = add_variant(&s, 1, "ee02000000000002", "dense", "{}");
        set_number(mc, "metrics.acc.value", 0.64);
        set_number(mc, "metrics.acc_norm.value", 0.66);
        sb_report *r = build(&s, NULL, NULL, "dense");
        if (r && test_expect(r->n_rows == 5, "%d rows", r->n_rows)) {
            int p = sb_report_column_index(r, "perplexity:ppl"), a = sb_report_column_index(r, "mc:acc");
            int nq = sb_report_column_index(r, "mc:n_questions");
            test_expect(strcmp(r->rows[0].method, "dense") == 0 && r->rows[0].reference, "dense row first");
            test_expect(r->rows[0].cells[p].retention_pct == 100.0 && r->rows[0].cells[a].retention_pct == 100.0, "dense 100%%");
            int g4 = sb_report_row_index(r, "llama-160m", row_methods[1]);
            double want_p = 16.0 / 17.25 * 100, want_a = 0.60 / 0.64 * 100;
            test_expect(g4 > 0 && fabs(r->rows[g4].cells[p].retention_pct - want_p) < 1e-9, "lower-is-better: base/value");
            test_expect(g4 > 0 && fabs(r->rows[g4].cells[a].retention_pct - want_a) < 1e-9, "higher-is-better: value/base");
            test_expect(g4 > 0 && isnan(r->rows[g4].cells[nq].retention_pct), "no retention without a direction");
            test_expect(!r->rows[0].cells[p].best && r->rows[g4].cells[p].best, "the reference must not take the best mark");
            char *md = render(r, SB_REPORT_MD);
            char want[64];
            snprintf(want, sizeof want, "**17.25 ± 1.25 (%.1f%%)**", want_p);
            test_expect(md && strstr(md, want), "md retention text %s", want);
            free(md);
            char *csv = render(r, SB_REPORT_CSV);
            csv_table t;
            if (csv && test_expect(parse_csv(csv, &t), "csv")) {
                int row = csv_row_of(&t, row_methods[1]);
                int c = csv_col(&t, "perplexity:ppl:retention_pct");
                test_expect(c >= 0 && row > 0 && strtod(t.cells[row][c], NULL) == want_p, "csv retention column");
                free_csv(&t);
            }
            free(csv);
        }
        sb_report_free(r);
    }
    free_set(&s);
    test_end();
}

static void test_failed_runs(void) {
    test_begin("report_failed_runs");
    record_set s;
    if (load_fixture(&s)) {
        cJSON *f = add_variant(&s, 0, "ff01000000000001", "awq", "{\"bits\":4}");
        cJSON_ReplaceItemInObject(f, "status", cJSON_CreateString("failed"));
        cJSON_AddStringToObject(f, "error", "perplexity: NaN in logits");
        cJSON_DeleteItemFromObject(f, "metrics");
        add_variant(&s, 1, "ff02000000000002", "awq", "{\"bits\":4}");
        sb_report *r = build(&s, NULL, NULL, NULL);
        int row = r ? sb_report_row_index(r, "llama-160m", "awq(bits=4)") : -1;
        if (test_expect(row >= 0, "no awq row")) {
            int p = sb_report_column_index(r, "perplexity:ppl"), a = sb_report_column_index(r, "mc:acc");
            test_expect(r->rows[row].cells[p].state == SB_CELL_FAILED, "ppl cell not failed");
            test_expect(r->rows[row].cells[a].state == SB_CELL_OK, "mc cell should be ok");
            test_expect(strcmp(r->rows[row].failed_tasks, "perplexity") == 0, "failed tasks: %s", r->rows[row].failed_tasks);
            char *md = render(r, SB_REPORT_MD);
            test_expect(md && strstr(md, "| failed |") && strstr(md, "failed: perplexity"), "md shows the failure");
            free(md);
        }
        sb_report_free(r);
    }
    free_set(&s);
    test_end();
}

static void test_filters_and_groups(void) {
    test_begin("report_metrics_group_by_errors");
    record_set s;
    if (load_fixture(&s)) {
        sb_report *r = build(&s, NULL, "ppl,mc:acc", NULL);
        if (r && test_expect(r->n_cols == 2, "%d columns", r->n_cols))
            test_expect(strcmp(r->cols[0].key, "perplexity:ppl") == 0 && strcmp(r->cols[1].key, "mc:acc") == 0,
                        "--metrics order");
        sb_report_free(r);
        sb_report_opts bad_metric = {NULL, "ppl,nope", NULL}, bad_ref = {NULL, NULL, "nope"};
        sb_err e1 = {0}, e2 = {0};
        test_expect(sb_report_build(s.recs, s.n, &bad_metric, &r, &e1) == SB_EINPUT && strstr(e1.msg, "nope"), "%s", e1.msg);
        test_expect(sb_report_build(s.recs, s.n, &bad_ref, &r, &e2) == SB_EINPUT && strstr(e2.msg, "nope"), "%s", e2.msg);
        sb_report_opts bad_group = {"method.nope", NULL, NULL};
        sb_err e3 = {0};
        test_expect(sb_report_build(s.recs, s.n, &bad_group, &r, &e3) == SB_EINPUT && strstr(e3.msg, "method.nope"), "%s",
                    e3.msg);
        r = build(&s, "method.name", NULL, NULL);
        char *md = r ? render(r, SB_REPORT_MD) : NULL;
        test_expect(md && strstr(md, "\n## gptq\n") && strstr(md, "\n## rtn\n"), "group headings");
        int p = r ? sb_report_column_index(r, "perplexity:ppl") : -1;
        test_expect(r && r->rows[1].cells[p].best && r->rows[2].cells[p].best, "best per group");
        free(md);
        sb_report_free(r);
    }
    free_set(&s);
    test_end();
}

static void test_deterministic(void) {
    test_begin("report_independent_of_record_order");
    record_set s;
    if (load_fixture(&s)) {
        sb_report *a = build(&s, NULL, NULL, NULL);
        for (size_t i = 0; i < s.n / 2; i++) {
            const cJSON *t = s.recs[i];
            s.recs[i] = s.recs[s.n - 1 - i];
            s.recs[s.n - 1 - i] = t;
        }
        sb_report *b = build(&s, NULL, NULL, NULL);
        for (int f = SB_REPORT_MD; a && b && f <= SB_REPORT_JSON; f++) {
            char *x = render(a, (sb_report_format)f), *y = render(b, (sb_report_format)f);
            test_expect(x && y && strcmp(x, y) == 0, "format %d differs with record order", f);
            free(x);
            free(y);
        }
        sb_report_free(a);
        sb_report_free(b);
    }
    free_set(&s);
    test_end();
}

/* ---- JUnit well-formedness ---------------------------------------------------- */

/* A small XML well-formedness check: one root, nested tags, quoted
 * attributes, entity references only from the predefined five or numeric. */
typedef struct xml_checker {
    const char *p;
    char stack[16][64];
    int depth;
    const char *why;
} xml_checker;

static bool xml_name(xml_checker *x, char *out, size_t n) {
    size_t k = strcspn(x->p, " \t\r\n/>=");
    if (k == 0 || k >= n) return false;
    memcpy(out, x->p, k);
    out[k] = 0;
    x->p += k;
    return true;
}

static bool xml_text_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '<') return false;
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return false;
        if (s[i] != '&') continue;
        const char *ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
        bool ok = false;
        for (int e = 0; e < 5; e++) ok |= strncmp(s + i, ents[e], strlen(ents[e])) == 0;
        if (!ok) return false;
    }
    return true;
}

static bool xml_attrs(xml_checker *x) {
    for (;;) {
        x->p += strspn(x->p, " \t\r\n");
        if (*x->p == '>' || *x->p == '/') return true;
        char name[64];
        if (!xml_name(x, name, sizeof name) || *x->p++ != '=' || *x->p++ != '"') return false;
        const char *end = strchr(x->p, '"');
        if (!end || !xml_text_ok(x->p, (size_t)(end - x->p))) return false;
        x->p = end + 1;
    }
}

static bool xml_tag(xml_checker *x) {
    char name[64];
    if (*x->p == '/') {
        x->p++;
        if (!xml_name(x, name, sizeof name) || x->depth == 0 || strcmp(name, x->stack[--x->depth]) != 0) return false;
        return *x->p++ == '>';
    }
    if (!xml_name(x, name, sizeof name) || !xml_attrs(x)) return false;
    if (*x->p == '/') return x->p[1] == '>' && (x->p += 2);
    if (x->depth >= 16) return false;
    snprintf(x->stack[x->depth++], 64, "%s", name);
    return *x->p++ == '>';
}

static bool xml_well_formed(const char *doc) {
    xml_checker x = {.p = doc};
    if (strncmp(x.p, "<?xml ", 6) == 0) {
        const char *end = strstr(x.p, "?>");
        if (!end) return false;
        x.p = end + 2;
    }
    int roots = 0;
    while (*x.p) {
        const char *lt = strchr(x.p, '<');
        size_t n = lt ? (size_t)(lt - x.p) : strlen(x.p);
        if (!xml_text_ok(x.p, n)) return false;
        if (x.depth == 0 && strspn(x.p, " \t\r\n") < n) return false;   /* text outside the root */
        if (!lt) break;
        x.p = lt + 1;
        if (x.depth == 0 && *x.p != '/') roots++;
        if (!xml_tag(&x)) return false;
    }
    return x.depth == 0 && roots == 1;
}

static void test_junit(void) {
    test_begin("compare_junit_well_formed");
    record_set s;
    sb_results *cur_store = NULL;
    if (load_fixture(&s)) {
        /* CURRENT: the fixture with one perplexity raised and one run failed with hostile text */
        char path[] = "/tmp/sb_current_XXXXXX";
        int fd = mkstemp(path);
        FILE *f = fdopen(fd, "w");
        for (size_t i = 0; i < s.n; i++) {
            cJSON *r = cJSON_Duplicate(s.recs[i], 1);
            if (i == 0) set_number(r, "metrics.ppl.value", 25.0);
            if (i == 3) {
                cJSON_ReplaceItemInObject(r, "status", cJSON_CreateString("failed"));
                cJSON_AddStringToObject(r, "error", "bad <tag> & \"quote\" 'apos' \x01\x02 ]]> \xff\xfe caf\xc3\xa9");
            }
            if (i == 5) cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "model"), "path", cJSON_CreateString("m<&>\"/x"));
            char *line = cJSON_PrintUnformatted(r);
            fprintf(f, "%s\n", line);
            free(line);
            cJSON_Delete(r);
        }
        fclose(f);
        sb_err err = {0};
        if (test_expect(sb_results_load(path, &cur_store, &err) == SB_OK, "%s", err.msg)) {
            char *xml = NULL, *table = NULL;
            size_t xl = 0, tl = 0;
            FILE *xf = open_memstream(&xml, &xl), *tf = open_memstream(&table, &tl);
            sb_compare_opts o = {.default_tolerance = SB_COMPARE_DEFAULT_TOLERANCE};
            sb_compare_summary sum;
            int rc = sb_compare(cur_store, s.store, &o, tf, xf, &sum, &err);
            fclose(xf);
            fclose(tf);
            if (test_expect(rc == SB_OK, "compare: %s", err.msg)) {
                test_expect(xml_well_formed(xml), "JUnit XML not well-formed:\n%s", xml);
                test_expect(sum.baseline_runs == 8 && sum.failed_runs == 2, "runs %d, failing %d", sum.baseline_runs,
                            sum.failed_runs);
                test_expect(strstr(xml, "tests=\"8\" failures=\"2\"") != NULL, "testsuite counts");
                test_expect(strstr(xml, "classname=\"llama-160m/gptq(bits=3,calib=wikitext2 &quot;raw&quot;)\"") != NULL,
                            "classname");
                test_expect(strstr(table, "REGRESSION") != NULL, "table lacks the regression");
            }
            free(xml);
            free(table);
        }
        unlink(path);
    }
    sb_results_close(cur_store);
    free_set(&s);
    test_end();
}

int main(void) {
    test_layout();
    test_markdown_html_json();
    test_csv_roundtrip();
    test_relative_to_dense();
    test_failed_runs();
    test_filters_and_groups();
    test_deterministic();
    test_junit();
    return test_status();
}
