/* backend.h - which engine runs a model: the CPU (forward.c) or a CUDA
 * device (harness/cuda/, built with make CUDA=1).
 *
 * A backend is named by text, as in a sweep's "backends" list or the
 * --backend flag:
 *   cpu               the CPU forward pass
 *   cuda, cuda:N      device N (default 0); f32 weights multiply in f32
 *   cuda:N,tf32       the same with TF32 tensor cores for f32 products
 * The text is what the results record stores, so "cuda,tf32" and "cuda"
 * are different runs. */
#ifndef SB_BACKEND_H
#define SB_BACKEND_H

#include <stdbool.h>

#include "error.h"

typedef enum { SB_BACKEND_CPU, SB_BACKEND_CUDA } sb_backend_kind;

typedef struct sb_backend_choice {
    sb_backend_kind kind;
    int device;     /* CUDA device index */
    bool tf32;      /* f32 products on TF32 tensor cores */
} sb_backend_choice;

/* Parses a backend name. Unknown names, bad device numbers and "cuda" in a
 * build without CUDA are SB_EINPUT errors saying which. */
int sb_backend_parse(const char *text, sb_backend_choice *out, sb_err *err);

/* True when this executable was built with the CUDA backend. */
bool sb_backend_cuda_built(void);

#endif
