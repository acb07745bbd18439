#include <stdbool.h>

#include "merge_heap.h"

static bool before(const sb_merge *a, const sb_merge *b) {
    return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

void sb_merge_push(sb_merge *heap, size_t *n, sb_merge m) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&m, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = m;
}

sb_merge sb_merge_pop(sb_merge *heap, size_t *n) {
    sb_merge top = heap[0], last = heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && before(&heap[child + 1], &heap[child])) child++;
        if (!before(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n > 0) heap[i] = last;
    return top;
}
