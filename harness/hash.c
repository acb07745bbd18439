#include "hash.h"

uint64_t sb_fnv1a64(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= SB_FNV_PRIME;
    }
    return h;
}
