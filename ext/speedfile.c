/* renderer._speedfile.subtile: the protobuf bytes of one subtile's .spd and .nex files,
 * read straight from traffic_speeds' rows (the packed records of speedtile_pack.py).
 *
 * Twin: renderer/traffic/export.py subtile_py, over the rows unpacked (tests hold the
 * bytes equal). The same rules: packed varint arrays in field-number order, as upb writes
 * them; the .spd arrays sparse (zeros between the slots with data), nextSegmentIndices the
 * running count of next entries before each slot; every uint32 value clamped into
 * [0, 2^32 - 1], a next id NULL written 2^42 - 1 and a negative one 0; slots must ascend
 * strictly and stay below the subtile's size (ValueError otherwise, as the twin). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgcopy.h"
#include "speedtile.h"

#define HOURS_PER_WEEK 168
#define NO_NEXT_ID ((UINT64_C(1) << 42) - 1)

/* A growable array of 64-bit values. */
typedef struct {
    int64_t *v;
    size_t n, cap;
} Vec;

static int push(Vec *a, int64_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        int64_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

static uint64_t u32(int64_t v) {
    return v < 0 ? 0 : v > (int64_t)UINT32_MAX ? UINT32_MAX : (uint64_t)v;
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v > 0x7F) {
        v >>= 7;
        n++;
    }
    return n;
}

static unsigned char *put_varint(unsigned char *p, uint64_t v) {
    while (v > 0x7F) {
        *p++ = (unsigned char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* The output is sized exactly first, then written once into the bytes object: a subtile's
 * .spd is about 10 MB, nearly all runs of zeros and of one repeated varint. */

static size_t field_len(int number, size_t payload) {
    return varint_len((uint64_t)number << 3 | 2) + varint_len(payload) + payload;
}

static unsigned char *put_tag(unsigned char *p, int number, size_t payload) {
    return put_varint(put_varint(p, (uint64_t)number << 3 | 2), payload);
}

/* Slots ascending strictly and below size (the twin's bytes() of a negative count fails). */
static int check_slots(const Vec *slots, int64_t size) {
    int64_t last = 0;
    for (size_t k = 0; k < slots->n; k++) {
        if (slots->v[k] < last) goto bad;
        last = slots->v[k] + 1;
    }
    if (last <= size) return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "slots not ascending within the subtile");
    return -1;
}

/* Packed payload of `size` values, 0 except values[k] at slots[k]. */
static size_t sparse_len(int64_t size, const Vec *values) {
    size_t n = (size_t)size - values->n;
    for (size_t k = 0; k < values->n; k++) n += varint_len((uint64_t)values->v[k]);
    return n;
}

static unsigned char *put_sparse(unsigned char *p, int64_t size, const Vec *slots,
                                 const Vec *values) {
    int64_t last = 0;
    for (size_t k = 0; k < slots->n; k++) {
        memset(p, 0, (size_t)(slots->v[k] - last));
        p = put_varint(p + (slots->v[k] - last), (uint64_t)values->v[k]);
        last = slots->v[k] + 1;
    }
    memset(p, 0, (size_t)(size - last));
    return p + (size - last);
}

/* OpenTraffic's nextSegmentIndices: at every slot, the next entries of the slots before it
 * (constant from one slot with entries to the next). */
static size_t running_len(int64_t size, const Vec *slots, const Vec *counts) {
    size_t n = (size_t)(slots->n ? slots->v[0] + 1 : size);
    uint64_t total = 0;
    for (size_t k = 0; k < slots->n; k++) {
        total += (uint64_t)counts->v[k];
        int64_t end = k + 1 < slots->n ? slots->v[k + 1] : size - 1;
        n += varint_len(total) * (size_t)(end - slots->v[k]);
    }
    return n;
}

static unsigned char *put_running(unsigned char *p, int64_t size, const Vec *slots,
                                  const Vec *counts) {
    size_t zeros = (size_t)(slots->n ? slots->v[0] + 1 : size);
    memset(p, 0, zeros);
    p += zeros;
    uint64_t total = 0;
    for (size_t k = 0; k < slots->n; k++) {
        total += (uint64_t)counts->v[k];
        int64_t end = k + 1 < slots->n ? slots->v[k + 1] : size - 1;
        size_t times = (size_t)(end - slots->v[k]);
        if (!times) continue;
        size_t len = (size_t)(put_varint(p, total) - p), done = len, all = len * times;
        while (done < all) { /* the run by doubling copies */
            size_t step = done < all - done ? done : all - done;
            memcpy(p + done, p, step);
            done += step;
        }
        p += all;
    }
    return p;
}

static size_t dense_len(const Vec *values) {
    size_t n = 0;
    for (size_t k = 0; k < values->n; k++) n += varint_len((uint64_t)values->v[k]);
    return n;
}

static unsigned char *put_dense(unsigned char *p, const Vec *values) {
    for (size_t k = 0; k < values->n; k++) p = put_varint(p, (uint64_t)values->v[k]);
    return p;
}

enum { SLOT, SPEED, VARIANCE, PREVALENCE, NEXT_SLOT, NEXT_COUNT, ID, DELAY, DELAY_VAR, QUEUE,
       QUEUE_VAR, VECS };

static int int_item(PyObject *list, Py_ssize_t i, int64_t *out) {
    long long v = PyLong_AsLongLong(PyList_GET_ITEM(list, i));
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* One row (segment_index, hours, speeds, hour_values, nexts) into the arrays. */
static int gather(PyObject *row, int64_t start, Vec *a) {
    long long index;
    PyObject *hours, *speeds;
    Py_buffer h, x;
    if (!PyTuple_Check(row)) {
        PyErr_SetString(PyExc_TypeError, "a row is a tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(row, "LO!O!y*y*", &index, &PyList_Type, &hours, &PyList_Type,
                          &speeds, &h, &x))
        return -1;
    int rc = -1;
    Py_ssize_t n = PyList_GET_SIZE(hours);
    if (PyList_GET_SIZE(speeds) != n || h.len != n * HOUR_RECORD || x.len % NEXT_RECORD) {
        PyErr_Format(PyExc_ValueError, "segment %lld: %zd hours, %zd speeds, %zd and %zd "
                     "packed bytes", index, n, PyList_GET_SIZE(speeds), h.len, x.len);
        goto done;
    }
    int64_t base = (index - start) * HOURS_PER_WEEK;
    const unsigned char *hv = h.buf;
    for (Py_ssize_t i = 0; i < n; i++, hv += HOUR_RECORD) {
        int64_t how, speed;
        if (int_item(hours, i, &how) || int_item(speeds, i, &speed)) goto done;
        if (push(&a[SLOT], base + how) || push(&a[SPEED], (int64_t)u32(speed))
            || push(&a[VARIANCE], (int64_t)u32(get32(hv + 2)))
            || push(&a[PREVALENCE], (int64_t)u32(get16(hv + 6))))
            goto done;
    }
    const unsigned char *r = x.buf;
    Py_ssize_t m = x.len / NEXT_RECORD;
    for (Py_ssize_t i = 0; i < m; i++, r += NEXT_RECORD) {
        int64_t how = get16(r), id = get64(r + 2);
        /* consecutive entries of one hour are one slot, counted (the twin's groupby) */
        if (i > 0 && how == get16(r - NEXT_RECORD))
            a[NEXT_COUNT].v[a[NEXT_COUNT].n - 1]++;
        else if (push(&a[NEXT_SLOT], base + how) || push(&a[NEXT_COUNT], 1))
            goto done;
        if (push(&a[ID], id == NULL_ID ? (int64_t)NO_NEXT_ID : id < 0 ? 0 : id)
            || push(&a[DELAY], (int64_t)u32(get32(r + 18)))
            || push(&a[DELAY_VAR], (int64_t)u32(get64(r + 22)))
            || push(&a[QUEUE], (int64_t)u32(get32(r + 30)))
            || push(&a[QUEUE_VAR], (int64_t)u32(get64(r + 34))))
            goto done;
    }
    rc = 0;
done:
    PyBuffer_Release(&h);
    PyBuffer_Release(&x);
    return rc;
}

/* _field(1, header + fields) as a bytes object, its fields of lengths len[] written by
 * put(p, k) in turn. */
typedef unsigned char *(*PutField)(unsigned char *p, int k, int64_t size, Vec *a);

static PyObject *tile_bytes(const Py_buffer *header, const int *numbers, const size_t *len,
                            int fields, PutField put, int64_t size, Vec *a) {
    size_t body = (size_t)header->len;
    for (int k = 0; k < fields; k++)
        if (len[k] != (size_t)-1) body += field_len(numbers[k], len[k]);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)field_len(1, body));
    if (!out) return NULL;
    unsigned char *p = put_tag((unsigned char *)PyBytes_AS_STRING(out), 1, body);
    memcpy(p, header->buf, (size_t)header->len);
    p += header->len;
    for (int k = 0; k < fields; k++)
        if (len[k] != (size_t)-1) p = put(put_tag(p, numbers[k], len[k]), k, size, a);
    return out;
}

static const int spd_numbers[5] = {12, 13, 14, 15, 16};
static const int spd_values[3] = {SPEED, VARIANCE, PREVALENCE};
static const int nex_numbers[5] = {17, 18, 19, 20, 21};

static unsigned char *put_spd(unsigned char *p, int k, int64_t size, Vec *a) {
    if (k < 3) return put_sparse(p, size, &a[SLOT], &a[spd_values[k]]);
    if (k == 3) return put_running(p, size, &a[NEXT_SLOT], &a[NEXT_COUNT]);
    return put_sparse(p, size, &a[NEXT_SLOT], &a[NEXT_COUNT]);
}

static unsigned char *put_nex(unsigned char *p, int k, int64_t size, Vec *a) {
    return put_dense(p, &a[ID + k]);
}

/* subtile(header, start, segments, rows) -> (spd, nex). */
static PyObject *subtile(PyObject *unused, PyObject *args) {
    Py_buffer header;
    long long start, segments;
    PyObject *rows;
    if (!PyArg_ParseTuple(args, "y*LLO", &header, &start, &segments, &rows)) return NULL;
    PyObject *result = NULL, *spd = NULL, *nex = NULL;
    PyObject *seq = PySequence_Fast(rows, "rows must be a sequence");
    Vec a[VECS] = {{0}};
    if (!seq) goto done;
    if (segments < 0 || segments > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "segments out of range");
        goto done;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
        if (gather(PySequence_Fast_GET_ITEM(seq, i), start, a)) goto done;
    int64_t size = segments * HOURS_PER_WEEK;
    size_t len[5];
    for (int k = 0; k < 5; k++) len[k] = (size_t)-1; /* (size_t)-1: no such field */
    if (size) {
        if (check_slots(&a[SLOT], size) || check_slots(&a[NEXT_SLOT], size)) goto done;
        for (int k = 0; k < 3; k++) len[k] = sparse_len(size, &a[spd_values[k]]);
        len[3] = running_len(size, &a[NEXT_SLOT], &a[NEXT_COUNT]);
        len[4] = sparse_len(size, &a[NEXT_COUNT]);
    }
    if (!(spd = tile_bytes(&header, spd_numbers, len, 5, put_spd, size, a))) goto done;
    for (int k = 0; k < 5; k++) len[k] = a[ID + k].n ? dense_len(&a[ID + k]) : (size_t)-1;
    if (!(nex = tile_bytes(&header, nex_numbers, len, 5, put_nex, size, a))) goto done;
    result = PyTuple_Pack(2, spd, nex);
done:
    for (int f = 0; f < VECS; f++) free(a[f].v);
    Py_XDECREF(spd);
    Py_XDECREF(nex);
    Py_XDECREF(seq);
    PyBuffer_Release(&header);
    return result;
}
static PyMethodDef methods[] = {
    {"subtile", subtile, METH_VARARGS,
     "subtile(header, start, segments, rows) -> (spd, nex): the protobuf bytes of one "
     "subtile's .spd and .nex files; rows (segment_index, hours, speeds, hour_values, nexts)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedfile",
    "The .spd/.nex protobuf of a subtile (twin: renderer.traffic.export._speed_subtile).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedfile(void) { return PyModule_Create(&module); }
