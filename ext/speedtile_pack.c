/* renderer._speedtile.unpack: traffic_speeds' packed columns read back into lists (the
 * records speedtile.c's put_packed writes; layout in renderer/traffic/speedtile_pack.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "pgcopy.h"
#include "speedtile.h"

/* unpack(hour_values, nexts): the lists of traffic_speeds' packed columns (the records of
 * put_packed), in the order of speedtile_pack.HOUR_COLUMNS then NEXT_COLUMNS, a NULL_ID
 * next segment as None. The plain twin: speedtile_pack.unpack_records (tests hold them
 * equal); for the export, which reads millions of records. */
static const int hour_widths[4] = {2, 4, 2, 2};
static const int next_widths[7] = {2, 8, 8, 4, 8, 4, 8};

static PyObject *unpack_field(const unsigned char *p, int width, int none_for_null) {
    int64_t v = width == 2 ? get16(p) : width == 4 ? get32(p) : get64(p);
    if (none_for_null && v == NULL_ID) Py_RETURN_NONE;
    return PyLong_FromLongLong(v);
}

static int unpack_into(PyObject *out, Py_ssize_t first, const unsigned char *data, Py_ssize_t n,
                       const int *widths, int fields, int record, int nullable_field) {
    for (int f = 0; f < fields; f++) {
        PyObject *list = PyList_New(n);
        if (!list) return -1;
        PyTuple_SET_ITEM(out, first + f, list);
        int at = 0;
        for (int g = 0; g < f; g++) at += widths[g];
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *v = unpack_field(data + i * record + at, widths[f], f == nullable_field);
            if (!v) return -1;
            PyList_SET_ITEM(list, i, v);
        }
    }
    return 0;
}

PyObject *speedtile_unpack(PyObject *unused, PyObject *args) {
    Py_buffer h, x;
    if (!PyArg_ParseTuple(args, "y*y*", &h, &x)) return NULL;
    PyObject *out = NULL;
    if (h.len % HOUR_RECORD || x.len % NEXT_RECORD) {
        PyErr_Format(PyExc_ValueError, "packed columns of %zd and %zd bytes: not whole records",
                     h.len, x.len);
        goto done;
    }
    out = PyTuple_New(4 + 7);
    if (!out) goto done;
    if (unpack_into(out, 0, h.buf, h.len / HOUR_RECORD, hour_widths, 4, HOUR_RECORD, -1)
        || unpack_into(out, 4, x.buf, x.len / NEXT_RECORD, next_widths, 7, NEXT_RECORD, 1))
        Py_CLEAR(out);
done:
    PyBuffer_Release(&h);
    PyBuffer_Release(&x);
    return out;
}
