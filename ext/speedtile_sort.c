/* Histogram rows into key order in C (see speedtile.h): an LSD radix sort of (segment, hour)
 * over 16-byte keys, byte passes whose byte is the same in every row skipped, then each
 * (segment, hour) group, a handful of rows, put in next-segment order by insertion. About
 * the cost of one pass over the rows per varying key byte: less than the server's sort.
 * Runs without the GIL (Builder.finish): raw allocators, errors by pgcopy_raise. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "pgcopy.h"
#include "speedtile.h"

typedef struct {
    uint64_t segment; /* sign bit flipped: unsigned order is signed order */
    uint32_t hour;
    uint32_t at;      /* the row's index */
} Key;

static inline int next_before(const HistRow *a, const HistRow *b) {
    if (a->has_next != b->has_next) return a->has_next; /* NULL last */
    return a->has_next && a->next < b->next;
}

int speedtile_sort(HistRow *rows, size_t n) {
    if (n < 2) return 0;
    if (n > UINT32_MAX) { pgcopy_raise(PyExc_MemoryError, "too many rows"); return -1; }
    Key *keys = PyMem_RawMalloc(n * sizeof *keys), *tmp = PyMem_RawMalloc(n * sizeof *tmp);
    size_t (*counts)[256] = PyMem_RawCalloc(12, sizeof *counts);
    HistRow *sorted = PyMem_RawMalloc(n * sizeof *sorted);
    if (!keys || !tmp || !counts || !sorted) {
        PyMem_RawFree(keys); PyMem_RawFree(tmp); PyMem_RawFree(counts); PyMem_RawFree(sorted);
        pgcopy_raise(PyExc_MemoryError, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        Key k = {(uint64_t)rows[i].segment ^ (1ULL << 63), (uint32_t)rows[i].hour ^ (1U << 31),
                 (uint32_t)i};
        keys[i] = k;
        for (int d = 0; d < 4; d++) counts[d][(k.hour >> (8 * d)) & 255]++;
        for (int d = 0; d < 8; d++) counts[4 + d][(k.segment >> (8 * d)) & 255]++;
    }
    for (int d = 0; d < 12; d++) { /* hour bytes first: the least significant key */
        size_t at = 0, *c = counts[d];
        int constant = 0;
        for (int v = 0; v < 256; v++) {
            if (c[v] == n) constant = 1;
            size_t k = c[v];
            c[v] = at;
            at += k;
        }
        if (constant) continue;
        int shift = 8 * (d < 4 ? d : d - 4);
        for (size_t i = 0; i < n; i++) {
            uint64_t v = d < 4 ? keys[i].hour : keys[i].segment;
            tmp[c[(v >> shift) & 255]++] = keys[i];
        }
        Key *swap = keys; keys = tmp; tmp = swap;
    }
    for (size_t i = 0; i < n; i++) sorted[i] = rows[keys[i].at];
    memcpy(rows, sorted, n * sizeof *rows);
    /* within each (segment, hour): next segment order */
    for (size_t lo = 0, hi; lo < n; lo = hi) {
        for (hi = lo + 1; hi < n && rows[hi].segment == rows[lo].segment
                          && rows[hi].hour == rows[lo].hour; hi++) {
            HistRow r = rows[hi];
            size_t j = hi;
            while (j > lo && next_before(&r, &rows[j - 1])) { rows[j] = rows[j - 1]; j--; }
            rows[j] = r;
        }
    }
    PyMem_RawFree(keys); PyMem_RawFree(tmp); PyMem_RawFree(counts); PyMem_RawFree(sorted);
    return 0;
}
