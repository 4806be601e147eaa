/* renderer._sensors.check_plain: the common rows of a loop-detector file, validated and typed
 * in one C pass; every other row is left to the full Arrow rules (renderer/sensors/validate.py).
 *
 * A row is taken here only in its plainest form, where the rules' result is plain too (fields
 * trimmed of spaces and tabs first):
 *   uniqueid          1-10 digits, <= 2147483647
 *   recordtimestamp   1-10 digits, optionally '.' and 1-6 digits, < 4102444800 (epoch seconds)
 *   currentspeed      empty (NULL), or 1-5 digits with optionally '.' and 1-2 digits, <= 32767
 *   bezettingsgraad   empty (NULL), or 1-15 digits with optionally '.' and 1-15 digits
 *   trafficintensityclass1..5   empty (NULL) or 1-9 digits
 * Anything else (signs, commas, ISO times, negative values, blank rows, a third decimal) is
 * not decided here: ok[row] = 0 and validate.check decides, with its reason. The values of a
 * row taken here are those validate.check gives it (tests/test_sensors_rows.py, hypothesis):
 * times round(seconds * 1e6) half to even of the correctly rounded double, occupancy the
 * double nearest the text rounded to the nearest float32.
 *
 * check_plain(columns, n): columns 9 items in validate.FIELDS order, each None (the file has
 * no such column: empty) or (offsets, data, offset) of an Arrow string array (int32 offsets).
 * Returns (ok, [(values, valid)] * 9): bytes, ok 1/0 per row; values int32 except the time
 * (int64 microseconds since 1970) and bezettingsgraad (float32); valid 1/0 per row. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NF 9
#define MAX_TIME 4102444800LL

typedef struct {
    Py_buffer offsets, data;
    Py_ssize_t offset;
    int present;
} Text;

static void text_release(Text *t, int n) {
    for (int i = 0; i < n; i++)
        if (t[i].present) {
            PyBuffer_Release(&t[i].offsets);
            PyBuffer_Release(&t[i].data);
        }
}

/* The field's trimmed bytes [*s, *e). */
static void field(const Text *t, Py_ssize_t row, const char **s, const char **e) {
    if (!t->present) {
        *s = *e = "";
        return;
    }
    const int32_t *off = (const int32_t *)t->offsets.buf + t->offset + row;
    const char *b = (const char *)t->data.buf + off[0], *z = (const char *)t->data.buf + off[1];
    while (b < z && (*b == ' ' || *b == '\t')) b++;
    while (z > b && (z[-1] == ' ' || z[-1] == '\t')) z--;
    *s = b;
    *e = z;
}

/* Digits in [s, e): their count (0 if none or another byte), value in *v (up to 18). */
static int digits(const char *s, const char *e, int64_t *v) {
    int64_t x = 0;
    int n = 0;
    for (; s < e; s++, n++) {
        if (*s < '0' || *s > '9' || n >= 18) return 0;
        x = x * 10 + (*s - '0');
    }
    *v = x;
    return n;
}

/* whole[.frac]: lengths in *nw, *nf (-1: no point), values; 0 if not that form. */
static int decimal(const char *s, const char *e, int max_whole, int max_frac, int64_t *w,
                   int *nf, int64_t *f) {
    const char *dot = memchr(s, '.', (size_t)(e - s));
    int nw = digits(s, dot ? dot : e, w);
    if (nw < 1 || nw > max_whole) return 0;
    *nf = -1;
    *f = 0;
    if (dot) {
        *nf = digits(dot + 1, e, f);
        if (*nf < 1 || *nf > max_frac) return 0;
    }
    return 1;
}

static int row_ok(const Text *t, Py_ssize_t r, int32_t *out32[NF], uint8_t *valid[NF],
                  int64_t *micros, float *occ) {
    const char *s, *e;
    int64_t v, w, f;
    int nf;
    field(&t[0], r, &s, &e);
    int n = digits(s, e, &v);
    if (n < 1 || n > 10 || v > 2147483647) return 0;
    out32[0][r] = (int32_t)v;
    field(&t[1], r, &s, &e);
    if (!decimal(s, e, 10, 6, &w, &nf, &f)) return 0;
    char buf[40];
    if (nf < 0) {
        if (w >= MAX_TIME) return 0;
        *micros = w * 1000000;
    } else {
        memcpy(buf, s, (size_t)(e - s));
        buf[e - s] = 0;
        double seconds = strtod(buf, NULL);
        if (!(seconds < (double)MAX_TIME)) return 0;
        *micros = (int64_t)nearbyint(seconds * 1e6);
    }
    field(&t[2], r, &s, &e);
    if (s == e) {
        valid[2][r] = 0;
        out32[2][r] = 0;
    } else {
        if (!decimal(s, e, 5, 2, &w, &nf, &f)) return 0;
        int64_t h = w * 100 + (nf == 1 ? f * 10 : nf == 2 ? f : 0);
        if (h > 3276700) return 0;
        out32[2][r] = (int32_t)h;
        valid[2][r] = 1;
    }
    field(&t[3], r, &s, &e);
    if (s == e) {
        valid[3][r] = 0;
        *occ = 0;
    } else {
        if (e - s > 31 || !decimal(s, e, 15, 15, &w, &nf, &f)) return 0;
        memcpy(buf, s, (size_t)(e - s));
        buf[e - s] = 0;
        double x = strtod(buf, NULL);
        if (x > 1e9) return 0;
        *occ = (float)x;
        valid[3][r] = 1;
    }
    for (int i = 4; i < NF; i++) {
        field(&t[i], r, &s, &e);
        if (s == e) {
            valid[i][r] = 0;
            out32[i][r] = 0;
            continue;
        }
        n = digits(s, e, &v);
        if (n < 1 || n > 9) return 0;
        out32[i][r] = (int32_t)v;
        valid[i][r] = 1;
    }
    return 1;
}

PyObject *sensors_check_plain(PyObject *self, PyObject *args) {
    PyObject *specs;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "On", &specs, &n)) return NULL;
    PyObject *seq = PySequence_Fast(specs, "columns must be a sequence");
    if (!seq) return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != NF || n < 0) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "check_plain: 9 columns and n >= 0");
        return NULL;
    }
    Text t[NF];
    for (int i = 0; i < NF; i++) {
        PyObject *spec = PySequence_Fast_GET_ITEM(seq, i), *o, *d;
        t[i].present = spec != Py_None;
        if (!t[i].present) continue;
        if (!PyArg_ParseTuple(spec, "OOn", &o, &d, &t[i].offset) ||
            PyObject_GetBuffer(o, &t[i].offsets, PyBUF_SIMPLE) < 0) {
            text_release(t, i);
            Py_DECREF(seq);
            return NULL;
        }
        if (PyObject_GetBuffer(d, &t[i].data, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&t[i].offsets);
            text_release(t, i);
            Py_DECREF(seq);
            return NULL;
        }
        const int32_t *off = t[i].offsets.buf;
        Py_ssize_t last = t[i].offset + n;
        if (t[i].offset < 0 || t[i].offsets.len < (last + 1) * 4 || off[t[i].offset] < 0 ||
            off[last] > t[i].data.len || off[last] < off[t[i].offset]) {
            text_release(t, i + 1);
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "check_plain: a column's buffers are too short");
            return NULL;
        }
    }
    Py_DECREF(seq);
    PyObject *ok = PyBytes_FromStringAndSize(NULL, n);
    PyObject *vals[NF] = {0}, *valid[NF] = {0};
    int failed = !ok;
    for (int i = 0; i < NF && !failed; i++) {
        vals[i] = PyBytes_FromStringAndSize(NULL, n * (i == 1 ? 8 : 4));
        valid[i] = PyBytes_FromStringAndSize(NULL, n);
        failed = !vals[i] || !valid[i];
    }
    PyObject *result = NULL;
    if (!failed) {
        int32_t *out32[NF];
        uint8_t *ok_p = (uint8_t *)PyBytes_AS_STRING(ok), *vp[NF];
        for (int i = 0; i < NF; i++) {
            out32[i] = (int32_t *)PyBytes_AS_STRING(vals[i]);
            vp[i] = (uint8_t *)PyBytes_AS_STRING(valid[i]);
        }
        int64_t *micros = (int64_t *)PyBytes_AS_STRING(vals[1]);
        float *occ = (float *)PyBytes_AS_STRING(vals[3]);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < n; r++) {
            vp[0][r] = vp[1][r] = 1;
            ok_p[r] = (uint8_t)row_ok(t, r, out32, vp, &micros[r], &occ[r]);
            if (!ok_p[r]) { /* defined bytes, whatever was written before the rule failed */
                micros[r] = 0;
                occ[r] = 0;
                for (int i = 0; i < NF; i++) {
                    if (i != 1 && i != 3) out32[i][r] = 0;
                    vp[i][r] = 0;
                }
            }
        }
        Py_END_ALLOW_THREADS
        PyObject *cols = PyList_New(NF);
        for (int i = 0; cols && i < NF; i++) {
            PyObject *pair = PyTuple_Pack(2, vals[i], valid[i]);
            if (!pair) { Py_CLEAR(cols); break; }
            PyList_SET_ITEM(cols, i, pair);
        }
        if (cols) result = PyTuple_Pack(2, ok, cols);
        Py_XDECREF(cols);
    }
    text_release(t, NF);
    Py_XDECREF(ok);
    for (int i = 0; i < NF; i++) {
        Py_XDECREF(vals[i]);
        Py_XDECREF(valid[i]);
    }
    return result;
}
