/* sweep.c - parse, validate and expand sweep configs (see sweep.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "mapped_file.h"
#include "registry.h"
#include "sweep.h"

enum { MAX_VARIANTS = 4096 };

typedef struct {
    const char *path;
    sb_err *err;
} parse_ctx;

static char *dup_or_fail(const char *s, sb_err *err) {
    char *d = strdup(s);
    if (!d) sb_err_set(err, SB_EINTERNAL, "out of memory");
    return d;
}

/* ---- parameter grids ---- */

/* Calls visit(obj) for every combination of the array-valued keys of
 * params (scalars are kept); returns the first non-OK status. */
typedef int (*grid_visit)(void *user, const cJSON *point);

static int expand_grid(const cJSON *params, const char *where, grid_visit visit, void *user, sb_err *err) {
    int n_keys = 0, sizes[SB_MAX_PARAMS], index[SB_MAX_PARAMS] = {0};
    const cJSON *grid_keys[SB_MAX_PARAMS];
    for (const cJSON *k = params ? params->child : NULL; k; k = k->next) {
        if (!cJSON_IsArray(k)) continue;
        if (n_keys == SB_MAX_PARAMS) return sb_err_set(err, SB_EINPUT, "%s: too many gridded parameters", where);
        sizes[n_keys] = cJSON_GetArraySize(k);
        if (sizes[n_keys] == 0) return sb_err_set(err, SB_EINPUT, "%s.%s: empty list of values", where, k->string);
        grid_keys[n_keys++] = k;
    }
    for (;;) {
        cJSON *point = params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject();
        if (!point) return sb_err_set(err, SB_EINTERNAL, "out of memory");
        for (int i = 0; i < n_keys; i++)
            cJSON_ReplaceItemInObjectCaseSensitive(point, grid_keys[i]->string,
                                                   cJSON_Duplicate(cJSON_GetArrayItem(grid_keys[i], index[i]), 1));
        int rc = visit(user, point);
        cJSON_Delete(point);
        if (rc) return rc;
        int i = 0; /* next combination, like an odometer */
        while (i < n_keys && ++index[i] == sizes[i]) index[i++] = 0;
        if (i == n_keys) return SB_OK;
    }
}

/* ---- methods ---- */

typedef struct {
    sb_sweep *s;
    sb_method_variant partial;   /* steps fixed so far */
    const cJSON *steps;          /* the JSON steps */
    int step;                    /* the step being expanded */
    const char *where;
    sb_err *err;
} method_expansion;

static int expand_step(method_expansion *e);

static int push_method(sb_sweep *s, const sb_method_variant *v, const char *where, sb_err *err) {
    if (s->n_methods == MAX_VARIANTS) return sb_err_set(err, SB_EINPUT, "%s: more than %d method variants", where, MAX_VARIANTS);
    sb_method_variant *bigger = realloc(s->methods, sizeof *bigger * (size_t)(s->n_methods + 1));
    if (!bigger) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    s->methods = bigger;
    s->methods[s->n_methods] = *v;
    sb_method_variant_label(&s->methods[s->n_methods++]);
    return SB_OK;
}

static int visit_step_point(void *user, const cJSON *point) {
    method_expansion *e = user;
    const cJSON *step = cJSON_GetArrayItem(e->steps, e->step);
    const sb_method *m = sb_registry_method(cJSON_GetObjectItemCaseSensitive(step, "name")->valuestring);
    char where[1024];
    snprintf(where, sizeof where, "%s.steps[%d].params", e->where, e->step);
    sb_method_step *ms = &e->partial.steps[e->step];
    ms->method = m;
    int rc = sb_params_from_json(m->params, m->n_params, point, where, &ms->params, e->err);
    if (rc) return rc;
    e->step++;
    rc = e->step == cJSON_GetArraySize(e->steps) ? push_method(e->s, &e->partial, e->where, e->err) : expand_step(e);
    e->step--;
    return rc;
}

static int expand_step(method_expansion *e) {
    const cJSON *step = cJSON_GetArrayItem(e->steps, e->step);
    char where[1024];
    snprintf(where, sizeof where, "%s.steps[%d]", e->where, e->step);
    for (const cJSON *k = step->child; k; k = k->next)
        if (strcmp(k->string, "name") && strcmp(k->string, "params"))
            return sb_err_set(e->err, SB_EINPUT, "%s: unknown key '%s'", where, k->string);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(step, "name");
    if (!cJSON_IsString(name)) return sb_err_set(e->err, SB_EINPUT, "%s: 'name' must be a method name", where);
    if (!sb_registry_method(name->valuestring))
        return sb_err_set(e->err, SB_EINPUT, "%s: unknown method '%s' (slimbench list methods)", where, name->valuestring);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(step, "params");
    if (params && !cJSON_IsObject(params)) return sb_err_set(e->err, SB_EINPUT, "%s.params: must be an object", where);
    snprintf(where, sizeof where, "%s.steps[%d].params", e->where, e->step);
    return expand_grid(params, where, visit_step_point, e, e->err);
}

/* An entry is {"name", "params"} or {"steps": [...]}. */
static int parse_method_entry(sb_sweep *s, const cJSON *entry, const char *where, sb_err *err) {
    if (!cJSON_IsObject(entry)) return sb_err_set(err, SB_EINPUT, "%s: must be an object", where);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(entry, "steps");
    cJSON *single = NULL;
    if (!steps) { /* a single method is a composition of one step */
        single = cJSON_CreateArray();
        if (!single) return sb_err_set(err, SB_EINTERNAL, "out of memory");
        cJSON_AddItemToArray(single, cJSON_Duplicate(entry, 1));
        steps = single;
    } else if (!cJSON_IsArray(steps) || cJSON_GetArraySize(steps) < 1 || cJSON_GetArraySize(steps) > SB_MAX_STEPS ||
               cJSON_GetArraySize(entry) != 1) {
        return sb_err_set(err, SB_EINPUT, "%s: 'steps' must be the only key, a list of 1 to %d methods", where, SB_MAX_STEPS);
    }
    method_expansion e = {.s = s, .steps = steps, .where = where, .err = err};
    e.partial.n_steps = cJSON_GetArraySize(steps);
    int rc = expand_step(&e);
    cJSON_Delete(single);
    if (rc && single && strstr(err->msg, ".steps[0]")) { /* report a single method without the synthetic steps[0] */
        char *p = strstr(err->msg, ".steps[0]");
        memmove(p, p + 9, strlen(p + 9) + 1);
    }
    return rc;
}

/* ---- tasks ---- */

typedef struct {
    sb_sweep *s;
    const sb_task *task;
    const char *where;
    sb_err *err;
} task_expansion;

static int visit_task_point(void *user, const cJSON *point) {
    task_expansion *e = user;
    sb_sweep *s = e->s;
    if (s->n_tasks == MAX_VARIANTS) return sb_err_set(e->err, SB_EINPUT, "%s: more than %d task variants", e->where, MAX_VARIANTS);
    sb_task_variant *bigger = realloc(s->tasks, sizeof *bigger * (size_t)(s->n_tasks + 1));
    if (!bigger) return sb_err_set(e->err, SB_EINTERNAL, "out of memory");
    s->tasks = bigger;
    sb_task_variant *v = &s->tasks[s->n_tasks];
    memset(v, 0, sizeof *v);
    v->task = e->task;
    char where[1024];
    snprintf(where, sizeof where, "%s.params", e->where);
    int rc = sb_params_from_json(e->task->params, e->task->n_params, point, where, &v->params, e->err);
    if (rc) return rc;
    sb_task_variant_label(v);
    s->n_tasks++;
    return SB_OK;
}

static int parse_task_entry(sb_sweep *s, const cJSON *entry, const char *where, sb_err *err) {
    if (!cJSON_IsObject(entry)) return sb_err_set(err, SB_EINPUT, "%s: must be an object", where);
    for (const cJSON *k = entry->child; k; k = k->next)
        if (strcmp(k->string, "name") && strcmp(k->string, "params"))
            return sb_err_set(err, SB_EINPUT, "%s: unknown key '%s'", where, k->string);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "name");
    if (!cJSON_IsString(name)) return sb_err_set(err, SB_EINPUT, "%s: 'name' must be a task name", where);
    const sb_task *t = sb_registry_task(name->valuestring);
    if (!t) return sb_err_set(err, SB_EINPUT, "%s: unknown task '%s' (slimbench list tasks)", where, name->valuestring);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(entry, "params");
    if (params && !cJSON_IsObject(params)) return sb_err_set(err, SB_EINPUT, "%s.params: must be an object", where);
    task_expansion e = {s, t, where, err};
    char pwhere[1024];
    snprintf(pwhere, sizeof pwhere, "%s.params", where);
    return expand_grid(params, pwhere, visit_task_point, &e, err);
}

/* ---- top level ---- */

static int parse_string_list(const cJSON *v, const char *where, char ***out, int *n, sb_err *err) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1) return sb_err_set(err, SB_EINPUT, "%s: must be a non-empty list", where);
    *n = cJSON_GetArraySize(v);
    *out = sb_calloc(err, (size_t)*n, sizeof **out);
    if (!*out) return SB_EINTERNAL;
    for (int i = 0; i < *n; i++) {
        const cJSON *item = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(item)) return sb_err_set(err, SB_EINPUT, "%s[%d]: must be a string", where, i);
        if (!((*out)[i] = dup_or_fail(item->valuestring, err))) return SB_EINTERNAL;
    }
    return SB_OK;
}

static int check_models(const sb_sweep *s, sb_err *err) {
    for (int i = 0; i < s->n_models; i++) {
        struct stat st;
        if (stat(s->models[i], &st) != 0)
            return sb_err_set(err, SB_EINPUT, "%s: models[%d]: '%s' does not exist", s->path, i, s->models[i]);
    }
    return SB_OK;
}

static int parse_seeds(sb_sweep *s, const cJSON *v, sb_err *err) {
    if (!v) {
        s->n_seeds = 1;
        s->seeds = sb_calloc(err, 1, sizeof *s->seeds);
        return s->seeds ? SB_OK : SB_EINTERNAL;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1)
        return sb_err_set(err, SB_EINPUT, "%s: seeds: must be a non-empty list of integers", s->path);
    s->n_seeds = cJSON_GetArraySize(v);
    s->seeds = sb_calloc(err, (size_t)s->n_seeds, sizeof *s->seeds);
    if (!s->seeds) return SB_EINTERNAL;
    for (int i = 0; i < s->n_seeds; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9007199254740991.0 ||
            x->valuedouble != (double)(uint64_t)x->valuedouble)
            return sb_err_set(err, SB_EINPUT, "%s: seeds[%d]: must be a non-negative integer", s->path, i);
        s->seeds[i] = (uint64_t)x->valuedouble;
    }
    return SB_OK;
}

static int parse_backends(sb_sweep *s, const cJSON *v, sb_err *err) {
    if (!v) {
        s->n_backends = 1;
        s->backends = sb_calloc(err, 1, sizeof *s->backends);
        return s->backends && (s->backends[0] = dup_or_fail("cpu", err)) ? SB_OK : SB_EINTERNAL;
    }
    char where[600];
    snprintf(where, sizeof where, "%s: backends", s->path);
    int rc = parse_string_list(v, where, &s->backends, &s->n_backends, err);
    for (int i = 0; !rc && i < s->n_backends; i++) {
        sb_backend_choice choice;
        if ((rc = sb_backend_parse(s->backends[i], &choice, err))) sb_err_prefix(err, "%s[%d]", where, i);
    }
    return rc;
}

int sb_sweep_set_backend(sb_sweep *s, const char *name, sb_err *err) {
    sb_backend_choice choice;
    int rc = sb_backend_parse(name, &choice, err);
    if (rc) return sb_err_prefix(err, "--backend");
    char *copy = dup_or_fail(name, err);
    if (!copy) return SB_EINTERNAL;
    char **list = sb_calloc(err, 1, sizeof *list);
    if (!list) {
        free(copy);
        return SB_EINTERNAL;
    }
    for (int i = 0; i < s->n_backends; i++) free(s->backends[i]);
    free(s->backends);
    list[0] = copy;
    s->backends = list;
    s->n_backends = 1;
    return SB_OK;
}

static int parse_top(sb_sweep *s, const cJSON *root, sb_err *err) {
    static const char *const keys[] = {"name", "models", "methods", "tasks", "backends", "seeds", "threads", NULL};
    for (const cJSON *k = root->child; k; k = k->next) {
        bool known = false;
        for (int i = 0; keys[i]; i++) known = known || strcmp(k->string, keys[i]) == 0;
        if (!known) return sb_err_set(err, SB_EINPUT, "%s: unknown key '%s'", s->path, k->string);
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name && (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof s->name))
        return sb_err_set(err, SB_EINPUT, "%s: name: must be a string of under %zu characters", s->path, sizeof s->name);
    snprintf(s->name, sizeof s->name, "%s", name ? name->valuestring : "sweep");
    const cJSON *threads = cJSON_GetObjectItemCaseSensitive(root, "threads");
    if (threads && (!cJSON_IsNumber(threads) || threads->valuedouble < 0 || threads->valuedouble > 1024 ||
                    threads->valuedouble != (int)threads->valuedouble))
        return sb_err_set(err, SB_EINPUT, "%s: threads: must be an integer in [0, 1024]", s->path);
    s->threads = threads ? (int)threads->valuedouble : 0;
    char where[600];
    snprintf(where, sizeof where, "%s: models", s->path);
    int rc = parse_string_list(cJSON_GetObjectItemCaseSensitive(root, "models"), where, &s->models, &s->n_models, err);
    if (!rc) rc = check_models(s, err);
    const cJSON *methods = cJSON_GetObjectItemCaseSensitive(root, "methods"), *tasks = cJSON_GetObjectItemCaseSensitive(root, "tasks");
    if (!rc && (!cJSON_IsArray(methods) || cJSON_GetArraySize(methods) < 1))
        rc = sb_err_set(err, SB_EINPUT, "%s: methods: must be a non-empty list", s->path);
    for (int i = 0; !rc && i < cJSON_GetArraySize(methods); i++) {
        snprintf(where, sizeof where, "%s: methods[%d]", s->path, i);
        rc = parse_method_entry(s, cJSON_GetArrayItem(methods, i), where, err);
    }
    if (!rc && (!cJSON_IsArray(tasks) || cJSON_GetArraySize(tasks) < 1))
        rc = sb_err_set(err, SB_EINPUT, "%s: tasks: must be a non-empty list", s->path);
    for (int i = 0; !rc && i < cJSON_GetArraySize(tasks); i++) {
        snprintf(where, sizeof where, "%s: tasks[%d]", s->path, i);
        rc = parse_task_entry(s, cJSON_GetArrayItem(tasks, i), where, err);
    }
    if (!rc) rc = parse_backends(s, cJSON_GetObjectItemCaseSensitive(root, "backends"), err);
    if (!rc) rc = parse_seeds(s, cJSON_GetObjectItemCaseSensitive(root, "seeds"), err);
    return rc;
}

int sb_sweep_load(const char *path, sb_sweep *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    int rc = sb_read_text_file(path, &text, &len, err);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!cJSON_IsObject(root)) {
        int line = 1;
        for (const char *p = text; end && p < end; p++) line += *p == '\n';
        free(text);
        cJSON_Delete(root);
        return sb_err_set(err, SB_EINPUT, "%s:%d: malformed JSON (the config must be one JSON object)", path, line);
    }
    free(text);
    out->path = dup_or_fail(path, err);
    rc = out->path ? parse_top(out, root, err) : SB_EINTERNAL;
    cJSON_Delete(root);
    if (rc) sb_sweep_free(out);
    return rc;
}

int sb_sweep_single(const char *model, const sb_method_variant *method, const sb_task_variant *task, uint64_t seed,
                    sb_sweep *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "eval");
    out->path = dup_or_fail("(command line)", err);
    out->models = sb_calloc(err, 1, sizeof *out->models);
    out->methods = sb_malloc(err, sizeof *out->methods);
    out->tasks = sb_malloc(err, sizeof *out->tasks);
    out->seeds = sb_malloc(err, sizeof *out->seeds);
    out->backends = sb_calloc(err, 1, sizeof *out->backends);
    if (!out->path || !out->models || !out->methods || !out->tasks || !out->seeds || !out->backends ||
        !(out->models[0] = dup_or_fail(model, err)) || !(out->backends[0] = dup_or_fail("cpu", err))) {
        sb_sweep_free(out);
        return SB_EINTERNAL;
    }
    out->n_models = out->n_methods = out->n_tasks = out->n_seeds = out->n_backends = 1;
    out->methods[0] = *method;
    out->tasks[0] = *task;
    out->seeds[0] = seed;
    sb_method_variant_label(&out->methods[0]);
    sb_task_variant_label(&out->tasks[0]);
    return check_models(out, err);
}

void sb_sweep_free(sb_sweep *s) {
    for (int i = 0; s->models && i < s->n_models; i++) free(s->models[i]);
    for (int i = 0; s->backends && i < s->n_backends; i++) free(s->backends[i]);
    free(s->models);
    free(s->backends);
    free(s->methods);
    free(s->tasks);
    free(s->seeds);
    free(s->path);
    memset(s, 0, sizeof *s);
}

/* ---- labels and normalized JSON ---- */

static void append_params(char *buf, size_t n, const sb_params *p) {
    size_t used = strlen(buf);
    if (p->n == 0) return;
    used += (size_t)snprintf(buf + used, used < n ? n - used : 0, "(");
    for (int i = 0; i < p->n && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s=%s", i ? "," : "", p->v[i].spec->name, p->v[i].str);
    if (used < n) snprintf(buf + used, n - used, ")");
}

int sb_method_variant_label(sb_method_variant *v) {
    v->label[0] = 0;
    for (int i = 0; i < v->n_steps; i++) {
        size_t used = strlen(v->label);
        snprintf(v->label + used, sizeof v->label - used, "%s%s", i ? "+" : "", v->steps[i].method->name);
        append_params(v->label, sizeof v->label, &v->steps[i].params);
    }
    return SB_OK;
}

int sb_task_variant_label(sb_task_variant *v) {
    snprintf(v->label, sizeof v->label, "%s", v->task->name);
    append_params(v->label, sizeof v->label, &v->params);
    return SB_OK;
}

cJSON *sb_method_variant_json(const sb_method_variant *v) {
    cJSON *steps = cJSON_CreateArray();
    for (int i = 0; steps && i < v->n_steps; i++) {
        cJSON *step = cJSON_CreateObject();
        cJSON_AddStringToObject(step, "name", v->steps[i].method->name);
        cJSON_AddItemToObject(step, "params", sb_params_to_json(&v->steps[i].params));
        cJSON_AddItemToArray(steps, step);
    }
    return steps;
}

cJSON *sb_task_variant_json(const sb_task_variant *v) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", v->task->name);
    cJSON_AddItemToObject(t, "params", sb_params_to_json(&v->params));
    return t;
}

/* ---- the matrix ---- */

int sb_sweep_matrix(const sb_sweep *s, int shard_k, int shard_n, sb_run_spec **runs, int *n_runs, sb_err *err) {
    if (shard_n < 1 || shard_k < 0 || shard_k >= shard_n)
        return sb_err_set(err, SB_EINPUT, "shard %d/%d: need 1 <= K <= N", shard_k + 1, shard_n);
    long total = (long)s->n_models * s->n_seeds * s->n_methods * s->n_tasks * s->n_backends;
    *runs = sb_malloc(err, sizeof **runs * (size_t)(total / shard_n + 1));
    if (!*runs) return SB_EINTERNAL;
    *n_runs = 0;
    long i = 0;
    for (int mo = 0; mo < s->n_models; mo++)
        for (int se = 0; se < s->n_seeds; se++)
            for (int me = 0; me < s->n_methods; me++)
                for (int ta = 0; ta < s->n_tasks; ta++)
                    for (int be = 0; be < s->n_backends; be++, i++)
                        if (i % shard_n == shard_k) (*runs)[(*n_runs)++] = (sb_run_spec){mo, me, ta, be, se};
    return SB_OK;
}
