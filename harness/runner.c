#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "backend_cuda.h"
#include "measure.h"
#include "model_hash.h"
#include "model_snapshot.h"
#include "progress.h"
#include "record.h"
#include "results.h"
#include "runner.h"
#include "runner_internal.h"
#include "version.h"

/* What the runner holds while it walks the matrix. */
struct runner {
    const sb_sweep *s;
    const sb_runner_opts *o;
    sb_results *store;
    sb_pool *pool;
    sb_progress progress;
    char (*model_hash)[17];     /* per model, "" until computed */
    sb_host host;
    char cache_dir[4096];
    /* the loaded model and the method currently applied to it */
    int model_index;            /* -1: none */
    sb_model *model;
    sb_model_snapshot *snapshot;
    /* The model before each later step of a chain (before step i+1 at
     * [i]): undone in reverse, each restore frees what its step made. */
    sb_model_snapshot *step_snapshots[SB_MAX_STEPS];
    int n_step_snapshots;
    char load_error[1100];
    double load_s;
    int applied_method, applied_seed; /* -1: pristine */
    int applied_device;         /* the CUDA device a per-backend method computed on, -1: the CPU */
    char method_error[1200];
    double method_s;
    sb_method_report method_report;
    int records_written;        /* by this process, for fault injection */
    /* the CUDA backend, opened by the first run that asks for it */
    sb_cuda_ctx *cuda;
    sb_cuda_model *device_model; /* the model as it is now, on cuda's device; NULL until a CUDA run needs it */
};

static void iso_time(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The configuration a run id is the hash of. */
static cJSON *run_config(runner *r, const sb_run_spec *run) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "model", r->model_hash[run->model]);
    cJSON_AddItemToObject(c, "method", sb_method_variant_json(&r->s->methods[run->method]));
    cJSON_AddItemToObject(c, "task", sb_task_variant_json(&r->s->tasks[run->task]));
    cJSON_AddStringToObject(c, "backend", r->s->backends[run->backend]);
    cJSON_AddNumberToObject(c, "seed", (double)r->s->seeds[run->seed]);
    return c;
}

static int run_id_of(runner *r, const sb_run_spec *run, char id[SB_RUN_ID_LEN + 1], sb_err *err) {
    if (!r->model_hash[run->model][0]) {
        int rc = sb_model_hash(r->s->models[run->model], r->model_hash[run->model], err);
        if (rc) return rc;
    }
    cJSON *c = run_config(r, run);
    int rc = c ? sb_run_id(c, id, err) : sb_err_set(err, SB_EINTERNAL, "out of memory");
    cJSON_Delete(c);
    return rc;
}

/* ---- model and method state ---- */

/* The device copy is of the model as a method left it: drop it when that changes. */
static void drop_device_model(runner *r) {
    sb_cuda_model_free(r->device_model);
    r->device_model = NULL;
}

/* Back to the model as loaded: the chain's steps undone last to first. */
static void restore_model(runner *r) {
    while (r->n_step_snapshots > 0) {
        sb_model_snapshot *snap = r->step_snapshots[--r->n_step_snapshots];
        sb_model_snapshot_restore(r->model, snap);
        sb_model_snapshot_free(snap);
    }
    sb_model_snapshot_restore(r->model, r->snapshot);
}

static void unload(runner *r) {
    drop_device_model(r);
    if (r->model && r->snapshot && r->applied_method >= 0) restore_model(r); /* frees what methods allocated */
    sb_model_snapshot_free(r->snapshot);
    sb_model_free(r->model);
    r->snapshot = NULL;
    r->model = NULL;
    r->model_index = -1;
    r->applied_method = r->applied_seed = r->applied_device = -1;
}

static void ensure_model(runner *r, int index) {
    if (r->model_index == index) return;
    unload(r);
    r->model_index = index;
    r->load_error[0] = 0;
    sb_err err = {0};
    sb_phase ph;
    sb_phase_start(&ph);
    int rc = sb_model_load(r->s->models[index], &r->model, &err);
    if (!rc) rc = sb_model_snapshot_take(r->model, &r->snapshot, &err);
    sb_phase_stop(&ph);
    r->load_s = ph.wall_s;
    if (rc) {
        snprintf(r->load_error, sizeof r->load_error, "%s", err.msg);
        sb_model_free(r->model);
        r->model = NULL;
    }
}

static bool is_reference(const sb_method_variant *v) {
    return v->n_steps == 1 && strcmp(v->steps[0].method->name, "dense") == 0;
}

/* The backend a run names (the sweep checked every name when it was read). */
static sb_backend_choice run_backend(const runner *r, const sb_run_spec *run) {
    sb_backend_choice c;
    sb_err ignored = {0};
    if (sb_backend_parse(r->s->backends[run->backend], &c, &ignored)) c = (sb_backend_choice){SB_BACKEND_CPU, 0, false};
    return c;
}

/* Where a method variant computes: on the run's backend when one of its
 * steps asks to (per_backend), else on the CPU for every backend. */
static sb_backend_choice method_backend(const runner *r, const sb_run_spec *run) {
    const sb_method_variant *v = &r->s->methods[run->method];
    for (int i = 0; i < v->n_steps; i++)
        if (v->steps[i].method->per_backend) return run_backend(r, run);
    return (sb_backend_choice){SB_BACKEND_CPU, 0, false};
}

/* The context of a run's task; ensure_method and run_task adjust backend and cuda. */
static void fill_ctx(runner *r, const sb_run_spec *run, sb_run_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->pool = r->pool;
    ctx->seed = r->s->seeds[run->seed];
    ctx->cache_dir = r->cache_dir;
    ctx->model_is_reference = is_reference(&r->s->methods[run->method]);
    ctx->model_id = r->model_hash[run->model];
    ctx->reference = r->snapshot ? sb_model_snapshot_reference(r->snapshot) : NULL;
    ctx->progress = sb_progress_inner;
    ctx->progress_user = &r->progress;
    ctx->backend = run_backend(r, run);
}

static int open_device(runner *r, const sb_backend_choice *choice, sb_err *err);

/* The context a method variant is applied with: on a CUDA device only
 * when it computes there (method_backend), with that device opened. */
static void method_ctx(runner *r, const sb_run_spec *run, const sb_backend_choice *where, sb_run_ctx *ctx) {
    fill_ctx(r, run, ctx);
    ctx->backend = *where;
    if (where->kind != SB_BACKEND_CUDA) return;
    sb_err err = {0};
    if (open_device(r, where, &err))
        snprintf(r->method_error, sizeof r->method_error, "opening cuda:%d for the method: %s", where->device, err.msg);
    else ctx->cuda = r->cuda;
}

/* In a chain, only the steps that compute on the run's backend see it. */
static sb_run_ctx step_ctx(const sb_run_ctx *ctx, const sb_method *m) {
    sb_run_ctx c = *ctx;
    if (!m->per_backend) {
        c.backend = (sb_backend_choice){SB_BACKEND_CPU, 0, false};
        c.cuda = NULL;
    }
    return c;
}

/* Restores the model and applies the run's method, unless already applied
 * (on the same device, for a method that computes on the run's backend). */
static void ensure_method(runner *r, const sb_run_spec *run) {
    sb_backend_choice where = method_backend(r, run);
    int device = where.kind == SB_BACKEND_CUDA ? where.device : -1;
    if (!r->model ||
        (r->applied_method == run->method && r->applied_seed == run->seed && r->applied_device == device))
        return;
    drop_device_model(r);
    if (r->applied_method >= 0) restore_model(r);
    cJSON_Delete(r->method_report.details);
    memset(&r->method_report, 0, sizeof r->method_report);
    r->method_error[0] = 0;
    r->applied_method = run->method;
    r->applied_seed = run->seed;
    r->applied_device = device;
    const sb_method_variant *v = &r->s->methods[run->method];
    sb_run_ctx ctx;
    method_ctx(r, run, &where, &ctx);
    sb_phase ph;
    sb_phase_start(&ph);
    for (int i = 0; i < v->n_steps && !r->method_error[0]; i++) {
        sb_err err = {0};
        sb_method_report step = {0};
        /* A later step replaces what an earlier one allocated without
         * freeing it (methods never free model payloads): a snapshot
         * between steps lets the restore free both. */
        int rc = i > 0 ? sb_model_snapshot_take(r->model, &r->step_snapshots[r->n_step_snapshots], &err) : SB_OK;
        if (rc == SB_OK && i > 0) r->n_step_snapshots++;
        sb_run_ctx sctx = step_ctx(&ctx, v->steps[i].method);
        if (rc == SB_OK) rc = v->steps[i].method->apply(r->model, &v->steps[i].params, &sctx, &step, &err);
        if (rc) snprintf(r->method_error, sizeof r->method_error, "%s: %s", v->steps[i].method->name, err.msg);
        cJSON_Delete(r->method_report.details); /* the last step's report describes the result */
        r->method_report = step;
    }
    sb_err verr = {0};
    if (!r->method_error[0] && sb_model_validate(r->model, &verr))
        snprintf(r->method_error, sizeof r->method_error, "the method left an inconsistent model: %s", verr.msg);
    sb_phase_stop(&ph);
    r->method_s = ph.wall_s;
}

/* ---- records ---- */

static cJSON *metrics_json(const sb_task_result *res) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < res->n_metrics; i++) {
        const sb_metric *m = &res->metrics[i];
        cJSON *e = cJSON_AddObjectToObject(o, m->name);
        cJSON_AddNumberToObject(e, "value", m->value);
        if (isnan(m->stderr_value)) cJSON_AddNullToObject(e, "stderr");
        else cJSON_AddNumberToObject(e, "stderr", m->stderr_value);
        cJSON_AddStringToObject(e, "direction",
                                m->direction == SB_LOWER_IS_BETTER ? "lower" : m->direction == SB_HIGHER_IS_BETTER ? "higher" : "none");
        cJSON_AddStringToObject(e, "unit", m->unit);
    }
    return o;
}

static cJSON *method_json(const sb_method_variant *v) {
    cJSON *o = cJSON_CreateObject();
    const sb_method *first = v->steps[0].method;
    char name[256] = "";
    for (int i = 0; i < v->n_steps; i++)
        snprintf(name + strlen(name), sizeof name - strlen(name), "%s%s", i ? "+" : "", v->steps[i].method->name);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "family", first->family ? first->family : "");
    cJSON *paper = cJSON_AddObjectToObject(o, "paper");
    cJSON_AddStringToObject(paper, "title", first->paper.title ? first->paper.title : "");
    if (first->paper.arxiv) cJSON_AddStringToObject(paper, "arxiv", first->paper.arxiv);
    else cJSON_AddNullToObject(paper, "arxiv");
    cJSON_AddItemToObject(o, "params", sb_params_to_json(&v->steps[v->n_steps - 1].params));
    cJSON_AddItemToObject(o, "steps", sb_method_variant_json(v));
    cJSON_AddStringToObject(o, "label", v->label);
    return o;
}

static cJSON *model_json(runner *r, int index) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", r->s->models[index]);
    cJSON_AddStringToObject(o, "hash", r->model_hash[index]);
    if (r->model) {
        cJSON_AddStringToObject(o, "arch", r->model->arch);
        cJSON_AddStringToObject(o, "source", r->model->source);
        cJSON_AddNumberToObject(o, "params", (double)sb_model_param_count(r->model));
    }
    return o;
}

typedef struct {
    const char *status, *error;
    sb_task_result *result;
    double task_s, task_cpu_s;
    int64_t peak_rss;
    char started[32];
    bool on_device;             /* a CUDA run: device figures below are filled in */
    sb_cuda_stats dev_before, dev_after;
} run_outcome;

/* The device a CUDA run used, what it cost there, and how products were done. */
static cJSON *device_json(runner *r, const sb_run_spec *run, const run_outcome *out) {
    cJSON *o = cJSON_CreateObject();
    sb_cuda_info in;
    sb_cuda_ctx_info(r->cuda, &in);
    char cc[16], drv[16], rt[16];
    snprintf(cc, sizeof cc, "%d.%d", in.cc_major, in.cc_minor);
    snprintf(drv, sizeof drv, "%d.%d", in.driver_version / 1000, in.driver_version % 1000 / 10);
    snprintf(rt, sizeof rt, "%d.%d", in.runtime_version / 1000, in.runtime_version % 1000 / 10);
    cJSON_AddStringToObject(o, "name", in.name);
    cJSON_AddNumberToObject(o, "index", in.device);
    cJSON_AddStringToObject(o, "compute_capability", cc);
    cJSON_AddStringToObject(o, "driver", drv);
    cJSON_AddStringToObject(o, "cuda_runtime", rt);
    cJSON_AddNumberToObject(o, "cublas", in.cublas_version);
    cJSON_AddNumberToObject(o, "total_bytes", (double)in.total_bytes);
    sb_backend_choice choice;
    sb_err ignored = {0};
    bool tf32 = sb_backend_parse(r->s->backends[run->backend], &choice, &ignored) == SB_OK && choice.tf32;
    cJSON_AddStringToObject(o, "f32_gemm", tf32 ? "tf32" : "f32");
    if (r->device_model) {
        cJSON_AddNumberToObject(o, "weight_bytes", (double)sb_cuda_model_bytes(r->device_model));
        cJSON_AddNumberToObject(o, "linears_decoded_to_f32", sb_cuda_model_decoded_linears(r->device_model));
    }
    cJSON_AddNumberToObject(o, "kernel_s", out->dev_after.kernel_s);
    cJSON_AddNumberToObject(o, "forward_calls", (double)out->dev_after.forward_calls);
    cJSON_AddNumberToObject(o, "used_bytes_before", (double)out->dev_before.used_bytes);
    cJSON_AddNumberToObject(o, "used_bytes_after", (double)out->dev_after.used_bytes);
    cJSON_AddNumberToObject(o, "alloc_peak_bytes", (double)out->dev_after.alloc_peak_bytes);
    return o;
}

static cJSON *build_record(runner *r, const sb_run_spec *run, const char *id, const run_outcome *out) {
    const sb_method_variant *mv = &r->s->methods[run->method];
    cJSON *rec = cJSON_CreateObject();
    char finished[32];
    iso_time(finished, sizeof finished);
    cJSON_AddNumberToObject(rec, "schema", SB_RECORD_SCHEMA);
    cJSON_AddStringToObject(rec, "run_id", id);
    cJSON_AddStringToObject(rec, "sweep", r->s->name);
    cJSON_AddStringToObject(rec, "status", out->status);
    if (out->error) cJSON_AddStringToObject(rec, "error", out->error);
    cJSON_AddStringToObject(rec, "started", out->started);
    cJSON_AddStringToObject(rec, "finished", finished);
    cJSON *harness = cJSON_AddObjectToObject(rec, "harness");
    cJSON_AddStringToObject(harness, "version", SB_VERSION);
    cJSON_AddStringToObject(harness, "git", sb_git_commit());
    cJSON_AddItemToObject(rec, "host", sb_host_to_json(&r->host));
    cJSON_AddItemToObject(rec, "model", model_json(r, run->model));
    cJSON_AddItemToObject(rec, "method", method_json(mv));
    cJSON *task = sb_task_variant_json(&r->s->tasks[run->task]);
    cJSON_AddStringToObject(task, "protocol", out->result ? out->result->protocol : "");
    cJSON_AddItemToObject(rec, "task", task);
    cJSON_AddStringToObject(rec, "backend", r->s->backends[run->backend]);
    if (out->on_device && r->cuda) cJSON_AddItemToObject(rec, "device", device_json(r, run, out));
    cJSON_AddNumberToObject(rec, "seed", (double)r->s->seeds[run->seed]);
    cJSON_AddItemToObject(rec, "metrics", out->result ? metrics_json(out->result) : cJSON_CreateObject());
    cJSON *details = out->result && out->result->details ? cJSON_Duplicate(out->result->details, 1) : cJSON_CreateObject();
    if (r->method_report.details) cJSON_AddItemToObject(details, "method", cJSON_Duplicate(r->method_report.details, 1));
    cJSON_AddItemToObject(rec, "details", details);
    cJSON *t = cJSON_AddObjectToObject(rec, "timings");
    cJSON_AddNumberToObject(t, "load_s", r->load_s);
    cJSON_AddNumberToObject(t, "method_s", r->method_s);
    cJSON_AddNumberToObject(t, "task_s", out->task_s);
    cJSON_AddNumberToObject(t, "task_cpu_s", out->task_cpu_s);
    cJSON *mem = cJSON_AddObjectToObject(rec, "memory");
    cJSON_AddNumberToObject(mem, "peak_rss_bytes", (double)out->peak_rss);
    cJSON_AddNumberToObject(mem, "weight_bytes", r->model ? (double)sb_weight_bytes(r->model) : 0);
    cJSON_AddNumberToObject(mem, "bits_per_weight", r->model ? sb_model_bits_per_weight(r->model) : 0);
    const sb_metric *kv = out->result ? sb_result_find(out->result, "kv_bytes") : NULL;
    cJSON_AddNumberToObject(mem, "kv_bytes", kv ? kv->value : 0);
    int64_t device = out->on_device ? sb_measure_device_peak() : -1;
    if (device < 0) cJSON_AddNullToObject(mem, "device_peak_bytes");
    else cJSON_AddNumberToObject(mem, "device_peak_bytes", (double)device);
    cJSON_AddStringToObject(rec, "quant", is_reference(mv) ? "none" : r->method_report.real_quant ? "real" : "fake");
    return rec;
}

static void print_metrics(const char *label, const sb_task_result *res) {
    printf("%s  [%s]\n", label, res->protocol);
    for (int i = 0; i < res->n_metrics; i++) {
        const sb_metric *m = &res->metrics[i];
        if (isnan(m->stderr_value)) printf("  %-28s %.6g %s\n", m->name, m->value, m->unit);
        else printf("  %-28s %.6g +/- %.6g %s\n", m->name, m->value, m->stderr_value, m->unit);
    }
    fflush(stdout);
}

/* Fault injection for the crash test (tests/cli_sweep.sh): with
 * SB_FAULT_KILL_AFTER_RECORDS=k the process kills itself with SIGKILL right
 * after its k-th record is written, the moment a real crash is hardest on a
 * store. Never set in normal use. */
static void fault_after_record(runner *r) {
    const char *k = getenv("SB_FAULT_KILL_AFTER_RECORDS");
    if (k && ++r->records_written == atoi(k)) raise(SIGKILL);
}

/* Opens the device a CUDA run names (once: again only for another device). */
static int open_device(runner *r, const sb_backend_choice *choice, sb_err *err) {
    if (r->cuda) {
        sb_cuda_info in;
        sb_cuda_ctx_info(r->cuda, &in);
        if (in.device != choice->device) {
            drop_device_model(r);
            sb_cuda_ctx_free(r->cuda);
            r->cuda = NULL;
        }
    }
    int rc = r->cuda ? SB_OK : sb_cuda_ctx_new(choice->device, &r->cuda, err);
    if (!rc) sb_cuda_ctx_set_tf32(r->cuda, choice->tf32);
    return rc;
}

/* Opens the device and uploads the model for a CUDA run, once per device
 * and model state. Failures (no device, out of device memory) fail the run. */
static int ensure_device(runner *r, const sb_backend_choice *choice, sb_err *err) {
    int rc = open_device(r, choice, err);
    if (rc) return rc;
    return r->device_model ? SB_OK : sb_cuda_model_upload(r->cuda, r->model, &r->device_model, err);
}

/* The task, on the run's backend: for CUDA the model's device copy is
 * attached to the model only for the task's duration. */
static int run_task(runner *r, const sb_run_spec *run, const sb_task_variant *tv, const sb_run_ctx *ctx,
                    sb_task_result *res, run_outcome *out, sb_err *err) {
    sb_backend_choice choice;
    int rc = sb_backend_parse(r->s->backends[run->backend], &choice, err);
    if (!rc && choice.kind == SB_BACKEND_CPU && r->cuda) sb_cuda_ctx_measure(r->cuda, false); /* no device figures */
    if (rc || choice.kind == SB_BACKEND_CPU) return rc ? rc : tv->task->run(r->model, &tv->params, ctx, res, err);
    out->on_device = true;
    rc = ensure_device(r, &choice, err);
    if (rc) return rc;
    sb_cuda_ctx_measure(r->cuda, true);
    sb_cuda_stats_reset(r->cuda);
    sb_cuda_stats_get(r->cuda, &out->dev_before);
    sb_run_ctx on_device = *ctx;
    on_device.cuda = r->cuda;
    r->model->device = r->device_model;
    rc = tv->task->run(r->model, &tv->params, &on_device, res, err);
    r->model->device = NULL;
    sb_cuda_stats_get(r->cuda, &out->dev_after);
    return rc;
}

/* Runs one matrix entry and returns its record (NULL when out of memory);
 * *failed says whether the run failed. */
cJSON *sb_runner_perform(runner *r, const sb_run_spec *run, const char *id, bool *failed) {
    char label[600];
    snprintf(label, sizeof label, "%s | %s | %s", r->s->models[run->model], r->s->methods[run->method].label,
             r->s->tasks[run->task].label);
    sb_progress_run_start(&r->progress, label);
    ensure_model(r, run->model);
    ensure_method(r, run);
    run_outcome out = {.status = "ok"};
    iso_time(out.started, sizeof out.started);
    sb_task_result res = {0};
    char task_error[1200] = "";
    if (r->load_error[0]) {
        out.error = r->load_error;
    } else if (r->method_error[0]) {
        out.error = r->method_error;
    } else {
        const sb_task_variant *tv = &r->s->tasks[run->task];
        sb_run_ctx ctx;
        fill_ctx(r, run, &ctx);
        sb_err terr = {0};
        sb_peak_tracker peak;
        sb_phase ph;
        sb_peak_begin(&peak);
        sb_phase_start(&ph);
        int rc = run_task(r, run, tv, &ctx, &res, &out, &terr);
        sb_phase_stop(&ph);
        out.peak_rss = sb_peak_end(&peak);
        out.task_s = ph.wall_s;
        out.task_cpu_s = ph.cpu_s;
        out.result = &res;
        if (rc) {
            snprintf(task_error, sizeof task_error, "%s: %s", tv->task->name, terr.msg);
            out.error = task_error;
        } else if (r->o->print_metrics) {
            print_metrics(label, &res);
        }
    }
    if (out.error) out.status = "failed";
    *failed = out.error != NULL;
    cJSON *rec = build_record(r, run, id, &out);
    sb_result_clear(&res);
    char status[1300];
    snprintf(status, sizeof status, "%s%s%s", out.status, out.error ? ": " : "", out.error ? out.error : "");
    sb_progress_run_end(&r->progress, status);
    if (out.error && !r->o->quiet && !r->progress.tty) fprintf(stderr, "slimbench: %s\n", out.error);
    return rec;
}

/* Appends a record to the store, durably, and counts it. */
int sb_runner_record(runner *r, const cJSON *rec, bool failed, sb_runner_summary *sum, sb_err *err) {
    int rc = rec ? sb_results_append(r->store, rec, err) : sb_err_set(err, SB_EINTERNAL, "out of memory");
    fault_after_record(r);
    if (failed) sum->failed++;
    else sum->ok++;
    return rc;
}

/* with_store: this process writes the records; with_engine: it runs models. */
int sb_runner_new(const sb_sweep *s, const sb_runner_opts *o, bool with_store, bool with_engine, runner **out,
                  sb_err *err) {
    runner *r = sb_calloc(err, 1, sizeof *r);
    if (!r) return SB_EINTERNAL;
    *r = (runner){.s = s, .o = o, .model_index = -1, .applied_method = -1, .applied_seed = -1, .applied_device = -1};
    *out = r;
    r->model_hash = sb_calloc(err, (size_t)s->n_models, sizeof *r->model_hash);
    if (!r->model_hash) return SB_EINTERNAL;
    int rc = with_store ? sb_results_open(o->out_dir, &r->store, err) : SB_OK;
    if (rc) return rc;
    if (with_store && !o->resume && sb_results_count(r->store) > 0)
        return sb_err_set(err, SB_EINPUT, "%s already holds %zu records: pass --resume to continue that sweep, or choose another --out",
                          sb_results_path(r->store), sb_results_count(r->store));
    int threads = o->threads ? o->threads : s->threads;
    if (with_engine && (rc = sb_pool_new(threads, &r->pool, err))) return rc;
    sb_host_describe(r->pool, &r->host);
    snprintf(r->cache_dir, sizeof r->cache_dir, "%s/cache", o->out_dir);
    /* tasks may rely on the cache folder existing (an MPI worker may get here before the leader made out_dir) */
    return with_engine ? sb_make_dirs(r->cache_dir, err) : SB_OK;
}

void sb_runner_free(runner *r) {
    if (!r) return;
    unload(r);
    sb_cuda_ctx_free(r->cuda);
    cJSON_Delete(r->method_report.details);
    free(r->model_hash);
    sb_pool_free(r->pool);
    sb_results_close(r->store);
    free(r);
}

int sb_runner_id(runner *r, const sb_run_spec *run, char id[SB_RUN_ID_LEN + 1], sb_err *err) { return run_id_of(r, run, id, err); }

bool sb_runner_done(const runner *r, const char *id) { return r->store && sb_results_has(r->store, id); }

sb_progress *sb_runner_progress(runner *r) { return &r->progress; }

int sb_runner_run(const sb_sweep *s, const sb_runner_opts *o, sb_runner_summary *sum, sb_err *err) {
    memset(sum, 0, sizeof *sum);
    runner *r = NULL;
    sb_run_spec *runs = NULL;
    int n_runs = 0;
    int rc = sb_sweep_matrix(s, o->shard_k, o->shard_n, &runs, &n_runs, err);
    if (!rc) rc = sb_runner_new(s, o, true, true, &r, err);
    sum->planned = n_runs;
    if (!rc) sb_progress_init(&r->progress, n_runs, o->quiet);
    for (int i = 0; !rc && i < n_runs; i++) {
        char id[SB_RUN_ID_LEN + 1];
        if ((rc = run_id_of(r, &runs[i], id, err))) break;
        if (sb_results_has(r->store, id)) {
            sum->skipped++;
            r->progress.done++;
            continue;
        }
        bool failed;
        cJSON *rec = sb_runner_perform(r, &runs[i], id, &failed);
        rc = sb_runner_record(r, rec, failed, sum, err);
        cJSON_Delete(rec);
    }
    if (!rc) sb_progress_finish(&r->progress);
    sb_runner_free(r);
    free(runs);
    return rc;
}
