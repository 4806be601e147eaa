/*
 * binning_tables.c: the tables a Job of renderer._binning bins into (binning.h): the bins
 * and lengths hash tables (mapped apart and offered huge pages when large), the modes and
 * the rejects, allocated with PyMem_Raw* so that they work without the GIL.
 *
 * Only what the hot loop calls rarely lives here (growing a table, a reject, set-up and
 * release); what it may call on every row (the bins' insert, a mode's id) stays in
 * binning_scan.c.
 */
#include "binning.h"

#if defined(__linux__)
#include <sys/mman.h> /* after binning.h: its Python.h (pyconfig.h) defines _GNU_SOURCE */
#endif
#if defined(__linux__) && defined(MADV_HUGEPAGE)
/* Tables this large are mapped on their own and offered transparent huge pages: a probe
 * into a table of tens of MB otherwise costs a TLB miss on top of the cache miss. */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_TABLE_BYTES ((size_t)4 << 20)
#endif

static void
bins_free(BinTable *t)
{
#ifdef HUGE_TABLE_BYTES
    if (t->map != NULL) {
        munmap(t->map, t->map_len);
        t->map = NULL;
        t->slots = NULL;
        return;
    }
#endif
    PyMem_RawFree(t->slots);
    t->slots = NULL;
}

int
bins_init(BinTable *t, size_t cap)
{
    size_t bytes = cap * sizeof(Bin);
    t->map = NULL;
    t->slots = NULL;
#ifdef HUGE_TABLE_BYTES
    if (bytes >= HUGE_TABLE_BYTES) {
        size_t len = bytes + HUGE_PAGE;
        void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map != MAP_FAILED) {
            uintptr_t aligned = ((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
            (void)madvise((void *)aligned, bytes, MADV_HUGEPAGE); /* a hint; may be refused */
            t->map = map;
            t->map_len = len;
            t->slots = (Bin *)aligned;
        }
    }
#endif
    if (t->slots == NULL)
        t->slots = PyMem_RawMalloc(bytes);
    if (t->slots == NULL)
        return -1;
    for (size_t i = 0; i < cap; i++)
        t->slots[i].k1 = EMPTY;
    t->mask = cap - 1;
    t->used = 0;
    return 0;
}

int
bins_grow(BinTable *t)
{
    BinTable bigger;
    size_t cap = (t->mask + 1) * 2;
    if (cap > PY_SSIZE_T_MAX / sizeof(Bin) || bins_init(&bigger, cap) < 0)
        return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        Bin *b = &t->slots[i];
        if (b->k1 == EMPTY)
            continue;
        size_t j = bin_hash(b->k1, b->k2, b->mode) & bigger.mask;
        while (bigger.slots[j].k1 != EMPTY)
            j = (j + 1) & bigger.mask;
        bigger.slots[j] = *b;
    }
    bigger.used = t->used;
    bins_free(t);
    *t = bigger;
    return 0;
}

int
modes_init(ModeTable *m)
{
    m->n = 0;
    m->cap = 8;
    m->items = PyMem_RawMalloc(m->cap * sizeof(Mode));
    m->mask = 15;
    m->index = PyMem_RawCalloc(m->mask + 1, sizeof(uint32_t));
    return m->items && m->index ? 0 : -1;
}

int
rejects_add(RejectList *r, uint64_t line, Py_ssize_t offset, Py_ssize_t length,
            int reason, Py_ssize_t fields)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        Reject *items = PyMem_RawRealloc(r->items, cap * sizeof(Reject));
        if (items == NULL)
            return -1;
        r->items = items;
        r->cap = cap;
    }
    Reject *x = &r->items[r->n++];
    x->line = line;
    x->offset = offset;
    x->length = length;
    x->reason = reason;
    x->fields = fields;
    return 0;
}

void
job_free(Job *job)
{
    bins_free(&job->bins);
    bins_free(&job->lengths);
    PyMem_RawFree(job->modes.items);
    PyMem_RawFree(job->modes.index);
    PyMem_RawFree(job->rejects.items);
}
