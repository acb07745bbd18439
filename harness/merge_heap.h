/* merge_heap.h - the priority queue both merge algorithms pop from.
 *
 * Byte-level BPE merges the adjacent pair with the lowest merge rank;
 * SentencePiece BPE the pair whose merged piece has the highest score.
 * Both break ties by the leftmost pair, and both need stale candidates
 * (whose symbols have merged since) to be recognisable when popped, so one
 * candidate type and one binary heap serve both. */
#ifndef SB_MERGE_HEAP_H
#define SB_MERGE_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_merge {
    double priority;            /* lowest pops first: BPE rank, or minus the SentencePiece score */
    int32_t left, right;        /* the two symbols */
    int32_t left_id, right_id;  /* their ids when the candidate was made (BPE's staleness check) */
    int32_t result;             /* the merged token id (BPE) */
    uint32_t size;              /* bytes of the merged piece (SentencePiece's staleness check) */
} sb_merge;

void sb_merge_push(sb_merge *heap, size_t *n, sb_merge m);
sb_merge sb_merge_pop(sb_merge *heap, size_t *n);

#endif
