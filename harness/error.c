#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int sb_err_set(sb_err *err, int code, const char *fmt, ...) {
    if (!err) return code;
    if (err->code != SB_OK) return err->code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int sb_err_prefix(sb_err *err, const char *fmt, ...) {
    if (!err) return SB_EINTERNAL;
    char head[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    /* Truncation is acceptable here: the message is for a human. */
    size_t n = strlen(head);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, head, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3;
    size_t m = strlen(old);
    if (m > rest) m = rest;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = 0;
    return err->code;
}

void *sb_malloc(sb_err *err, size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) sb_err_set(err, SB_EINTERNAL, "out of memory (%zu bytes)", n);
    return p;
}

void *sb_calloc(sb_err *err, size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) sb_err_set(err, SB_EINTERNAL, "out of memory (%zu x %zu bytes)", count, size);
    return p;
}
