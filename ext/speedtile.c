/* renderer._speedtile: the per-(segment, hour) loop of the speed-tile build, in C.
 *
 * Input: the week's histogram rows as PostgreSQL binary COPY, in key order (segment, hour,
 * next segment NULLS LAST), columns (segment_id int8, next_segment_id int8 or NULL,
 * hour int4, duration_code int2, queue_code int2, count int8). Output: traffic_speeds rows
 * as binary COPY, columns in the order of traffic_speedtile.speeds_copy: mode, first_hour,
 * segment_id, length, the arrays hours, observations, speeds, then the packed columns
 * hour_values, nexts and total_observations (renderer/traffic/speedtile_pack.py).
 *
 * The arithmetic is that of the Python twin, renderer.traffic.speedtile._hour (tests hold
 * the two equal, float for float): the same operations in the same order, doubles, no fused
 * multiply-add (setup.py: -ffp-contract=off). Every rounding goes through st_round().
 *
 * Builder(mode, first_hour, min_count, max_speed, length_ids, length_values, unsorted=False):
 * length_ids a sorted buffer of int64 segment ids, length_values their lengths (int64);
 * unsorted: the rows come in any order, kept and sorted in C by finish() (speedtile_sort.c)
 * instead of by the server. Then
 * feed(buffer) any number of times (chunks of the COPY stream; a chunk may end anywhere),
 * take() -> bytes (the output so far, handed over), finish() -> bytes (the rest and the
 * trailer). Attributes rows, segments, tiles (per tile of the rows written: tile id,
 * segments, observations, largest segment index; twin: speedtile.tile_sums).
 *
 * drain(pgconn_address) reads a COPY TO STDOUT in progress on that libpq connection (the
 * address psycopg gives as ``pgconn.pgconn_ptr``) straight from libpq, up to and including
 * the binary trailer, and leaves the end of the COPY (its result) to the driver: a Python
 * loop over millions of one-row messages costs more than the arithmetic. It calls the libpq
 * already loaded in the process (found by name, there must be exactly one), never another.
 * The COPY format itself (reading rows, writing, the libpq read) is ext/pgcopy.c's, shared
 * with ext/sensors.c.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pgcopy.h"
#include "speedtile.h"

/* The one place where a value is rounded to an integer (Python's round(): half to even,
 * as nearbyint in the default rounding mode). */
/* Halves away from zero, as Python 2's round() that OpenTraffic used (the twin: round_half_away). */
static inline double st_round(double x) { return round(x); }

static const int prevalence_bounds[9] = {2, 6, 12, 20, 30, 42, 56, 72, 90};
static const int step_offsets[4] = {0, 64, 192, 512};
static const int step_sizes[4] = {1, 2, 5, 10};

/* The builder's work may run without the GIL (Builder.drain, Builder.finish): memory of its
 * own comes from PyMem_Raw*, errors go through pgcopy_raise, output through buf_reserve. */
static int no_memory(void) {
    pgcopy_raise(PyExc_MemoryError, "out of memory");
    return -1;
}

/* ---- one segment's week: per-hour and per-(hour, next) columns ----------------------- */

typedef struct {
    int64_t *v;
    size_t len, cap;
} Vec;

static int vec_push(Vec *x, int64_t v) {
    if (x->len == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 256;
        int64_t *d = PyMem_RawRealloc(x->v, cap * sizeof *d);
        if (!d) return no_memory();
        x->v = d;
        x->cap = cap;
    }
    x->v[x->len++] = v;
    return 0;
}

enum { H_HOURS, H_OBS, H_SPEEDS, H_MEAN, H_VAR, H_PREV, H_NEXTS, N_HOUR_COLS };
enum { X_HOURS, X_IDS, X_COUNTS, X_DELAYS, X_DVAR, X_QLEN, X_QVAR, N_NEXT_COLS };
static const int hour_oids[N_HOUR_COLS] = {OID_INT2, OID_INT8, OID_INT2, OID_INT2, OID_INT4,
                                           OID_INT2, OID_INT2};

typedef struct {
    int has_next; /* 0: the "no next segment" group (sorts last) */
    int64_t next;
    double n, sd, sdd, sq, sqq;
} Sums;

/* Per tile (segment_id & 0x1FFFFFF) of the rows written: what summarize_tiles would read
 * back from them (segments, the sum of total_observations, the largest segment index). */
typedef struct {
    int64_t tile, segments, observations, max_index;
} TileSum;

typedef struct {
    PyObject_HEAD
    /* settings */
    char *mode;
    Py_ssize_t mode_len;
    int64_t first_hour, min_count, max_speed;
    int64_t *length_ids, *length_values;
    Py_ssize_t n_lengths, length_pos;
    PgIn in;
    int unsorted; /* rows kept as read, sorted by finish() */
    HistRow *held;
    size_t n_held, cap_held;
    /* current keys */
    int have_segment, have_hour;
    int64_t segment, hour;
    int64_t length; /* -1: none */
    Sums *nexts;
    size_t n_nexts, cap_nexts;
    Vec hour_cols[N_HOUR_COLS];
    Vec next_cols[N_NEXT_COLS];
    Buf out;
    int64_t rows, segments;
    TileSum *tiles;
    size_t n_tiles, cap_tiles;
} Builder;

static int range_error(const char *what, double v) {
    pgcopy_raise(PyExc_ValueError, "%s out of range: %.17g", what, v);
    return -1;
}

static int64_t jitter(int64_t segment_id, int64_t how, int64_t first_hour) {
    const int64_t P = 2147483647, A = 48271;
    int64_t h = ((segment_id % P + P) % P * A + how) % P;
    h = ((h * A + (first_hour % P + P) % P) % P) * A % P;
    int64_t r = h % 100;
    return r < 15 ? -1 : r >= 85 ? 1 : 0;
}

static int64_t prevalence(int64_t total, int64_t segment_id, int64_t how, int64_t first_hour) {
    if (total <= 0) return 0;
    if (total > prevalence_bounds[8]) return 10;
    int64_t base = 0;
    while (base < 9 && prevalence_bounds[base] < total) base++;
    base += 1 + jitter(segment_id, how, first_hour);
    return base < 1 ? 1 : base;
}

/* The hour's values from its next-segment sums: renderer.traffic.speedtile._hour. */
static int close_hour(Builder *b) {
    if (!b->have_hour) return 0;
    b->have_hour = 0;
    size_t k = b->n_nexts;
    Sums *s = b->nexts;
    int64_t how = b->hour - b->first_hour;
    double min_d = s[0].sd / s[0].n, total = 0;
    for (size_t i = 0; i < k; i++) {
        double m = s[i].sd / s[i].n;
        if (m < min_d) min_d = m;
        total += s[i].n;
    }
    int published = total >= (double)b->min_count;
    double speed = 0, mean_speed = 0, variance = 0;
    int has_length = b->length >= 0;
    double length = (double)b->length;
    if (published && has_length) {
        if (min_d > 0) {
            speed = st_round(length / min_d * 3.6);  /* OpenTraffic's order of operations */
            if (speed > (double)b->max_speed) speed = 0;
        }
        double n_pos = 0, inv = 0;
        for (size_t i = 0; i < k; i++)
            if (s[i].sd > 0) { n_pos += s[i].n; inv += s[i].n * s[i].n / s[i].sd; }
        if (n_pos > 0) {
            mean_speed = st_round(3.6 * length * inv / n_pos);
            if (mean_speed > (double)b->max_speed) mean_speed = 0;
        }
        if (speed > 0) {
            double nv = 0, sv = 0, svv = 0;
            for (size_t i = 0; i < k; i++)
                if (s[i].sd > 0) {
                    nv += 1;
                    sv += s[i].n / s[i].sd;
                    svv += s[i].n * s[i].n / s[i].sd / s[i].sd;
                }
            double spread = svv / nv - (sv / nv) * (sv / nv);
            if (spread < 0) spread = 0;
            variance = st_round((3.6 * length) * (3.6 * length) * spread);
        }
    }
    if (variance > 2147483647.0) return range_error("speed variance", variance);
    if (total > 9.2e18) return range_error("observations", total);
    if (k > INT16_MAX) return range_error("next segments of an hour", (double)k);
    int64_t itotal = (int64_t)total;
    if (vec_push(&b->hour_cols[H_HOURS], how) || vec_push(&b->hour_cols[H_OBS], itotal)
        || vec_push(&b->hour_cols[H_SPEEDS], (int64_t)speed)
        || vec_push(&b->hour_cols[H_MEAN], (int64_t)mean_speed)
        || vec_push(&b->hour_cols[H_VAR], (int64_t)variance)
        || vec_push(&b->hour_cols[H_PREV],
                    published ? prevalence(itotal, b->segment, how, b->first_hour) : 0)
        || vec_push(&b->hour_cols[H_NEXTS], published ? (int64_t)k : 0))
        return -1;
    if (!published) return 0;
    for (size_t i = 0; i < k; i++) {
        double n = s[i].n, mean_d = s[i].sd / n;
        double delay = st_round(mean_d - min_d);
        double dvar = s[i].sdd / n - mean_d * mean_d;
        dvar = st_round(dvar < 0 ? 0 : dvar);
        double qlen = 0, qvar = 0;
        if (has_length) {
            qlen = st_round(s[i].sq / n * length / 255);
            double spread = s[i].sqq / n - (s[i].sq / n) * (s[i].sq / n);
            qvar = st_round((spread < 0 ? 0 : spread) * (length / 255) * (length / 255));
        }
        if (fabs(delay) > 2147483647.0) return range_error("delay", delay);
        if (fabs(qlen) > 2147483647.0) return range_error("queue length", qlen);
        if (dvar > 9.2e18 || qvar > 9.2e18) return range_error("variance", dvar + qvar);
        if (vec_push(&b->next_cols[X_HOURS], how)
            || vec_push(&b->next_cols[X_IDS], s[i].has_next ? s[i].next : NULL_ID)
            || vec_push(&b->next_cols[X_COUNTS], (int64_t)n)
            || vec_push(&b->next_cols[X_DELAYS], (int64_t)delay)
            || vec_push(&b->next_cols[X_DVAR], (int64_t)dvar)
            || vec_push(&b->next_cols[X_QLEN], (int64_t)qlen)
            || vec_push(&b->next_cols[X_QVAR], (int64_t)qvar))
            return -1;
    }
    return 0;
}

static inline int elem_size(int oid) { return oid == OID_INT2 ? 2 : oid == OID_INT4 ? 4 : 8; }

/* Big-endian writers on a cursor, for the per-element loops below: pgcopy.h's put* go
 * through the Buf's length byte by byte, which the compiler must reload after every byte
 * (a char store may alias it); these store whole words. */
static inline char *w16(char *p, int64_t v) {
    uint16_t u = __builtin_bswap16((uint16_t)v);
    memcpy(p, &u, 2);
    return p + 2;
}
static inline char *w32(char *p, int64_t v) {
    uint32_t u = __builtin_bswap32((uint32_t)v);
    memcpy(p, &u, 4);
    return p + 4;
}
static inline char *w64(char *p, int64_t v) {
    uint64_t u = __builtin_bswap64((uint64_t)v);
    memcpy(p, &u, 8);
    return p + 8;
}

static int put_array(Buf *o, const Vec *x, int oid) {
    int size = elem_size(oid);
    size_t body = x->len ? 20 + x->len * (size_t)(4 + size) : 12;
    if (body > INT32_MAX) { pgcopy_raise(PyExc_ValueError, "array too large"); return -1; }
    if (buf_reserve(o, 4 + body)) return -1;
    char *p = o->data + o->len;
    p = w32(p, (int64_t)body);
    p = w32(p, x->len ? 1 : 0);
    p = w32(p, 0); /* no NULL elements */
    p = w32(p, oid);
    if (x->len) {
        p = w32(p, (int64_t)x->len);
        p = w32(p, 1);
        const int64_t *v = x->v;
        if (size == 2)
            for (size_t i = 0; i < x->len; i++) p = w16(w32(p, 2), v[i]);
        else if (size == 4)
            for (size_t i = 0; i < x->len; i++) p = w32(w32(p, 4), v[i]);
        else
            for (size_t i = 0; i < x->len; i++) p = w64(w32(p, 8), v[i]);
    }
    o->len = (size_t)(p - o->data);
    return 0;
}

/* The packed columns (renderer/traffic/speedtile_pack.py): fixed-width big-endian records
 * in bytea, no per-element length word for the server to parse. */

static int put_packed(Buf *o, const Builder *b, int64_t *observations) {
    size_t h = b->hour_cols[H_HOURS].len, x = b->next_cols[X_HOURS].len;
    if (h * HOUR_RECORD > INT32_MAX || x * NEXT_RECORD > INT32_MAX) {
        pgcopy_raise(PyExc_ValueError, "packed columns too large");
        return -1;
    }
    if (buf_reserve(o, 4 + h * HOUR_RECORD + 4 + x * NEXT_RECORD + 4 + 8)) return -1;
    const Vec *hc = b->hour_cols, *xc = b->next_cols;
    char *p = o->data + o->len;
    p = w32(p, (int64_t)(h * HOUR_RECORD));
    for (size_t i = 0; i < h; i++) {
        p = w16(p, hc[H_MEAN].v[i]);
        p = w32(p, hc[H_VAR].v[i]);
        p = w16(p, hc[H_PREV].v[i]);
        p = w16(p, hc[H_NEXTS].v[i]);
    }
    p = w32(p, (int64_t)(x * NEXT_RECORD));
    for (size_t i = 0; i < x; i++) {
        p = w16(p, xc[X_HOURS].v[i]);
        p = w64(p, xc[X_IDS].v[i]); /* NULL_ID: speedtile_pack.NO_NEXT */
        p = w64(p, xc[X_COUNTS].v[i]);
        p = w32(p, xc[X_DELAYS].v[i]);
        p = w64(p, xc[X_DVAR].v[i]);
        p = w32(p, xc[X_QLEN].v[i]);
        p = w64(p, xc[X_QVAR].v[i]);
    }
    int64_t total = 0;
    for (size_t i = 0; i < h; i++) total += hc[H_OBS].v[i];
    p = w32(p, 8);
    p = w64(p, total);
    o->len = (size_t)(p - o->data);
    *observations = total;
    return 0;
}

/* Count the segment row just written in its tile's sums (renderer.segment_tile_id and
 * renderer.segment_index, as SQL computes them). A tile family has 17 to 273 tiles: a
 * linear search, the last tile first. */
static int count_tile(Builder *b, int64_t observations) {
    int64_t tile = b->segment & 33554431, index = b->segment >> 25;
    for (size_t i = b->n_tiles; i-- > 0;) {
        TileSum *t = &b->tiles[i];
        if (t->tile == tile) {
            t->segments++;
            t->observations += observations;
            if (index > t->max_index) t->max_index = index;
            return 0;
        }
    }
    if (b->n_tiles == b->cap_tiles) {
        size_t cap = b->cap_tiles ? b->cap_tiles * 2 : 32;
        TileSum *d = PyMem_RawRealloc(b->tiles, cap * sizeof *d);
        if (!d) return no_memory();
        b->tiles = d;
        b->cap_tiles = cap;
    }
    b->tiles[b->n_tiles++] = (TileSum){tile, 1, observations, index};
    return 0;
}

static int close_segment(Builder *b) {
    if (close_hour(b)) return -1;
    if (!b->have_segment) return 0;
    b->have_segment = 0;
    Buf *o = &b->out;
    if (buf_reserve(o, 2 + 4 + (size_t)b->mode_len + 8 + 12 + 8)) return -1;
    put16(o, 10);
    put32(o, (int32_t)b->mode_len);
    memcpy(o->data + o->len, b->mode, (size_t)b->mode_len);
    o->len += (size_t)b->mode_len;
    put32(o, 4);
    put32(o, (int32_t)b->first_hour);
    put32(o, 8);
    put64(o, b->segment);
    if (b->length >= 0) {
        put32(o, 4);
        put32(o, (int32_t)b->length);
    } else {
        put32(o, -1);
    }
    static const int arrays[3] = {H_HOURS, H_OBS, H_SPEEDS};
    for (int c = 0; c < 3; c++)
        if (put_array(o, &b->hour_cols[arrays[c]], hour_oids[arrays[c]])) return -1;
    int64_t observations;
    if (put_packed(o, b, &observations) || count_tile(b, observations)) return -1;
    for (int c = 0; c < N_HOUR_COLS; c++) b->hour_cols[c].len = 0;
    for (int c = 0; c < N_NEXT_COLS; c++) b->next_cols[c].len = 0;
    b->segments++;
    return 0;
}

static int64_t length_of(Builder *b, int64_t segment) {
    while (b->length_pos < b->n_lengths && b->length_ids[b->length_pos] < segment)
        b->length_pos++;
    if (b->length_pos < b->n_lengths && b->length_ids[b->length_pos] == segment)
        return b->length_values[b->length_pos];
    return -1;
}

static int add_row(Builder *b, int64_t segment, int has_next, int64_t next, int64_t hour,
                   int code, int queue, int64_t count) {
    if (code < 0 || code > 255) {
        pgcopy_raise(PyExc_ValueError, "duration code must be in 0..255, got %d", code);
        return -1;
    }
    if (b->have_segment && (segment < b->segment
                            || (segment == b->segment && hour < b->hour))) {
        pgcopy_raise(PyExc_ValueError, "histogram rows are not in (segment, hour) order");
        return -1;
    }
    if (!b->have_segment || segment != b->segment) {
        if (close_segment(b)) return -1;
        b->have_segment = 1;
        b->segment = segment;
        b->length = length_of(b, segment);
    }
    if (!b->have_hour || hour != b->hour) {
        if (close_hour(b)) return -1;
        b->have_hour = 1;
        b->hour = hour;
        b->n_nexts = 0;
    }
    Sums *s = b->n_nexts ? &b->nexts[b->n_nexts - 1] : NULL;
    if (!s || s->has_next != has_next || (has_next && s->next != next)) {
        if (s && (!s->has_next || (has_next && next < s->next))) {
            pgcopy_raise(PyExc_ValueError,
                         "histogram rows are not in (segment, hour, next) order");
            return -1;
        }
        if (b->n_nexts == b->cap_nexts) {
            size_t cap = b->cap_nexts ? b->cap_nexts * 2 : 16;
            Sums *d = PyMem_RawRealloc(b->nexts, cap * sizeof *d);
            if (!d) return no_memory();
            b->nexts = d;
            b->cap_nexts = cap;
        }
        s = &b->nexts[b->n_nexts++];
        memset(s, 0, sizeof *s);
        s->has_next = has_next;
        s->next = next;
    }
    double d = step_offsets[code >> 6] + (code & 63) * step_sizes[code >> 6];
    double c = (double)count, q = queue;
    s->n += c;
    s->sd += c * d;
    s->sdd += c * d * d;
    s->sq += c * q;
    s->sqq += c * q * q;
    b->rows++;
    return 0;
}

static int bad_input(const char *why) {
    pgcopy_raise(PyExc_ValueError, "bad histogram COPY stream: %s", why);
    return -1;
}

static int hold(Builder *b, const int64_t *v, int has_next) {
    if (b->n_held == b->cap_held) {
        size_t cap = b->cap_held ? b->cap_held * 2 : 1 << 16;
        HistRow *d = PyMem_RawRealloc(b->held, cap * sizeof *d);
        if (!d) return no_memory();
        b->held = d;
        b->cap_held = cap;
    }
    b->held[b->n_held++] = (HistRow){v[0], v[1], v[5], (int32_t)v[2], (int16_t)v[3],
                                     (int16_t)v[4], has_next};
    return 0;
}

/* Parse as many whole rows of [p, p + n) as there are; return bytes used, or -1. */
static Py_ssize_t parse(void *self, const unsigned char *p, Py_ssize_t n) {
    Builder *b = self;
    static const int widths[6] = {8, 8, 4, 2, 2, 8};
    Py_ssize_t at = 0, next = 0;
    PgField f[6];
    for (;;) {
        int r = pgcopy_row(p, n, at, 6, f, &next, "histogram");
        if (r == PGCOPY_MORE) return at;
        if (r == PGCOPY_BAD) return -1;
        if (r == PGCOPY_TRAILER) { b->in.trailer_seen = 1; return next; }
        /* widths: 8, 8 or NULL, 4, 2, 2, 8 */
        int64_t v[6] = {0};
        for (int i = 0; i < 6; i++) {
            if (f[i].len == -1) {
                if (i != 1) return bad_input("NULL in a NOT NULL column");
                continue;
            }
            if (f[i].len != widths[i]) return bad_input("unexpected column width");
            v[i] = f[i].len == 8 ? get64(f[i].p) : f[i].len == 4 ? get32(f[i].p) : get16(f[i].p);
        }
        if (b->unsorted) {
            if (hold(b, v, f[1].len != -1)) return -1;
        } else if (add_row(b, v[0], f[1].len != -1, v[1], v[2], (int)v[3], (int)v[4], v[5])) {
            return -1;
        }
        at = next;
    }
}

static PyObject *Builder_feed(Builder *b, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE)) return NULL;
    int rc = pgcopy_feed(&b->in, b, parse, view.buf, view.len);
    PyBuffer_Release(&view);
    if (rc) return NULL;
    Py_RETURN_NONE;
}

/* Reading a COPY straight from the driver's libpq (pgcopy.c). */
static PyObject *Builder_drain(Builder *b, PyObject *arg) {
    void *conn = PyLong_AsVoidPtr(arg);
    if (pgcopy_drain_released(&b->in, b, parse, conn)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Builder_take(Builder *b, PyObject *unused) { return pgcopy_take(&b->out); }

static PyObject *Builder_finish(Builder *b, PyObject *unused) {
    if (pgcopy_check_end(&b->in)) return NULL;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS /* the sort and the last segment: other builders run meanwhile */
    if (b->unsorted) {
        failed = speedtile_sort(b->held, b->n_held);
        for (size_t i = 0; !failed && i < b->n_held; i++) {
            HistRow *r = &b->held[i];
            failed = add_row(b, r->segment, r->has_next, r->next, r->hour, r->code, r->queue,
                             r->count);
        }
        b->n_held = 0;
    }
    failed = failed || close_segment(b);
    Py_END_ALLOW_THREADS
    if (failed) return NULL;
    if (buf_reserve(&b->out, 2)) return NULL;
    put16(&b->out, -1);
    return pgcopy_take(&b->out);
}

static int Builder_init(Builder *b, PyObject *args, PyObject *kw) {
    static char *names[] = {"mode", "first_hour", "min_count", "max_speed", "length_ids",
                            "length_values", "unsorted", NULL};
    const char *mode;
    Py_ssize_t mode_len;
    long long first_hour, min_count, max_speed;
    Py_buffer ids, values;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#LLLy*y*|p", names, &mode, &mode_len,
                                     &first_hour, &min_count, &max_speed, &ids, &values,
                                     &b->unsorted))
        return -1;
    int rc = -1;
    if (ids.len != values.len || ids.len % 8) {
        PyErr_SetString(PyExc_ValueError, "length ids and values: int64 buffers of one size");
        goto done;
    }
    b->mode = PyMem_Malloc((size_t)mode_len + 1);
    b->n_lengths = ids.len / 8;
    b->length_ids = PyMem_Malloc((size_t)ids.len + 8);
    b->length_values = PyMem_Malloc((size_t)values.len + 8);
    if (!b->mode || !b->length_ids || !b->length_values) { PyErr_NoMemory(); goto done; }
    memcpy(b->mode, mode, (size_t)mode_len);
    b->mode_len = mode_len;
    memcpy(b->length_ids, ids.buf, (size_t)ids.len);
    memcpy(b->length_values, values.buf, (size_t)values.len);
    for (Py_ssize_t i = 1; i < b->n_lengths; i++)
        if (b->length_ids[i] <= b->length_ids[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "length ids must be strictly ascending");
            goto done;
        }
    b->first_hour = first_hour;
    b->min_count = min_count;
    b->max_speed = max_speed;
    b->in.what = "histogram";
    if (pgcopy_put_header(&b->out)) goto done;
    rc = 0;
done:
    PyBuffer_Release(&ids);
    PyBuffer_Release(&values);
    return rc;
}

static void Builder_dealloc(Builder *b) {
    PyMem_Free(b->mode);
    PyMem_Free(b->length_ids);
    PyMem_Free(b->length_values);
    pgcopy_free(&b->in);
    PyMem_RawFree(b->held);
    PyMem_RawFree(b->nexts);
    PyMem_RawFree(b->tiles);
    PyMem_Free(b->out.data);
    for (int c = 0; c < N_HOUR_COLS; c++) PyMem_RawFree(b->hour_cols[c].v);
    for (int c = 0; c < N_NEXT_COLS; c++) PyMem_RawFree(b->next_cols[c].v);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyObject *Builder_rows(Builder *b, void *unused) { return PyLong_FromLongLong(b->rows); }
static PyObject *Builder_segments(Builder *b, void *unused) {
    return PyLong_FromLongLong(b->segments);
}

static int tile_order(const void *a, const void *b) {
    int64_t x = ((const TileSum *)a)->tile, y = ((const TileSum *)b)->tile;
    return (x > y) - (x < y);
}

static PyObject *Builder_tiles(Builder *b, void *unused) {
    qsort(b->tiles, b->n_tiles, sizeof *b->tiles, tile_order);
    PyObject *list = PyList_New((Py_ssize_t)b->n_tiles);
    for (size_t i = 0; list && i < b->n_tiles; i++) {
        TileSum *t = &b->tiles[i];
        PyObject *item = Py_BuildValue("(LLLL)", (long long)t->tile, (long long)t->segments,
                                       (long long)t->observations, (long long)t->max_index);
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyMethodDef Builder_methods[] = {
    {"feed", (PyCFunction)Builder_feed, METH_O, "Parse a chunk of the binary COPY input."},
    {"take", (PyCFunction)Builder_take, METH_NOARGS, "The output so far (binary COPY)."},
    {"drain", (PyCFunction)Builder_drain, METH_O,
     "Feed a COPY in progress, read straight from the libpq connection at this address."},
    {"finish", (PyCFunction)Builder_finish, METH_NOARGS, "The rest of the output."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Builder_getset[] = {
    {"rows", (getter)Builder_rows, NULL, "Histogram rows read.", NULL},
    {"segments", (getter)Builder_segments, NULL, "Segment rows written.", NULL},
    {"tiles", (getter)Builder_tiles, NULL,
     "Per tile of the rows written, by tile id: (tile_id, segments, observations, "
     "max_index), what summarize_tiles reads back (twin: speedtile.tile_sums).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "renderer._speedtile.Builder",
    .tp_basicsize = sizeof(Builder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Speed-tile rows from sorted histogram rows, binary COPY in and out.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Builder_init,
    .tp_dealloc = (destructor)Builder_dealloc,
    .tp_methods = Builder_methods,
    .tp_getset = Builder_getset,
};

static PyMethodDef module_methods[] = {
    {"has_libpq", pgcopy_has_libpq, METH_NOARGS,
     "Whether exactly one libpq is loaded, so that Builder.drain can read from it."},
    {"unpack", speedtile_unpack, METH_VARARGS,
     "The lists of traffic_speeds' packed columns: unpack(hour_values, nexts)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedtile",
    "The speed-tile build's per-(segment, hour) loop (twin: renderer.traffic.speedtile).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedtile(void) {
    if (PyType_Ready(&BuilderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&BuilderType);
    if (PyModule_AddObject(m, "Builder", (PyObject *)&BuilderType) < 0) {
        Py_DECREF(&BuilderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
