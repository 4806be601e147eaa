/* Mapbox Vector Tile encoding: one layer of polygon features -> the tile's protobuf bytes.
 *
 * renderer/_mvt_py.py is its pure-Python twin and says what it computes (the tests hold
 * both byte-equal, and read both as PostGIS's ST_AsMVT(ST_AsMVTGeom(...)) on the rendered
 * tiles: renderer/maptiles/mvt.py says how they differ). Per feature: its WKB (Web Mercator metres) is read ring by ring, repeated points
 * and points within half a tile unit of the line are dropped (as ST_AsMVTGeom does before
 * its transform), the rest scaled to the tile's integer grid (rint), rings left with fewer
 * than four points dropped, exteriors turned to a positive area in tile coordinates and
 * holes to a negative one, and written as MoveTo/LineTo/ClosePath commands with zigzag
 * deltas. Keys and values are shared per layer in order of first appearance. No FMA
 * contraction (-ffp-contract=off), so the twin computes the same grid bit for bit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "wkb.h"

/* -- growable byte buffer ------------------------------------------------------------ */

typedef struct {
    unsigned char *p;
    Py_ssize_t n, cap;
} Buf;

static int buf_grow(Buf *b, Py_ssize_t more) {
    if (b->n + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more) cap *= 2;
    unsigned char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (!p) { PyErr_NoMemory(); return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put_varint(Buf *b, uint64_t v) {
    if (buf_grow(b, 10)) return -1;
    while (v >= 0x80) { b->p[b->n++] = (unsigned char)(v | 0x80); v >>= 7; }
    b->p[b->n++] = (unsigned char)v;
    return 0;
}

static int put_bytes(Buf *b, const void *data, Py_ssize_t n) {
    if (buf_grow(b, n)) return -1;
    memcpy(b->p + b->n, data, (size_t)n);
    b->n += n;
    return 0;
}

/* field `number` as length-delimited bytes */
static int put_field(Buf *b, unsigned number, const void *data, Py_ssize_t n) {
    if (put_varint(b, ((uint64_t)number << 3) | 2) || put_varint(b, (uint64_t)n)) return -1;
    return put_bytes(b, data, n);
}

/* -- geometry ------------------------------------------------------------------------ */

typedef struct {
    double *xy;
    Py_ssize_t cap;
    unsigned char *kept;
    uint32_t *stack;
    Py_ssize_t aux_cap;
} Scratch;

static int scratch_fit(Scratch *s, Py_ssize_t n) {
    if (n > s->cap) {
        double *xy = PyMem_Realloc(s->xy, (size_t)n * 2 * sizeof(double));
        if (!xy) { PyErr_NoMemory(); return -1; }
        s->xy = xy;
        s->cap = n;
    }
    if (n > s->aux_cap) {
        unsigned char *k = PyMem_Realloc(s->kept, (size_t)n);
        if (!k) { PyErr_NoMemory(); return -1; }
        s->kept = k;
        uint32_t *st = PyMem_Realloc(s->stack, (size_t)n * sizeof(uint32_t));
        if (!st) { PyErr_NoMemory(); return -1; }
        s->stack = st;
        s->aux_cap = n;
    }
    return 0;
}

/* Points within `tol` of the last kept one dropped, the last point always kept (a ring
 * keeps at least 4). */
static Py_ssize_t drop_repeated(double *xy, Py_ssize_t n, double tol) {
    const Py_ssize_t min_points = 4;
    if (n <= min_points) return n;
    double tolsq = tol * tol;
    Py_ssize_t out = 1;
    double lx = xy[0], ly = xy[1];
    for (Py_ssize_t i = 1; i < n; i++) {
        int last_point = i == n - 1;
        double x = xy[2 * i], y = xy[2 * i + 1];
        if (n + out > min_points + i) {
            double dx = lx - x, dy = ly - y;
            double dsq = dx * dx + dy * dy;
            if (!last_point && dsq <= tolsq) continue;
            if (last_point && out > 1 && dsq <= tolsq) out--;
        }
        xy[2 * out] = x;
        xy[2 * out + 1] = y;
        out++;
        lx = x;
        ly = y;
    }
    return out;
}

static Py_ssize_t find_split(const double *xy, Py_ssize_t first, Py_ssize_t last, double tolsq) {
    Py_ssize_t split = first;
    double max_sq = tolsq;
    double ax = xy[2 * first], ay = xy[2 * first + 1], bx = xy[2 * last], by = xy[2 * last + 1];
    double abx = ax - bx, aby = ay - by;
    if (abx * abx + aby * aby < DBL_EPSILON) {
        for (Py_ssize_t k = first + 1; k < last; k++) {
            double dx = xy[2 * k] - ax, dy = xy[2 * k + 1] - ay;
            double d = dx * dx + dy * dy;
            if (d > max_sq) { split = k; max_sq = d; }
        }
        return split;
    }
    double ba_x = bx - ax, ba_y = by - ay;
    double len_sq = ba_x * ba_x + ba_y * ba_y;
    max_sq *= len_sq;
    for (Py_ssize_t k = first + 1; k < last; k++) {
        double cx = xy[2 * k], cy = xy[2 * k + 1];
        double ca_x = cx - ax, ca_y = cy - ay;
        double dot = ca_x * ba_x + ca_y * ba_y;
        double d;
        if (dot <= 0.0) {
            d = (ca_x * ca_x + ca_y * ca_y) * len_sq;
        } else if (dot >= len_sq) {
            double cbx = cx - bx, cby = cy - by;
            d = (cbx * cbx + cby * cby) * len_sq;
        } else {
            double s = ca_x * ba_y - ca_y * ba_x;
            d = s * s;
        }
        if (d > max_sq) { split = k; max_sq = d; }
    }
    return split;
}

/* Douglas-Peucker with tolerance `tol`, in place. */
static Py_ssize_t simplify(Scratch *s, double *xy, Py_ssize_t n, double tol) {
    if (n < 3) return n;
    unsigned char *kept = s->kept;
    uint32_t *stack = s->stack;
    memset(kept, 0, (size_t)n);
    kept[0] = kept[n - 1] = 1;
    Py_ssize_t keptn = 2, depth = 1;
    stack[0] = 0;
    Py_ssize_t first = 0, last = n - 1;
    double tolsq = tol * tol;
    while (depth) {
        Py_ssize_t split = find_split(xy, first, last, tolsq);
        if (split == first) {
            first = last;
            last = stack[--depth];
        } else {
            kept[split] = 1;
            keptn++;
            stack[depth++] = (uint32_t)last;
            last = split;
        }
    }
    if (keptn == 2) {
        xy[2] = xy[2 * (n - 1)];
        xy[3] = xy[2 * (n - 1) + 1];
    } else if (keptn != n) {
        Py_ssize_t out = 1;
        for (Py_ssize_t i = 1; i < n; i++)
            if (kept[i]) { xy[2 * out] = xy[2 * i]; xy[2 * out + 1] = xy[2 * i + 1]; out++; }
    }
    return keptn;
}

typedef struct {
    double fx, fy, xoff, yoff, res;
} Transform;

/* Scaled to the tile and rounded to its integer grid, consecutive equal points merged. */
static Py_ssize_t to_grid(double *xy, Py_ssize_t n, const Transform *t) {
    Py_ssize_t out = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double x = rint(t->fx * xy[2 * i] + t->xoff);
        double y = rint(t->fy * xy[2 * i + 1] + t->yoff);
        if (out && xy[2 * (out - 1)] == x && xy[2 * (out - 1) + 1] == y) continue;
        xy[2 * out] = x;
        xy[2 * out + 1] = y;
        out++;
    }
    return out;
}

typedef struct {
    Buf cmd;             /* this feature's geometry commands */
    int32_t px, py;      /* the cursor */
} Geometry;

static uint32_t zigzag(int32_t v) { return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31); }

/* One ring (closed, >= 4 points) as commands, reversed when an exterior's area in tile units
 * is negative or a hole's is not (the first point kept). */
static int put_ring(Geometry *g, const double *xy, Py_ssize_t n, int exterior) {
    double area = 0;
    for (Py_ssize_t i = 0; i + 1 < n; i++)
        area += xy[2 * i] * xy[2 * i + 3] - xy[2 * i + 2] * xy[2 * i + 1];
    int reverse = exterior ? area < 0 : area >= 0;
    if (put_varint(&g->cmd, 1 | (1 << 3))) return -1;
    for (Py_ssize_t k = 0; k < n - 1; k++) {
        Py_ssize_t i = reverse && k ? n - 1 - k : k;
        int32_t x = (int32_t)xy[2 * i], y = (int32_t)xy[2 * i + 1];
        if (put_varint(&g->cmd, zigzag(x - g->px)) || put_varint(&g->cmd, zigzag(y - g->py)))
            return -1;
        g->px = x;
        g->py = y;
        if (k == 0 && put_varint(&g->cmd, 2 | ((uint64_t)(n - 2) << 3))) return -1;
    }
    return put_varint(&g->cmd, 7 | (1 << 3));
}

typedef struct {
    double *xy;
    Py_ssize_t n;
} Ring;

/* One polygon of the WKB: its rings cleaned as ST_AsMVTGeom does, then written. */
static int read_polygon(Reader *r, int swap, Scratch *s, Geometry *g, const Transform *t) {
    if (need(r, 4)) return -1;
    uint32_t nrings = rd_u32(r, swap);
    /* the rings are cleaned one by one into the scratch space after each other */
    Py_ssize_t start = r->pos, total = 0;
    for (uint32_t k = 0; k < nrings; k++) {
        if (need(r, 4)) return -1;
        uint32_t np = rd_u32(r, swap);
        if (need(r, (Py_ssize_t)np * 16)) return -1;
        r->pos += (Py_ssize_t)np * 16;
        total += np;
    }
    if (scratch_fit(s, total + 1)) return -1;
    r->pos = start;
    Ring rings[64];
    Ring *ring = nrings <= 64 ? rings : PyMem_Malloc(nrings * sizeof(Ring));
    if (!ring) { PyErr_NoMemory(); return -1; }
    Py_ssize_t at = 0, kept = 0;
    int alive = 1;
    /* remove repeated points and simplify (every ring, in metres), a collapsed exterior
     * empties the polygon */
    for (uint32_t k = 0; k < nrings; k++) {
        uint32_t np = rd_u32(r, swap);
        double *xy = s->xy + 2 * at;
        for (uint32_t j = 0; j < np; j++) {
            xy[2 * j] = rd_f64(r, swap);
            xy[2 * j + 1] = rd_f64(r, swap);
        }
        at += np;
        Py_ssize_t n = drop_repeated(xy, np, t->res);
        if (n < 4) continue;
        ring[kept].xy = xy;
        ring[kept].n = n;
        kept++;
    }
    Py_ssize_t kept2 = 0;
    for (Py_ssize_t k = 0; k < kept && alive; k++) {
        Py_ssize_t n = simplify(s, ring[k].xy, ring[k].n, t->res);
        if (n < 4) {
            if (k == 0) alive = 0;
            continue;
        }
        ring[kept2].xy = ring[k].xy;
        ring[kept2].n = n;
        kept2++;
    }
    int rc = 0;
    if (alive && kept2) {
        Py_ssize_t kept3 = 0;
        for (Py_ssize_t k = 0; k < kept2; k++) {
            Py_ssize_t n = to_grid(ring[k].xy, ring[k].n, t);
            if (n < 4) {
                if (k == 0) { kept3 = 0; break; }
                continue;
            }
            ring[kept3].xy = ring[k].xy;
            ring[kept3].n = n;
            kept3++;
        }
        for (Py_ssize_t k = 0; k < kept3 && !rc; k++)
            rc = put_ring(g, ring[k].xy, ring[k].n, k == 0);
    }
    if (ring != rings) PyMem_Free(ring);
    return rc;
}

static int read_geometry(Reader *r, Scratch *s, Geometry *g, const Transform *t) {
    if (need(r, 5)) return -1;
    int swap = (r->p[r->pos] == 1) != host_little();
    r->pos += 1;
    uint32_t kind = rd_u32(r, swap);
    if (kind == 3) return read_polygon(r, swap, s, g, t);
    if (kind != 6) {
        PyErr_Format(PyExc_ValueError, "not a 2D polygon or multipolygon (WKB type %u)", kind);
        return -1;
    }
    if (need(r, 4)) return -1;
    uint32_t n = rd_u32(r, swap);
    for (uint32_t i = 0; i < n; i++) {
        if (need(r, 5)) return -1;
        int sw = (r->p[r->pos] == 1) != host_little();
        r->pos += 1;
        if (rd_u32(r, sw) != 3) {
            PyErr_SetString(PyExc_ValueError, "a multipolygon's part is not a polygon");
            return -1;
        }
        if (read_polygon(r, sw, s, g, t)) return -1;
    }
    return 0;
}

/* -- keys and values ----------------------------------------------------------------- */

/* A value's protobuf message (Tile.Value) is its identity: equal messages are one value. */
typedef struct {
    Buf msgs;             /* every value's message, one after another */
    Py_ssize_t *off;      /* start of value i in msgs; n + 1 entries */
    Py_ssize_t n, cap;
    Py_ssize_t *slots;    /* open addressing: value index + 1, 0 = empty */
    Py_ssize_t nslots;
} Table;

static uint64_t hash_bytes(const unsigned char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}

static int table_rehash(Table *t, Py_ssize_t nslots) {
    Py_ssize_t *slots = PyMem_Calloc((size_t)nslots, sizeof(Py_ssize_t));
    if (!slots) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < t->n; i++) {
        uint64_t h = hash_bytes(t->msgs.p + t->off[i], t->off[i + 1] - t->off[i]);
        Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)(nslots - 1));
        while (slots[j]) j = (j + 1) & (nslots - 1);
        slots[j] = i + 1;
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return 0;
}

/* The index of the entry `msg`, added when new; -1 on error. */
static Py_ssize_t table_index(Table *t, const unsigned char *msg, Py_ssize_t len) {
    if ((t->n + 1) * 2 > t->nslots && table_rehash(t, t->nslots ? t->nslots * 2 : 64)) return -1;
    uint64_t h = hash_bytes(msg, len);
    Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)(t->nslots - 1));
    while (t->slots[j]) {
        Py_ssize_t i = t->slots[j] - 1;
        if (t->off[i + 1] - t->off[i] == len && !memcmp(t->msgs.p + t->off[i], msg, (size_t)len))
            return i;
        j = (j + 1) & (t->nslots - 1);
    }
    if (t->n + 2 > t->cap) {
        Py_ssize_t cap = t->cap ? t->cap * 2 : 64;
        Py_ssize_t *off = PyMem_Realloc(t->off, (size_t)cap * sizeof(Py_ssize_t));
        if (!off) { PyErr_NoMemory(); return -1; }
        t->off = off;
        t->cap = cap;
    }
    if (t->n == 0) t->off[0] = 0;
    if (put_bytes(&t->msgs, msg, len)) return -1;
    t->off[t->n + 1] = t->msgs.n;
    t->slots[j] = ++t->n;
    return t->n - 1;
}

static void table_free(Table *t) {
    PyMem_Free(t->msgs.p);
    PyMem_Free(t->off);
    PyMem_Free(t->slots);
}

/* The Tile.Value message of a Python value into `out`: str -> string_value, bool ->
 * bool_value, int >= 0 -> uint_value, int < 0 -> sint_value, float -> double_value. */
static int value_message(PyObject *v, Buf *out) {
    out->n = 0;
    if (PyUnicode_Check(v)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        return s ? put_field(out, 1, s, n) : -1;
    }
    if (PyBool_Check(v)) return put_varint(out, 7 << 3) || put_varint(out, v == Py_True);
    if (PyLong_Check(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_OverflowError, "an integer value beyond 64 bits");
            return -1;
        }
        if (x >= 0) return put_varint(out, 5 << 3) || put_varint(out, (uint64_t)x);
        uint64_t z = ((uint64_t)x << 1) ^ (uint64_t)(x >> 63);
        return put_varint(out, 6 << 3) || put_varint(out, z);
    }
    if (PyFloat_Check(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (put_varint(out, (3 << 3) | 1)) return -1;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        if (!host_little()) bits = __builtin_bswap64(bits);
        return put_bytes(out, &bits, 8);
    }
    PyErr_Format(PyExc_TypeError, "an MVT value is str, bool, int or float, not %.100s",
                 Py_TYPE(v)->tp_name);
    return -1;
}

static Py_ssize_t key_index(Table *keys, PyObject *k) {
    Py_ssize_t n;
    if (!PyUnicode_Check(k)) { PyErr_SetString(PyExc_TypeError, "a key is a str"); return -1; }
    const char *s = PyUnicode_AsUTF8AndSize(k, &n);
    return s ? table_index(keys, (const unsigned char *)s, n) : -1;
}

/* A tag pair (key, value) onto `tags`; a None value adds the key only (as ST_AsMVT does for
 * a JSON null). */
static int put_tag(Table *keys, Table *values, Buf *tags, Buf *tmp, PyObject *k, PyObject *v) {
    Py_ssize_t ki = key_index(keys, k);
    if (ki < 0) return -1;
    if (v == Py_None) return 0;
    if (value_message(v, tmp)) return -1;
    Py_ssize_t vi = table_index(values, tmp->p, tmp->n);
    if (vi < 0) return -1;
    return put_varint(tags, (uint64_t)ki) || put_varint(tags, (uint64_t)vi);
}

/* -- the layer ----------------------------------------------------------------------- */

static PyObject *encode(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"name", "bounds", "columns", "features", "extent", NULL};
    const char *name;
    Py_ssize_t name_len;
    double xmin, ymin, xmax, ymax;
    PyObject *columns, *features;
    unsigned long extent = 4096;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s#(dddd)OO|k", kwlist, &name, &name_len,
                                     &xmin, &ymin, &xmax, &ymax, &columns, &features, &extent))
        return NULL;
    if (extent == 0 || extent > (1UL << 24) || !(xmax > xmin) || !(ymax > ymin)) {
        PyErr_SetString(PyExc_ValueError, "extent must be in 1..2^24 and the bounds not empty");
        return NULL;
    }
    double width = xmax - xmin, height = ymax - ymin;
    double resx = width / (double)extent, resy = height / (double)extent;
    Transform t;
    t.res = (resx < resy ? resx : resy) / 2;
    t.fx = (double)extent / width;
    t.fy = -((double)extent / height);
    t.xoff = -xmin * t.fx;
    t.yoff = -ymax * t.fy;

    PyObject *cols = PySequence_Fast(columns, "columns must be a sequence");
    if (!cols) return NULL;
    PyObject *feats = PySequence_Fast(features, "features must be a sequence");
    if (!feats) { Py_DECREF(cols); return NULL; }
    Py_ssize_t ncols = PySequence_Fast_GET_SIZE(cols);
    Table keys = {0}, values = {0};
    Buf layer = {0}, feature = {0}, tags = {0}, tmp = {0};
    Geometry g = {{0}, 0, 0};
    Scratch s = {0};
    PyObject *result = NULL;
    Py_ssize_t written = 0;
    for (Py_ssize_t c = 0; c < ncols; c++)
        if (key_index(&keys, PySequence_Fast_GET_ITEM(cols, c)) < 0) goto done;
    if (put_field(&layer, 1, name, name_len)) goto done;
    Py_ssize_t nfeats = PySequence_Fast_GET_SIZE(feats);
    for (Py_ssize_t i = 0; i < nfeats; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(feats, i);
        PyObject *wkb, *vals, *extra;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "OOO", &wkb, &vals, &extra)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "a feature is (wkb, values, extra)");
            goto done;
        }
        Py_buffer view;
        if (PyObject_GetBuffer(wkb, &view, PyBUF_SIMPLE)) goto done;
        Reader r = {view.buf, view.len, 0};
        g.cmd.n = 0;
        g.px = g.py = 0;
        int bad = read_geometry(&r, &s, &g, &t);
        PyBuffer_Release(&view);
        if (bad) goto done;
        if (g.cmd.n == 0) continue;   /* nothing left at this tile's resolution */
        tags.n = 0;
        PyObject *vs = PySequence_Fast(vals, "values must be a sequence");
        if (!vs) goto done;
        if (PySequence_Fast_GET_SIZE(vs) != ncols) {
            Py_DECREF(vs);
            PyErr_SetString(PyExc_ValueError, "a feature has one value per column");
            goto done;
        }
        for (Py_ssize_t c = 0; c < ncols; c++) {
            if (put_tag(&keys, &values, &tags, &tmp, PySequence_Fast_GET_ITEM(cols, c),
                        PySequence_Fast_GET_ITEM(vs, c))) { Py_DECREF(vs); goto done; }
        }
        Py_DECREF(vs);
        PyObject *ex = PySequence_Fast(extra, "extra must be a sequence of (key, value)");
        if (!ex) goto done;
        for (Py_ssize_t c = 0; c < PySequence_Fast_GET_SIZE(ex); c++) {
            PyObject *pair = PySequence_Fast_GET_ITEM(ex, c);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                Py_DECREF(ex);
                PyErr_SetString(PyExc_TypeError, "extra must be a sequence of (key, value)");
                goto done;
            }
            if (put_tag(&keys, &values, &tags, &tmp, PyTuple_GET_ITEM(pair, 0),
                        PyTuple_GET_ITEM(pair, 1))) { Py_DECREF(ex); goto done; }
        }
        Py_DECREF(ex);
        feature.n = 0;
        if (tags.n && put_field(&feature, 2, tags.p, tags.n)) goto done;
        if (put_varint(&feature, 3 << 3) || put_varint(&feature, 3)) goto done;
        if (put_field(&feature, 4, g.cmd.p, g.cmd.n)) goto done;
        if (put_field(&layer, 2, feature.p, feature.n)) goto done;
        written++;
    }
    if (written == 0) {
        result = PyBytes_FromStringAndSize(NULL, 0);
        goto done;
    }
    for (Py_ssize_t k = 0; k < keys.n; k++)
        if (put_field(&layer, 3, keys.msgs.p + keys.off[k], keys.off[k + 1] - keys.off[k]))
            goto done;
    for (Py_ssize_t k = 0; k < values.n; k++)
        if (put_field(&layer, 4, values.msgs.p + values.off[k],
                      values.off[k + 1] - values.off[k])) goto done;
    if (put_varint(&layer, 5 << 3) || put_varint(&layer, extent)) goto done;
    if (put_varint(&layer, 15 << 3) || put_varint(&layer, 2)) goto done;
    tmp.n = 0;
    if (put_field(&tmp, 3, layer.p, layer.n)) goto done;
    result = PyBytes_FromStringAndSize((const char *)tmp.p, tmp.n);
done:
    table_free(&keys);
    table_free(&values);
    PyMem_Free(layer.p);
    PyMem_Free(feature.p);
    PyMem_Free(tags.p);
    PyMem_Free(tmp.p);
    PyMem_Free(g.cmd.p);
    PyMem_Free(s.xy);
    PyMem_Free(s.kept);
    PyMem_Free(s.stack);
    Py_DECREF(cols);
    Py_DECREF(feats);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_VARARGS | METH_KEYWORDS,
     "encode(name, bounds, columns, features, extent=4096) -> bytes: see renderer._mvt_py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mvt",
                                    "Mapbox Vector Tile encoding (twin: renderer._mvt_py).",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__mvt(void) { return PyModule_Create(&module); }
