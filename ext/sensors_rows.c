/* renderer._sensors.encode_rows: typed columns -> rows of a PostgreSQL binary COPY.
 *
 * Ingest validates a file into Arrow columns (renderer/sensors/validate.py); this writes
 * them, row by row, as the body of a binary COPY (no header, no trailer: the caller adds
 * them once per stream), so the accepted rows go straight into sensors_raw without a text
 * round trip. Twin: renderer.sensors.rows.encode_rows_py (tests hold the two equal).
 *
 * encode_rows(columns, start, stop) -> bytes: columns a sequence of (data, width, valid),
 * data a buffer of at least stop values of width 2, 4 or 8 bytes in the machine's order
 * (int16/int32/int64, float32/float64 as their bits), valid None (no NULLs) or a buffer of
 * at least stop bytes, 0 meaning NULL. Rows [start, stop) are written.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "pgcopy.h"

#define MAX_COLUMNS 64

typedef struct {
    Py_buffer data, valid;
    int width, has_valid;
} Column;

static void release(Column *c, int n) {
    for (int i = 0; i < n; i++) {
        PyBuffer_Release(&c[i].data);
        if (c[i].has_valid) PyBuffer_Release(&c[i].valid);
    }
}

static int take_column(PyObject *spec, Column *c, Py_ssize_t stop) {
    PyObject *data, *valid;
    int width;
    if (!PyArg_ParseTuple(spec, "OiO;a column is (data, width, valid)", &data, &width, &valid))
        return -1;
    if (width != 2 && width != 4 && width != 8) {
        PyErr_Format(PyExc_ValueError, "column width %d: expected 2, 4 or 8", width);
        return -1;
    }
    if (PyObject_GetBuffer(data, &c->data, PyBUF_SIMPLE) < 0) return -1;
    c->width = width;
    c->has_valid = 0;
    if (c->data.len < stop * width) {
        PyBuffer_Release(&c->data);
        PyErr_SetString(PyExc_ValueError, "a column has fewer values than rows");
        return -1;
    }
    if (valid != Py_None) {
        if (PyObject_GetBuffer(valid, &c->valid, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&c->data);
            return -1;
        }
        c->has_valid = 1;
        if (c->valid.len < stop) {
            release(c, 1);
            PyErr_SetString(PyExc_ValueError, "a validity buffer is shorter than the rows");
            return -1;
        }
    }
    return 0;
}

PyObject *sensors_encode_rows(PyObject *self, PyObject *args) {
    PyObject *specs;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "Onn", &specs, &start, &stop)) return NULL;
    if (start < 0 || stop < start) {
        PyErr_SetString(PyExc_ValueError, "rows: need 0 <= start <= stop");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(specs, "columns must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t ncol = PySequence_Fast_GET_SIZE(seq);
    if (ncol < 1 || ncol > MAX_COLUMNS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%zd columns: expected 1 to %d", ncol, MAX_COLUMNS);
        return NULL;
    }
    Column cols[MAX_COLUMNS];
    size_t row_max = 2;
    for (Py_ssize_t i = 0; i < ncol; i++) {
        if (take_column(PySequence_Fast_GET_ITEM(seq, i), &cols[i], stop) < 0) {
            release(cols, (int)i);
            Py_DECREF(seq);
            return NULL;
        }
        row_max += 4 + (size_t)cols[i].width;
    }
    Py_DECREF(seq);
    size_t rows = (size_t)(stop - start);
    if (rows && row_max > (size_t)PY_SSIZE_T_MAX / rows) {
        release(cols, (int)ncol);
        return PyErr_NoMemory();
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(rows * row_max));
    if (!out) {
        release(cols, (int)ncol);
        return NULL;
    }
    Buf b = {PyBytes_AS_STRING(out), 0, rows * row_max};
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = start; r < stop; r++) {
        put16(&b, (int16_t)ncol);
        for (Py_ssize_t i = 0; i < ncol; i++) {
            Column *c = &cols[i];
            if (c->has_valid && !((const unsigned char *)c->valid.buf)[r]) {
                put32(&b, -1);
                continue;
            }
            const char *v = (const char *)c->data.buf + r * c->width;
            put32(&b, c->width);
            if (c->width == 4) {
                int32_t x;
                memcpy(&x, v, 4);
                put32(&b, x);
            } else if (c->width == 8) {
                int64_t x;
                memcpy(&x, v, 8);
                put64(&b, x);
            } else {
                int16_t x;
                memcpy(&x, v, 2);
                put16(&b, x);
            }
        }
    }
    Py_END_ALLOW_THREADS
    release(cols, (int)ncol);
    if (_PyBytes_Resize(&out, (Py_ssize_t)b.len) < 0) return NULL;
    return out;
}

/* ---- Columns: the other way, a binary COPY of fixed-width fields -> typed columns ------
 *
 * Export reads a day of sensors_enriched by binary COPY into Arrow columns for Parquet (no
 * text written by the server, none parsed by the client). Columns(widths): widths of the
 * fields (2, 4 or 8; a field of another length is an error). feed(buffer) / drain(pgconn
 * address) the stream; finish() -> [(values, valid)] per column: values bytes of the rows'
 * values in the machine's order (0 where NULL), valid bytes of 1 (value) or 0 (NULL).
 * Twin: renderer.sensors.rows.decode_columns_py. */

typedef struct {
    PyObject_HEAD
    int ncol;
    int widths[MAX_COLUMNS];
    Buf values[MAX_COLUMNS], valid[MAX_COLUMNS];
    PgIn in;
    int64_t rows;
    int finished;
} Columns;

static int add_fields(Columns *c, const PgField *f) {
    for (int i = 0; i < c->ncol; i++) {
        int w = c->widths[i];
        if (buf_reserve(&c->values[i], (size_t)w) || buf_reserve(&c->valid[i], 1)) return -1;
        char *v = c->values[i].data + c->values[i].len;
        if (f[i].len == -1) {
            memset(v, 0, (size_t)w);
            c->valid[i].data[c->valid[i].len++] = 0;
        } else if (f[i].len != w) {
            PyErr_Format(PyExc_ValueError, "bad COPY stream: field %d has %d bytes, not %d",
                         i + 1, (int)f[i].len, w);
            return -1;
        } else {
            if (w == 8) {
                int64_t x = get64(f[i].p);
                memcpy(v, &x, 8);
            } else if (w == 4) {
                int32_t x = get32(f[i].p);
                memcpy(v, &x, 4);
            } else {
                int16_t x = get16(f[i].p);
                memcpy(v, &x, 2);
            }
            c->valid[i].data[c->valid[i].len++] = 1;
        }
        c->values[i].len += (size_t)w;
    }
    c->rows++;
    return 0;
}

static Py_ssize_t columns_parse(void *self, const unsigned char *p, Py_ssize_t n) {
    Columns *c = self;
    Py_ssize_t at = 0, next = 0;
    PgField f[MAX_COLUMNS];
    for (;;) {
        int r = pgcopy_row(p, n, at, c->ncol, f, &next, "columns");
        if (r == PGCOPY_MORE) return at;
        if (r == PGCOPY_BAD) return -1;
        if (r == PGCOPY_TRAILER) { c->in.trailer_seen = 1; return next; }
        if (add_fields(c, f)) return -1;
        at = next;
    }
}

static int columns_open(Columns *c) {
    if (c->ncol == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Columns not initialised");
        return -1;
    }
    if (!c->finished) return 0;
    PyErr_SetString(PyExc_RuntimeError, "finish() was called already");
    return -1;
}

static PyObject *Columns_feed(Columns *c, PyObject *arg) {
    if (columns_open(c)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE)) return NULL;
    int rc = pgcopy_feed(&c->in, c, columns_parse, view.buf, view.len);
    PyBuffer_Release(&view);
    if (rc) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Columns_drain(Columns *c, PyObject *arg) {
    if (columns_open(c)) return NULL;
    if (pgcopy_drain(&c->in, c, columns_parse, PyLong_AsVoidPtr(arg))) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Columns_finish(Columns *c, PyObject *unused) {
    if (columns_open(c) || pgcopy_check_end(&c->in)) return NULL;
    PyObject *out = PyList_New(c->ncol);
    if (!out) return NULL;
    for (int i = 0; i < c->ncol; i++) {
        PyObject *values = pgcopy_take(&c->values[i]);
        PyObject *valid = values ? pgcopy_take(&c->valid[i]) : NULL;
        PyObject *pair = valid ? PyTuple_Pack(2, values, valid) : NULL;
        Py_XDECREF(values);
        Py_XDECREF(valid);
        if (!pair) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    c->finished = 1;
    return out;
}

static int Columns_init(Columns *c, PyObject *args, PyObject *kw) {
    static char *names[] = {"widths", NULL};
    PyObject *widths;
    if (c->ncol) {
        PyErr_SetString(PyExc_RuntimeError, "Columns initialised already");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", names, &widths)) return -1;
    PyObject *seq = PySequence_Fast(widths, "widths must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > MAX_COLUMNS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%zd columns: expected 1 to %d", n, MAX_COLUMNS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long w = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (w == -1 && PyErr_Occurred()) { Py_DECREF(seq); return -1; }
        if (w != 2 && w != 4 && w != 8) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "column width %ld: expected 2, 4 or 8", w);
            return -1;
        }
        c->widths[i] = (int)w;
    }
    Py_DECREF(seq);
    c->ncol = (int)n;
    c->in.what = "columns";
    return 0;
}

static void Columns_dealloc(Columns *c) {
    pgcopy_free(&c->in);
    for (int i = 0; i < MAX_COLUMNS; i++) {
        PyMem_Free(c->values[i].data);
        PyMem_Free(c->valid[i].data);
    }
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *Columns_rows(Columns *c, void *unused) { return PyLong_FromLongLong(c->rows); }

static PyMethodDef Columns_methods[] = {
    {"feed", (PyCFunction)Columns_feed, METH_O, "Parse a chunk of the binary COPY."},
    {"drain", (PyCFunction)Columns_drain, METH_O,
     "Feed a COPY in progress, read straight from the libpq connection at this address."},
    {"finish", (PyCFunction)Columns_finish, METH_NOARGS,
     "[(values, valid)] per column, once the stream ended."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Columns_getset[] = {
    {"rows", (getter)Columns_rows, NULL, "Rows read.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ColumnsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "renderer._sensors.Columns",
    .tp_basicsize = sizeof(Columns),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Typed columns from a binary COPY of fixed-width fields.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Columns_init,
    .tp_dealloc = (destructor)Columns_dealloc,
    .tp_methods = Columns_methods,
    .tp_getset = Columns_getset,
};

int sensors_add_columns(PyObject *m) {
    if (PyType_Ready(&ColumnsType) < 0) return -1;
    Py_INCREF(&ColumnsType);
    if (PyModule_AddObject(m, "Columns", (PyObject *)&ColumnsType) < 0) {
        Py_DECREF(&ColumnsType);
        return -1;
    }
    return 0;
}
