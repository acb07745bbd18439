/* hash.h - FNV-1a 64, the one non-cryptographic hash of the harness.
 *
 * Used where a short, stable identifier of some bytes is wanted: run ids
 * (results.c), cache keys, fixture checks.  It is not collision resistant
 * against an adversary, which none of those uses needs.  Hash in pieces by
 * passing the previous result as h:
 *     uint64_t h = sb_fnv1a64(a, na, SB_FNV_OFFSET);
 *     h = sb_fnv1a64(b, nb, h);   equals hashing a and b concatenated */
#ifndef SB_HASH_H
#define SB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SB_FNV_OFFSET 0xcbf29ce484222325ull
#define SB_FNV_PRIME 0x100000001b3ull

uint64_t sb_fnv1a64(const void *data, size_t n, uint64_t h);

#endif
