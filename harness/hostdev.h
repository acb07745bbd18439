/* hostdev.h - marks a small inline function that both the C code and the
 * CUDA kernels call, so that one formula serves both compilers (and the
 * device rounds exactly as the CPU does).  In C it is plain static inline. */
#ifndef SB_HOSTDEV_H
#define SB_HOSTDEV_H

#ifdef __CUDACC__
#define SB_HOSTDEV static inline __host__ __device__
#else
#define SB_HOSTDEV static inline
#endif

#endif
