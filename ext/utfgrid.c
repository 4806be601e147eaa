/* UTFGrid painting: shapes (WKB in tile pixels) -> UTFGrid 1.2 rows and key order; and a
 * block's tiles at once, their grids as the COPY rows of `tiles` (tiles_copy).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textbuf.h"
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

/* The painting state, reused across the calls of one block: cells, per-row buckets and
 * crossings grow as needed. */
typedef struct {
    long g;
    double res;
    int32_t *cells;
    Py_ssize_t *count, *start;
    Edges e;
    double *xs;
    Py_ssize_t xs_cap;
} Painter;

static void painter_free(Painter *p) {
    PyMem_Free(p->cells);
    PyMem_Free(p->count);
    PyMem_Free(p->start);
    PyMem_Free(p->e.xy);
    PyMem_Free(p->xs);
    memset(p, 0, sizeof(*p));
}

static int painter_init(Painter *p, long size, long resolution) {
    memset(p, 0, sizeof(*p));
    if (resolution < 1 || size < resolution || size % resolution) {
        PyErr_SetString(PyExc_ValueError, "size must be a positive multiple of resolution");
        return -1;
    }
    p->g = size / resolution;
    if (p->g > LIMIT) { PyErr_Format(PyExc_ValueError, "at most %d cells a side", LIMIT); return -1; }
    p->res = (double)resolution;
    p->cells = PyMem_Calloc((size_t)(p->g * p->g), sizeof(int32_t));
    p->count = PyMem_Malloc((size_t)(p->g + 1) * sizeof(Py_ssize_t));
    p->start = PyMem_Malloc((size_t)(p->g + 1) * sizeof(Py_ssize_t));
    if (!p->cells || !p->count || !p->start) { painter_free(p); PyErr_NoMemory(); return -1; }
    return 0;
}

/* Shapes (WKB in tile pixels, or None for a covering shape) painted in order into
 * p->cells: cell = index of the last shape over it + 1, 0 for none. */
static int painter_run(Painter *p, PyObject *const *shapes, Py_ssize_t nshapes) {
    long g = p->g;
    double res = p->res;
    if (nshapes > INT32_MAX - 1) { PyErr_SetString(PyExc_ValueError, "too many shapes"); return -1; }
    memset(p->cells, 0, (size_t)(g * g) * sizeof(int32_t));
    for (Py_ssize_t i = 0; i < nshapes; i++) {
        PyObject *shape = shapes[i];
        int32_t value = (int32_t)(i + 1);
        if (shape == Py_None) {
            for (long c = 0; c < g * g; c++) p->cells[c] = value;
            continue;
        }
        Py_buffer view;
        if (PyObject_GetBuffer(shape, &view, PyBUF_SIMPLE)) return -1;
        Reader r = {view.buf, view.len, 0};
        p->e.n = 0;
        int bad = read_geometry(&r, &p->e, 0);
        PyBuffer_Release(&view);
        if (bad) return -1;
        /* crossings: at most g per edge */
        Py_ssize_t total = 0;
        for (Py_ssize_t k = 0; k < p->e.n; k++) {
            const double *d = p->e.xy + k * 4;
            double ylo = d[1] < d[3] ? d[1] : d[3], yhi = d[1] < d[3] ? d[3] : d[1];
            long r0 = cell_index((ylo - 0.5) / res, g), r1 = cell_index((yhi - 0.5) / res, g) - 1;
            if (r0 < 0) r0 = 0;
            if (r1 > g - 1) r1 = g - 1;
            if (r1 >= r0) total += r1 - r0 + 1;
        }
        if (total > p->xs_cap) {
            double *nx = PyMem_Realloc(p->xs, (size_t)total * sizeof(double));
            if (!nx) { PyErr_NoMemory(); return -1; }
            p->xs = nx;
            p->xs_cap = total;
        }
        if (total) paint_edges(&p->e, p->cells, g, res, value, p->count, p->start, p->xs);
    }
    return 0;
}

/* Key ids by first appearance, row by row: ids[v] for cell value v (-1 until seen), and
 * order[k] = the cell value of key id k; returns the number of keys. */
static long number_keys(const Painter *p, int32_t *ids, Py_ssize_t nshapes, int32_t *order) {
    long next = 0;
    for (Py_ssize_t i = 0; i <= nshapes; i++) ids[i] = -1;
    for (long c = 0; c < p->g * p->g; c++) {
        int32_t v = p->cells[c];
        if (ids[v] < 0) {
            order[next] = v;
            ids[v] = (int32_t)next++;
        }
    }
    return next;
}

static PyObject *paint(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"shapes", "size", "resolution", NULL};
    PyObject *shapes;
    long size = 256, resolution = 4;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|ll", kwlist, &shapes, &size, &resolution))
        return NULL;
    Painter p;
    if (painter_init(&p, size, resolution)) return NULL;
    long g = p.g;
    PyObject *seq = PySequence_Fast(shapes, "shapes must be a sequence");
    if (!seq) { painter_free(&p); return NULL; }
    Py_ssize_t nshapes = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = NULL, *rows = NULL, *order = NULL;
    int32_t *ids = NULL, *first = NULL;
    Py_UCS4 *line = NULL;
    if (painter_run(&p, PySequence_Fast_ITEMS(seq), nshapes)) goto done;
    ids = PyMem_Malloc((size_t)(nshapes + 1) * sizeof(int32_t));
    first = PyMem_Malloc((size_t)(nshapes + 1) * sizeof(int32_t));
    line = PyMem_Malloc((size_t)g * sizeof(Py_UCS4));
    if (!ids || !first || !line) { PyErr_NoMemory(); goto done; }
    long nkeys = number_keys(&p, ids, nshapes, first);
    rows = PyList_New(g);
    order = PyList_New(nkeys);
    if (!rows || !order) goto done;
    for (long k = 0; k < nkeys; k++) {
        PyObject *idx = PyLong_FromLong((long)first[k] - 1);
        if (!idx) goto done;
        PyList_SET_ITEM(order, k, idx);
    }
    for (long r = 0; r < g; r++) {
        const int32_t *src = p.cells + r * g;
        for (long c = 0; c < g; c++) line[c] = codepoint(ids[src[c]]);
        PyObject *text = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, line, g);
        if (!text) goto done;
        PyList_SET_ITEM(rows, r, text);
    }
    result = PyTuple_Pack(2, rows, order);
done:
    Py_XDECREF(rows);
    Py_XDECREF(order);
    painter_free(&p);
    PyMem_Free(ids);
    PyMem_Free(first);
    PyMem_Free(line);
    Py_DECREF(seq);
    return result;
}

/* -- a block's tiles as COPY rows ---------------------------------------------------- */

static int buf_utf8(Buf *b, Py_UCS4 c) {
    if (buf_room(b, 4)) return -1;
    unsigned char *o = (unsigned char *)b->p + b->n;
    if (c < 0x80) { o[0] = (unsigned char)c; b->n += 1; }
    else if (c < 0x800) { o[0] = 0xC0 | (c >> 6); o[1] = 0x80 | (c & 0x3F); b->n += 2; }
    else if (c < 0x10000) {
        if (c >= 0xD800 && c < 0xE000) {
            PyErr_SetString(PyExc_ValueError, "too many keys for UTF-8 (a surrogate code point)");
            return -1;
        }
        o[0] = 0xE0 | (c >> 12); o[1] = 0x80 | ((c >> 6) & 0x3F); o[2] = 0x80 | (c & 0x3F);
        b->n += 3;
    } else {
        o[0] = 0xF0 | (c >> 18); o[1] = 0x80 | ((c >> 12) & 0x3F);
        o[2] = 0x80 | ((c >> 6) & 0x3F); o[3] = 0x80 | (c & 0x3F);
        b->n += 4;
    }
    return 0;
}

/* A str as a JSON string, escaped as json.dumps(..., ensure_ascii=False) does. */
static int buf_json_str(Buf *b, PyObject *text) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (!s || buf_room(b, n * 6 + 2)) return -1;
    char *o = b->p + b->n;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        default:
            if (c < 0x20) {
                static const char hex[] = "0123456789abcdef";
                *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    b->n = o - b->p;
    return 0;
}

typedef struct {
    Py_ssize_t start, len;  /* its "grid" and "keys" members in the tile's text */
    Py_ssize_t nnames, *names;  /* the chains it stands for */
} Grid;

/* The grid of one chain's shapes after painter_run, its "grid" and "keys" members appended
 * to t; returns 1, or 0 when no cell has a region (nothing appended), -1 on error. */
static int grid_members(const Painter *p, Buf *t, PyObject *const *keys, Py_ssize_t n,
                        int32_t *ids, int32_t *first) {
    long nkeys = number_keys(p, ids, n, first);
    if (nkeys == 1 && first[0] == 0) return 0;
    long g = p->g;
    if (buf_put(t, "\"grid\":[", 8)) return -1;
    if (nkeys == 1) {
        if (buf_put(t, "\"", 1) || buf_utf8(t, codepoint(0)) || buf_put(t, "\"", 1)) return -1;
    } else {
        for (long r = 0; r < g; r++) {
            if (buf_put(t, r ? ",\"" : "\"", r ? 2 : 1)) return -1;
            const int32_t *src = p->cells + r * g;
            for (long c = 0; c < g; c++)
                if (buf_utf8(t, codepoint(ids[src[c]]))) return -1;
            if (buf_put(t, "\"", 1)) return -1;
        }
    }
    if (buf_put(t, "],\"keys\":[", 10)) return -1;
    for (long k = 0; k < nkeys; k++) {
        if (k && buf_put(t, ",", 1)) return -1;
        if (first[k] == 0) { if (buf_put(t, "\"\"", 2)) return -1; }
        else if (buf_json_str(t, keys[first[k] - 1])) return -1;
    }
    return buf_put(t, "]", 1) ? -1 : 1;
}

static PyObject *tiles_copy(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"pieces", "chains", "z", "size", "resolution", NULL};
    PyObject *pieces, *chains;
    long z, size = 256, resolution = 4;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOl|ll", kwlist, &pieces, &chains, &z,
                                     &size, &resolution))
        return NULL;
    Painter p;
    if (painter_init(&p, size, resolution)) return NULL;
    PyObject *seq = NULL, *cseq = NULL, *result = NULL;
    PyObject **shapes = NULL, **keys = NULL, **names = NULL, **sets = NULL;
    int32_t *ids = NULL, *first = NULL;
    Grid *grids = NULL;
    Py_ssize_t *slots = NULL;
    Buf out = {0}, t = {0}, field = {0};
    seq = PySequence_Fast(pieces, "pieces must be a sequence");
    cseq = seq ? PySequence_Fast(chains, "chains must be a sequence") : NULL;
    if (!cseq) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), nchains = PySequence_Fast_GET_SIZE(cseq);
    shapes = PyMem_Malloc((size_t)(n + 1) * sizeof(PyObject *));
    keys = PyMem_Malloc((size_t)(n + 1) * sizeof(PyObject *));
    ids = PyMem_Malloc((size_t)(n + 1) * sizeof(int32_t));
    first = PyMem_Malloc((size_t)(n + 1) * sizeof(int32_t));
    names = PyMem_Malloc((size_t)(nchains + 1) * sizeof(PyObject *));
    sets = PyMem_Malloc((size_t)(nchains + 1) * sizeof(PyObject *));
    grids = PyMem_Malloc((size_t)(nchains + 1) * sizeof(Grid));
    slots = PyMem_Malloc((size_t)(nchains * nchains + 1) * sizeof(Py_ssize_t));
    if (!shapes || !keys || !ids || !first || !names || !sets || !grids || !slots) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < nchains; c++) {
        PyObject *chain = PySequence_Fast_GET_ITEM(cseq, c);
        if (!PyTuple_Check(chain) || PyTuple_GET_SIZE(chain) != 2
                || !PyUnicode_Check(PyTuple_GET_ITEM(chain, 0))
                || !PyAnySet_Check(PyTuple_GET_ITEM(chain, 1))) {
            PyErr_SetString(PyExc_TypeError, "a chain is a (name, set of types) tuple");
            goto done;
        }
        names[c] = PyTuple_GET_ITEM(chain, 0);
        sets[c] = PyTuple_GET_ITEM(chain, 1);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 5) {
            PyErr_SetString(PyExc_TypeError, "a piece is a tuple (x, y, key, type, wkb, ...)");
            goto done;
        }
    }
    Py_ssize_t t0 = 0;
    while (t0 < n) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, t0);
        long x = PyLong_AsLong(PyTuple_GET_ITEM(row, 0)), y = PyLong_AsLong(PyTuple_GET_ITEM(row, 1));
        if (PyErr_Occurred()) goto done;
        Py_ssize_t t1 = t0 + 1;
        for (; t1 < n; t1++) {
            PyObject *next = PySequence_Fast_GET_ITEM(seq, t1);
            long nx = PyLong_AsLong(PyTuple_GET_ITEM(next, 0)), ny = PyLong_AsLong(PyTuple_GET_ITEM(next, 1));
            if (PyErr_Occurred()) goto done;
            if (nx != x || ny != y) break;
        }
        Py_ssize_t ngrids = 0;
        t.n = 0;
        for (Py_ssize_t c = 0; c < nchains; c++) {
            Py_ssize_t m = 0;
            for (Py_ssize_t i = t0; i < t1; i++) {
                PyObject *piece = PySequence_Fast_GET_ITEM(seq, i);
                int in = PySet_Contains(sets[c], PyTuple_GET_ITEM(piece, 3));
                if (in < 0) goto done;
                if (in) {
                    shapes[m] = PyTuple_GET_ITEM(piece, 4);
                    keys[m] = PyTuple_GET_ITEM(piece, 2);
                    m++;
                }
            }
            if (!m) continue;
            if (painter_run(&p, shapes, m)) goto done;
            Py_ssize_t start = t.n;
            int made = grid_members(&p, &t, keys, m, ids, first);
            if (made < 0) goto done;
            if (!made) continue;
            Py_ssize_t len = t.n - start, j = 0;
            for (; j < ngrids; j++)
                if (grids[j].len == len && !memcmp(t.p + grids[j].start, t.p + start, (size_t)len))
                    break;
            if (j < ngrids) {  /* the same grid and keys as an earlier chain's */
                grids[j].names[grids[j].nnames++] = c;
                t.n = start;
                continue;
            }
            grids[ngrids] = (Grid){start, len, 1, slots + ngrids * nchains};
            grids[ngrids].names[0] = c;
            ngrids++;
        }
        field.n = 0;
        if (buf_put(&field, "[", 1)) goto done;
        for (Py_ssize_t j = 0; j < ngrids; j++) {
            if (buf_put(&field, j ? ",{" : "{", j ? 2 : 1)
                    || buf_put(&field, t.p + grids[j].start, grids[j].len)
                    || buf_put(&field, ",\"hierarchies\":[", 16))
                goto done;
            for (Py_ssize_t k = 0; k < grids[j].nnames; k++)
                if ((k && buf_put(&field, ",", 1)) || buf_json_str(&field, names[grids[j].names[k]]))
                    goto done;
            if (buf_put(&field, "]}", 2)) goto done;
        }
        if (buf_put(&field, "]", 1)) goto done;
        if (buf_long(&out, z) || buf_put(&out, "\t", 1) || buf_long(&out, x)
                || buf_put(&out, "\t", 1) || buf_long(&out, y) || buf_put(&out, "\t", 1)
                || buf_copy_field(&out, field.p, field.n) || buf_put(&out, "\n", 1))
            goto done;
        t0 = t1;
    }
    result = PyBytes_FromStringAndSize(out.p ? out.p : "", out.n);
done:
    painter_free(&p);
    Py_XDECREF(seq);
    Py_XDECREF(cseq);
    PyMem_Free(shapes);
    PyMem_Free(keys);
    PyMem_Free(names);
    PyMem_Free(sets);
    PyMem_Free(ids);
    PyMem_Free(first);
    PyMem_Free(grids);
    PyMem_Free(slots);
    PyMem_Free(out.p);
    PyMem_Free(t.p);
    PyMem_Free(field.p);
    return result;
}

static PyMethodDef methods[] = {
    {"paint", (PyCFunction)(void (*)(void))paint, METH_VARARGS | METH_KEYWORDS,
     "paint(shapes, size=256, resolution=4) -> (rows, order): see renderer._utfgrid_py."},
    {"tiles_copy", (PyCFunction)(void (*)(void))tiles_copy, METH_VARARGS | METH_KEYWORDS,
     "tiles_copy(pieces, chains, z, size=256, resolution=4) -> bytes: see "
     "renderer.maptiles.utfgrid.tiles_copy_py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_utfgrid",
                                    "UTFGrid painting (twin: renderer._utfgrid_py).", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__utfgrid(void) { return PyModule_Create(&module); }
