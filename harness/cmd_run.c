/* cmd_run.c - `slimbench run`, `slimbench eval` and `slimbench list`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "registry.h"
#include "runner.h"

/* --plugin PATH may appear several times, before anything else is resolved. */
static int load_plugins(int argc, char **argv, sb_err *err) {
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--plugin") == 0) {
            int rc = sb_registry_load_plugin(argv[i + 1], err);
            if (rc) return rc;
        }
    return SB_OK;
}

/* "K/N" (1-based K), or the Slurm job array's task when not given. */
static int parse_shard(const char *text, int *k, int *n, sb_err *err) {
    *k = 0;
    *n = 1;
    if (!text) {
        const char *id = getenv("SLURM_ARRAY_TASK_ID"), *count = getenv("SLURM_ARRAY_TASK_COUNT");
        const char *min = getenv("SLURM_ARRAY_TASK_MIN");
        if (!id || !count) return SB_OK;
        int first = min ? atoi(min) : 0;
        *k = atoi(id) - first;
        *n = atoi(count);
        if (*n < 1 || *k < 0 || *k >= *n)
            return sb_err_set(err, SB_EINPUT, "SLURM_ARRAY_TASK_ID=%s with COUNT=%s and MIN=%s gives no valid shard", id,
                              count, min ? min : "(unset)");
        return SB_OK;
    }
    int kk, nn;
    char tail;
    if (sscanf(text, "%d/%d%c", &kk, &nn, &tail) != 2 || nn < 1 || kk < 1 || kk > nn)
        return sb_err_set(err, SB_EINPUT, "--shard '%s': expected K/N with 1 <= K <= N", text);
    *k = kk - 1;
    *n = nn;
    return SB_OK;
}

static int report_summary(const sb_runner_summary *sum) {
    fprintf(stderr, "slimbench: %d runs planned, %d already done, %d ok, %d failed\n", sum->planned, sum->skipped,
            sum->ok, sum->failed);
    return sum->failed ? 1 : 0;
}

/* Built with MPI=1 and started by mpirun with several ranks, the sweep is
 * shared by the ranks; otherwise this process runs it alone. */
#ifdef SB_MPI
#include <mpi.h>
static int run_sweep(const sb_sweep *s, const sb_runner_opts *o, sb_runner_summary *sum, bool *leader, sb_err *err) {
    int rank;
    MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int rc = sb_runner_run_mpi(s, o, sum, err);
    if (rank != 0 && rc) fprintf(stderr, "slimbench: rank %d: %s\n", rank, err->msg);
    MPI_Finalize();
    *leader = rank == 0;
    return rank == 0 ? rc : SB_OK;
}
#else
static int run_sweep(const sb_sweep *s, const sb_runner_opts *o, sb_runner_summary *sum, bool *leader, sb_err *err) {
    *leader = true;
    return sb_runner_run(s, o, sum, err);
}
#endif

int sb_cmd_run(int argc, char **argv) {
    sb_err err = {0};
    static const char *const with_value[] = {"--out", "--shard", "--plugin", "--threads", "--backend", NULL};
    static const char *const switches[] = {"--resume", "--quiet", NULL};
    if (argc < 1 || argv[0][0] == '-')
        return sb_err_set(&err, SB_EINPUT, "run needs a sweep config: slimbench run CONFIG.json [--out DIR] [--resume]"),
               sb_cli_fail(&err);
    if (sb_flags_check(argc - 1, argv + 1, with_value, switches, &err)) return sb_cli_fail(&err);
    if (load_plugins(argc, argv, &err)) return sb_cli_fail(&err);
    sb_sweep s;
    if (sb_sweep_load(argv[0], &s, &err)) return sb_cli_fail(&err);
    const char *backend = sb_flag_value(argc, argv, "--backend");
    if (backend && sb_sweep_set_backend(&s, backend, &err)) {
        sb_sweep_free(&s);
        return sb_cli_fail(&err);
    }
    char out[4096];
    const char *out_flag = sb_flag_value(argc, argv, "--out"), *threads = sb_flag_value(argc, argv, "--threads");
    snprintf(out, sizeof out, "%s", out_flag ? out_flag : "results");
    if (!out_flag) snprintf(out, sizeof out, "results/%s", s.name);
    sb_runner_opts o = {.out_dir = out, .resume = sb_flag_present(argc, argv, "--resume"),
                        .quiet = sb_flag_present(argc, argv, "--quiet"), .threads = threads ? atoi(threads) : 0};
    sb_runner_summary sum;
    int rc = parse_shard(sb_flag_value(argc, argv, "--shard"), &o.shard_k, &o.shard_n, &err);
    bool leader = true;
    if (!rc) rc = run_sweep(&s, &o, &sum, &leader, &err);
    sb_sweep_free(&s);
    if (rc) return sb_cli_fail(&err);
    if (!leader) return 0;
    if (!o.quiet) fprintf(stderr, "slimbench: records in %s/runs.jsonl\n", out);
    return report_summary(&sum);
}

/* ---- eval: one model, one method, one task, from flags ---- */

/* Flags "--name value" whose name (dashes as underscores) is a parameter of
 * the task become "name=value"; --method-param k=v go to the method. */
static int collect_params(int argc, char **argv, const sb_param_spec *specs, int n_specs, char ***task_kv, int *n_task,
                          char ***method_kv, int *n_method, sb_err *err) {
    *task_kv = sb_calloc(err, (size_t)argc + 1, sizeof **task_kv);
    *method_kv = sb_calloc(err, (size_t)argc + 1, sizeof **method_kv);
    *n_task = *n_method = 0;
    if (!*task_kv || !*method_kv) return SB_EINTERNAL;
    static const char *const own[] = {"--model", "--method", "--task", "--out", "--plugin", "--threads", "--seed", "--backend", NULL};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool is_own = false;
        for (int k = 0; own[k]; k++) is_own = is_own || strcmp(a, own[k]) == 0;
        if (is_own) {
            i++;
            continue;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "--resume") == 0) continue;
        if (strcmp(a, "--method-param") == 0 && i + 1 < argc) {
            (*method_kv)[(*n_method)++] = argv[++i];
            continue;
        }
        char name[128];
        if (strncmp(a, "--", 2) != 0 || strlen(a) >= sizeof name + 2 || i + 1 >= argc)
            return sb_err_set(err, SB_EINPUT, "unexpected argument '%s'", a);
        snprintf(name, sizeof name, "%s", a + 2);
        for (char *c = name; *c; c++)
            if (*c == '-') *c = '_';
        bool known = false;
        for (int k = 0; k < n_specs; k++) known = known || strcmp(specs[k].name, name) == 0;
        if (!known) return sb_err_set(err, SB_EINPUT, "unknown flag '%s' (not a parameter of this task)", a);
        size_t len = strlen(name) + strlen(argv[i + 1]) + 2;
        char *kv = sb_malloc(err, len);
        if (!kv) return SB_EINTERNAL;
        snprintf(kv, len, "%s=%s", name, argv[++i]);
        (*task_kv)[(*n_task)++] = kv;
    }
    return SB_OK;
}

static int build_eval(int argc, char **argv, sb_method_variant *mv, sb_task_variant *tv, sb_err *err) {
    const char *method = sb_flag_value(argc, argv, "--method"), *task = sb_flag_value(argc, argv, "--task");
    if (!sb_flag_value(argc, argv, "--model") || !task)
        return sb_err_set(err, SB_EINPUT, "eval needs --model PATH and --task NAME (and optionally --method NAME)");
    const sb_method *m = sb_registry_method(method ? method : "dense");
    if (!m) return sb_err_set(err, SB_EINPUT, "unknown method '%s' (slimbench list methods)", method);
    const sb_task *t = sb_registry_task(task);
    if (!t) return sb_err_set(err, SB_EINPUT, "unknown task '%s' (slimbench list tasks)", task);
    char **task_kv = NULL, **method_kv = NULL;
    int n_task = 0, n_method = 0;
    int rc = collect_params(argc, argv, t->params, t->n_params, &task_kv, &n_task, &method_kv, &n_method, err);
    memset(mv, 0, sizeof *mv);
    memset(tv, 0, sizeof *tv);
    mv->n_steps = 1;
    mv->steps[0].method = m;
    tv->task = t;
    if (!rc) rc = sb_params_from_strings(m->params, m->n_params, (const char *const *)method_kv, n_method, "--method-param",
                                         &mv->steps[0].params, err);
    if (!rc) rc = sb_params_from_strings(t->params, t->n_params, (const char *const *)task_kv, n_task, task,
                                         &tv->params, err);
    for (int i = 0; task_kv && i < n_task; i++) free(task_kv[i]);
    free(task_kv);
    free(method_kv);
    return rc;
}

int sb_cmd_eval(int argc, char **argv) {
    sb_err err = {0};
    if (load_plugins(argc, argv, &err)) return sb_cli_fail(&err);
    sb_method_variant mv;
    sb_task_variant tv;
    sb_sweep s;
    if (build_eval(argc, argv, &mv, &tv, &err)) return sb_cli_fail(&err);
    const char *seed = sb_flag_value(argc, argv, "--seed"), *threads = sb_flag_value(argc, argv, "--threads");
    if (sb_sweep_single(sb_flag_value(argc, argv, "--model"), &mv, &tv, seed ? strtoull(seed, NULL, 10) : 0, &s, &err))
        return sb_cli_fail(&err);
    const char *backend = sb_flag_value(argc, argv, "--backend");
    if (backend && sb_sweep_set_backend(&s, backend, &err)) {
        sb_sweep_free(&s);
        return sb_cli_fail(&err);
    }
    const char *out = sb_flag_value(argc, argv, "--out");
    sb_runner_opts o = {.out_dir = out ? out : "results/eval", .resume = true, .shard_n = 1,
                        .quiet = sb_flag_present(argc, argv, "--quiet"), .threads = threads ? atoi(threads) : 0,
                        .print_metrics = true};
    sb_runner_summary sum;
    int rc = sb_runner_run(&s, &o, &sum, &err);
    sb_sweep_free(&s);
    if (rc) return sb_cli_fail(&err);
    if (sum.skipped) fprintf(stderr, "slimbench: this run is already recorded in %s/runs.jsonl\n", o.out_dir);
    return sum.failed ? 1 : 0;
}

/* ---- list ---- */

static cJSON *params_json(const sb_param_spec *p, int n) {
    static const char *const types[] = {"int", "float", "bool", "string"};
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", p[i].name);
        cJSON_AddStringToObject(o, "type", types[p[i].type]);
        if (p[i].dflt) cJSON_AddStringToObject(o, "default", p[i].dflt);
        else cJSON_AddNullToObject(o, "default");
        if (p[i].min <= p[i].max && p[i].type != SB_PARAM_STRING && p[i].type != SB_PARAM_BOOL) {
            cJSON_AddNumberToObject(o, "min", p[i].min);
            cJSON_AddNumberToObject(o, "max", p[i].max);
        }
        if (p[i].choices) cJSON_AddStringToObject(o, "choices", p[i].choices);
        cJSON_AddStringToObject(o, "help", p[i].help ? p[i].help : "");
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *paper_json(const sb_paper *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "title", p->title ? p->title : "");
    if (p->arxiv) cJSON_AddStringToObject(o, "arxiv", p->arxiv);
    else cJSON_AddNullToObject(o, "arxiv");
    if (p->year) cJSON_AddStringToObject(o, "year", p->year);
    return o;
}

static cJSON *list_json(const char *what) {
    cJSON *root = cJSON_CreateObject();
    if (!what || strcmp(what, "methods") == 0) {
        cJSON *a = cJSON_AddArrayToObject(root, "methods");
        for (int i = 0; i < sb_registry_n_methods(); i++) {
            const sb_method *m = sb_registry_method_at(i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", m->name);
            cJSON_AddStringToObject(o, "family", m->family ? m->family : "");
            cJSON_AddStringToObject(o, "summary", m->summary ? m->summary : "");
            cJSON_AddItemToObject(o, "paper", paper_json(&m->paper));
            cJSON_AddItemToObject(o, "params", params_json(m->params, m->n_params));
            cJSON_AddItemToArray(a, o);
        }
    }
    if (!what || strcmp(what, "tasks") == 0) {
        cJSON *a = cJSON_AddArrayToObject(root, "tasks");
        for (int i = 0; i < sb_registry_n_tasks(); i++) {
            const sb_task *t = sb_registry_task_at(i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "summary", t->summary ? t->summary : "");
            cJSON_AddItemToObject(o, "paper", paper_json(&t->paper));
            cJSON_AddItemToObject(o, "params", params_json(t->params, t->n_params));
            cJSON_AddItemToArray(a, o);
        }
    }
    const struct { const char *key; const sb_named *table; } named[] = {
        {"archs", sb_registry_archs}, {"formats", sb_registry_formats}, {"backends", sb_registry_backends}};
    for (size_t k = 0; k < 3; k++) {
        if (what && strcmp(what, named[k].key) != 0) continue;
        cJSON *a = cJSON_AddArrayToObject(root, named[k].key);
        for (const sb_named *n = named[k].table; n->name; n++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", n->name);
            cJSON_AddStringToObject(o, "summary", n->summary);
            cJSON_AddItemToArray(a, o);
        }
    }
    return root;
}

static void print_params_text(const cJSON *params) {
    const cJSON *p;
    cJSON_ArrayForEach(p, params) {
        const cJSON *d = cJSON_GetObjectItem(p, "default"), *mn = cJSON_GetObjectItem(p, "min"),
                    *mx = cJSON_GetObjectItem(p, "max"), *ch = cJSON_GetObjectItem(p, "choices");
        printf("      %-16s %-6s default %-10s", cJSON_GetObjectItem(p, "name")->valuestring,
               cJSON_GetObjectItem(p, "type")->valuestring, cJSON_IsString(d) ? d->valuestring : "(required)");
        if (mn && mx) printf(" range [%g, %g]", mn->valuedouble, mx->valuedouble);
        if (ch) printf(" one of %s", ch->valuestring);
        printf("  %s\n", cJSON_GetObjectItem(p, "help")->valuestring);
    }
}

static void print_list_text(const cJSON *root) {
    const cJSON *section;
    cJSON_ArrayForEach(section, root) {
        printf("%s:\n", section->string);
        const cJSON *e;
        cJSON_ArrayForEach(e, section) {
            const cJSON *family = cJSON_GetObjectItem(e, "family"), *paper = cJSON_GetObjectItem(e, "paper");
            printf("  %-14s %s%s%s\n", cJSON_GetObjectItem(e, "name")->valuestring,
                   family ? "[" : "", family ? family->valuestring : "", family ? "] " : "");
            printf("      %s\n", cJSON_GetObjectItem(e, "summary")->valuestring);
            const cJSON *title = paper ? cJSON_GetObjectItem(paper, "title") : NULL, *arxiv = paper ? cJSON_GetObjectItem(paper, "arxiv") : NULL;
            if (title && title->valuestring[0])
                printf("      paper: %s%s%s\n", title->valuestring, cJSON_IsString(arxiv) ? ", arXiv:" : "",
                       cJSON_IsString(arxiv) ? arxiv->valuestring : "");
            const cJSON *params = cJSON_GetObjectItem(e, "params");
            if (params) print_params_text(params);
        }
    }
}

int sb_cmd_list(int argc, char **argv) {
    sb_err err = {0};
    static const char *const with_value[] = {"--plugin", NULL};
    static const char *const switches[] = {"--json", "methods", "tasks", "archs", "formats", "backends", NULL};
    if (sb_flags_check(argc, argv, with_value, switches, &err)) return sb_cli_fail(&err);
    if (load_plugins(argc, argv, &err)) return sb_cli_fail(&err);
    const char *what = NULL;
    for (int i = 0; i < argc; i++)
        if (argv[i][0] != '-' && (i == 0 || strcmp(argv[i - 1], "--plugin") != 0)) what = argv[i];
    cJSON *root = list_json(what);
    if (sb_flag_present(argc, argv, "--json")) {
        char *text = cJSON_Print(root);
        printf("%s\n", text);
        free(text);
    } else {
        print_list_text(root);
    }
    cJSON_Delete(root);
    return 0;
}
