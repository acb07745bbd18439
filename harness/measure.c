/* measure.c - clocks, the kernel's memory counters, exact model sizes and
 * the host description (see measure.h). */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "measure.h"

/* ---- time ---- */

static double clock_seconds(clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double sb_wall_seconds(void) { return clock_seconds(CLOCK_MONOTONIC); }
double sb_cpu_seconds(void) { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

void sb_phase_start(sb_phase *ph) {
    ph->wall_s = ph->cpu_s = 0;
    ph->cpu0 = sb_cpu_seconds();
    ph->wall0 = sb_wall_seconds();
}

void sb_phase_stop(sb_phase *ph) {
    ph->wall_s = sb_wall_seconds() - ph->wall0;
    ph->cpu_s = sb_cpu_seconds() - ph->cpu0;
}

/* ---- memory ---- */

/* A "Key:   1234 kB" line of /proc/self/status, in bytes; -1 if absent. */
static int64_t status_kb_field(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    size_t klen = strlen(key);
    int64_t bytes = -1;
    while (fgets(line, sizeof line, f)) {
        long long kb;
        if (strncmp(line, key, klen) == 0 && line[klen] == ':' && sscanf(line + klen + 1, "%lld", &kb) == 1) {
            bytes = (int64_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return bytes;
}

int64_t sb_rss_bytes(void) { return status_kb_field("VmRSS"); }
int64_t sb_rss_peak_bytes(void) { return status_kb_field("VmHWM"); }

int64_t sb_rusage_peak_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (int64_t)ru.ru_maxrss * 1024; /* Linux reports kilobytes */
}

/* "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0,
 * Documentation/filesystems/proc.rst); it can be refused in sandboxes. */
static bool reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    ok = fclose(f) == 0 && ok; /* the write reaches the kernel at the flush */
    return ok;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

void sb_peak_begin(sb_peak_tracker *t) {
    t->reset_worked = reset_peak_rss();
    t->hwm_at_begin = sb_rss_peak_bytes();
    if (t->hwm_at_begin < 0) t->hwm_at_begin = sb_rusage_peak_bytes();
    t->max_sampled = sb_rss_bytes();
    t->method = t->reset_worked ? SB_PEAK_CLEAR_REFS : SB_PEAK_SAMPLED;
}

void sb_peak_sample(sb_peak_tracker *t) { t->max_sampled = max64(t->max_sampled, sb_rss_bytes()); }

int64_t sb_peak_end(sb_peak_tracker *t) {
    sb_peak_sample(t);
    int64_t hwm = sb_rss_peak_bytes();
    if (hwm < 0) hwm = sb_rusage_peak_bytes();
    if (t->reset_worked && hwm >= 0) {
        t->method = SB_PEAK_CLEAR_REFS;
        return max64(hwm, t->max_sampled);
    }
    /* Without a reset the mark is the lifetime peak; if it rose during the
     * interval, the new peak was reached inside it. */
    if (hwm > t->hwm_at_begin && t->hwm_at_begin >= 0) {
        t->method = SB_PEAK_HWM_GREW;
        return hwm;
    }
    t->method = SB_PEAK_SAMPLED;
    return t->max_sampled;
}

const char *sb_peak_method_name(sb_peak_method m) {
    switch (m) {
    case SB_PEAK_CLEAR_REFS: return "clear_refs";
    case SB_PEAK_HWM_GREW: return "hwm_grew";
    case SB_PEAK_SAMPLED: return "sampled";
    }
    return "unknown";
}

/* ---- device memory ---- */

/* The one installed backend hook, like the registry's tables: set once at
 * start-up by the backend, read by tasks. */
static sb_device_mem_hook device_hook;

void sb_measure_set_device_hook(const sb_device_mem_hook *hook) {
    device_hook = hook ? *hook : (sb_device_mem_hook){0};
}

void sb_measure_device_reset_peak(void) {
    if (device_hook.reset_peak) device_hook.reset_peak(device_hook.user);
}

int64_t sb_measure_device_peak(void) {
    return device_hook.peak_bytes ? device_hook.peak_bytes(device_hook.user) : -1;
}

/* ---- model-side sizes ---- */

uint64_t sb_kv_bytes(const sb_model *m, int64_t positions) {
    if (positions <= 0) return 0;
    uint64_t per_position = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        per_position += 2u * (uint64_t)b->n_kv_head * (uint64_t)b->head_dim * sizeof(float);
    }
    return per_position * (uint64_t)positions;
}

uint64_t sb_weight_bytes(const sb_model *m) { return (sb_model_weight_bits(m) + 7) / 8; }

/* ---- the machine ---- */

/* The first "model name" of /proc/cpuinfo (x86; most ARM kernels have none). */
static void cpu_model_name(char *out, size_t size) {
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        v[strcspn(v, "\n")] = 0;
        if (*v) snprintf(out, size, "%s", v);
        break;
    }
    fclose(f);
}

bool sb_thread_is_pinned(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1;
}

void sb_host_describe(const sb_pool *pool, sb_host *out) {
    memset(out, 0, sizeof *out);
    cpu_model_name(out->cpu, sizeof out->cpu);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    out->cores = cores > 0 ? (int)cores : 1;
    out->blas = sb_blas_name();
    out->threads = sb_pool_threads(pool);
    out->pinned = sb_thread_is_pinned();
}

cJSON *sb_host_to_json(const sb_host *h) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "cpu", h->cpu);
    cJSON_AddNumberToObject(o, "cores", h->cores);
    cJSON_AddStringToObject(o, "blas", h->blas ? h->blas : "unknown");
    cJSON_AddNumberToObject(o, "threads", h->threads);
    cJSON_AddBoolToObject(o, "pinned", h->pinned);
    return o;
}
