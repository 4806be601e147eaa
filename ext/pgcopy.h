/* PostgreSQL binary COPY for the C kernels (ext/speedtile.c, ext/sensors.c): a growable
 * output buffer with big-endian writers, the stream header, one row's fields read from a
 * chunk that may end anywhere (the incomplete rest carried over between chunks), and a
 * COPY TO STDOUT read straight from the libpq the driver (psycopg) already loaded.
 *
 * Compiled into each extension that uses it (hidden visibility: nothing here is exported).
 */
#ifndef RENDERER_PGCOPY_H
#define RENDERER_PGCOPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define OID_INT2 21
#define OID_INT4 23
#define OID_INT8 20

/* ---- output ------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

/* Room for extra more bytes (MemoryError set on failure: -1); callable without the GIL. */
int buf_reserve(Buf *b, size_t extra);
/* The 19-byte stream header: signature, flags, no extension. */
int pgcopy_put_header(Buf *b);
/* Bytes (copied) of the buffer's content, which is emptied. */
PyObject *pgcopy_take(Buf *b);

static inline void put16(Buf *b, int16_t v) {
    uint16_t u = (uint16_t)v;
    b->data[b->len++] = (char)(u >> 8);
    b->data[b->len++] = (char)u;
}
static inline void put32(Buf *b, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int s = 24; s >= 0; s -= 8) b->data[b->len++] = (char)(u >> s);
}
static inline void put64(Buf *b, int64_t v) {
    uint64_t u = (uint64_t)v;
    for (int s = 56; s >= 0; s -= 8) b->data[b->len++] = (char)(u >> s);
}
static inline void put_double(Buf *b, double d) {
    int64_t v;
    memcpy(&v, &d, 8);
    put64(b, v);
}
static inline int64_t get64(const unsigned char *p) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | p[i];
    return (int64_t)u;
}
static inline int32_t get32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}
static inline int16_t get16(const unsigned char *p) {
    return (int16_t)((uint16_t)p[0] << 8 | p[1]);
}

/* ---- input -------------------------------------------------------------------------- */

/* One field of a row: len -1 for NULL, else len bytes at p. */
typedef struct {
    const unsigned char *p;
    int32_t len;
} PgField;

enum { PGCOPY_ROW = 1, PGCOPY_MORE = 0, PGCOPY_TRAILER = 2, PGCOPY_BAD = -1 };

/* The row of nfields fields at p[at, n): PGCOPY_ROW (fields in f, *next past it),
 * PGCOPY_MORE (incomplete: more bytes needed), PGCOPY_TRAILER (*next past it) or
 * PGCOPY_BAD (another field count; ValueError set, naming what). */
int pgcopy_row(const unsigned char *p, Py_ssize_t n, Py_ssize_t at, int nfields, PgField *f,
               Py_ssize_t *next, const char *what);

/* The reading state of one input stream. parse() consumes as many whole rows of [p, p + n)
 * as there are (the header already skipped) and returns the bytes used, or -1 with an
 * exception set. */
typedef Py_ssize_t (*pgcopy_parse_fn)(void *self, const unsigned char *p, Py_ssize_t n);

typedef struct {
    Buf pending; /* an incomplete row carried over between chunks */
    int header_done, trailer_seen;
    const char *what; /* the stream, for error messages */
} PgIn;

/* Feed one chunk; 0, or -1 with an exception set. */
int pgcopy_feed(PgIn *in, void *self, pgcopy_parse_fn parse, const unsigned char *p,
                Py_ssize_t n);
/* Whether the stream ended cleanly (trailer seen, nothing pending); else ValueError. */
int pgcopy_check_end(PgIn *in);
/* Read a COPY TO STDOUT in progress on the libpq connection at conn, feeding every chunk,
 * up to and including the trailer; the end of the COPY (its result) is left to the driver. */
int pgcopy_drain(PgIn *in, void *self, pgcopy_parse_fn parse, void *conn);
/* The same without the GIL for the whole read, so that drains on other connections run in
 * other threads at once: parse() and what it calls may then touch Python only through
 * buf_reserve, pgcopy_raise and allocators that take no GIL (PyMem_Raw*). */
int pgcopy_drain_released(PgIn *in, void *self, pgcopy_parse_fn parse, void *conn);
/* Set an exception (message formatted by vsnprintf), with or without the GIL held. */
void pgcopy_raise(PyObject *type, const char *format, ...);
/* Whether exactly one libpq is loaded in the process (0: yes; -1: no, RuntimeError set). */
int pgcopy_load_libpq(void);

/* The modules' ``has_libpq()``: whether exactly one libpq is loaded, so that a drain can
 * read from it (the error of a failed load is cleared: the answer is False). */
PyObject *pgcopy_has_libpq(PyObject *self, PyObject *unused);
void pgcopy_free(PgIn *in);

#endif
