/*
 * binning_emit.c: the results of renderer._binning, built with the GIL held: the bins and
 * lengths sorted into result order, then either Python objects (bin_file) or PostgreSQL
 * binary COPY payloads (bin_prefix); and the rejects with their reasons.
 */
#include "binning.h"

/* Same strings as renderer/_binning_py.py. WHY_FIELDS is formatted with the field count. */
static const char *const REASON_TEXT[WHY_COUNT_OF_REASONS] = {
    NULL,
    NULL,
    "bad segment_id",
    "bad next_segment_id",
    "bad duration",
    "bad count",
    "bad length",
    "bad queue_length",
    "bad minimum_timestamp",
    "bad maximum_timestamp",
    "maximum_timestamp before minimum_timestamp",
    "bad vehicle_type",
    "segment outside tile",
    "time outside hour",
    "NUL byte",
    "count too large (max 4294967295)",
    "length too large (max 2147483647 m)",
};

/* ------------------------------------------------------------------------------------- */
/* Building the Python result. */

PyObject *
from_u128(uint64_t hi, uint64_t lo)
{
    if (hi == 0)
        return PyLong_FromUnsignedLongLong(lo);
    PyObject *h = PyLong_FromUnsignedLongLong(hi), *l = NULL, *s = NULL, *shift = NULL;
    PyObject *result = NULL;
    if (h && (l = PyLong_FromUnsignedLongLong(lo)) && (shift = PyLong_FromLong(64))
        && (s = PyNumber_Lshift(h, shift)))
        result = PyNumber_Or(s, l);
    Py_XDECREF(h);
    Py_XDECREF(l);
    Py_XDECREF(s);
    Py_XDECREF(shift);
    return result;
}

PyObject *
make_result(uint64_t rows_read, uint64_t rows_accepted, PyObject *observations,
            PyObject *bins, PyObject *rejects, PyObject *file_error, PyObject *lengths)
{
    /* Steals every object argument; any may be NULL after an error. */
    PyObject *result = NULL;
    if (observations && bins && rejects && file_error && lengths)
        result = PyObject_CallFunction(BinResult, "KKOOOOO", (unsigned long long)rows_read,
                                       (unsigned long long)rows_accepted, observations, bins,
                                       rejects, file_error, lengths);
    Py_XDECREF(observations);
    Py_XDECREF(bins);
    Py_XDECREF(rejects);
    Py_XDECREF(file_error);
    Py_XDECREF(lengths);
    return result;
}

PyObject *
file_error(PyObject *reason)
{
    return make_result(0, 0, PyLong_FromLong(0), PyList_New(0), PyList_New(0), reason,
                       PyList_New(0));
}

static int
compare_modes(const void *a, const void *b)
{
    const Mode *x = *(const Mode *const *)a, *y = *(const Mode *const *)b;
    int c = memcmp(x->text, y->text, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Bins are sorted by (mode text, segment, next with none first, duration, queue): with the
 * mode replaced by its rank, that is the 128-bit key (rank:segment, next:duration:queue). */
typedef struct {
    uint64_t major, minor, lo;
    uint32_t hi, mode;
} SortKey;

static inline int
key_less(const SortKey *x, const SortKey *y)
{
    return x->major < y->major || (x->major == y->major && x->minor < y->minor);
}

/* Bottom-up merge sort: O(n log n) whatever the input, with the comparison inlined (qsort's
 * indirect call per comparison costs more than the comparison). Returns the sorted array,
 * which is either keys or tmp. */
static SortKey *
sort_keys(SortKey *keys, SortKey *tmp, size_t n)
{
    const size_t run = 16;
    for (size_t lo = 0; lo < n; lo += run) {
        size_t hi = lo + run < n ? lo + run : n;
        for (size_t i = lo + 1; i < hi; i++) {
            SortKey x = keys[i];
            size_t j = i;
            for (; j > lo && key_less(&x, &keys[j - 1]); j--)
                keys[j] = keys[j - 1];
            keys[j] = x;
        }
    }
    SortKey *src = keys, *dst = tmp;
    for (size_t width = run; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int right = key_less(&src[j], &src[i]);
                dst[k++] = src[right ? j : i];
                j += right;
                i += !right;
            }
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        SortKey *swap = src;
        src = dst;
        dst = swap;
    }
    return src;
}

/* The bins in result order, (mode text, segment, next with none first, duration, queue):
 * the sorted array is either *keys or *tmp, both to be freed by the caller; NULL with an
 * exception set on memory error. Also sets each mode's rank. */
static SortKey *
sorted_bins(Job *job, SortKey **keys_out, SortKey **tmp_out)
{
    ModeTable *m = &job->modes;
    size_t nbins = job->bins.used;
    Mode **order = PyMem_Malloc((m->n ? m->n : 1) * sizeof(Mode *));
    SortKey *keys = *keys_out = PyMem_Malloc((nbins ? nbins : 1) * sizeof(SortKey));
    SortKey *tmp = *tmp_out = PyMem_Malloc((nbins ? nbins : 1) * sizeof(SortKey));
    SortKey *sorted = NULL;
    if (!order || !keys || !tmp) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < m->n; i++)
        order[i] = &m->items[i];
    qsort(order, m->n, sizeof(Mode *), compare_modes);
    for (size_t i = 0; i < m->n; i++)
        order[i]->rank = (uint32_t)i;
    /* Ranks fit the 18 bits above the segment when there are fewer than 2^18 modes. More
     * cannot come from real files; then sort without the rank, and stably by rank after. */
    int few_modes = m->n < (1u << 18);
    size_t k = 0;
    for (size_t i = 0; i <= job->bins.mask; i++) {
        Bin *b = &job->bins.slots[i];
        if (b->k1 == EMPTY)
            continue;
        uint64_t rank = few_modes ? m->items[b->mode].rank : 0;
        keys[k].major = rank << 46 | (b->k1 & ID_MASK);
        keys[k].minor = b->k2 << 16 | ((b->k1 >> 46) & 0xff) << 8 | b->k1 >> 54;
        keys[k].lo = b->lo;
        keys[k].hi = b->hi;
        keys[k].mode = b->mode;
        k++;
    }
    sorted = sort_keys(keys, tmp, nbins);
    if (!few_modes) {
        SortKey *into = sorted == keys ? tmp : keys;
        size_t *counts = PyMem_Calloc(m->n + 1, sizeof(size_t));
        if (counts == NULL) {
            PyErr_NoMemory();
            sorted = NULL;
            goto done;
        }
        for (size_t i = 0; i < nbins; i++)
            counts[m->items[sorted[i].mode].rank + 1]++;
        for (size_t i = 1; i <= m->n; i++)
            counts[i] += counts[i - 1];
        for (size_t i = 0; i < nbins; i++)
            into[counts[m->items[sorted[i].mode].rank]++] = sorted[i];
        PyMem_Free(counts);
        sorted = into;
    }
done:
    PyMem_Free(order);
    return sorted;
}

PyObject *
build_bins(Job *job)
{
    ModeTable *m = &job->modes;
    size_t nbins = job->bins.used;
    PyObject *list = NULL, **names = NULL;
    SortKey *keys = NULL, *tmp = NULL, *sorted = NULL;
    int gc_was_enabled = 0;

    sorted = sorted_bins(job, &keys, &tmp);
    if (sorted == NULL)
        goto done;
    names = PyMem_Calloc(m->n ? m->n : 1, sizeof(PyObject *));
    if (names == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < m->n; i++) {
        names[i] = PyUnicode_FromStringAndSize(m->items[i].text, m->items[i].len);
        if (names[i] == NULL)
            goto done;
    }

    /* Hundreds of thousands of new tuples would trigger collections that find nothing. */
    gc_was_enabled = PyGC_Disable();
    list = PyList_New((Py_ssize_t)nbins);
    if (list == NULL)
        goto done;
    for (size_t i = 0; i < nbins; i++) {
        const SortKey *b = &sorted[i];
        PyObject *name = names[b->mode];
        PyObject *item = PyTuple_New(6);
        if (item == NULL) {
            Py_CLEAR(list);
            goto done;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
        Py_INCREF(name);
        PyTuple_SET_ITEM(item, 0, name);
        PyObject *v;
        if (!(v = PyLong_FromUnsignedLongLong(b->major & ID_MASK)))
            goto fail;
        PyTuple_SET_ITEM(item, 1, v);
        uint64_t next = b->minor >> 16;
        if (next == 0) {
            Py_INCREF(Py_None);
            v = Py_None;
        }
        else if (!(v = PyLong_FromUnsignedLongLong(next - 1)))
            goto fail;
        PyTuple_SET_ITEM(item, 2, v);
        if (!(v = PyLong_FromLong((long)((b->minor >> 8) & 0xff))))
            goto fail;
        PyTuple_SET_ITEM(item, 3, v);
        if (!(v = PyLong_FromLong((long)(b->minor & 0xff))))
            goto fail;
        PyTuple_SET_ITEM(item, 4, v);
        if (!(v = from_u128(b->hi, b->lo)))
            goto fail;
        PyTuple_SET_ITEM(item, 5, v);
    }
    goto done;
fail:
    Py_CLEAR(list); /* half-filled tuples hold NULLs, which tuple dealloc skips */
done:
    if (names) {
        for (size_t i = 0; i < m->n; i++)
            Py_XDECREF(names[i]);
    }
    PyMem_Free(names);
    PyMem_Free(keys);
    PyMem_Free(tmp);
    if (gc_was_enabled)
        PyGC_Enable();
    return list;
}

/* The segment lengths sorted by segment then length, like sorted_bins: the sorted array is
 * *keys or *tmp, both to be freed by the caller; NULL with an exception set on memory error. */
static SortKey *
sorted_lengths(Job *job, SortKey **keys_out, SortKey **tmp_out)
{
    size_t n = job->lengths.used, k = 0;
    SortKey *keys = *keys_out = PyMem_Malloc((n ? n : 1) * sizeof(SortKey));
    SortKey *tmp = *tmp_out = PyMem_Malloc((n ? n : 1) * sizeof(SortKey));
    if (!keys || !tmp) {
        PyErr_NoMemory();
        return NULL;
    }
    for (size_t i = 0; i <= job->lengths.mask; i++) {
        Bin *b = &job->lengths.slots[i];
        if (b->k1 == EMPTY)
            continue;
        keys[k++] = (SortKey){.major = b->k1, .minor = b->k2, .lo = b->lo, .hi = b->hi};
    }
    return sort_keys(keys, tmp, n);
}

/* (segment, length_m, count_sum) tuples sorted by segment then length. */
PyObject *
build_lengths(Job *job)
{
    size_t n = job->lengths.used;
    SortKey *keys, *tmp;
    SortKey *sorted = sorted_lengths(job, &keys, &tmp);
    PyObject *list = sorted ? PyList_New((Py_ssize_t)n) : NULL;
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *item = Py_BuildValue("(KKN)", (unsigned long long)sorted[i].major,
                                       (unsigned long long)sorted[i].minor,
                                       from_u128(sorted[i].hi, sorted[i].lo));
        if (item == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    PyMem_Free(keys);
    PyMem_Free(tmp);
    return list;
}

/* The raw text of a rejected line: UTF-8 with undecodable bytes replaced, and NULs too, as
 * PostgreSQL text cannot hold one (only WHY_NUL lines have any). */
static PyObject *
raw_text(const Job *job, const Reject *x, PyObject *nul, PyObject *replacement)
{
    PyObject *text = PyUnicode_DecodeUTF8(job->text + x->offset, x->length, "replace");
    if (text != NULL && x->reason == WHY_NUL)
        Py_SETREF(text, PyUnicode_Replace(text, nul, replacement, -1));
    return text;
}

PyObject *
build_rejects(Job *job)
{
    PyObject *list = PyList_New((Py_ssize_t)job->rejects.n);
    PyObject *reasons[WHY_COUNT_OF_REASONS] = {NULL};
    PyObject *nul = NULL, *replacement = NULL;
    if (list == NULL)
        return NULL;
    for (int i = WHY_SEGMENT; i < WHY_COUNT_OF_REASONS; i++) {
        if (!(reasons[i] = PyUnicode_InternFromString(REASON_TEXT[i])))
            goto fail;
    }
    if (!(nul = PyUnicode_FromStringAndSize("\0", 1))
        || !(replacement = PyUnicode_FromOrdinal(0xFFFD)))
        goto fail;
    for (size_t i = 0; i < job->rejects.n; i++) {
        Reject *x = &job->rejects.items[i];
        PyObject *reason;
        if (x->reason == WHY_FIELDS)
            reason = PyUnicode_FromFormat("expected 10 fields, got %zd", x->fields);
        else {
            reason = reasons[x->reason];
            Py_INCREF(reason);
        }
        PyObject *item = NULL, *text = NULL, *line = NULL;
        if (reason && (text = raw_text(job, x, nul, replacement))
            && (line = PyLong_FromUnsignedLongLong(x->line)))
            item = PyTuple_Pack(3, line, text, reason);
        Py_XDECREF(line);
        Py_XDECREF(text);
        Py_XDECREF(reason);
        if (item == NULL)
            goto fail;
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    goto done;
fail:
    Py_CLEAR(list);
done:
    for (int i = 0; i < WHY_COUNT_OF_REASONS; i++)
        Py_XDECREF(reasons[i]);
    Py_XDECREF(nul);
    Py_XDECREF(replacement);
    return list;
}

/* ------------------------------------------------------------------------------------- */
/* PostgreSQL binary COPY payloads (signature, flags, header extension, tuples, trailer),
 * so that the histogram stage hands the server its rows without a Python object per row. */

/* A bytes object of `size` bytes beginning with the COPY header; *p points past it. */
PyObject *
copy_start(size_t size, char **p)
{
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (bytes == NULL)
        return NULL;
    char *q = PyBytes_AS_STRING(bytes);
    memcpy(q, COPY_SIGNATURE, sizeof(COPY_SIGNATURE));
    q = put32(q + sizeof(COPY_SIGNATURE), 0); /* flags */
    *p = put32(q, 0);                         /* header extension length */
    return bytes;
}

PyObject *
count_overflow(void)
{
    PyErr_SetString(PyExc_OverflowError, "a summed count does not fit a bigint column");
    return NULL;
}

/* Rows (mode, segment_id, next_segment_id, hour, duration_code, queue_code, count) of the
 * bins in result order, typed text, int8, int8, int4, int2, int2, int8. */
PyObject *
copy_bins(Job *job, uint64_t hour)
{
    ModeTable *m = &job->modes;
    size_t nbins = job->bins.used;
    SortKey *keys = NULL, *tmp = NULL;
    PyObject *bytes = NULL;
    SortKey *sorted = sorted_bins(job, &keys, &tmp);
    if (sorted == NULL)
        goto done;
    size_t size = 19 + 2;
    for (size_t i = 0; i < nbins; i++) {
        if (sorted[i].hi != 0 || sorted[i].lo > INT64_LIMIT) {
            count_overflow();
            goto done;
        }
        size += 2 + 7 * 4 + m->items[sorted[i].mode].len + 8 + 4 + 2 + 2 + 8
                + ((sorted[i].minor >> 16) ? 8 : 0);
    }
    char *p;
    if ((bytes = copy_start(size, &p)) == NULL)
        goto done;
    for (size_t i = 0; i < nbins; i++) {
        const SortKey *b = &sorted[i];
        const Mode *mode = &m->items[b->mode];
        uint64_t next = b->minor >> 16;
        p = put16(p, 7);
        p = put32(p, mode->len);
        memcpy(p, mode->text, mode->len);
        p += mode->len;
        p = put64(put32(p, 8), b->major & ID_MASK);
        if (next == 0)
            p = put32(p, UINT32_MAX); /* -1: NULL, no next segment */
        else
            p = put64(put32(p, 8), next - 1);
        p = put32(put32(p, 4), (uint32_t)hour);
        p = put16(put32(p, 2), (uint16_t)((b->minor >> 8) & 0xff));
        p = put16(put32(p, 2), (uint16_t)(b->minor & 0xff));
        p = put64(put32(p, 8), b->lo);
    }
    put16(p, UINT16_MAX); /* trailer: -1 */
done:
    PyMem_Free(keys);
    PyMem_Free(tmp);
    return bytes;
}

/* Rows (segment_id, length, observations) sorted by segment then length, typed int8, int4,
 * int8. */
PyObject *
copy_lengths(Job *job)
{
    size_t n = job->lengths.used;
    SortKey *keys, *tmp;
    SortKey *sorted = sorted_lengths(job, &keys, &tmp);
    PyObject *bytes = NULL;
    char *p;
    if (sorted == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (sorted[i].hi != 0 || sorted[i].lo > INT64_LIMIT) {
            count_overflow();
            goto done;
        }
    }
    if ((bytes = copy_start(19 + n * (2 + 12 + 8 + 4 + 8) + 2, &p)) == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        p = put16(p, 3);
        p = put64(put32(p, 8), sorted[i].major);
        p = put32(put32(p, 4), (uint32_t)sorted[i].minor);
        p = put64(put32(p, 8), sorted[i].lo);
    }
    put16(p, UINT16_MAX);
done:
    PyMem_Free(keys);
    PyMem_Free(tmp);
    return bytes;
}
