/* test_results.c - the results store: append and reopen, repair of a torn
 * last line, errors for damage in the middle, the writer lock, resume
 * semantics, records surviving kill -9 at random moments, run ids, merge. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "hash.h"
#include "record.h"
#include "results.h"

/* ---- helpers ---------------------------------------------------------------- */

static cJSON *make_record(const char *run_id, const char *status, double value) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "schema", SB_RECORD_SCHEMA);
    cJSON_AddStringToObject(r, "run_id", run_id);
    cJSON_AddStringToObject(r, "status", status);
    if (strcmp(status, "failed") == 0) cJSON_AddStringToObject(r, "error", "boom: \"quoted\"\nsecond line");
    cJSON *m = cJSON_AddObjectToObject(cJSON_AddObjectToObject(r, "metrics"), "ppl");
    cJSON_AddNumberToObject(m, "value", value);
    cJSON_AddStringToObject(m, "direction", "lower");
    return r;
}

static bool append_one(sb_results *r, const char *run_id, const char *status, double value) {
    sb_err err = {0};
    cJSON *rec = make_record(run_id, status, value);
    int rc = sb_results_append(r, rec, &err);
    cJSON_Delete(rec);
    return test_expect(rc == SB_OK, "append %s: %s", run_id, err.msg);
}

static void make_tmpdir(char *buf, size_t n) {
    snprintf(buf, n, "/tmp/sb_results_XXXXXX");
    if (!mkdtemp(buf)) { perror("mkdtemp"); exit(1); }
}

static void remove_tree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void append_raw(const char *path, const char *bytes, size_t n) {
    FILE *f = fopen(path, "ab");
    if (!f || fwrite(bytes, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

static char *slurp(const char *path) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    FILE *m = open_memstream(&buf, &len);
    if (!f || !m) exit(1);
    int c;
    while ((c = fgetc(f)) != EOF) fputc(c, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* Runs sb_results_open with stderr sent to a file; returns what it printed. */
static int open_capturing(const char *dir, sb_results **out, sb_err *err, char *captured, size_t n) {
    char path[] = "/tmp/sb_stderr_XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    fflush(stderr);
    dup2(fd, 2);
    int rc = sb_results_open(dir, out, err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    captured[0] = 0;
    ssize_t k = pread(fd, captured, n - 1, 0);
    captured[k > 0 ? k : 0] = 0;
    close(fd);
    unlink(path);
    return rc;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ---- cases -------------------------------------------------------------------- */

static void test_append_reopen(void) {
    test_begin("results_append_reopen");
    char dir[64], sub[128], path[160];
    make_tmpdir(dir, sizeof dir);
    snprintf(sub, sizeof sub, "%s/a/b", dir);   /* created, parents included */
    snprintf(path, sizeof path, "%s/runs.jsonl", sub);
    sb_results *r;
    sb_err err = {0};
    if (test_expect(sb_results_open(sub, &r, &err) == SB_OK, "open: %s", err.msg)) {
        append_one(r, "0000000000000001", "ok", 1.5);
        append_one(r, "0000000000000002", "ok", 2.5);
        append_one(r, "0000000000000003", "failed", 0);
        test_expect(sb_results_count(r) == 3, "count %zu", sb_results_count(r));
        /* durable before close: another reader sees every line now */
        char *text = slurp(path);
        test_expect(count_lines(text) == 3, "file has %d lines before close", count_lines(text));
        free(text);
        sb_results_close(r);
    }
    if (test_expect(sb_results_open(sub, &r, &err) == SB_OK, "reopen: %s", err.msg)) {
        test_expect(sb_results_count(r) == 3, "reopened count %zu", sb_results_count(r));
        test_expect(sb_results_has(r, "0000000000000001") && sb_results_has(r, "0000000000000002"), "ok runs known");
        test_expect(!sb_results_has(r, "0000000000000003"), "a failed run is rerun on resume");
        test_expect(!sb_results_has(r, "ffffffffffffffff"), "unknown run");
        const cJSON *rec = sb_results_get(r, 1);
        const cJSON *v = sb_record_at(rec, "metrics.ppl.value");
        test_expect(cJSON_IsNumber(v) && v->valuedouble == 2.5, "record 1 value");
        const cJSON *failed = sb_results_find(r, "0000000000000003");
        test_expect(strcmp(sb_record_str(failed, "error", ""), "boom: \"quoted\"\nsecond line") == 0,
                    "error text with newline survives one-line storage");
        sb_results_close(r);
    }
    remove_tree(dir);
    test_end();
}

static void test_torn_line(const char *name, const char *tail, size_t tail_len) {
    test_begin(name);
    char dir[64], path[128], warn[1024];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/runs.jsonl", dir);
    sb_results *r;
    sb_err err = {0};
    if (test_expect(sb_results_open(dir, &r, &err) == SB_OK, "open: %s", err.msg)) {
        append_one(r, "00000000000000a1", "ok", 1);
        append_one(r, "00000000000000a2", "ok", 2);
        sb_results_close(r);
    }
    long good = file_size(path);
    append_raw(path, tail, tail_len);
    if (test_expect(open_capturing(dir, &r, &err, warn, sizeof warn) == SB_OK, "open torn: %s", err.msg)) {
        char want[64];
        snprintf(want, sizeof want, "at byte %ld", good);
        test_expect(count_lines(warn) == 1, "%d warning lines: %s", count_lines(warn), warn);
        test_expect(strstr(warn, path) && strstr(warn, want), "warning lacks file or offset: %s", warn);
        test_expect(file_size(path) == good, "file not truncated: %ld, want %ld", file_size(path), good);
        test_expect(sb_results_count(r) == 2, "records lost: %zu", sb_results_count(r));
        append_one(r, "00000000000000a3", "ok", 3);
        sb_results_close(r);
    }
    if (test_expect(open_capturing(dir, &r, &err, warn, sizeof warn) == SB_OK, "reopen: %s", err.msg)) {
        test_expect(warn[0] == 0, "warning after repair: %s", warn);
        test_expect(sb_results_count(r) == 3 && sb_results_has(r, "00000000000000a3"), "append after repair");
        sb_results_close(r);
    }
    remove_tree(dir);
    test_end();
}

static void test_invalid_middle(void) {
    test_begin("results_invalid_middle_line");
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/runs.jsonl", dir);
    const char *text = "{\"schema\":1,\"run_id\":\"0000000000000001\",\"status\":\"ok\"}\n"
                       "{\"schema\":1,\"run_id\":\"00000000\n"
                       "{\"schema\":1,\"run_id\":\"0000000000000002\",\"status\":\"ok\"}\n";
    append_raw(path, text, strlen(text));
    sb_results *r = NULL;
    sb_err err = {0};
    char want[160];
    snprintf(want, sizeof want, "%s:2: invalid JSON", path);
    test_expect(sb_results_open(dir, &r, &err) == SB_EINPUT && r == NULL, "open accepted a damaged file");
    test_expect(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    test_expect(file_size(path) == (long)strlen(text), "a damaged file was modified");
    sb_err err2 = {0};
    test_expect(sb_results_load(dir, &r, &err2) == SB_EINPUT && strstr(err2.msg, want), "load: %s", err2.msg);
    remove_tree(dir);
    test_end();
}

static void test_bad_records(void) {
    test_begin("results_bad_records");
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/runs.jsonl", dir);
    const char *text = "{\"schema\":1,\"run_id\":\"0000000000000001\",\"status\":\"ok\"}\n"
                       "{\"schema\":99,\"run_id\":\"0000000000000002\",\"status\":\"ok\"}\n";
    append_raw(path, text, strlen(text));
    sb_results *r = NULL;
    sb_err err = {0};
    test_expect(sb_results_load(path, &r, &err) == SB_EINPUT && strstr(err.msg, ":2: ") && strstr(err.msg, "schema"),
                "schema 99: %s", err.msg);
    remove_tree(dir);
    make_tmpdir(dir, sizeof dir);
    err = (sb_err){0};
    if (test_expect(sb_results_open(dir, &r, &err) == SB_OK, "open: %s", err.msg)) {
        cJSON *no_id = cJSON_CreateObject();
        cJSON_AddNumberToObject(no_id, "schema", 1);
        cJSON_AddStringToObject(no_id, "status", "ok");
        test_expect(sb_results_append(r, no_id, &err) == SB_EINTERNAL, "record without run_id appended");
        test_expect(sb_results_count(r) == 0, "bad record kept");
        cJSON_Delete(no_id);
        sb_results_close(r);
    }
    remove_tree(dir);
    test_end();
}

static void test_lock(void) {
    test_begin("results_one_writer");
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    sb_results *a, *b = NULL, *c;
    sb_err err = {0};
    if (test_expect(sb_results_open(dir, &a, &err) == SB_OK, "open: %s", err.msg)) {
        sb_err e2 = {0};
        test_expect(sb_results_open(dir, &b, &e2) == SB_EINPUT && strstr(e2.msg, "in use"), "second writer: %s", e2.msg);
        sb_err e3 = {0};
        test_expect(sb_results_load(dir, &c, &e3) == SB_OK, "reader blocked: %s", e3.msg);
        if (e3.code == SB_OK) sb_results_close(c);
        sb_results_close(a);
        sb_err e4 = {0};
        test_expect(sb_results_open(dir, &b, &e4) == SB_OK, "lock not released: %s", e4.msg);
        sb_results_close(b);
    }
    remove_tree(dir);
    test_end();
}

static void test_resume_semantics(void) {
    test_begin("results_failed_run_superseded");
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    sb_results *r;
    sb_err err = {0};
    if (test_expect(sb_results_open(dir, &r, &err) == SB_OK, "open: %s", err.msg)) {
        const char *id = "00000000000000b1";
        append_one(r, id, "failed", 0);
        test_expect(!sb_results_has(r, id), "failed counts as done");
        append_one(r, id, "ok", 7);
        test_expect(sb_results_has(r, id), "ok retry not seen");
        append_one(r, id, "failed", 0);   /* e.g. a merge of an older shard */
        const cJSON *w = sb_results_find(r, id);
        test_expect(sb_results_has(r, id) && sb_record_ok(w), "a later failure hid the ok record");
        const cJSON **list;
        size_t n;
        if (test_expect(sb_results_winners(r, &list, &n, &err) == SB_OK, "%s", err.msg)) {
            test_expect(n == 1 && list[0] == w, "winners: %zu", n);
            free(list);
        }
        sb_results_close(r);
    }
    remove_tree(dir);
    test_end();
}

/* A child appends records as fast as it can; the parent kills it with
 * SIGKILL at a random moment.  Every record must be whole or absent. */
static void test_kill9(void) {
    test_begin("results_kill9_whole_records");
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/runs.jsonl", dir);
    srand(12345);
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            sb_results *r;
            sb_err err = {0};
            if (sb_results_open(dir, &r, &err) != SB_OK) _exit(3);
            char id[32];
            for (unsigned long i = 0;; i++) {
                snprintf(id, sizeof id, "%02d%014lx", round, i);
                cJSON *rec = make_record(id, "ok", (double)i);
                /* a long field makes writes large enough to be cut */
                char *pad = malloc(20000);
                memset(pad, 'x', 19999);
                pad[19999] = 0;
                cJSON_AddStringToObject(rec, "details", pad);
                free(pad);
                if (sb_results_append(r, rec, &err) != SB_OK) _exit(4);
                cJSON_Delete(rec);
            }
        }
        struct timespec ts = {0, (long)(rand() % 20000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (!test_expect(WIFSIGNALED(status), "child exited with %d before the kill", WEXITSTATUS(status))) break;
        sb_results *r;
        sb_err err = {0};
        char warn[1024];
        if (!test_expect(open_capturing(dir, &r, &err, warn, sizeof warn) == SB_OK, "round %d: %s", round, err.msg)) break;
        for (size_t i = 0; i < sb_results_count(r); i++) {
            const cJSON *d = sb_record_at(sb_results_get(r, i), "details");
            test_expect(cJSON_IsString(d) && strlen(d->valuestring) == 19999, "round %d: record %zu damaged", round, i);
        }
        sb_results_close(r);
        char *text = slurp(path);
        size_t len = strlen(text);
        test_expect(len == 0 || text[len - 1] == '\n', "round %d: file not left on a line boundary", round);
        free(text);
    }
    remove_tree(dir);
    test_end();
}

static void test_readonly_load_torn(void) {
    test_begin("results_reader_leaves_torn_line");
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/runs.jsonl", dir);
    const char *text = "{\"schema\":1,\"run_id\":\"0000000000000001\",\"status\":\"ok\"}\n{\"schema\":1,\"ru";
    append_raw(path, text, strlen(text));
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);   /* the expected warning */
    sb_results *r;
    sb_err err = {0};
    int rc = sb_results_load(path, &r, &err);
    dup2(saved, 2);
    close(saved);
    close(null);
    if (test_expect(rc == SB_OK, "load: %s", err.msg)) {
        test_expect(sb_results_count(r) == 1, "count %zu", sb_results_count(r));
        test_expect(file_size(path) == (long)strlen(text), "a reader modified the file");
        sb_results_close(r);
    }
    remove_tree(dir);
    test_end();
}

static void test_fnv(void) {
    test_begin("hash_fnv1a64_vectors");
    test_expect(sb_fnv1a64("", 0, SB_FNV_OFFSET) == 0xcbf29ce484222325ull, "empty");
    test_expect(sb_fnv1a64("a", 1, SB_FNV_OFFSET) == 0xaf63dc4c8601ec8cull, "a");
    test_expect(sb_fnv1a64("foobar", 6, SB_FNV_OFFSET) == 0x85944171f73967e8ull, "foobar");
    uint64_t h = sb_fnv1a64("foo", 3, SB_FNV_OFFSET);
    test_expect(sb_fnv1a64("bar", 3, h) == 0x85944171f73967e8ull, "hashing in pieces");
    test_end();
}

static void test_run_id(void) {
    test_begin("results_run_id_deterministic");
    cJSON *a = cJSON_Parse("{\"model\":{\"hash\":\"abc\"},\"method\":{\"name\":\"gptq\",\"params\":{\"bits\":4,\"group\":128}},"
                           "\"task\":{\"name\":\"perplexity\"},\"backend\":\"cpu\",\"seed\":0}");
    cJSON *b = cJSON_Parse("{\"seed\":0.0,\"backend\":\"cpu\",\"task\":{\"name\":\"perplexity\"},"
                           "\"method\":{\"params\":{\"group\":128,\"bits\":4},\"name\":\"gptq\"},\"model\":{\"hash\":\"abc\"}}");
    cJSON *c = cJSON_Parse("{\"model\":{\"hash\":\"abc\"},\"method\":{\"name\":\"gptq\",\"params\":{\"bits\":3,\"group\":128}},"
                           "\"task\":{\"name\":\"perplexity\"},\"backend\":\"cpu\",\"seed\":0}");
    char ia[17], ib[17], ic[17];
    sb_err err = {0};
    if (test_expect(a && b && c && sb_run_id(a, ia, &err) == SB_OK && sb_run_id(b, ib, &err) == SB_OK &&
                        sb_run_id(c, ic, &err) == SB_OK, "run id: %s", err.msg)) {
        test_expect(strlen(ia) == 16 && strspn(ia, "0123456789abcdef") == 16, "not 16 hex digits: %s", ia);
        test_expect(strcmp(ia, ib) == 0, "key order changed the id: %s vs %s", ia, ib);
        test_expect(strcmp(ia, ic) != 0, "different params, same id");
        char *canon = sb_json_canonical(a);
        uint64_t h = sb_fnv1a64(canon, strlen(canon), SB_FNV_OFFSET);
        char want[17];
        snprintf(want, sizeof want, "%016llx", (unsigned long long)h);
        test_expect(strcmp(ia, want) == 0, "id is not FNV-1a of the canonical text");
        test_expect(strcmp(canon, "{\"backend\":\"cpu\",\"method\":{\"name\":\"gptq\",\"params\":{\"bits\":4,\"group\":128}},"
                                  "\"model\":{\"hash\":\"abc\"},\"seed\":0,\"task\":{\"name\":\"perplexity\"}}") == 0,
                    "canonical form: %s", canon);
        free(canon);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
    test_end();
}

static void write_store(const char *dir, const char *const *ids, const char *const *status, const double *values, int n) {
    sb_results *r;
    sb_err err = {0};
    if (sb_results_open(dir, &r, &err) != SB_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    for (int i = 0; i < n; i++) append_one(r, ids[i], status[i], values[i]);
    sb_results_close(r);
}

static double value_of(const sb_results *r, const char *id) {
    const cJSON *v = sb_record_at(sb_results_find(r, id), "metrics.ppl.value");
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_merge(void) {
    test_begin("results_merge_dedup");
    char root[64], a[96], b[96], out[96], path[128];
    make_tmpdir(root, sizeof root);
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(path, sizeof path, "%s/runs.jsonl", out);
    const char *ids_a[] = {"00000000000000c2", "00000000000000c1", "00000000000000c3"};
    const char *st_a[] = {"ok", "failed", "ok"};
    const double v_a[] = {1, 0, 3};
    const char *ids_b[] = {"00000000000000c1", "00000000000000c2", "00000000000000c3", "00000000000000c4"};
    const char *st_b[] = {"ok", "ok", "failed", "failed"};
    const double v_b[] = {10, 20, 0, 0};
    write_store(a, ids_a, st_a, v_a, 3);
    write_store(b, ids_b, st_b, v_b, 4);
    const char *dirs[] = {a, b};
    sb_err err = {0};
    size_t n_rec = 0, n_runs = 0;
    if (test_expect(sb_results_merge(out, dirs, 2, &n_rec, &n_runs, &err) == SB_OK, "merge: %s", err.msg)) {
        test_expect(n_rec == 7 && n_runs == 4, "counts %zu records %zu runs", n_rec, n_runs);
        sb_results *r;
        if (test_expect(sb_results_load(out, &r, &err) == SB_OK, "load: %s", err.msg)) {
            test_expect(sb_results_count(r) == 4, "merged %zu records, want 4", sb_results_count(r));
            for (size_t i = 0; i + 1 < sb_results_count(r); i++)
                test_expect(strcmp(sb_record_str(sb_results_get(r, i), "run_id", ""),
                                   sb_record_str(sb_results_get(r, i + 1), "run_id", "")) < 0, "not sorted by run id");
            test_expect(value_of(r, "00000000000000c1") == 10, "c1: ok record must win over failed");
            test_expect(value_of(r, "00000000000000c2") == 20, "c2: later ok record must win");
            test_expect(value_of(r, "00000000000000c3") == 3, "c3: ok record must beat a later failure");
            test_expect(!sb_results_has(r, "00000000000000c4") && sb_results_find(r, "00000000000000c4"),
                        "c4: failed-only run kept as failed");
            sb_results_close(r);
        }
    }
    /* merging again, output included, is idempotent */
    char *before = slurp(path);
    if (test_expect(sb_results_merge(out, dirs, 2, NULL, NULL, &err) == SB_OK, "merge again: %s", err.msg)) {
        char *after = slurp(path);
        test_expect(strcmp(before, after) == 0, "second merge changed the output");
        free(after);
    }
    /* a bad input leaves the output as it was */
    char bad[128];
    snprintf(bad, sizeof bad, "%s/missing", root);
    const char *bad_dirs[] = {a, bad};
    sb_err e2 = {0};
    test_expect(sb_results_merge(out, bad_dirs, 2, NULL, NULL, &e2) == SB_EINPUT && strstr(e2.msg, bad), "bad input: %s",
                e2.msg);
    char *after = slurp(path);
    test_expect(strcmp(before, after) == 0, "failed merge changed the output");
    free(after);
    free(before);
    remove_tree(root);
    test_end();
}

int main(void) {
    test_append_reopen();
    static const char no_newline[] = "{\"schema\":1,\"run_id\":\"00000000000000a9\",\"sta";
    static const char invalid_last[] = "{\"schema\":1,\"run_id\":\"00000000\0\0\0\n";
    static const char zeros[] = "\0\0\0\0\0\0\0\0";   /* what a power cut can leave */
    test_torn_line("results_torn_line_no_newline", no_newline, sizeof no_newline - 1);
    test_torn_line("results_torn_line_invalid_json", invalid_last, sizeof invalid_last - 1);
    test_torn_line("results_torn_line_nul_bytes", zeros, sizeof zeros - 1);
    test_invalid_middle();
    test_bad_records();
    test_lock();
    test_resume_semantics();
    test_kill9();
    test_readonly_load_torn();
    test_fnv();
    test_run_id();
    test_merge();
    return test_status();
}
