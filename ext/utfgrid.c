/* UTFGrid painting: shapes (WKB in tile pixels) -> UTFGrid 1.2 rows and key order.
 *
 * The hot loop of the map-tiles pipeline; renderer/_utfgrid_py.py is its pure-Python twin
 * and says what it computes (the tests hold both equal). Per shape: the edges of all its
 * rings are read from the WKB once, their crossings with each cell row's sample line are
 * bucketed by row (a counting pass, then a filling pass: no per-row allocation), each
 * row's few crossings are insertion-sorted and filled pairwise (even-odd). The same
 * expressions in the same order as the twin, and no FMA contraction (-ffp-contract=off),
 * so both give the same cells.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wkb.h"

#define LIMIT 4096

typedef struct {
    double *xy;        /* edges: x0, y0, x1, y1 */
    Py_ssize_t n, cap;
} Edges;

static int edges_push(Edges *e, double x0, double y0, double x1, double y1) {
    if (e->n == e->cap) {
        Py_ssize_t cap = e->cap ? e->cap * 2 : 256;
        double *xy = PyMem_Realloc(e->xy, (size_t)cap * 4 * sizeof(double));
        if (!xy) { PyErr_NoMemory(); return -1; }
        e->xy = xy;
        e->cap = cap;
    }
    double *d = e->xy + e->n * 4;
    d[0] = x0; d[1] = y0; d[2] = x1; d[3] = y1;
    e->n++;
    return 0;
}

static int skip_geometry(Reader *r, int depth);

static int skip_body(Reader *r, int swap, uint32_t kind, int depth) {
    if (kind == 1) return need(r, 16) ? -1 : (r->pos += 16, 0);
    if (need(r, 4)) return -1;
    uint32_t n = rd_u32(r, swap);
    if (kind == 2) {
        if (need(r, (Py_ssize_t)n * 16)) return -1;
        r->pos += (Py_ssize_t)n * 16;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++)
        if (skip_geometry(r, depth + 1)) return -1;
    return 0;
}

static int skip_geometry(Reader *r, int depth) {
    if (depth > 32) { PyErr_SetString(PyExc_ValueError, "WKB nested too deep"); return -1; }
    if (need(r, 5)) return -1;
    int swap = (r->p[r->pos] == 1) != host_little();
    r->pos += 1;
    uint32_t kind = rd_u32(r, swap) & 0xFFFF;
    if (kind != 1 && kind != 2 && kind != 4 && kind != 5) {
        PyErr_Format(PyExc_ValueError, "unsupported WKB type %u", kind);
        return -1;
    }
    return skip_body(r, swap, kind, depth);
}

static int read_geometry(Reader *r, Edges *e, int depth) {
    if (depth > 32) { PyErr_SetString(PyExc_ValueError, "WKB nested too deep"); return -1; }
    if (need(r, 5)) return -1;
    int swap = (r->p[r->pos] == 1) != host_little();
    r->pos += 1;
    uint32_t kind = rd_u32(r, swap) & 0xFFFF;
    if (kind == 3) {
        if (need(r, 4)) return -1;
        uint32_t nrings = rd_u32(r, swap);
        for (uint32_t k = 0; k < nrings; k++) {
            if (need(r, 4)) return -1;
            uint32_t np = rd_u32(r, swap);
            if (need(r, (Py_ssize_t)np * 16)) return -1;
            if (np < 2) { r->pos += (Py_ssize_t)np * 16; continue; }
            double fx = rd_f64(r, swap), fy = rd_f64(r, swap);
            double px = fx, py = fy;
            for (uint32_t j = 1; j < np; j++) {
                double x = rd_f64(r, swap), y = rd_f64(r, swap);
                if (py != y && edges_push(e, px, py, x, y)) return -1;
                px = x; py = y;
            }
            /* the closing edge (zero length when the ring is closed, as WKB rings are) */
            if (py != fy && edges_push(e, px, py, fx, fy)) return -1;
        }
        return 0;
    }
    if (kind == 6 || kind == 7) {
        if (need(r, 4)) return -1;
        uint32_t n = rd_u32(r, swap);
        for (uint32_t i = 0; i < n; i++)
            if (read_geometry(r, e, depth + 1)) return -1;
        return 0;
    }
    if (kind == 1 || kind == 2 || kind == 4 || kind == 5) return skip_body(r, swap, kind, depth);
    PyErr_Format(PyExc_ValueError, "unsupported WKB type %u", kind);
    return -1;
}

/* ceil(value), the value clamped to [-1, hi] first (the twin's _index). */
static inline long cell_index(double value, long hi) {
    if (!(value > -1)) return -1; /* also NaN */
    if (value >= (double)hi) return hi;
    return (long)ceil(value);
}

static void paint_edges(const Edges *e, int32_t *cells, long g, double res, int32_t value,
                        Py_ssize_t *count, Py_ssize_t *start, double *xs) {
    memset(count, 0, (size_t)(g + 1) * sizeof(Py_ssize_t));
    for (Py_ssize_t i = 0; i < e->n; i++) {
        const double *d = e->xy + i * 4;
        double ylo = d[1] < d[3] ? d[1] : d[3], yhi = d[1] < d[3] ? d[3] : d[1];
        long r0 = cell_index((ylo - 0.5) / res, g), r1 = cell_index((yhi - 0.5) / res, g) - 1;
        if (r0 < 0) r0 = 0;
        if (r1 > g - 1) r1 = g - 1;
        for (long r = r0; r <= r1; r++) count[r]++;
    }
    start[0] = 0;
    for (long r = 0; r < g; r++) start[r + 1] = start[r] + count[r];
    memset(count, 0, (size_t)(g + 1) * sizeof(Py_ssize_t));
    for (Py_ssize_t i = 0; i < e->n; i++) {
        const double *d = e->xy + i * 4;
        double x0 = d[0], y0 = d[1], x1 = d[2], y1 = d[3];
        double ylo = y0 < y1 ? y0 : y1, yhi = y0 < y1 ? y1 : y0;
        long r0 = cell_index((ylo - 0.5) / res, g), r1 = cell_index((yhi - 0.5) / res, g) - 1;
        if (r0 < 0) r0 = 0;
        if (r1 > g - 1) r1 = g - 1;
        for (long r = r0; r <= r1; r++) {
            double yr = r * res + 0.5;
            xs[start[r] + count[r]++] = x0 + (yr - y0) * (x1 - x0) / (y1 - y0);
        }
    }
    for (long r = 0; r < g; r++) {
        Py_ssize_t n = count[r];
        if (n < 2) continue;
        double *row = xs + start[r];
        for (Py_ssize_t a = 1; a < n; a++) { /* few crossings per row: insertion sort */
            double v = row[a];
            Py_ssize_t b = a;
            while (b > 0 && row[b - 1] > v) { row[b] = row[b - 1]; b--; }
            row[b] = v;
        }
        int32_t *line = cells + r * g;
        for (Py_ssize_t k = 0; k + 1 < n; k += 2) {
            long c0 = cell_index((row[k] - 0.5) / res, g);
            long c1 = cell_index((row[k + 1] - 0.5) / res, g) - 1;
            if (c0 < 0) c0 = 0;
            if (c1 > g - 1) c1 = g - 1;
            for (long c = c0; c <= c1; c++) line[c] = value;
        }
    }
}

static inline Py_UCS4 codepoint(long id) {
    long c = id + 32;
    if (c >= 34) c++;
    if (c >= 92) c++;
    return (Py_UCS4)c;
}

static PyObject *paint(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"shapes", "size", "resolution", NULL};
    PyObject *shapes;
    long size = 256, resolution = 4;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|ll", kwlist, &shapes, &size, &resolution))
        return NULL;
    if (resolution < 1 || size < resolution || size % resolution) {
        PyErr_SetString(PyExc_ValueError, "size must be a positive multiple of resolution");
        return NULL;
    }
    long g = size / resolution;
    if (g > LIMIT) { PyErr_Format(PyExc_ValueError, "at most %d cells a side", LIMIT); return NULL; }
    PyObject *seq = PySequence_Fast(shapes, "shapes must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t nshapes = PySequence_Fast_GET_SIZE(seq);
    if (nshapes > INT32_MAX - 1) { Py_DECREF(seq); PyErr_SetString(PyExc_ValueError, "too many shapes"); return NULL; }
    double res = (double)resolution;
    int32_t *cells = PyMem_Calloc((size_t)(g * g), sizeof(int32_t));
    Py_ssize_t *count = PyMem_Malloc((size_t)(g + 1) * sizeof(Py_ssize_t));
    Py_ssize_t *start = PyMem_Malloc((size_t)(g + 1) * sizeof(Py_ssize_t));
    Edges e = {NULL, 0, 0};
    double *xs = NULL;
    Py_ssize_t xs_cap = 0;
    PyObject *result = NULL, *rows = NULL, *order = NULL;
    int32_t *ids = NULL;
    Py_UCS4 *line = NULL;
    if (!cells || !count || !start) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < nshapes; i++) {
        PyObject *shape = PySequence_Fast_GET_ITEM(seq, i);
        int32_t value = (int32_t)(i + 1);
        if (shape == Py_None) {
            for (long c = 0; c < g * g; c++) cells[c] = value;
            continue;
        }
        Py_buffer view;
        if (PyObject_GetBuffer(shape, &view, PyBUF_SIMPLE)) goto done;
        Reader r = {view.buf, view.len, 0};
        e.n = 0;
        int bad = read_geometry(&r, &e, 0);
        PyBuffer_Release(&view);
        if (bad) goto done;
        /* crossings: at most g per edge */
        Py_ssize_t total = 0;
        for (Py_ssize_t k = 0; k < e.n; k++) {
            const double *d = e.xy + k * 4;
            double ylo = d[1] < d[3] ? d[1] : d[3], yhi = d[1] < d[3] ? d[3] : d[1];
            long r0 = cell_index((ylo - 0.5) / res, g), r1 = cell_index((yhi - 0.5) / res, g) - 1;
            if (r0 < 0) r0 = 0;
            if (r1 > g - 1) r1 = g - 1;
            if (r1 >= r0) total += r1 - r0 + 1;
        }
        if (total > xs_cap) {
            double *nx = PyMem_Realloc(xs, (size_t)total * sizeof(double));
            if (!nx) { PyErr_NoMemory(); goto done; }
            xs = nx;
            xs_cap = total;
        }
        if (total) paint_edges(&e, cells, g, res, value, count, start, xs);
    }
    /* key ids by first appearance, row by row */
    ids = PyMem_Malloc((size_t)(nshapes + 1) * sizeof(int32_t));
    line = PyMem_Malloc((size_t)g * sizeof(Py_UCS4));
    if (!ids || !line) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i <= nshapes; i++) ids[i] = -1;
    rows = PyList_New(g);
    order = PyList_New(0);
    if (!rows || !order) goto done;
    long next = 0;
    for (long r = 0; r < g; r++) {
        const int32_t *src = cells + r * g;
        for (long c = 0; c < g; c++) {
            int32_t v = src[c];
            if (ids[v] < 0) {
                PyObject *idx = PyLong_FromLong((long)v - 1);
                if (!idx || PyList_Append(order, idx)) { Py_XDECREF(idx); goto done; }
                Py_DECREF(idx);
                ids[v] = (int32_t)next++;
            }
            line[c] = codepoint(ids[v]);
        }
        PyObject *text = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, line, g);
        if (!text) goto done;
        PyList_SET_ITEM(rows, r, text);
    }
    result = PyTuple_Pack(2, rows, order);
done:
    Py_XDECREF(rows);
    Py_XDECREF(order);
    PyMem_Free(cells);
    PyMem_Free(count);
    PyMem_Free(start);
    PyMem_Free(e.xy);
    PyMem_Free(xs);
    PyMem_Free(ids);
    PyMem_Free(line);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef methods[] = {
    {"paint", (PyCFunction)(void (*)(void))paint, METH_VARARGS | METH_KEYWORDS,
     "paint(shapes, size=256, resolution=4) -> (rows, order): see renderer._utfgrid_py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_utfgrid",
                                    "UTFGrid painting (twin: renderer._utfgrid_py).", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__utfgrid(void) { return PyModule_Create(&module); }
