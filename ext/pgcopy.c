/* PostgreSQL binary COPY for the C kernels: see pgcopy.h. */
#define _GNU_SOURCE
#include "pgcopy.h"

#include <dlfcn.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>

static const unsigned char signature[11] = "PGCOPY\n\377\r\n";

int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + extra) cap *= 2;
    /* may run without the GIL (pgcopy_drain_released): take it to allocate */
    PyGILState_STATE gil = PyGILState_Ensure();
    char *d = PyMem_Realloc(b->data, cap);
    if (!d) PyErr_NoMemory();
    PyGILState_Release(gil);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int pgcopy_put_header(Buf *b) {
    if (buf_reserve(b, 19)) return -1;
    memcpy(b->data + b->len, signature, 11);
    b->len += 11;
    put32(b, 0);
    put32(b, 0);
    return 0;
}

PyObject *pgcopy_take(Buf *b) {
    PyObject *r = PyBytes_FromStringAndSize(b->data, (Py_ssize_t)b->len);
    if (r) b->len = 0;
    return r;
}

void pgcopy_raise(PyObject *type, const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    PyGILState_STATE gil = PyGILState_Ensure();
    PyErr_SetString(type, message);
    PyGILState_Release(gil);
}

static int bad(const char *what, const char *why) {
    pgcopy_raise(PyExc_ValueError, "bad %s COPY stream: %s", what, why);
    return PGCOPY_BAD;
}

int pgcopy_row(const unsigned char *p, Py_ssize_t n, Py_ssize_t at, int nfields, PgField *f,
               Py_ssize_t *next, const char *what) {
    if (at + 2 > n) return PGCOPY_MORE;
    int16_t fields = get16(p + at);
    if (fields == -1) { *next = at + 2; return PGCOPY_TRAILER; }
    if (fields != nfields) return bad(what, "unexpected number of columns");
    Py_ssize_t r = at + 2;
    for (int i = 0; i < nfields; i++) {
        if (r + 4 > n) return PGCOPY_MORE;
        int32_t len = get32(p + r);
        r += 4;
        f[i].len = len;
        f[i].p = p + r;
        if (len == -1) continue;
        if (len < 0) return bad(what, "negative field length");
        if (r + len > n) return PGCOPY_MORE;
        r += len;
    }
    *next = r;
    return PGCOPY_ROW;
}

/* The header (0: need more; -1: bad) then the rows. */
static Py_ssize_t parse_stream(PgIn *in, void *self, pgcopy_parse_fn parse,
                               const unsigned char *p, Py_ssize_t n) {
    Py_ssize_t at = 0;
    if (!in->header_done) {
        if (n < 19) return 0;
        if (memcmp(p, signature, 11)) return bad(in->what, "no PGCOPY signature");
        int32_t ext = get32(p + 15);
        if (ext < 0) return bad(in->what, "bad header extension");
        if (n < 19 + ext) return 0;
        at = 19 + ext;
        in->header_done = 1;
    }
    if (at == n) return at;
    if (in->trailer_seen) return bad(in->what, "data after the trailer");
    Py_ssize_t used = parse(self, p + at, n - at);
    return used < 0 ? -1 : at + used;
}

int pgcopy_feed(PgIn *in, void *self, pgcopy_parse_fn parse, const unsigned char *p,
                Py_ssize_t n) {
    Py_ssize_t used;
    if (in->pending.len) {
        if (buf_reserve(&in->pending, (size_t)n)) return -1;
        memcpy(in->pending.data + in->pending.len, p, (size_t)n);
        in->pending.len += (size_t)n;
        used = parse_stream(in, self, parse, (const unsigned char *)in->pending.data,
                            (Py_ssize_t)in->pending.len);
        if (used < 0) return -1;
        memmove(in->pending.data, in->pending.data + used, in->pending.len - (size_t)used);
        in->pending.len -= (size_t)used;
    } else {
        used = parse_stream(in, self, parse, p, n);
        if (used < 0) return -1;
        if (used < n) {
            if (buf_reserve(&in->pending, (size_t)(n - used))) return -1;
            memcpy(in->pending.data, p + used, (size_t)(n - used));
            in->pending.len = (size_t)(n - used);
        }
    }
    return 0;
}

int pgcopy_check_end(PgIn *in) {
    if (in->pending.len || (in->header_done && !in->trailer_seen)) {
        bad(in->what, "the stream ended inside a row");
        return -1;
    }
    return 0;
}

void pgcopy_free(PgIn *in) { PyMem_Free(in->pending.data); }

/* ---- reading a COPY straight from the driver's libpq ---------------------------------- */

typedef int (*get_copy_data_fn)(void *conn, char **buffer, int async);
typedef void (*free_mem_fn)(void *ptr);
typedef char *(*error_message_fn)(const void *conn);

static get_copy_data_fn pq_get_copy_data;
static free_mem_fn pq_free_mem;
static error_message_fn pq_error_message;

typedef struct {
    char path[4096];
    int found;
    int ambiguous;
} LibpqSearch;

static int find_libpq(struct dl_phdr_info *info, size_t size, void *data) {
    LibpqSearch *search = data;
    const char *name = info->dlpi_name;
    const char *base = name ? strrchr(name, '/') : NULL;
    base = base ? base + 1 : name;
    if (!base || strncmp(base, "libpq", 5) != 0 || (base[5] != '.' && base[5] != '-'))
        return 0;
    if (search->found && strcmp(search->path, name) != 0) search->ambiguous = 1;
    if (!search->found && strlen(name) < sizeof search->path) {
        strcpy(search->path, name);
        search->found = 1;
    }
    return 0;
}

int pgcopy_load_libpq(void) {
    if (pq_get_copy_data) return 0;
    LibpqSearch search = {{0}, 0, 0};
    dl_iterate_phdr(find_libpq, &search);
    if (!search.found || search.ambiguous) {
        PyErr_SetString(PyExc_RuntimeError, search.found ? "more than one libpq is loaded"
                                                         : "no libpq is loaded");
        return -1;
    }
    void *handle = dlopen(search.path, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle) {
        PyErr_Format(PyExc_RuntimeError, "cannot open the loaded libpq %s", search.path);
        return -1;
    }
    get_copy_data_fn get = (get_copy_data_fn)dlsym(handle, "PQgetCopyData");
    free_mem_fn free_mem = (free_mem_fn)dlsym(handle, "PQfreemem");
    error_message_fn message = (error_message_fn)dlsym(handle, "PQerrorMessage");
    if (!get || !free_mem || !message) {
        PyErr_SetString(PyExc_RuntimeError, "libpq without PQgetCopyData");
        return -1;
    }
    pq_free_mem = free_mem;
    pq_error_message = message;
    pq_get_copy_data = get;
    return 0;
}

/* The drain; release: without the GIL for the whole read, parse included. */
static int drain(PgIn *in, void *self, pgcopy_parse_fn parse, void *conn, int release) {
    if (!conn) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "no connection");
        return -1;
    }
    if (pgcopy_load_libpq()) return -1;
    int failed = 0, read_failed = 0;
    PyThreadState *saved = release ? PyEval_SaveThread() : NULL;
    while (!in->trailer_seen) {
        char *data = NULL;
        int n;
        if (release) {
            n = pq_get_copy_data(conn, &data, 0);
        } else {
            Py_BEGIN_ALLOW_THREADS
            n = pq_get_copy_data(conn, &data, 0);
            Py_END_ALLOW_THREADS
        }
        if (n == -1) break; /* ended without a trailer: the end check says so */
        if (n < 0) { read_failed = 1; break; }
        int rc = pgcopy_feed(in, self, parse, (const unsigned char *)data, n);
        pq_free_mem(data);
        if (rc) { failed = 1; break; }
    }
    if (release) PyEval_RestoreThread(saved);
    if (read_failed)
        PyErr_Format(PyExc_RuntimeError, "COPY read failed: %s", pq_error_message(conn));
    return failed || read_failed ? -1 : 0;
}

int pgcopy_drain(PgIn *in, void *self, pgcopy_parse_fn parse, void *conn) {
    return drain(in, self, parse, conn, 0);
}

int pgcopy_drain_released(PgIn *in, void *self, pgcopy_parse_fn parse, void *conn) {
    return drain(in, self, parse, conn, 1);
}

PyObject *pgcopy_has_libpq(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (pgcopy_load_libpq()) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}
