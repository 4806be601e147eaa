/*
 * renderer._binning: the histogram binning hot loop.
 *
 * bin_file(data, level, tile_index, hour) -> BinResult, the C twin of
 * renderer/_binning_py.py, which states the rules; this extension must give the same result
 * for every input, byte for byte (tests/test_binning.py checks it with hypothesis).
 * bin_prefix bins the files of one (tile, hour) prefix together.
 *
 * This file is the module: argument and header checks, the job's set-up, bin_file,
 * bin_prefix and the module init. The rows are binned without the GIL by bin_rows in
 * binning_scan.c; the results are built in binning_emit.c; binning.h holds what they share.
 */
#include "binning.h"

#define HEADER_QUOTE_BYTES 200
#define BINARY_SNIFF_BYTES 8000 /* a bad header with a NUL this early: binary data */
#define BINARY_DATA "not a reporter CSV: binary data"
#define NOT_A_HEADER "not a reporter CSV: its first line is not a CSV header (not shown)"
#define MAX_HOUR ((UINT64_MAX - 3599) / 3600)

static const char HEADER[] =
    "segment_id,next_segment_id,duration,count,length,queue_length,"
    "minimum_timestamp,maximum_timestamp,source,vehicle_type";

PyObject *BinResult;           /* renderer._binning_py.BinResult */
static PyObject *PrefixResult; /* renderer._binning_py.PrefixResult */

/* ------------------------------------------------------------------------------------- */

/* An int argument in [0, max]; raises like renderer._binning_py.check_prefix. */
static int
prefix_arg(PyObject *obj, const char *name, unsigned long long max, const char *range,
           uint64_t *out)
{
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL)
        return -1;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(index);
        return -1;
    }
    if (overflow || v < 0 || (unsigned long long)v > max) {
        PyErr_Format(PyExc_ValueError, "%s must be in %s, got %S", name, range, index);
        Py_DECREF(index);
        return -1;
    }
    Py_DECREF(index);
    *out = (uint64_t)v;
    return 0;
}

/* A file starting with one of these is binary whatever follows: see BINARY_MAGIC in
 * renderer/_binning_py.py, which says what a binary file is. */
static const struct {
    const char *bytes;
    size_t len;
} BINARY_MAGIC[] = {
    {"\x1f\x8b", 2},                     /* gzip */
    {"PK\x03\x04", 4}, {"PK\x05\x06", 4}, /* zip */
    {"BZh", 3},                          /* bzip2 */
    {"\xfd" "7zXZ\0", 6},                /* xz */
    {"\x28\xb5\x2f\xfd", 4},             /* zstd */
    {"\x89PNG\r\n\x1a\n", 8},            /* png */
    {"\xff\xd8\xff", 3},                 /* jpeg */
    {"%PDF-", 5},
};

static int
starts_binary(const char *text, size_t len)
{
    for (size_t i = 0; i < sizeof(BINARY_MAGIC) / sizeof(BINARY_MAGIC[0]); i++) {
        size_t n = BINARY_MAGIC[i].len;
        if (len >= n && memcmp(text, BINARY_MAGIC[i].bytes, n) == 0)
            return 1;
    }
    return 0;
}

/* 0: a reporter CSV whose rows start at *start; 1: not one, *reason says why (new
 * reference); -1: an exception is set. A NUL after the header is left to bin_rows, which
 * rejects its line only. */
static int
check_header(const char *text, size_t len, size_t *start, PyObject **reason)
{
    if (len == 0)
        *reason = PyUnicode_FromString("empty file");
    else if (starts_binary(text, len))
        *reason = PyUnicode_FromString(BINARY_DATA);
    else {
        size_t h0 = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
        const char *nl = memchr(text, '\n', len);
        size_t h1 = nl ? (size_t)(nl - text) : len;
        *start = nl ? h1 + 1 : len;
        if (h1 < h0)
            h1 = h0; /* cannot happen: the BOM holds no newline */
        if (h1 > h0 && text[h1 - 1] == '\r')
            h1--;
        if (h1 - h0 == sizeof(HEADER) - 1 && memcmp(text + h0, HEADER, h1 - h0) == 0)
            return 0;
        if (memchr(text, '\0', len < BINARY_SNIFF_BYTES ? len : BINARY_SNIFF_BYTES) != NULL) {
            *reason = PyUnicode_FromString(BINARY_DATA);
            return *reason == NULL ? -1 : 1;
        }
        size_t n = h1 - h0 < HEADER_QUOTE_BYTES ? h1 - h0 : HEADER_QUOTE_BYTES;
        /* quoted only when it could be column names: never a password file's first line */
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)text[h0 + i];
            int like = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || (c != '\0' && strchr("_,;. \t-", c) != NULL);
            if (!like) {
                *reason = PyUnicode_FromString(NOT_A_HEADER);
                return *reason == NULL ? -1 : 1;
            }
        }
        PyObject *quoted = PyUnicode_DecodeUTF8(text + h0, (Py_ssize_t)n, "replace");
        if (quoted == NULL)
            return -1;
        *reason = PyUnicode_FromFormat("not a reporter CSV: header is %R", quoted);
        Py_DECREF(quoted);
    }
    return *reason == NULL ? -1 : 1;
}

static int
job_init(Job *job, uint64_t level, uint64_t tile_index, uint64_t hour)
{
    job->tile_id = tile_index << 3 | level;
    job->first = hour * 3600;
    job->last = job->first + 3599;
    if (bins_init(&job->bins, 1024) < 0 || bins_init(&job->lengths, 256) < 0
        || modes_init(&job->modes) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Bins the rows of one file into the job's tables, without the GIL; -1 with an exception. */
static int
bin_text(Job *job, const char *text, size_t len, size_t start)
{
    job->text = text;
    job->len = len;
    job->thread = PyEval_SaveThread();
    bin_rows(job, start);
    PyEval_RestoreThread(job->thread);
    if (job->failed) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(bin_file_doc,
"bin_file(data, level, tile_index, hour)\n--\n\n"
"Bin the rows of one decompressed reporter CSV file for the (tile, hour) of its prefix.\n\n"
"C implementation; see renderer._binning_py.bin_file for the rules.");

static PyObject *
bin_file(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "level", "tile_index", "hour", NULL};
    Py_buffer buffer;
    PyObject *level_obj, *tile_obj, *hour_obj, *result = NULL;
    uint64_t level, tile_index, hour;
    Job job;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*OOO:bin_file", kwlist, &buffer,
                                     &level_obj, &tile_obj, &hour_obj))
        return NULL;
    memset(&job, 0, sizeof(job));
    if (prefix_arg(level_obj, "level", 7, "0..7", &level) < 0
        || prefix_arg(tile_obj, "tile_index", (1u << 22) - 1, "0..4194303", &tile_index) < 0
        || prefix_arg(hour_obj, "hour", MAX_HOUR, "0..5124095576030430", &hour) < 0)
        goto done;

    size_t start;
    PyObject *reason = NULL;
    int header = check_header(buffer.buf, (size_t)buffer.len, &start, &reason);
    if (header != 0) {
        if (header > 0)
            result = file_error(reason);
        goto done;
    }
    if (job_init(&job, level, tile_index, hour) < 0)
        goto done;
    if (bin_text(&job, buffer.buf, (size_t)buffer.len, start) < 0)
        goto done;
    result = make_result(job.rows_read, job.rows_accepted, from_u128(job.obs_hi, job.obs_lo),
                         build_bins(&job), build_rejects(&job), Py_NewRef(Py_None),
                         build_lengths(&job));
done:
    job_free(&job);
    PyBuffer_Release(&buffer);
    return result;
}

PyDoc_STRVAR(bin_prefix_doc,
"bin_prefix(files, level, tile_index, hour)\n--\n\n"
"Bin the decompressed reporter files of one (tile, hour) prefix together.\n\n"
"C implementation; see renderer._binning_py.bin_prefix.");

static PyObject *
bin_prefix(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"files", "level", "tile_index", "hour", NULL};
    PyObject *files_obj, *level_obj, *tile_obj, *hour_obj, *seq = NULL, *results = NULL;
    PyObject *modes = NULL, *result = NULL;
    uint64_t level, tile_index, hour;
    Job job;

    (void)module;
    memset(&job, 0, sizeof(job));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO:bin_prefix", kwlist, &files_obj,
                                     &level_obj, &tile_obj, &hour_obj))
        return NULL;
    if (prefix_arg(level_obj, "level", 7, "0..7", &level) < 0
        || prefix_arg(tile_obj, "tile_index", (1u << 22) - 1, "0..4194303", &tile_index) < 0
        || prefix_arg(hour_obj, "hour", INT32_MAX, "0..2147483647", &hour) < 0)
        return NULL;
    if ((seq = PySequence_Fast(files_obj, "files must be a sequence of bytes")) == NULL)
        return NULL;
    Py_ssize_t nfiles = PySequence_Fast_GET_SIZE(seq);
    if ((results = PyList_New(nfiles)) == NULL || job_init(&job, level, tile_index, hour) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < nfiles; i++) {
        Py_buffer buffer;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &buffer, PyBUF_SIMPLE) < 0)
            goto done;
        size_t start;
        PyObject *reason = NULL, *one = NULL;
        int header = check_header(buffer.buf, (size_t)buffer.len, &start, &reason);
        if (header > 0)
            one = file_error(reason);
        else if (header == 0) {
            job.rows_read = job.rows_accepted = job.obs_lo = job.obs_hi = 0;
            job.rejects.n = 0;
            if (bin_text(&job, buffer.buf, (size_t)buffer.len, start) == 0)
                one = make_result(job.rows_read, job.rows_accepted,
                                  from_u128(job.obs_hi, job.obs_lo), PyList_New(0),
                                  build_rejects(&job), Py_NewRef(Py_None), PyList_New(0));
        }
        PyBuffer_Release(&buffer);
        if (one == NULL)
            goto done;
        PyList_SET_ITEM(results, i, one);
    }
    /* The modes that have bins (a mode is registered before the row's last checks). */
    char *seen = PyMem_Calloc(job.modes.n ? job.modes.n : 1, 1);
    if (seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i <= job.bins.mask; i++) {
        if (job.bins.slots[i].k1 != EMPTY)
            seen[job.bins.slots[i].mode] = 1;
    }
    if ((modes = PyList_New(0)) != NULL) {
        for (size_t i = 0; i < job.modes.n; i++) {
            if (!seen[i])
                continue;
            PyObject *name = PyUnicode_FromStringAndSize(job.modes.items[i].text,
                                                         job.modes.items[i].len);
            if (name == NULL || PyList_Append(modes, name) < 0) {
                Py_XDECREF(name);
                Py_CLEAR(modes);
                break;
            }
            Py_DECREF(name);
        }
    }
    PyMem_Free(seen);
    if (modes == NULL || PyList_Sort(modes) < 0)
        goto done;
    PyObject *bins = copy_bins(&job, hour);
    PyObject *lengths = bins ? copy_lengths(&job) : NULL;
    if (bins && lengths)
        result = PyObject_CallFunction(PrefixResult, "OnONnN", results, (Py_ssize_t)job.bins.used,
                                       modes, bins, (Py_ssize_t)job.lengths.used, lengths);
    else
        Py_XDECREF(bins);
done:
    job_free(&job);
    Py_XDECREF(modes);
    Py_XDECREF(results);
    Py_XDECREF(seq);
    return result;
}

PyDoc_STRVAR(merge_lengths_doc,
"merge_lengths(payloads) -> (rows, payload)\n\n"
"The binary COPY payloads of segment lengths (PrefixResult.lengths_copy) as one, sorted by\n"
"(segment, length), with the rows of a (segment, length) found in several summed.");

static PyObject *
merge_lengths_py(PyObject *self, PyObject *payloads)
{
    (void)self;
    return merge_lengths(payloads);
}

static PyMethodDef methods[] = {
    {"bin_file", (PyCFunction)(void (*)(void))bin_file, METH_VARARGS | METH_KEYWORDS,
     bin_file_doc},
    {"bin_prefix", (PyCFunction)(void (*)(void))bin_prefix, METH_VARARGS | METH_KEYWORDS,
     bin_prefix_doc},
    {"merge_lengths", (PyCFunction)merge_lengths_py, METH_O, merge_lengths_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "renderer._binning",
    "The histogram binning hot loop; see renderer.binning.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__binning(void)
{
    PyObject *twin = PyImport_ImportModule("renderer._binning_py");
    if (twin == NULL)
        return NULL;
    Py_XSETREF(BinResult, PyObject_GetAttrString(twin, "BinResult"));
    Py_XSETREF(PrefixResult, PyObject_GetAttrString(twin, "PrefixResult"));
    Py_DECREF(twin);
    if (BinResult == NULL || PrefixResult == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
