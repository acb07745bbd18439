/* params.c - plugin parameters: parsed from JSON or "name=value" text,
 * checked against the plugin's spec, normalized for run ids. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

static const sb_param_spec *find_spec(const sb_param_spec *specs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(specs[i].name, name) == 0) return &specs[i];
    return NULL;
}

static bool in_choices(const char *choices, const char *value) {
    size_t n = strlen(value);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, value, n) == 0) return true;
        c = bar ? bar + 1 : NULL;
    }
    return false;
}

/* The shortest text that reads back as the same double ("0.2", not
 * "0.20000000000000001"): labels stay readable and still exact. */
static void format_number(char *buf, size_t n, double x, bool integer) {
    if (integer) {
        snprintf(buf, n, "%.0f", x);
        return;
    }
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* Sets v from text, checking type and range. */
static int set_from_text(sb_param_value *v, const char *text, const char *where, sb_err *err) {
    const sb_param_spec *s = v->spec;
    if (strlen(text) >= SB_PARAM_STR_MAX)
        return sb_err_set(err, SB_EINPUT, "%s: '%s' is too long", where, s->name);
    char *end = NULL;
    switch (s->type) {
    case SB_PARAM_INT:
    case SB_PARAM_FLOAT:
        v->num = strtod(text, &end);
        if (end == text || *end || !isfinite(v->num))
            return sb_err_set(err, SB_EINPUT, "%s: '%s' must be a number, not '%s'", where, s->name, text);
        if (s->type == SB_PARAM_INT && v->num != floor(v->num))
            return sb_err_set(err, SB_EINPUT, "%s: '%s' must be an integer, not '%s'", where, s->name, text);
        if (s->min <= s->max && (v->num < s->min || v->num > s->max))
            return sb_err_set(err, SB_EINPUT, "%s: '%s' = %s is out of range [%g, %g]", where, s->name, text, s->min, s->max);
        format_number(v->str, sizeof v->str, v->num, s->type == SB_PARAM_INT);
        return SB_OK;
    case SB_PARAM_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0) v->num = 1;
        else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0) v->num = 0;
        else return sb_err_set(err, SB_EINPUT, "%s: '%s' must be true or false, not '%s'", where, s->name, text);
        snprintf(v->str, sizeof v->str, "%s", v->num ? "true" : "false");
        return SB_OK;
    case SB_PARAM_STRING:
        if (s->choices && !in_choices(s->choices, text))
            return sb_err_set(err, SB_EINPUT, "%s: '%s' must be one of %s, not '%s'", where, s->name, s->choices, text);
        snprintf(v->str, sizeof v->str, "%s", text);
        return SB_OK;
    }
    return sb_err_set(err, SB_EINTERNAL, "%s: '%s' has an unknown type", where, s->name);
}

/* Fills out with every spec's default; required ones are left unset (spec NULL). */
static int start_with_defaults(const sb_param_spec *specs, int n_specs, const char *where, sb_params *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    if (n_specs > SB_MAX_PARAMS) return sb_err_set(err, SB_EINTERNAL, "%s: more than %d parameters", where, SB_MAX_PARAMS);
    out->n = n_specs;
    for (int i = 0; i < n_specs; i++) {
        out->v[i].spec = &specs[i];
        if (specs[i].dflt) {
            int rc = set_from_text(&out->v[i], specs[i].dflt, where, err);
            if (rc) return rc;
        }
    }
    return SB_OK;
}

static int check_required(const sb_params *p, const char *where, const bool *given, sb_err *err) {
    for (int i = 0; i < p->n; i++)
        if (!p->v[i].spec->dflt && !given[i])
            return sb_err_set(err, SB_EINPUT, "%s: required parameter '%s' is missing", where, p->v[i].spec->name);
    return SB_OK;
}

int sb_params_from_json(const sb_param_spec *specs, int n_specs, const cJSON *obj, const char *where, sb_params *out,
                        sb_err *err) {
    int rc = start_with_defaults(specs, n_specs, where, out, err);
    if (rc) return rc;
    if (obj && !cJSON_IsObject(obj)) return sb_err_set(err, SB_EINPUT, "%s: parameters must be a JSON object", where);
    bool given[SB_MAX_PARAMS] = {0};
    for (const cJSON *item = obj ? obj->child : NULL; item; item = item->next) {
        const sb_param_spec *s = find_spec(specs, n_specs, item->string);
        if (!s) return sb_err_set(err, SB_EINPUT, "%s: unknown parameter '%s'", where, item->string);
        int i = (int)(s - specs);
        char text[64];
        const char *value = text;
        if (cJSON_IsNumber(item) && (s->type == SB_PARAM_INT || s->type == SB_PARAM_FLOAT))
            snprintf(text, sizeof text, "%.17g", item->valuedouble);
        else if (cJSON_IsBool(item) && s->type == SB_PARAM_BOOL)
            value = cJSON_IsTrue(item) ? "true" : "false";
        else if (cJSON_IsString(item) && s->type == SB_PARAM_STRING)
            value = item->valuestring;
        else
            return sb_err_set(err, SB_EINPUT, "%s: '%s' must be %s", where, s->name,
                              s->type == SB_PARAM_STRING ? "a string" : s->type == SB_PARAM_BOOL ? "true or false" : "a number");
        if ((rc = set_from_text(&out->v[i], value, where, err))) return rc;
        given[i] = true;
    }
    return check_required(out, where, given, err);
}

int sb_params_from_strings(const sb_param_spec *specs, int n_specs, const char *const *assignments, int n,
                           const char *where, sb_params *out, sb_err *err) {
    int rc = start_with_defaults(specs, n_specs, where, out, err);
    if (rc) return rc;
    bool given[SB_MAX_PARAMS] = {0};
    for (int k = 0; k < n; k++) {
        const char *eq = strchr(assignments[k], '=');
        char name[128];
        if (!eq || eq == assignments[k] || (size_t)(eq - assignments[k]) >= sizeof name)
            return sb_err_set(err, SB_EINPUT, "%s: '%s' is not name=value", where, assignments[k]);
        memcpy(name, assignments[k], (size_t)(eq - assignments[k]));
        name[eq - assignments[k]] = 0;
        const sb_param_spec *s = find_spec(specs, n_specs, name);
        if (!s) return sb_err_set(err, SB_EINPUT, "%s: unknown parameter '%s'", where, name);
        int i = (int)(s - specs);
        if ((rc = set_from_text(&out->v[i], eq + 1, where, err))) return rc;
        given[i] = true;
    }
    return check_required(out, where, given, err);
}

static const sb_param_value *find_value(const sb_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->v[i].spec->name, name) == 0) return &p->v[i];
    fprintf(stderr, "slimbench: internal: parameter '%s' is not declared\n", name);
    return NULL;
}

double sb_param_num(const sb_params *p, const char *name) {
    const sb_param_value *v = find_value(p, name);
    return v ? v->num : 0;
}

bool sb_param_bool(const sb_params *p, const char *name) { return sb_param_num(p, name) != 0; }

const char *sb_param_str(const sb_params *p, const char *name) {
    const sb_param_value *v = find_value(p, name);
    return v ? v->str : "";
}

cJSON *sb_params_to_json(const sb_params *p) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < p->n; i++) {
        const sb_param_value *v = &p->v[i];
        if (v->spec->type == SB_PARAM_STRING) cJSON_AddStringToObject(o, v->spec->name, v->str);
        else if (v->spec->type == SB_PARAM_BOOL) cJSON_AddBoolToObject(o, v->spec->name, v->num != 0);
        else cJSON_AddNumberToObject(o, v->spec->name, v->num);
    }
    return o;
}

/* ---- results ---- */

int sb_result_add(sb_task_result *r, const char *name, double value, double stderr_value, sb_direction dir,
                  const char *unit, sb_err *err) {
    if (r->n_metrics >= SB_MAX_METRICS) return sb_err_set(err, SB_EINTERNAL, "more than %d metrics", SB_MAX_METRICS);
    sb_metric *m = &r->metrics[r->n_metrics++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->value = value;
    m->stderr_value = stderr_value;
    m->direction = dir;
    snprintf(m->unit, sizeof m->unit, "%s", unit ? unit : "");
    return SB_OK;
}

const sb_metric *sb_result_find(const sb_task_result *r, const char *name) {
    for (int i = 0; i < r->n_metrics; i++)
        if (strcmp(r->metrics[i].name, name) == 0) return &r->metrics[i];
    return NULL;
}

void sb_result_clear(sb_task_result *r) {
    cJSON_Delete(r->details);
    memset(r, 0, sizeof *r);
}

void sb_run_progress(const sb_run_ctx *ctx, double done, double total, const char *unit) {
    if (ctx && ctx->progress) ctx->progress(ctx->progress_user, done, total, unit);
}
