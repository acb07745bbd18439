/* error.h - how failures travel from deep inside a loader to the CLI.
 *
 * Every fallible function returns an int status (SB_OK, SB_EINPUT for bad
 * input the user can fix, SB_EINTERNAL for everything else) and fills an
 * sb_err with one line saying what failed, where and why.  The CLI prints
 * that line and exits with the status, so "exit 2" always means "your file
 * or your flags are wrong", as DESIGN.md asks. */
#ifndef SB_ERROR_H
#define SB_ERROR_H

#include <stddef.h>

enum { SB_OK = 0, SB_EINTERNAL = 1, SB_EINPUT = 2 };

typedef struct sb_err {
    int code;
    char msg[1024];
} sb_err;

/* Records the first error only: the innermost cause is the most useful
 * and callers that add context use sb_err_prefix. Returns code. */
int sb_err_set(sb_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts "context: " in front of an already-set message. Returns err->code. */
int sb_err_prefix(sb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* malloc/calloc that record SB_EINTERNAL "out of memory (N bytes)" on failure. */
void *sb_malloc(sb_err *err, size_t n);
void *sb_calloc(sb_err *err, size_t count, size_t size);

#endif
