/* blas.h - the CBLAS header of whichever BLAS the Makefile selected.
 *
 * slimbench keeps one thread pool for the whole run (DESIGN.md): the BLAS
 * runs single-threaded inside the pool's tasks, each task multiplying its
 * own slice.  Two thread systems spinning side by side would steal each
 * other's cores (OpenBLAS's idle workers spin in sched_yield while the pool
 * does element-wise work). */
#ifndef SB_BLAS_H
#define SB_BLAS_H

#include <cblas.h>

/* Name of the BLAS library, for provenance. */
const char *sb_blas_name(void);
int sb_blas_threads(void);
void sb_blas_set_threads(int n);

#endif
