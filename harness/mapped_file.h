/* mapped_file.h - a whole file mapped read-only into memory.
 *
 * Weights are read straight from the page cache: a loader keeps pointers
 * into the mapping instead of copying tensors it can use as they are. */
#ifndef SB_MAPPED_FILE_H
#define SB_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct sb_mapped_file {
    char *path;            /* owned copy, used in error messages */
    const uint8_t *data;   /* NULL for an empty file */
    size_t size;
} sb_mapped_file;

int sb_mapped_file_open(sb_mapped_file *f, const char *path, sb_err *err);
void sb_mapped_file_close(sb_mapped_file *f);

/* Reads a whole (small, text) file into a NUL-terminated malloc'ed buffer. */
int sb_read_text_file(const char *path, char **out, size_t *len, sb_err *err);

#endif
