/*
 * binning.h: what the files of renderer._binning share: the row format's constants, the
 * tables a Job bins into, and the functions one file calls in another.
 *
 *   binning.c       the module: argument and header checks, bin_file, bin_prefix;
 *   binning_scan.c  the hot loop without the GIL: field scanners, inserts, bin_rows;
 *   binning_tables.c  the tables it fills: set-up, growth, rejects, release;
 *   binning_emit.c  the results with the GIL: sorted bins, Python tuples, COPY payloads;
 *   binning_merge.c  several lengths payloads merged into one, recurring rows summed.
 *
 * Every helper the loop calls on every row stays static inline in binning_scan.c (the
 * hashes below in this header), so that the loop compiles as it did when this was one file;
 * only calls the loop makes rarely (a table's growth, a reject) and once-per-file calls
 * cross files.
 */
#ifndef RENDERER_BINNING_H
#define RENDERER_BINNING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIELDS 10
#define ID_LIMIT (UINT64_C(1) << 46)
#define ID_MASK (ID_LIMIT - 1)
#define NO_NEXT_46 ((UINT64_C(1) << 46) - 1)
#define NO_NEXT_42 ((UINT64_C(1) << 42) - 1)
#define TILE_MASK UINT64_C(0x1FFFFFF)
#define DURATION_MAX 1142
#define MODE_MAX 32
/* What the histogram stores (see renderer/_binning_py.py): a count up to the histogram
 * file's uint32, so that a bigint bin holds 2^31 rows at the limit; a length in whole metres
 * in an int4 column. Larger values reject their row. */
#define COUNT_MAX UINT64_C(4294967295)
#define LENGTH_MAX 2147483647.0

/* Why a row is rejected; the texts are REASON_TEXT in binning_emit.c. */
enum reason {
    WHY_OK = 0,
    WHY_FIELDS,
    WHY_SEGMENT,
    WHY_NEXT,
    WHY_DURATION,
    WHY_COUNT,
    WHY_LENGTH,
    WHY_QUEUE,
    WHY_MIN_TS,
    WHY_MAX_TS,
    WHY_TS_ORDER,
    WHY_MODE,
    WHY_TILE,
    WHY_HOUR,
    WHY_NUL,
    WHY_COUNT_RANGE,
    WHY_LENGTH_RANGE,
    WHY_COUNT_OF_REASONS
};

/* renderer._binning_py.BinResult, set at module init (binning.c). */
extern PyObject *BinResult;

/* ------------------------------------------------------------------------------------- */
/* Growable arrays and tables, allocated with PyMem_Raw* so they work without the GIL.  */

typedef struct {
    uint64_t k1;  /* segment | duration_code << 46 | queue_code << 54; EMPTY if free */
    uint64_t k2;  /* next_segment + 1, or 0 for none */
    uint64_t lo;  /* count sum, low 64 bits */
    uint32_t hi;  /* count sum, high bits: rows * UINT64_MAX needs > 2^32 rows to overflow */
    uint32_t mode;
} Bin;

#define EMPTY UINT64_MAX

typedef struct {
    Bin *slots;
    size_t mask;
    size_t used;
    void *map; /* the mapping holding slots when it was mapped apart, else NULL */
    size_t map_len;
} BinTable;

typedef struct {
    char text[MODE_MAX];
    uint32_t len;
    uint32_t rank;
} Mode;

typedef struct {
    Mode *items;
    size_t n, cap;
    uint32_t *index; /* open addressing: mode id + 1, 0 if free */
    size_t mask;
} ModeTable;

typedef struct {
    uint64_t line;
    Py_ssize_t offset, length, fields;
    int reason;
} Reject;

typedef struct {
    Reject *items;
    size_t n, cap;
} RejectList;

typedef struct {
    const char *text;
    size_t len;
    uint64_t tile_id, first, last;
    PyThreadState *thread; /* saved while the GIL is released */
    int failed;            /* a Python exception is set (memory) */
    uint64_t rows_read, rows_accepted, obs_lo, obs_hi;
    char last_mode_text[MODE_MAX]; /* most rows repeat the previous row's mode */
    size_t last_mode_len;
    int64_t last_mode;
    BinTable bins;
    BinTable lengths; /* k1 = segment, k2 = length in whole metres, mode = 0 */
    uint64_t run_segment, run_length, run_count; /* consecutive rows of one (segment, length) */
    ModeTable modes;
    RejectList rejects;
} Job;

/* The bins' hash, used by the insert (binning_scan.c) and the growth (binning_tables.c). */
static inline uint64_t
mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static inline uint64_t
bin_hash(uint64_t k1, uint64_t k2, uint32_t mode)
{
    return mix64(k1 * UINT64_C(0x9E3779B97F4A7C15) ^ (k2 + ((uint64_t)mode << 48)));
}

/* binning_tables.c: each int returns 0, or -1 on memory error. */
int bins_init(BinTable *t, size_t cap);
int bins_grow(BinTable *t);
int modes_init(ModeTable *m);
int rejects_add(RejectList *r, uint64_t line, Py_ssize_t offset, Py_ssize_t length,
                int reason, Py_ssize_t fields);
void job_free(Job *job);

/* binning_scan.c */
void bin_rows(Job *job, size_t start);

/* binning_emit.c: each returns a new reference, or NULL with an exception set. */
PyObject *from_u128(uint64_t hi, uint64_t lo);
PyObject *make_result(uint64_t rows_read, uint64_t rows_accepted, PyObject *observations,
                      PyObject *bins, PyObject *rejects, PyObject *file_error,
                      PyObject *lengths);
PyObject *file_error(PyObject *reason);
PyObject *build_bins(Job *job);
PyObject *build_lengths(Job *job);
PyObject *build_rejects(Job *job);

/* ------------------------------------------------------------------------------------- */
/* PostgreSQL binary COPY payloads (binning_emit.c writes them, binning_merge.c reads and
 * rewrites them): the header's signature and big-endian field writers. */

static const char COPY_SIGNATURE[11] = "PGCOPY\n\377\r\n";
#define COPY_HEADER 19 /* signature, flags, header extension length */
#define INT64_LIMIT UINT64_C(9223372036854775807)

static inline char *
put16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
    return p + 2;
}

static inline char *
put32(char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (char)v;
    return p + 4;
}

static inline char *
put64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (char)v;
    return p + 8;
}

/* A bytes object of `size` bytes beginning with the COPY header; *p points past it. */
PyObject *copy_start(size_t size, char **p);
/* Sets OverflowError (a summed count beyond a bigint) and returns NULL. */
PyObject *count_overflow(void);
/* binning_emit.c: the bins' and lengths' rows as payloads. */
PyObject *copy_bins(Job *job, uint64_t hour);
PyObject *copy_lengths(Job *job);
/* binning_merge.c */
PyObject *merge_lengths(PyObject *payloads);

#endif /* RENDERER_BINNING_H */
