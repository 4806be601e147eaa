/* A growable text buffer and the COPY text format's field escaping, shared by the UTFGrid
 * rows (ext/utfgrid.c) and the feature text (ext/geojson.c) that a block's worker copies in. */
#ifndef RENDERER_TEXTBUF_H
#define RENDERER_TEXTBUF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

static inline int buf_room(Buf *b, Py_ssize_t more) {
    if (b->n + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more) cap *= 2;
    char *np = PyMem_Realloc(b->p, (size_t)cap);
    if (!np) { PyErr_NoMemory(); return -1; }
    b->p = np;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_room(b, n)) return -1;
    memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
    return 0;
}

static inline int buf_long(Buf *b, long long v) {
    char text[32];
    int n = snprintf(text, sizeof text, "%lld", v);
    return buf_put(b, text, n);
}

/* Text as a COPY field (text format): backslash, newline, carriage return, tab escaped. */
static inline int buf_copy_field(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_room(b, n * 2)) return -1;
    char *o = b->p + b->n;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') { *o++ = '\\'; *o++ = '\\'; }
        else if (c == '\n') { *o++ = '\\'; *o++ = 'n'; }
        else if (c == '\r') { *o++ = '\\'; *o++ = 'r'; }
        else if (c == '\t') { *o++ = '\\'; *o++ = 't'; }
        else *o++ = c;
    }
    b->n = o - b->p;
    return 0;
}

#endif
