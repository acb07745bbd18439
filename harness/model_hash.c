#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"
#include "mapped_file.h"
#include "model_hash.h"

enum { SMALL_FILE = 4 << 20, EDGE = 1 << 20, SAMPLE = 64 << 10, N_SAMPLES = 64 };

static uint64_t hash_span(const uint8_t *p, size_t n, uint64_t h) { return sb_fnv1a64(p, n, h); }

static int hash_file(const char *path, const char *name, uint64_t *h, sb_err *err) {
    sb_mapped_file f;
    int rc = sb_mapped_file_open(&f, path, err);
    if (rc) return rc;
    *h = sb_fnv1a64(name, strlen(name) + 1, *h);
    uint64_t size = f.size;
    *h = sb_fnv1a64(&size, sizeof size, *h);
    if (f.size <= SMALL_FILE) {
        *h = hash_span(f.data, f.size, *h);
    } else {
        *h = hash_span(f.data, EDGE, *h);
        *h = hash_span(f.data + f.size - EDGE, EDGE, *h);
        for (size_t i = 0; i < N_SAMPLES; i++) {
            size_t at = (size_t)((f.size - SAMPLE) * (double)i / (N_SAMPLES - 1));
            *h = hash_span(f.data + at, SAMPLE, *h);
        }
    }
    sb_mapped_file_close(&f);
    return SB_OK;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Hashes the regular files of a folder in name order (not recursively). */
static int hash_folder(const char *dir, uint64_t *h, sb_err *err) {
    DIR *d = opendir(dir);
    if (!d) return sb_err_set(err, SB_EINPUT, "%s: cannot read folder", dir);
    char **names = NULL;
    size_t n = 0;
    int rc = SB_OK;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char **bigger = realloc(names, sizeof *names * (n + 1));
        if (!bigger || !(bigger[n] = strdup(e->d_name))) {
            names = bigger ? bigger : names;
            rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
            break;
        }
        names = bigger;
        n++;
    }
    closedir(d);
    if (!rc) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; !rc && i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) rc = hash_file(path, names[i], h, err);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int sb_model_hash(const char *path, char out[17], sb_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) return sb_err_set(err, SB_EINPUT, "%s: no such file or folder", path);
    uint64_t h = SB_FNV_OFFSET;
    int rc = S_ISDIR(st.st_mode) ? hash_folder(path, &h, err) : hash_file(path, "", &h, err);
    if (!rc) snprintf(out, 17, "%016llx", (unsigned long long)h);
    return rc;
}
