/* test_measure.c - the measurement module: clocks move forward and CPU time
 * is plausible, the kernel's peak RSS sees a 64 MB buffer and can be reset
 * per task (or the fallback says so), exact KV and weight sizes, the device
 * hook, the host description and pinning the pool. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "measure.h"
#include "model_random.h"

enum { MB = 1 << 20 };

static void test_phase_timing(void) {
    test_begin("measure_phase_timing");
    double prev = sb_wall_seconds();
    bool monotonic = true;
    for (int i = 0; i < 100000; i++) {
        double t = sb_wall_seconds();
        monotonic = monotonic && t >= prev;
        prev = t;
    }
    test_expect(monotonic, "CLOCK_MONOTONIC went backwards");
    sb_phase ph;
    sb_phase_start(&ph);
    volatile double sink = 0;
    while (sb_wall_seconds() - ph.wall0 < 0.05) sink += 1.0; /* busy: CPU time accrues with wall time */
    sb_phase_stop(&ph);
    test_expect(ph.wall_s >= 0.05 && ph.wall_s < 5, "wall %.4f s for a 0.05 s loop", ph.wall_s);
    /* CPU time counts every thread of the process (the BLAS's own, the
     * sanitizer's), so it is at least this thread's share and at most every core busy */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    test_expect(ph.cpu_s > 0.01 && ph.cpu_s <= ph.wall_s * (double)(cores > 0 ? cores : 1) + 0.02,
                "cpu %.4f s for wall %.4f s", ph.cpu_s, ph.wall_s);
    test_end();
}

/* A mapping of its own (malloc under AddressSanitizer would keep it after
 * free), every page touched so it is resident, not just reserved. */
static char *touch_buffer(size_t n) {
    char *b = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) return NULL;
    for (size_t i = 0; i < n; i += 4096) b[i] = (char)(i / 4096);
    return b;
}

static void test_peak_rss(void) {
    test_begin("measure_peak_rss_grows_and_resets");
    sb_peak_tracker t;
    sb_peak_begin(&t);
    int64_t before = sb_rss_bytes();
    char *buf = touch_buffer(64 * (size_t)MB);
    int64_t during = sb_rss_bytes();
    if (test_expect(buf && before > 0, "no buffer or no VmRSS")) {
        sb_peak_sample(&t);
        munmap(buf, 64 * (size_t)MB); /* back to the kernel: RSS drops, the peak stays */
        int64_t peak = sb_peak_end(&t);
        test_expect(during - before >= 60 * MB, "RSS grew by %lld bytes only", (long long)(during - before));
        test_expect(peak >= before + 60 * MB, "peak %lld, before %lld", (long long)peak, (long long)before);
        test_expect(sb_rss_peak_bytes() >= 60 * MB && sb_rusage_peak_bytes() >= 60 * MB, "kernel peaks below 60 MB");
        /* a second interval without the buffer: its peak excludes the first's only when the reset works */
        sb_peak_tracker t2;
        sb_peak_begin(&t2);
        int64_t peak2 = sb_peak_end(&t2);
        printf("# peak RSS method: %s (64 MB interval peak %lld MB, empty interval %lld MB)\n",
               sb_peak_method_name(t2.method), (long long)(peak / MB), (long long)(peak2 / MB));
        if (t2.reset_worked)
            test_expect(t2.method == SB_PEAK_CLEAR_REFS && peak2 < peak - 32 * MB, "reset left the peak at %lld",
                        (long long)peak2);
        else
            test_expect(t2.method == SB_PEAK_SAMPLED, "no reset, yet method %s", sb_peak_method_name(t2.method));
    }
    test_end();
}

static void test_model_sizes(void) {
    test_begin("measure_kv_and_weight_bytes");
    sb_random_shape shape = {.n_vocab = 100, .d_model = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .ff = 96,
                             .max_positions = 64};
    sb_model *m = NULL;
    sb_err err = {0};
    if (test_expect(sb_model_new_random(&shape, 3, &m, &err) == SB_OK, "%s", err.msg)) {
        /* head_dim 16: per position 2 layers x (K and V) x 2 kv heads x 16 dims x 4 bytes = 512 */
        test_expect(sb_kv_bytes(m, 1) == 512, "kv for 1 position: %llu", (unsigned long long)sb_kv_bytes(m, 1));
        test_expect(sb_kv_bytes(m, 3 * 40) == 512u * 120, "kv for 3 x 40 positions");
        test_expect(sb_kv_bytes(m, 0) == 0, "kv for 0 positions");
        uint64_t bits = sb_model_weight_bits(m);
        test_expect(sb_weight_bytes(m) == (bits + 7) / 8 && bits > 0, "weight bytes %llu from %llu bits",
                    (unsigned long long)sb_weight_bytes(m), (unsigned long long)bits);
        /* f32 linears: embedding and head 100 x 64 each; per layer q, o 64 x 64, k, v 32 x 64, gate, up, down 96 x 64 */
        uint64_t params = 2 * 100 * 64 + 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 96 * 64);
        test_expect(sb_weight_bytes(m) == 4 * params, "weight bytes %llu, expected %llu",
                    (unsigned long long)sb_weight_bytes(m), (unsigned long long)(4 * params));
        sb_model_free(m);
    }
    test_end();
}

static int64_t fake_peak(void *user) { return *(int64_t *)user; }
static void fake_reset(void *user) { *(int64_t *)user = 0; }

static void test_device_hook(void) {
    test_begin("measure_device_hook");
    test_expect(sb_measure_device_peak() == -1, "a device peak without a device");
    int64_t bytes = 12345;
    sb_device_mem_hook hook = {fake_reset, fake_peak, &bytes};
    sb_measure_set_device_hook(&hook);
    test_expect(sb_measure_device_peak() == 12345, "hook not called");
    sb_measure_device_reset_peak();
    test_expect(sb_measure_device_peak() == 0, "reset not called");
    sb_measure_set_device_hook(NULL);
    test_expect(sb_measure_device_peak() == -1, "hook not removed");
    test_end();
}

static void count_task(void *arg, int task, int worker) {
    (void)worker;
    __atomic_fetch_add((int *)arg + task, 1, __ATOMIC_RELAXED);
}

/* Last: pinning binds this thread for the rest of the program. */
static void test_host_and_pinning(void) {
    test_begin("measure_host_and_pool_pin");
    sb_pool *p = NULL;
    sb_err err = {0};
    if (test_expect(sb_pool_new(2, &p, &err) == SB_OK, "%s", err.msg)) {
        sb_host h;
        sb_host_describe(p, &h);
        test_expect(h.cpu[0] && h.cores >= 1 && h.threads == 2 && h.blas && h.blas[0], "host '%s' %d cores %d threads",
                    h.cpu, h.cores, h.threads);
        cJSON *j = sb_host_to_json(&h);
        test_expect(j && cJSON_GetObjectItem(j, "cpu") && cJSON_GetObjectItem(j, "pinned"), "host JSON incomplete");
        cJSON_Delete(j);
        test_expect(sb_pool_pin(p, &err) == SB_OK, "%s", err.msg);
        test_expect(sb_pool_pin(p, &err) == SB_OK, "pinning twice: %s", err.msg);
        test_expect(sb_thread_is_pinned(), "caller not pinned after sb_pool_pin");
        int hits[16] = {0};
        sb_pool_run(p, count_task, hits, 16);
        bool all_once = true;
        for (int i = 0; i < 16; i++) all_once = all_once && hits[i] == 1;
        test_expect(all_once, "a pinned pool lost or repeated tasks");
        sb_pool_free(p);
    }
    test_end();
}

int main(void) {
    test_phase_timing();
    test_peak_rss();
    test_model_sizes();
    test_device_hook();
    test_host_and_pinning();
    return test_status();
}
