/* renderer._sensors: the day enrichment's two RANGE windows, in C.
 *
 * Input: the raw rows of a day and the 600 s before it as PostgreSQL binary COPY, in key
 * order (uniqueid, recordtimestamp), columns (uniqueid int4, recordtimestamp timestamptz,
 * currentspeed_hundredths int4 or NULL, bezettingsgraad float4, trafficintensityclass1..5
 * int4). Output: the day's sensors_enriched rows as binary COPY, in the same order, columns
 * as ENRICHED_COLUMNS (renderer/sensors/enrich_c.py).
 *
 * The definitions are those of renderer.sensors_enrich_day (sql/schema/sensors.sql) and of
 * the Python twin renderer.sensors.enrich_py (tests hold all three equal): per detector, the
 * sums and counts of the speeds (exact integers of hundredths) over [t - 120 s, t] and
 * [t - 600 s, t], kept as two running windows over the detector's rows; the previous record's
 * speed; each mean one division, sum / (100 * count) as doubles.
 *
 * A detector whose first record of the day has no record before it in the stream needs the
 * speed of its latest record before the context, which only the database can tell: missing()
 * lists those detectors, resolve(speeds) gives their speeds (-1: NULL) in that order, and
 * finish() writes them into the output.
 *
 * Enricher(lo): lo the day's start as PostgreSQL timestamp (microseconds since 2000-01-01
 * UTC). feed(buffer) / drain(pgconn_address) the input; missing() -> bytes of int32 ids;
 * resolve(buffer of int64 speeds); finish() -> the output's length, the output then read
 * without a copy as memoryview(enricher); summary() -> the day's summary per detector
 * (ext/sensors_summary.c) as binary COPY bytes. Attribute rows.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "pgcopy.h"
#include "sensors_summary.h"

#define N_IN 9
#define N_OUT 14
#define USEC 1000000LL
#define NO_SPEED INT64_MIN

typedef struct {
    size_t at;       /* output offset of the row's previousspeed field (a NULL, 4 bytes) */
    size_t diff_at;  /* output offset of its speeddiffindicator value (2 bytes) */
    int32_t uniqueid;
    int64_t speed;   /* its own speed, NO_SPEED if NULL */
    int64_t previous; /* resolved: NO_SPEED if NULL */
} Pending;

typedef struct {
    PyObject_HEAD
    int64_t lo;
    PgIn in;
    /* the current detector's rows since the start of its 10-minute window */
    int have;
    int32_t uniqueid;
    int64_t *times, *speeds;
    size_t len, cap, left2, left10;
    int64_t s2, n2, s10, n10;
    Buf out;
    Pending *pending;
    size_t n_pending, cap_pending;
    int resolved, finished;
    int64_t rows;
    DaySummary summary; /* the day page's figures per detector: ext/sensors_summary.c */
} Enricher;

static int bad_input(const char *why) {
    PyErr_Format(PyExc_ValueError, "bad sensors COPY stream: %s", why);
    return -1;
}

static int push(Enricher *e, int64_t t, int64_t speed) {
    if (e->left10 > 4096 && e->left10 * 2 > e->len) { /* drop what left both windows */
        size_t k = e->left10;
        memmove(e->times, e->times + k, (e->len - k) * sizeof *e->times);
        memmove(e->speeds, e->speeds + k, (e->len - k) * sizeof *e->speeds);
        e->len -= k;
        e->left2 -= k;
        e->left10 = 0;
    }
    if (e->len == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 4096;
        int64_t *t2 = PyMem_Realloc(e->times, cap * sizeof *t2);
        if (!t2) { PyErr_NoMemory(); return -1; }
        e->times = t2;
        int64_t *s2 = PyMem_Realloc(e->speeds, cap * sizeof *s2);
        if (!s2) { PyErr_NoMemory(); return -1; }
        e->speeds = s2;
        e->cap = cap;
    }
    e->times[e->len] = t;
    e->speeds[e->len] = speed;
    e->len++;
    return 0;
}

static inline void put_raw(Buf *o, const PgField *f) {
    put32(o, f->len);
    if (f->len > 0) {
        memcpy(o->data + o->len, f->p, (size_t)f->len);
        o->len += (size_t)f->len;
    }
}

static inline void put_mean(Buf *o, int64_t sum, int64_t count) {
    if (!count) { put32(o, -1); return; }
    put32(o, 8);
    put_double(o, (double)sum / (double)(100 * count));
}

static inline int16_t speed_diff(int64_t speed, int64_t previous) {
    if (speed == NO_SPEED || previous == NO_SPEED) return 0;
    return speed - previous >= 2000 ? 1 : speed - previous <= -2000 ? -1 : 0;
}

static int add_row(Enricher *e, const PgField *f) {
    if (f[0].len != 4 || f[1].len != 8) return bad_input("NULL or odd key");
    if (f[2].len != -1 && f[2].len != 4) return bad_input("speed not an int4");
    if (f[3].len != -1 && f[3].len != 4) return bad_input("bezettingsgraad not a float4");
    for (int i = 4; i < N_IN; i++)
        if (f[i].len != -1 && f[i].len != 4) return bad_input("intensity not an int4");
    int32_t uid = get32(f[0].p);
    int64_t t = get64(f[1].p);
    int64_t speed = f[2].len == 4 ? get32(f[2].p) : NO_SPEED;
    int first = !e->have || uid != e->uniqueid;
    if (!first && t <= e->times[e->len - 1])
        return bad_input("rows not in (uniqueid, recordtimestamp) order");
    if (!first && uid < e->uniqueid) return bad_input("rows not in uniqueid order");
    if (first) {
        if (e->have && uid < e->uniqueid) return bad_input("rows not in uniqueid order");
        e->have = 1;
        e->uniqueid = uid;
        e->len = e->left2 = e->left10 = 0;
        e->s2 = e->n2 = e->s10 = e->n10 = 0;
    }
    int64_t previous = first ? NO_SPEED : e->speeds[e->len - 1];
    if (push(e, t, speed)) return -1;
    if (speed != NO_SPEED) {
        e->s2 += speed; e->n2++;
        e->s10 += speed; e->n10++;
    }
    while (e->times[e->left2] < t - 120 * USEC) {
        int64_t s = e->speeds[e->left2++];
        if (s != NO_SPEED) { e->s2 -= s; e->n2--; }
    }
    while (e->times[e->left10] < t - 600 * USEC) {
        int64_t s = e->speeds[e->left10++];
        if (s != NO_SPEED) { e->s10 -= s; e->n10--; }
    }
    if (t < e->lo) return 0; /* context: read, not written */
    Buf *o = &e->out;
    if (buf_reserve(o, 2 + N_OUT * 4 + 4 + 8 + 8 + 4 + 8 + 2 + 5 * 4 + 2 + 8 + 8)) return -1;
    put16(o, N_OUT);
    put_raw(o, &f[0]);
    put_raw(o, &f[1]);
    if (speed == NO_SPEED) put32(o, -1);
    else { put32(o, 8); put_double(o, (double)speed / 100); }
    put_raw(o, &f[3]);
    size_t previous_at = o->len;
    if (previous == NO_SPEED) put32(o, -1);
    else { put32(o, 8); put_double(o, (double)previous / 100); }
    int jam = e->n2 == 0 ? -1 : e->s2 <= 4000 * e->n2 ? 1 : e->s2 <= 25000 * e->n2 ? 0 : -1;
    put32(o, 2);
    put16(o, (int16_t)jam);
    for (int i = 4; i < N_IN; i++) put_raw(o, &f[i]);
    put32(o, 2);
    size_t diff_at = o->len;
    put16(o, speed_diff(speed, previous));
    put_mean(o, e->s2, e->n2);
    put_mean(o, e->s10, e->n10);
    e->rows++;
    if (summary_add(&e->summary, e->lo, uid, t, speed != NO_SPEED, speed, e->n10 > 0,
                    e->n10 ? (double)e->s10 / (double)(100 * e->n10) : 0, jam))
        return -1;
    if (first) { /* previousspeed from before the context: resolve() */
        if (e->n_pending == e->cap_pending) {
            size_t cap = e->cap_pending ? e->cap_pending * 2 : 256;
            Pending *d = PyMem_Realloc(e->pending, cap * sizeof *d);
            if (!d) { PyErr_NoMemory(); return -1; }
            e->pending = d;
            e->cap_pending = cap;
        }
        e->pending[e->n_pending++] = (Pending){previous_at, diff_at, uid, speed, NO_SPEED};
    }
    return 0;
}

static Py_ssize_t parse(void *self, const unsigned char *p, Py_ssize_t n) {
    Enricher *e = self;
    Py_ssize_t at = 0, next = 0;
    PgField f[N_IN];
    for (;;) {
        int r = pgcopy_row(p, n, at, N_IN, f, &next, "sensors");
        if (r == PGCOPY_MORE) return at;
        if (r == PGCOPY_BAD) return -1;
        if (r == PGCOPY_TRAILER) { e->in.trailer_seen = 1; return next; }
        if (add_row(e, f)) return -1;
        at = next;
    }
}

static int check_open(Enricher *e) {
    if (!e->finished) return 0;
    PyErr_SetString(PyExc_RuntimeError, "the output is finished");
    return -1;
}

static PyObject *Enricher_feed(Enricher *e, PyObject *arg) {
    if (check_open(e)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE)) return NULL;
    int rc = pgcopy_feed(&e->in, e, parse, view.buf, view.len);
    PyBuffer_Release(&view);
    if (rc) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Enricher_drain(Enricher *e, PyObject *arg) {
    if (check_open(e)) return NULL;
    if (pgcopy_drain(&e->in, e, parse, PyLong_AsVoidPtr(arg))) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Enricher_missing(Enricher *e, PyObject *unused) {
    if (pgcopy_check_end(&e->in)) return NULL;
    PyObject *r = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(e->n_pending * 4));
    if (!r) return NULL;
    int32_t *ids = (int32_t *)PyBytes_AS_STRING(r);
    for (size_t i = 0; i < e->n_pending; i++) ids[i] = e->pending[i].uniqueid;
    return r;
}

static PyObject *Enricher_resolve(Enricher *e, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE)) return NULL;
    if ((size_t)view.len != e->n_pending * 8) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "one int64 speed for each missing detector");
        return NULL;
    }
    const int64_t *speeds = view.buf;
    for (size_t i = 0; i < e->n_pending; i++)
        e->pending[i].previous = speeds[i] < 0 ? NO_SPEED : speeds[i];
    PyBuffer_Release(&view);
    e->resolved = 1;
    Py_RETURN_NONE;
}

/* The output, complete: every resolved previous speed written in (8 more bytes each, in
 * place, from the end backwards) and the trailer. Then readable through the buffer
 * protocol (memoryview(enricher)), without a copy. */
static PyObject *Enricher_finish(Enricher *e, PyObject *unused) {
    if (pgcopy_check_end(&e->in)) return NULL;
    if (e->finished) {
        PyErr_SetString(PyExc_RuntimeError, "finish() was called already");
        return NULL;
    }
    if (e->n_pending && !e->resolved) {
        PyErr_SetString(PyExc_RuntimeError, "resolve() the missing detectors first");
        return NULL;
    }
    size_t extra = 0;
    for (size_t i = 0; i < e->n_pending; i++) extra += e->pending[i].previous != NO_SPEED ? 8 : 0;
    if (buf_reserve(&e->out, extra + 2)) return NULL;
    char *d = e->out.data;
    size_t end = e->out.len; /* bytes [.., end) still to move */
    size_t shift = extra;    /* how far they move */
    for (size_t i = e->n_pending; i-- > 0;) {
        Pending *q = &e->pending[i];
        if (q->previous == NO_SPEED) continue;
        /* everything after its NULL previous speed moves by shift (this one's 8 bytes
         * and those of the patches before it) */
        memmove(d + q->at + 4 + shift, d + q->at + 4, end - q->at - 4);
        int16_t diff = speed_diff(q->speed, q->previous);
        d[q->diff_at + shift] = (char)((uint16_t)diff >> 8);
        d[q->diff_at + shift + 1] = (char)diff;
        shift -= 8; /* the field itself, 12 bytes instead of 4, moves by the patches before */
        Buf at = {d + q->at + shift, 0, 12};
        put32(&at, 8);
        put_double(&at, (double)q->previous / 100);
        end = q->at;
    }
    e->out.len += extra;
    put16(&e->out, -1);
    e->finished = 1;
    return PyLong_FromSize_t(e->out.len);
}

static PyObject *Enricher_summary(Enricher *e, PyObject *unused) {
    if (pgcopy_check_end(&e->in)) return NULL;
    return summary_copy(&e->summary, e->lo);
}

static int Enricher_getbuffer(Enricher *e, Py_buffer *view, int flags) {
    if (!e->finished) {
        PyErr_SetString(PyExc_BufferError, "finish() first");
        return -1;
    }
    return PyBuffer_FillInfo(view, (PyObject *)e, e->out.data, (Py_ssize_t)e->out.len, 1, flags);
}

static PyBufferProcs Enricher_as_buffer = {(getbufferproc)Enricher_getbuffer, NULL};

static int Enricher_init(Enricher *e, PyObject *args, PyObject *kw) {
    static char *names[] = {"lo", NULL};
    long long lo;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "L", names, &lo)) return -1;
    e->lo = lo;
    e->in.what = "sensors";
    return pgcopy_put_header(&e->out);
}

static void Enricher_dealloc(Enricher *e) {
    pgcopy_free(&e->in);
    PyMem_Free(e->times);
    PyMem_Free(e->speeds);
    PyMem_Free(e->out.data);
    PyMem_Free(e->pending);
    summary_free(&e->summary);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Enricher_rows(Enricher *e, void *unused) { return PyLong_FromLongLong(e->rows); }

static PyMethodDef Enricher_methods[] = {
    {"feed", (PyCFunction)Enricher_feed, METH_O, "Parse a chunk of the binary COPY input."},
    {"drain", (PyCFunction)Enricher_drain, METH_O,
     "Feed a COPY in progress, read straight from the libpq connection at this address."},
    {"missing", (PyCFunction)Enricher_missing, METH_NOARGS,
     "int32 ids of the detectors whose previous speed lies before the context."},
    {"resolve", (PyCFunction)Enricher_resolve, METH_O,
     "Their previous speeds (int64 hundredths, -1 for none), in missing() order."},
    {"finish", (PyCFunction)Enricher_finish, METH_NOARGS,
     "Complete the output (binary COPY; its length), then read it as memoryview(self)."},
    {"summary", (PyCFunction)Enricher_summary, METH_NOARGS,
     "The day's summary per detector (sensors_day_detectors) as binary COPY bytes."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Enricher_getset[] = {
    {"rows", (getter)Enricher_rows, NULL, "Rows of the day written.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject EnricherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "renderer._sensors.Enricher",
    .tp_basicsize = sizeof(Enricher),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A day's enriched sensor rows from its sorted raw rows, binary COPY in and out.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Enricher_init,
    .tp_dealloc = (destructor)Enricher_dealloc,
    .tp_methods = Enricher_methods,
    .tp_getset = Enricher_getset,
    .tp_as_buffer = &Enricher_as_buffer,
};

/* ext/sensors_rows.c: ingest's rows out, export's columns in */
PyObject *sensors_encode_rows(PyObject *self, PyObject *args);
int sensors_add_columns(PyObject *m);
PyObject *sensors_check_plain(PyObject *self, PyObject *args); /* ext/sensors_check.c */

static PyMethodDef module_methods[] = {
    {"encode_rows", sensors_encode_rows, METH_VARARGS,
     "encode_rows(columns, start, stop): rows of a binary COPY from typed columns."},
    {"check_plain", sensors_check_plain, METH_VARARGS,
     "check_plain(columns, n): the plainest rows of a file validated and typed in C."},
    {"has_libpq", pgcopy_has_libpq, METH_NOARGS,
     "Whether exactly one libpq is loaded, so that Enricher.drain can read from it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sensors",
    "The sensors day enrichment's windows (twin: renderer.sensors.enrich_py).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sensors(void) {
    if (PyType_Ready(&EnricherType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&EnricherType);
    if (PyModule_AddObject(m, "Enricher", (PyObject *)&EnricherType) < 0) {
        Py_DECREF(&EnricherType);
        Py_DECREF(m);
        return NULL;
    }
    if (sensors_add_columns(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
