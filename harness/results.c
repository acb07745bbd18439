/* results.c - the append-only, crash-safe results store (see results.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "record.h"
#include "results.h"

/* One slot of the run-id index: open addressing, linear probing. */
typedef struct index_slot {
    const char *run_id;   /* points into the winning record; NULL: empty slot */
    size_t winner;        /* index into records */
} index_slot;

struct sb_results {
    char *path;
    int fd;               /* -1 for a read-only store */
    off_t size;           /* bytes of complete lines in the file */
    cJSON **records;
    size_t n, cap;
    index_slot *slots;
    size_t n_slots, n_used;  /* n_slots is 0 or a power of two */
};

/* ---- the run-id index ------------------------------------------------------ */

static size_t slot_of(const index_slot *slots, size_t n_slots, const char *run_id) {
    size_t mask = n_slots - 1;
    size_t i = (size_t)sb_fnv1a64(run_id, strlen(run_id), SB_FNV_OFFSET) & mask;
    while (slots[i].run_id && strcmp(slots[i].run_id, run_id) != 0) i = (i + 1) & mask;
    return i;
}

/* Makes room for one more run id, keeping the table at most half full so
 * probes stay short. */
static int index_reserve(sb_results *r, sb_err *err) {
    if ((r->n_used + 1) * 2 <= r->n_slots) return SB_OK;
    size_t n = r->n_slots ? r->n_slots * 2 : 64;
    index_slot *slots = sb_calloc(err, n, sizeof *slots);
    if (!slots) return SB_EINTERNAL;
    for (size_t i = 0; i < r->n_slots; i++)
        if (r->slots[i].run_id) slots[slot_of(slots, n, r->slots[i].run_id)] = r->slots[i];
    free(r->slots);
    r->slots = slots;
    r->n_slots = n;
    return SB_OK;
}

static int records_reserve(sb_results *r, sb_err *err) {
    if (r->n < r->cap) return index_reserve(r, err);
    size_t cap = r->cap ? r->cap * 2 : 64;
    cJSON **records = realloc(r->records, cap * sizeof *records);
    if (!records) return sb_err_set(err, SB_EINTERNAL, "out of memory (%zu records)", cap);
    r->records = records;
    r->cap = cap;
    return index_reserve(r, err);
}

bool sb_record_ok(const cJSON *record) {
    return strcmp(sb_record_str(record, "status", ""), "ok") == 0;
}

/* Takes ownership of rec; room was reserved with records_reserve.  The
 * winner of a run id is its last ok record, else its last record. */
static void records_add(sb_results *r, cJSON *rec) {
    size_t i = r->n++;
    r->records[i] = rec;
    const char *run_id = sb_record_str(rec, "run_id", "");
    index_slot *s = &r->slots[slot_of(r->slots, r->n_slots, run_id)];
    if (!s->run_id) r->n_used++;
    else if (!sb_record_ok(rec) && sb_record_ok(r->records[s->winner])) return;
    s->run_id = run_id;
    s->winner = i;
}

/* ---- checking and parsing lines -------------------------------------------- */

/* What every stored record must have; NULL when it does. */
static const char *record_problem(const cJSON *rec) {
    if (!cJSON_IsObject(rec)) return "record is not a JSON object";
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(rec, "schema");
    if (!cJSON_IsNumber(schema)) return "record has no \"schema\" number";
    if (schema->valuedouble != SB_RECORD_SCHEMA) return "record has an unsupported \"schema\" version";
    const char *run_id = sb_record_str(rec, "run_id", "");
    if (!run_id[0]) return "record has no \"run_id\" string";
    const char *status = sb_record_str(rec, "status", "");
    if (strcmp(status, "ok") != 0 && strcmp(status, "failed") != 0) return "record \"status\" is neither \"ok\" nor \"failed\"";
    return NULL;
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* Parses one line (without its newline); NULL when it is not exactly one
 * JSON value, trailing blanks aside. */
static cJSON *parse_line(const char *s, size_t n) {
    if (memchr(s, 0, n)) return NULL;
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (v && (!end || end < s || !is_blank(end, n - (size_t)(end - s)))) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

static void warn_torn(const char *file, size_t offset, size_t len, bool repairing) {
    fprintf(stderr, "slimbench: warning: %s: incomplete last line at byte %zu (%zu bytes, from an interrupted write) %s\n",
            file, offset, len, repairing ? "truncated away" : "ignored");
}

/* Parses buf, the contents of file, into records.  *valid_len receives the
 * length of the complete lines: shorter than len only when the last line
 * is torn. */
static int parse_records(sb_results *r, const char *file, const char *buf, size_t len, bool repairing, size_t *valid_len,
                         sb_err *err) {
    size_t pos = 0;
    for (long line = 1; pos < len; line++) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        bool last = !nl || (size_t)(nl - buf) + 1 == len;
        if (is_blank(buf + pos, n) && nl) { pos += n + 1; continue; }
        cJSON *rec = nl ? parse_line(buf + pos, n) : NULL;
        if (!rec && last) {   /* torn by an interrupted write: not a record yet */
            warn_torn(file, pos, len - pos, repairing);
            break;
        }
        if (!rec) return sb_err_set(err, SB_EINPUT, "%s:%ld: invalid JSON", file, line);
        const char *problem = record_problem(rec);
        if (problem || records_reserve(r, err) != SB_OK) {
            cJSON_Delete(rec);
            return problem ? sb_err_set(err, SB_EINPUT, "%s:%ld: %s", file, line, problem) : SB_EINTERNAL;
        }
        records_add(r, rec);
        pos += n + 1;
    }
    *valid_len = pos < len ? pos : len;
    return SB_OK;
}

/* ---- files ------------------------------------------------------------------ */

static int read_all(int fd, const char *path, char **out, size_t *len, sb_err *err) {
    struct stat st;
    if (fstat(fd, &st) != 0) return sb_err_set(err, SB_EINPUT, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return sb_err_set(err, SB_EINPUT, "%s: not a regular file", path);
    size_t size = (size_t)st.st_size;
    char *buf = sb_malloc(err, size + 1);
    if (!buf) return SB_EINTERNAL;
    size_t got = 0;
    while (got < size) {
        ssize_t k = pread(fd, buf + got, size - got, (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;   /* shrunk meanwhile: parse what is there */
        got += (size_t)k;
    }
    buf[got] = 0;
    *out = buf;
    *len = got;
    return SB_OK;
}

static int write_all(int fd, const char *data, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, data, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        data += k;
        n -= (size_t)k;
    }
    return 0;
}

int sb_make_dirs(const char *dir, sb_err *err) {
    if (!dir[0]) return sb_err_set(err, SB_EINPUT, "empty results directory name");
    char *p = strdup(dir);
    if (!p) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    int rc = SB_OK;
    for (char *s = p + 1; rc == SB_OK; s++) {
        bool end = *s == 0;
        if (*s != '/' && !end) continue;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) rc = sb_err_set(err, SB_EINPUT, "%s: cannot create: %s", p, strerror(errno));
        else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) rc = sb_err_set(err, SB_EINPUT, "%s: not a directory", p);
        if (end) break;
        *s = '/';
    }
    free(p);
    return rc;
}

/* Makes a new directory entry durable: fsync of the directory. */
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

static char *join_path(const char *dir, const char *name, sb_err *err) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sb_malloc(err, n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static sb_results *results_new(char *path, sb_err *err) {
    sb_results *r = sb_calloc(err, 1, sizeof *r);
    if (!r) { free(path); return NULL; }
    r->path = path;
    r->fd = -1;
    return r;
}

/* Exclusive lock, without waiting: a second writer fails at once. */
static int lock_file(int fd, const char *path, sb_err *err) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return SB_OK;
    if (errno == EWOULDBLOCK) return sb_err_set(err, SB_EINPUT, "%s: in use by another slimbench process", path);
    return sb_err_set(err, SB_EINTERNAL, "%s: cannot lock: %s", path, strerror(errno));
}

/* Reads the locked file and cuts a torn last line off it. */
static int load_and_repair(sb_results *r, sb_err *err) {
    char *buf;
    size_t len, valid;
    int rc = read_all(r->fd, r->path, &buf, &len, err);
    if (rc == SB_OK) rc = parse_records(r, r->path, buf, len, true, &valid, err);
    free(buf);
    if (rc != SB_OK) return rc;
    if (valid < len && (ftruncate(r->fd, (off_t)valid) != 0 || fsync(r->fd) != 0))
        return sb_err_set(err, SB_EINTERNAL, "%s: cannot truncate the incomplete last line: %s", r->path, strerror(errno));
    r->size = (off_t)valid;
    return SB_OK;
}

int sb_results_open(const char *dir, sb_results **out, sb_err *err) {
    *out = NULL;
    if (sb_make_dirs(dir, err) != SB_OK) return err->code;
    char *path = join_path(dir, "runs.jsonl", err);
    sb_results *r = path ? results_new(path, err) : NULL;
    if (!r) return SB_EINTERNAL;
    bool created = true;
    r->fd = open(r->path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (r->fd < 0 && errno == EEXIST) {
        created = false;
        r->fd = open(r->path, O_RDWR | O_APPEND | O_CLOEXEC);
    }
    int rc = r->fd < 0 ? sb_err_set(err, SB_EINPUT, "%s: cannot open: %s", r->path, strerror(errno)) : SB_OK;
    if (rc == SB_OK && created) sync_dir(dir);
    if (rc == SB_OK) rc = lock_file(r->fd, r->path, err);
    if (rc == SB_OK) rc = load_and_repair(r, err);
    if (rc != SB_OK) { sb_results_close(r); return rc; }
    *out = r;
    return SB_OK;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Reads PATH (a directory's runs.jsonl, or a file) into r, read-only.
 * *file receives the malloc'ed name of the file read. */
static int load_into(sb_results *r, const char *path, char **file, sb_err *err) {
    *file = is_dir(path) ? join_path(path, "runs.jsonl", err) : strdup(path);
    if (!*file) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    int fd = open(*file, O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 ? sb_err_set(err, SB_EINPUT, "%s: cannot open: %s", *file, strerror(errno)) : SB_OK;
    char *buf = NULL;
    size_t len, valid;
    if (rc == SB_OK) rc = read_all(fd, *file, &buf, &len, err);
    if (rc == SB_OK) rc = parse_records(r, *file, buf, len, false, &valid, err);
    if (fd >= 0) close(fd);
    free(buf);
    return rc;
}

/* load_into for a merge input, whose name is not kept. */
static int load_input(sb_results *r, const char *path, sb_err *err) {
    char *file = NULL;
    int rc = load_into(r, path, &file, err);
    free(file);
    return rc;
}

int sb_results_load(const char *path, sb_results **out, sb_err *err) {
    *out = NULL;
    sb_results *r = results_new(NULL, err);
    if (!r) return SB_EINTERNAL;
    int rc = load_into(r, path, &r->path, err);
    if (rc != SB_OK) { sb_results_close(r); return rc; }
    *out = r;
    return SB_OK;
}

void sb_results_close(sb_results *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd);   /* releases the lock */
    for (size_t i = 0; i < r->n; i++) cJSON_Delete(r->records[i]);
    free(r->records);
    free(r->slots);
    free(r->path);
    free(r);
}

const char *sb_results_path(const sb_results *r) { return r->path ? r->path : ""; }

size_t sb_results_count(const sb_results *r) { return r->n; }

const cJSON *sb_results_get(const sb_results *r, size_t i) { return i < r->n ? r->records[i] : NULL; }

const cJSON *sb_results_find(const sb_results *r, const char *run_id) {
    if (!r->n_slots || !run_id) return NULL;
    const index_slot *s = &r->slots[slot_of(r->slots, r->n_slots, run_id)];
    return s->run_id ? r->records[s->winner] : NULL;
}

bool sb_results_has(const sb_results *r, const char *run_id) {
    const cJSON *rec = sb_results_find(r, run_id);
    return rec && sb_record_ok(rec);
}

/* ---- appending ---------------------------------------------------------------- */

/* The record as one line: unformatted JSON never holds a raw newline
 * (cJSON escapes them in strings), so the line is the whole record. */
static char *record_line(const cJSON *record, size_t *len, sb_err *err) {
    char *json = cJSON_PrintUnformatted(record);
    if (!json) { sb_err_set(err, SB_EINTERNAL, "out of memory printing a record"); return NULL; }
    size_t n = strlen(json);
    char *line = sb_malloc(err, n + 2);
    if (line) {
        memcpy(line, json, n);
        line[n] = '\n';
        line[n + 1] = 0;
        *len = n + 1;
    }
    free(json);
    return line;
}

int sb_results_append(sb_results *r, const cJSON *record, sb_err *err) {
    if (r->fd < 0) return sb_err_set(err, SB_EINTERNAL, "%s: store opened read-only", sb_results_path(r));
    const char *problem = record_problem(record);
    if (problem) return sb_err_set(err, SB_EINTERNAL, "%s: cannot append: %s", r->path, problem);
    /* Everything that can fail in memory is done before the write, so a
     * record on disk is always also in memory. */
    if (records_reserve(r, err) != SB_OK) return SB_EINTERNAL;
    cJSON *copy = cJSON_Duplicate(record, 1);
    size_t len = 0;
    char *line = copy ? record_line(record, &len, err) : NULL;
    if (!line) {
        cJSON_Delete(copy);
        return sb_err_set(err, SB_EINTERNAL, "out of memory copying a record");
    }
    int bad = write_all(r->fd, line, len) != 0 || fsync(r->fd) != 0;
    free(line);
    if (bad) {
        int e = errno;
        /* Disk full or I/O error: cut a partial line off so the file stays clean. */
        if (ftruncate(r->fd, r->size) != 0) { /* the next open repairs it */ }
        cJSON_Delete(copy);
        return sb_err_set(err, SB_EINTERNAL, "%s: cannot write a record: %s", r->path, strerror(e));
    }
    r->size += (off_t)len;
    records_add(r, copy);
    return SB_OK;
}

/* ---- winners and merge ------------------------------------------------------ */

static int cmp_by_run_id(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(sb_record_str(x, "run_id", ""), sb_record_str(y, "run_id", ""));
}

int sb_results_winners(const sb_results *r, const cJSON ***out, size_t *n, sb_err *err) {
    *out = NULL;
    *n = 0;
    const cJSON **list = sb_calloc(err, r->n_used, sizeof *list);
    if (!list) return SB_EINTERNAL;
    size_t k = 0;
    for (size_t i = 0; i < r->n_slots; i++)
        if (r->slots[i].run_id) list[k++] = r->records[r->slots[i].winner];
    qsort(list, k, sizeof *list, cmp_by_run_id);
    *out = list;
    *n = k;
    return SB_OK;
}

/* Writes the winners of r to path via a fsynced temporary file and rename. */
static int write_replacing(const sb_results *r, const char *dir, const char *path, sb_err *err) {
    const cJSON **list;
    size_t n;
    if (sb_results_winners(r, &list, &n, err) != SB_OK) return SB_EINTERNAL;
    char *tmp = join_path(dir, "runs.jsonl.merge-tmp", err);
    int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    int rc = !tmp ? SB_EINTERNAL : fd < 0 ? sb_err_set(err, SB_EINPUT, "%s: cannot create: %s", tmp, strerror(errno)) : SB_OK;
    for (size_t i = 0; i < n && rc == SB_OK; i++) {
        size_t len;
        char *line = record_line(list[i], &len, err);
        if (!line) rc = SB_EINTERNAL;
        else if (write_all(fd, line, len) != 0) rc = sb_err_set(err, SB_EINTERNAL, "%s: write failed: %s", tmp, strerror(errno));
        free(line);
    }
    if (rc == SB_OK && fsync(fd) != 0) rc = sb_err_set(err, SB_EINTERNAL, "%s: fsync failed: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    if (rc == SB_OK && rename(tmp, path) != 0) rc = sb_err_set(err, SB_EINTERNAL, "%s: rename failed: %s", path, strerror(errno));
    if (rc == SB_OK) sync_dir(dir);
    else if (tmp) unlink(tmp);
    free(tmp);
    free(list);
    return rc;
}

int sb_results_merge(const char *out_dir, const char *const *dirs, int n_dirs, size_t *n_records, size_t *n_runs,
                     sb_err *err) {
    if (sb_make_dirs(out_dir, err) != SB_OK) return err->code;
    char *path = join_path(out_dir, "runs.jsonl", err);
    sb_results *all = path ? results_new(path, err) : NULL;
    if (!all) return SB_EINTERNAL;
    /* Hold the writer lock on an existing output so no runner appends to
     * the file that the rename is about to replace. */
    int lock_fd = open(path, O_RDWR | O_CLOEXEC);
    int rc = SB_OK;
    if (lock_fd >= 0) rc = lock_file(lock_fd, path, err);
    if (rc == SB_OK && lock_fd >= 0) rc = load_input(all, path, err);
    for (int i = 0; i < n_dirs && rc == SB_OK; i++) rc = load_input(all, dirs[i], err);
    if (rc == SB_OK) rc = write_replacing(all, out_dir, path, err);
    if (rc == SB_OK && n_records) *n_records = all->n;
    if (rc == SB_OK && n_runs) *n_runs = all->n_used;
    if (lock_fd >= 0) close(lock_fd);
    sb_results_close(all);
    return rc;
}

/* ---- canonical JSON and run ids --------------------------------------------- */

static int cmp_keys(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

/* Sorts the keys of every object in v, in place. */
static bool sort_keys(cJSON *v) {
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return true;
    size_t n = 0;
    for (cJSON *c = v->child; c; c = c->next) {
        if (!sort_keys(c)) return false;
        n++;
    }
    if (!cJSON_IsObject(v) || n < 2) return true;
    cJSON **items = malloc(n * sizeof *items);
    if (!items) return false;
    size_t k = 0;
    for (cJSON *c = v->child; c; c = c->next) items[k++] = c;
    qsort(items, n, sizeof *items, cmp_keys);
    /* cJSON's list: next links forward, the head's prev points at the tail. */
    for (size_t i = 0; i < n; i++) {
        items[i]->next = i + 1 < n ? items[i + 1] : NULL;
        items[i]->prev = i > 0 ? items[i - 1] : items[n - 1];
    }
    v->child = items[0];
    free(items);
    return true;
}

char *sb_json_canonical(const cJSON *v) {
    cJSON *copy = cJSON_Duplicate(v, 1);
    char *s = copy && sort_keys(copy) ? cJSON_PrintUnformatted(copy) : NULL;
    cJSON_Delete(copy);
    return s;
}

int sb_run_id(const cJSON *config, char out[SB_RUN_ID_LEN + 1], sb_err *err) {
    char *s = sb_json_canonical(config);
    if (!s) return sb_err_set(err, SB_EINTERNAL, "out of memory hashing a run configuration");
    uint64_t h = sb_fnv1a64(s, strlen(s), SB_FNV_OFFSET);
    free(s);
    snprintf(out, SB_RUN_ID_LEN + 1, "%016" PRIx64, h);
    return SB_OK;
}

/* ---- record fields and labels ------------------------------------------------ */

const cJSON *sb_record_at(const cJSON *record, const char *dotted_path) {
    char key[128];
    const cJSON *v = record;
    const char *p = dotted_path;
    while (v && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof key) return NULL;
        memcpy(key, p, n);
        key[n] = 0;
        v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, key) : NULL;
        p += n + (p[n] == '.');
    }
    return v;
}

const char *sb_record_str(const cJSON *record, const char *dotted_path, const char *dflt) {
    const cJSON *v = sb_record_at(record, dotted_path);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : dflt;
}

/* Appends text to buf (size n, holding a string), truncating. */
static void append(char *buf, size_t n, const char *text) {
    size_t used = strlen(buf);
    if (used + 1 < n) snprintf(buf + used, n - used, "%s", text);
}

static void append_value(char *buf, size_t n, const cJSON *v) {
    char num[64];
    if (cJSON_IsString(v)) append(buf, n, v->valuestring);
    else if (cJSON_IsNumber(v)) { snprintf(num, sizeof num, "%.15g", v->valuedouble); append(buf, n, num); }
    else if (cJSON_IsBool(v)) append(buf, n, cJSON_IsTrue(v) ? "true" : "false");
    else {
        char *s = sb_json_canonical(v);
        append(buf, n, s ? s : "?");
        free(s);
    }
}

/* "name" or "name(k=v,k=v)" for an object with "name" and "params". */
static void append_named(char *buf, size_t n, const cJSON *obj) {
    append(buf, n, sb_record_str(obj, "name", "?"));
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(obj, "params");
    if (!cJSON_IsObject(params) || !params->child) return;
    append(buf, n, "(");
    for (const cJSON *p = params->child; p; p = p->next) {
        append(buf, n, p->string);
        append(buf, n, "=");
        append_value(buf, n, p);
        append(buf, n, p->next ? "," : ")");
    }
}

void sb_record_model_label(const cJSON *record, char *buf, size_t n) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", sb_record_str(record, "model.path", ""));
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') path[--len] = 0;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    snprintf(buf, n, "%s", base[0] ? base : sb_record_str(record, "model.hash", "?"));
}

void sb_record_method_label(const cJSON *record, char *buf, size_t n) {
    buf[0] = 0;
    const cJSON *method = sb_record_at(record, "method");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(method, "steps");
    if (cJSON_IsArray(steps) && cJSON_GetArraySize(steps) > 0) {
        for (const cJSON *s = steps->child; s; s = s->next) {
            append_named(buf, n, s);
            if (s->next) append(buf, n, " + ");
        }
        return;
    }
    append_named(buf, n, method);
}

void sb_record_task_label(const cJSON *record, bool with_params, char *buf, size_t n) {
    buf[0] = 0;
    const cJSON *task = sb_record_at(record, "task");
    if (with_params) append_named(buf, n, task);
    else append(buf, n, sb_record_str(task, "name", "?"));
}
