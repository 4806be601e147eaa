/* Reading WKB: a cursor over the bytes, bounds checks and byte-order-aware reads, shared by
 * the UTFGrid painter (ext/utfgrid.c) and the MVT encoder (ext/mvt.c). */
#ifndef RENDERER_WKB_H
#define RENDERER_WKB_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const unsigned char *p;
    Py_ssize_t len, pos;
} Reader;

static inline int need(Reader *r, Py_ssize_t n) {
    if (n < 0 || r->pos + n > r->len) {
        PyErr_SetString(PyExc_ValueError, "truncated WKB");
        return -1;
    }
    return 0;
}

static inline int host_little(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one;
}

static inline uint32_t rd_u32(Reader *r, int swap) {
    uint32_t v;
    memcpy(&v, r->p + r->pos, 4);
    r->pos += 4;
    if (swap) v = __builtin_bswap32(v);
    return v;
}

static inline double rd_f64(Reader *r, int swap) {
    uint64_t v;
    double d;
    memcpy(&v, r->p + r->pos, 8);
    r->pos += 8;
    if (swap) v = __builtin_bswap64(v);
    memcpy(&d, &v, 8);
    return d;
}

#endif
