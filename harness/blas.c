#include "blas.h"

#if defined(SB_BLAS_BLIS)
#include <blis.h>
const char *sb_blas_name(void) { return "blis"; }
int sb_blas_threads(void) { return (int)bli_thread_get_num_threads(); }
void sb_blas_set_threads(int n) { bli_thread_set_num_threads(n); }
#else
const char *sb_blas_name(void) { return "openblas"; }
int sb_blas_threads(void) { return openblas_get_num_threads(); }
void sb_blas_set_threads(int n) { openblas_set_num_threads(n); }
#endif
