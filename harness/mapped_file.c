#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mapped_file.h"

int sb_mapped_file_open(sb_mapped_file *f, const char *path, sb_err *err) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sb_err_set(err, SB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sb_err_set(err, SB_EINPUT, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return sb_err_set(err, SB_EINPUT, "%s: mmap failed: %s", path, strerror(errno));
        }
        f->data = p;
    }
    close(fd);
    f->path = strdup(path);
    if (!f->path) {
        sb_mapped_file_close(f);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    return SB_OK;
}

void sb_mapped_file_close(sb_mapped_file *f) {
    if (f->data) munmap((void *)f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

int sb_read_text_file(const char *path, char **out, size_t *len, sb_err *err) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return sb_err_set(err, SB_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, fp);
        if (n < cap - 1) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) { free(buf); buf = NULL; break; }
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf) return sb_err_set(err, SB_EINTERNAL, "%s: out of memory", path);
    if (bad) { free(buf); return sb_err_set(err, SB_EINPUT, "%s: read error", path); }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return SB_OK;
}
