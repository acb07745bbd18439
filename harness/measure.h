/* measure.h - what a run costs: time, memory, and the machine it ran on.
 *
 * Wall time is CLOCK_MONOTONIC (never jumps with the system clock), CPU
 * time CLOCK_PROCESS_CPUTIME_ID (all threads of the process, so a run on
 * two busy threads shows twice its wall time).  Memory figures come from
 * the kernel: resident set size now (VmRSS) and at its peak (VmHWM,
 * getrusage's ru_maxrss).  The peak of one task, not of the whole process,
 * needs the kernel's high-water mark reset at the task's start; Linux
 * allows that by writing "5" to /proc/self/clear_refs, and sb_peak_tracker
 * falls back, and says so, where it is not allowed.
 *
 * Model-side sizes (weight bytes, KV-cache bytes) are computed from the
 * model IR, exactly, rather than measured: they are what the formats store. */
#ifndef SB_MEASURE_H
#define SB_MEASURE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "model.h"
#include "thread_pool.h"

/* ---- time ---------------------------------------------------------------- */

double sb_wall_seconds(void);   /* CLOCK_MONOTONIC, from an arbitrary origin */
double sb_cpu_seconds(void);    /* CPU time of every thread of the process */

/* One timed phase: sb_phase_start, the work, sb_phase_stop; then wall_s and
 * cpu_s hold its durations.  A phase may be started again to reuse it. */
typedef struct sb_phase {
    double wall0, cpu0;   /* readings at start */
    double wall_s, cpu_s; /* durations, set by stop */
} sb_phase;

void sb_phase_start(sb_phase *ph);
void sb_phase_stop(sb_phase *ph);

/* ---- memory of this process ---------------------------------------------- */

/* Bytes; -1 when the kernel does not say (no /proc). */
int64_t sb_rss_bytes(void);           /* VmRSS: resident now */
int64_t sb_rss_peak_bytes(void);      /* VmHWM: resident at its peak since start or the last reset */
int64_t sb_rusage_peak_bytes(void);   /* getrusage ru_maxrss: peak over the process's life */

typedef enum {
    SB_PEAK_CLEAR_REFS,  /* high-water mark reset at begin: the exact peak during the interval */
    SB_PEAK_HWM_GREW,    /* no reset, but the lifetime peak rose during the interval, so that is its peak */
    SB_PEAK_SAMPLED,     /* no reset and the lifetime peak was set before: the largest VmRSS seen by
                            sb_peak_sample (a lower bound of the true peak) */
} sb_peak_method;

/* The peak resident set size over an interval (one task). */
typedef struct sb_peak_tracker {
    sb_peak_method method;   /* how the peak was found; final after sb_peak_end */
    int64_t hwm_at_begin;    /* VmHWM right after begin (after the reset, when it worked) */
    int64_t max_sampled;     /* largest VmRSS seen by begin, sample and end */
    bool reset_worked;
} sb_peak_tracker;

void sb_peak_begin(sb_peak_tracker *t);
/* Notes the current RSS; call where memory use is highest (the fallback's only view). */
void sb_peak_sample(sb_peak_tracker *t);
/* Peak bytes over the interval, or -1 when nothing could be read. */
int64_t sb_peak_end(sb_peak_tracker *t);
const char *sb_peak_method_name(sb_peak_method m);   /* "clear_refs", "hwm_grew", "sampled" */

/* ---- device memory -------------------------------------------------------- */

/* A device backend (a future CUDA one) installs these so tasks can report
 * device memory next to host memory without knowing which device it is. */
typedef struct sb_device_mem_hook {
    void (*reset_peak)(void *user);       /* may be NULL */
    int64_t (*peak_bytes)(void *user);    /* peak allocated bytes since the last reset */
    void *user;
} sb_device_mem_hook;

/* Installs the hook (NULL removes it); set once when the backend starts. */
void sb_measure_set_device_hook(const sb_device_mem_hook *hook);
void sb_measure_device_reset_peak(void);
/* Peak device bytes, or -1 when no device backend is installed. */
int64_t sb_measure_device_peak(void);

/* ---- model-side sizes ----------------------------------------------------- */

/* Bytes of the KV cache (f32 keys and values) holding `positions` positions
 * in total (sequences times context): sum over blocks of
 * 2 * n_kv_head * head_dim * 4 * positions. */
uint64_t sb_kv_bytes(const sb_model *m, int64_t positions);
/* Bytes the stored weights occupy, from the formats' exact storage bits, rounded up. */
uint64_t sb_weight_bytes(const sb_model *m);

/* ---- the machine ---------------------------------------------------------- */

typedef struct sb_host {
    char cpu[128];        /* /proc/cpuinfo "model name", or "unknown" */
    int cores;            /* online cores */
    const char *blas;     /* sb_blas_name() */
    int threads;          /* pool threads */
    bool pinned;          /* the calling thread is bound to a single core */
} sb_host;

void sb_host_describe(const sb_pool *pool, sb_host *out);
/* {"cpu", "cores", "blas", "threads", "pinned"} as record.h's "host". */
cJSON *sb_host_to_json(const sb_host *h);
/* True when the calling thread may run on exactly one core (sb_pool_pin did it, or taskset). */
bool sb_thread_is_pinned(void);

#endif
