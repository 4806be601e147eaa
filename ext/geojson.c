/* The feature text of a block's tile pieces, as the COPY rows of `tile_features`.
 *
 * renderer/maptiles/geojson.py is its pure-Python twin and says what it computes (the tests
 * hold both byte-equal, and compare them with what PostGIS wrote before:
 * ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(geom, 4326)), digits)). Per piece: its WKB
 * (Web Mercator metres, a Polygon or MultiPolygon) is read ring by ring, each point taken
 * to WGS84 degrees by the spherical Mercator's inverse, each ring turned as
 * ST_ForcePolygonCCW turns it (by the sign of PostGIS's ptarray_signed_area), and written
 * as GeoJSON with each coordinate rounded to `digits` decimals (rint of the value times
 * 10^digits: half to even, trailing zeros dropped). No FMA contraction
 * (-ffp-contract=off), so the twin computes the same doubles.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "textbuf.h"
#include "wkb.h"

/* PROJ's inverse of EPSG:3857 as ST_Transform runs it: x and y times 1/a, then
 * lon = x, lat = atan(sinh(y)), radians to degrees by one factor (the same doubles as
 * PostGIS, checked on 20,000 random points) */
#define RA (1.0 / 6378137.0)
#define DEGREES (180.0 / M_PI)
#define MAX_DIGITS 15

static const double POW10[MAX_DIGITS + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                             1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* A coordinate rounded to `digits` decimals: rint(v * 10^digits), trailing zeros dropped,
 * no "-0". */
static int put_coord(Buf *b, double v, int digits) {
    double scaled = rint(v * POW10[digits]);
    if (!(fabs(scaled) < 9.0e18)) {
        PyErr_SetString(PyExc_ValueError, "coordinate out of range");
        return -1;
    }
    long long n = (long long)scaled;
    if (buf_room(b, 48)) return -1;
    char *o = b->p + b->n;
    unsigned long long u = n < 0 ? (unsigned long long)(-n) : (unsigned long long)n;
    if (n < 0) *o++ = '-';
    unsigned long long scale = (unsigned long long)POW10[digits];
    unsigned long long whole = u / scale, frac = u % scale;
    o += snprintf(o, 24, "%llu", whole);
    if (frac) {
        char tail[MAX_DIGITS + 1];
        int k = digits;
        for (int i = digits - 1; i >= 0; i--) { tail[i] = (char)('0' + frac % 10); frac /= 10; }
        while (k > 0 && tail[k - 1] == '0') k--;
        *o++ = '.';
        memcpy(o, tail, (size_t)k);
        o += k;
    }
    b->n = o - b->p;
    return 0;
}

/* scratch: one ring's points in degrees */
typedef struct {
    double *xy;
    Py_ssize_t cap;
} Ring;

static int ring_room(Ring *r, Py_ssize_t n) {
    if (n <= r->cap) return 0;
    double *xy = PyMem_Realloc(r->xy, (size_t)n * 2 * sizeof(double));
    if (!xy) { PyErr_NoMemory(); return -1; }
    r->xy = xy;
    r->cap = n;
    return 0;
}

/* One polygon's rings as GeoJSON ("[[[x,y],...],...]"), exterior counterclockwise. */
static int put_polygon(Reader *r, int swap, Buf *b, Ring *ring, int digits) {
    if (need(r, 4)) return -1;
    uint32_t nrings = rd_u32(r, swap);
    if (buf_put(b, "[", 1)) return -1;
    for (uint32_t k = 0; k < nrings; k++) {
        if (need(r, 4)) return -1;
        uint32_t np = rd_u32(r, swap);
        if (need(r, (Py_ssize_t)np * 16) || ring_room(ring, np)) return -1;
        for (uint32_t j = 0; j < np; j++) {
            double x = rd_f64(r, swap), y = rd_f64(r, swap);
            ring->xy[2 * j] = x * RA * DEGREES;
            ring->xy[2 * j + 1] = atan(sinh(y * RA)) * DEGREES;
        }
        /* PostGIS's ptarray_signed_area: positive for a clockwise ring */
        double sum = 0.0;
        if (np >= 3) {
            double x0 = ring->xy[0];
            for (uint32_t j = 2; j < np; j++)
                sum += (ring->xy[2 * (j - 1)] - x0) * (ring->xy[2 * (j - 2) + 1] - ring->xy[2 * j + 1]);
        }
        int reverse = k == 0 ? sum / 2.0 > 0 : !(sum / 2.0 > 0);
        if (buf_put(b, k ? ",[" : "[", k ? 2 : 1)) return -1;
        for (uint32_t j = 0; j < np; j++) {
            uint32_t at = reverse ? np - 1 - j : j;
            if (buf_put(b, j ? ",[" : "[", j ? 2 : 1)
                    || put_coord(b, ring->xy[2 * at], digits) || buf_put(b, ",", 1)
                    || put_coord(b, ring->xy[2 * at + 1], digits) || buf_put(b, "]", 1))
                return -1;
        }
        if (buf_put(b, "]", 1)) return -1;
    }
    return buf_put(b, "]", 1);
}

/* A Polygon or MultiPolygon's WKB as a GeoJSON geometry. */
static int put_geometry(const unsigned char *wkb, Py_ssize_t len, Buf *b, Ring *ring, int digits) {
    Reader r = {wkb, len, 0};
    if (need(&r, 5)) return -1;
    int swap = (r.p[0] == 1) != host_little();
    r.pos = 1;
    uint32_t kind = rd_u32(&r, swap) & 0xFFFF;
    if (kind == 3) {
        return buf_put(b, "{\"type\":\"Polygon\",\"coordinates\":", 32)
               || put_polygon(&r, swap, b, ring, digits) || buf_put(b, "}", 1) ? -1 : 0;
    }
    if (kind != 6) {
        PyErr_Format(PyExc_ValueError, "a piece must be a Polygon or MultiPolygon (WKB type %u)", kind);
        return -1;
    }
    if (need(&r, 4)) return -1;
    uint32_t n = rd_u32(&r, swap);
    if (buf_put(b, "{\"type\":\"MultiPolygon\",\"coordinates\":[", 38)) return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (i && buf_put(b, ",", 1)) return -1;
        if (need(&r, 5)) return -1;
        int sub = (r.p[r.pos] == 1) != host_little();
        r.pos += 1;
        uint32_t part = rd_u32(&r, sub) & 0xFFFF;
        if (part != 3) {
            PyErr_Format(PyExc_ValueError, "a MultiPolygon part must be a Polygon (WKB type %u)", part);
            return -1;
        }
        if (put_polygon(&r, sub, b, ring, digits)) return -1;
    }
    return buf_put(b, "]}", 2);
}

static int put_text(Buf *b, PyObject *text) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    return s ? buf_put(b, s, n) : -1;
}

static PyObject *features_copy(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"pieces", "z", "digits", NULL};
    PyObject *pieces;
    long z;
    int digits;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oli", kwlist, &pieces, &z, &digits))
        return NULL;
    if (digits < 0 || digits > MAX_DIGITS) {
        PyErr_Format(PyExc_ValueError, "digits must be 0 to %d", MAX_DIGITS);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(pieces, "pieces must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Buf out = {0}, feature = {0};
    Ring ring = {0};
    PyObject *result = NULL;
    long long px = 0, py = 0, ord = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 10) {
            PyErr_SetString(PyExc_TypeError, "a piece is a tuple of at least 10 fields");
            goto done;
        }
        long long x = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 0));
        long long y = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 1));
        long long region = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 5));
        if (PyErr_Occurred()) goto done;
        ord = (i && x == px && y == py) ? ord + 1 : 1;
        px = x;
        py = y;
        PyObject *head = PyTuple_GET_ITEM(row, 6), *tail = PyTuple_GET_ITEM(row, 7);
        PyObject *merc = PyTuple_GET_ITEM(row, 8), *cover = PyTuple_GET_ITEM(row, 9);
        feature.n = 0;
        if (put_text(&feature, head)) goto done;
        if (merc == Py_None) {
            if (put_text(&feature, cover)) goto done;
        } else {
            Py_buffer view;
            if (PyObject_GetBuffer(merc, &view, PyBUF_SIMPLE)) goto done;
            int bad = put_geometry(view.buf, view.len, &feature, &ring, digits);
            PyBuffer_Release(&view);
            if (bad) goto done;
        }
        if (put_text(&feature, tail)) goto done;
        if (buf_long(&out, z) || buf_put(&out, "\t", 1) || buf_long(&out, x)
                || buf_put(&out, "\t", 1) || buf_long(&out, y) || buf_put(&out, "\t", 1)
                || buf_long(&out, region) || buf_put(&out, "\t", 1) || buf_long(&out, ord)
                || buf_put(&out, "\t", 1) || buf_copy_field(&out, feature.p, feature.n)
                || buf_put(&out, "\n", 1))
            goto done;
    }
    result = PyBytes_FromStringAndSize(out.p ? out.p : "", out.n);
done:
    Py_DECREF(seq);
    PyMem_Free(out.p);
    PyMem_Free(feature.p);
    PyMem_Free(ring.xy);
    return result;
}

static PyMethodDef methods[] = {
    {"features_copy", (PyCFunction)(void (*)(void))features_copy, METH_VARARGS | METH_KEYWORDS,
     "features_copy(pieces, z, digits) -> bytes: see renderer.maptiles.geojson."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_geojson",
                                    "Tile pieces' GeoJSON feature text (twin: "
                                    "renderer.maptiles.geojson).", -1, methods, NULL, NULL,
                                    NULL, NULL};

PyMODINIT_FUNC PyInit__geojson(void) { return PyModule_Create(&module); }
