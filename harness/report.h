/* report.h - tables rebuilt from result records: `slimbench report`.
 *
 * One row per model x method (with its parameters) - task independent - and,
 * when they vary within the results, per backend and seed (and per value of
 * the --group-by key).  One column per task:metric ("perplexity:ppl",
 * "mc:acc"); a task whose parameters differ between records is written with
 * them ("perplexity(dataset=c4):ppl").  Then the row's bits per weight and
 * weight bytes (from its records, which agree: the same compressed model)
 * and its peak RSS (the largest over its records), and a status.
 *
 * Cells hold value ± stderr.  A record with status "failed" turns every
 * cell of its task into "failed" and is named in the row status.
 *
 * --relative-to NAME: each cell also gets its retention in percent against
 * the row of method NAME for the same model and backend: value/base*100 for
 * higher-is-better metrics, base/value*100 for lower-is-better ones, so 100
 * means "as good as the reference" and less means worse for both; none for
 * metrics without a direction.
 *
 * Best per column: the lowest (lower-is-better) or highest (higher-is-better)
 * ok value among the rows of a group, marked when at least two rows compete;
 * reference rows (--relative-to) do not compete, since the uncompressed model
 * would otherwise win every column.  Bold in md and html; a "best" field in
 * json; in csv a last column "best" listing the column keys in which the row
 * is best (separated by ';'), so value columns stay plain numbers.
 *
 * Output is deterministic: rows sorted by group, model, method name,
 * method parameters (numbers compared as numbers), backend, seed - the
 * reference method first within its model; columns by task label then
 * metric name (or in the order given by --metrics).  It depends on the set
 * of records only, not on their order in the file. */
#ifndef SB_REPORT_H
#define SB_REPORT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>

#include "error.h"
#include "plugin.h"

typedef enum { SB_REPORT_MD, SB_REPORT_CSV, SB_REPORT_HTML, SB_REPORT_JSON } sb_report_format;

typedef struct sb_report_opts {
    const char *group_by;     /* "model", "method", or a dotted record path ("method.family"); NULL: no groups */
    const char *metrics;      /* "ppl,mc:acc": metric names or task:metric keys; NULL: all */
    const char *relative_to;  /* method name of the reference rows; NULL: none */
} sb_report_opts;

typedef enum { SB_CELL_EMPTY, SB_CELL_OK, SB_CELL_FAILED } sb_cell_state;

typedef struct sb_report_cell {
    sb_cell_state state;
    double value, stderr_value;   /* stderr NAN when none */
    double retention_pct;         /* NAN without a reference */
    bool best;
    const char *run_id;           /* points into the record */
} sb_report_cell;

typedef struct sb_report_column {
    char key[192];                /* "perplexity:ppl" */
    char task[128];
    char metric[48];
    char unit[16];
    sb_direction direction;
    int order;                    /* position of the --metrics entry it matched */
} sb_report_column;

typedef struct sb_report_row {
    char *key;                    /* identity: group, model, method, backend, seed */
    char group[128];
    char model[128];
    char method[512];             /* label with parameters */
    char method_name[64];
    char backend[32];
    double seed;
    const cJSON *method_obj;      /* for ordering; points into a record */
    bool reference;
    double bits_per_weight, weight_bytes, peak_rss_bytes;   /* NAN when unknown */
    char failed_tasks[256];       /* "perplexity, mc"; empty when none failed */
    const char *error;            /* first failure message, points into a record */
    sb_report_cell *cells;        /* one per column */
} sb_report_row;

/* The report points into the records it was built from: free it first. */
typedef struct sb_report {
    sb_report_column *cols;
    int n_cols;
    sb_report_row *rows;
    int n_rows;
    bool show_group, show_backend, show_seed;
    char group_by[64];
    char relative_to[64];
    int n_collisions;             /* cells that more than one record wanted */
} sb_report;

/* From the winning records (sb_results_winners). Unknown --metrics names
 * or a --relative-to method with no run are SB_EINPUT errors. */
int sb_report_build(const cJSON *const *records, size_t n, const sb_report_opts *opts, sb_report **out, sb_err *err);
/* title: shown in md/html headings and json (e.g. the results path). */
int sb_report_write(const sb_report *r, sb_report_format format, const char *title, FILE *out, sb_err *err);
void sb_report_free(sb_report *r);

int sb_report_column_index(const sb_report *r, const char *key);   /* -1 if none */
/* The first row of model label and method label, or -1. */
int sb_report_row_index(const sb_report *r, const char *model, const char *method);

/* Number formats shared with compare: shortest text that reads back as the
 * same double (for csv/json), and a short human one (4 significant digits). */
void sb_format_exact(double v, char *buf, size_t n);
void sb_format_human(double v, char *buf, size_t n);

#endif
