/*
 * binning_merge.c: merge_lengths, several binary COPY payloads of segment lengths
 * (copy_lengths in binning_emit.c) read back and written as one, with the rows of a
 * (segment, length) that recurs across them summed.
 */
#include "binning.h"

/* The same segment reports its length in every hour of a batch, so a batch of 32 items
 * writes a fraction of its rows. */

#define LENGTH_ROW 34 /* int16 3, then int32 8 + int64, int32 4 + int32, int32 8 + int64 */

typedef struct {
    uint64_t segment;
    uint32_t length;
    uint64_t count;
} LengthRow;

static inline uint64_t
get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline uint32_t
get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int
length_row_cmp(const void *a, const void *b)
{
    const LengthRow *x = a, *y = b; /* as the columns' signed bigint, integer */
    int64_t sx = (int64_t)x->segment, sy = (int64_t)y->segment;
    int32_t lx = (int32_t)x->length, ly = (int32_t)y->length;
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return lx < ly ? -1 : lx > ly;
}

static const unsigned char LENGTH_ROW_SHAPE[] = {0, 3, 0, 0, 0, 8};

PyObject *
merge_lengths(PyObject *payloads)
{
    PyObject *seq = PySequence_Fast(payloads, "payloads must be a sequence of bytes");
    PyObject *bytes = NULL, *result = NULL;
    LengthRow *rows = NULL;
    size_t n = 0, total = 0, kept = 0;
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "payloads must be a sequence of bytes");
            goto done;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(item);
        const char *data = PyBytes_AS_STRING(item);
        if (size < COPY_HEADER + 2 || memcmp(data, COPY_SIGNATURE, sizeof(COPY_SIGNATURE)) != 0
            || (size - COPY_HEADER - 2) % LENGTH_ROW != 0) {
            PyErr_SetString(PyExc_ValueError, "not a binary COPY payload of segment lengths");
            goto done;
        }
        total += (size_t)(size - COPY_HEADER - 2) / LENGTH_ROW;
    }
    if ((rows = PyMem_Malloc((total ? total : 1) * sizeof(LengthRow))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(item) + COPY_HEADER;
        const unsigned char *end = p + (PyBytes_GET_SIZE(item) - COPY_HEADER - 2);
        for (; p < end; p += LENGTH_ROW, n++) {
            if (memcmp(p, LENGTH_ROW_SHAPE, sizeof(LENGTH_ROW_SHAPE)) != 0
                || get32(p + 14) != 4 || get32(p + 22) != 8) {
                PyErr_SetString(PyExc_ValueError, "not a binary COPY payload of segment lengths");
                goto done;
            }
            rows[n].segment = get64(p + 6);
            rows[n].length = get32(p + 18);
            rows[n].count = get64(p + 26);
        }
    }
    qsort(rows, n, sizeof(LengthRow), length_row_cmp);
    for (size_t i = 0; i < n; i++) {
        if (kept && rows[kept - 1].segment == rows[i].segment
            && rows[kept - 1].length == rows[i].length) {
            if (rows[i].count > INT64_LIMIT - rows[kept - 1].count) {
                count_overflow();
                goto done;
            }
            rows[kept - 1].count += rows[i].count;
        } else {
            rows[kept++] = rows[i];
        }
    }
    char *p;
    if ((bytes = copy_start(COPY_HEADER + kept * LENGTH_ROW + 2, &p)) == NULL)
        goto done;
    for (size_t i = 0; i < kept; i++) {
        p = put16(p, 3);
        p = put64(put32(p, 8), rows[i].segment);
        p = put32(put32(p, 4), rows[i].length);
        p = put64(put32(p, 8), rows[i].count);
    }
    put16(p, UINT16_MAX);
    result = Py_BuildValue("nN", (Py_ssize_t)kept, bytes);
done:
    PyMem_Free(rows);
    Py_DECREF(seq);
    return result;
}
