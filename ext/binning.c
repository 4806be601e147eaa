/*
 * renderer._binning: the histogram binning hot loop.
 *
 * bin_file(data, level, tile_index, hour) -> BinResult, the C twin of
 * renderer/_binning_py.py, which states the rules; this file must give the same result for
 * every input, byte for byte (tests/test_binning.py checks it with hypothesis).
 *
 * One pass over the buffer with the GIL released: find each line with memchr, parse its ten
 * fields in a single left-to-right scan, bucket, and add the count into an open-addressing
 * hash table. Only when a row fails do we count its commas, because a wrong field count is
 * reported before any bad field. Rejects are recorded as (line, offset, length, reason) and
 * turned into Python objects at the end, with the GIL held again; so are the sorted bins.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h> /* after Python.h, whose pyconfig.h defines _GNU_SOURCE */
#endif
#if defined(__linux__) && defined(MADV_HUGEPAGE)
/* Tables this large are mapped on their own and offered transparent huge pages: a probe
 * into a table of tens of MB otherwise costs a TLB miss on top of the cache miss. */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_TABLE_BYTES ((size_t)4 << 20)
#endif

#define FIELDS 10
#define ID_LIMIT (UINT64_C(1) << 46)
#define ID_MASK (ID_LIMIT - 1)
#define NO_NEXT_46 ((UINT64_C(1) << 46) - 1)
#define NO_NEXT_42 ((UINT64_C(1) << 42) - 1)
#define TILE_MASK UINT64_C(0x1FFFFFF)
#define DURATION_MAX 1142
#define MODE_MAX 32
#define HEADER_QUOTE_BYTES 200
#define MAX_HOUR ((UINT64_MAX - 3599) / 3600)
#define PREFETCH_DEPTH 4 /* rows parsed ahead of their hash-table insert */
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH_FOR_WRITE(p) __builtin_prefetch((p), 1)
#else
#define PREFETCH_FOR_WRITE(p) ((void)(p))
#endif
#define LENGTH_MAX 2147483647.0 /* reported lengths are capped to fit an integer column */

static const char HEADER[] =
    "segment_id,next_segment_id,duration,count,length,queue_length,"
    "minimum_timestamp,maximum_timestamp,source,vehicle_type";

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
    WHY_COUNT_OF_REASONS
};

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
};

/* The reason for a row whose scan stopped at step i while it has exactly ten fields.
 * Step 8 is the source field, which can only fail for want of a comma, so never with ten
 * fields; it is listed for completeness. */
static const enum reason STEP_REASON[] = {
    WHY_SEGMENT, WHY_NEXT, WHY_DURATION, WHY_COUNT, WHY_LENGTH, WHY_QUEUE,
    WHY_MIN_TS, WHY_MAX_TS, WHY_TS_ORDER, WHY_FIELDS, WHY_MODE,
};

/* 10^k for k <= 22: exactly representable, so m / 10^k is correctly rounded when
 * m <= 2^53 (Clinger's fast path), and agrees with Python's float(). */
static const double POW10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static PyObject *BinResult;    /* renderer._binning_py.BinResult */
static PyObject *PrefixResult; /* renderer._binning_py.PrefixResult */

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

static void
bins_free(BinTable *t)
{
#ifdef HUGE_TABLE_BYTES
    if (t->map != NULL) {
        munmap(t->map, t->map_len);
        t->map = NULL;
        t->slots = NULL;
        return;
    }
#endif
    PyMem_RawFree(t->slots);
    t->slots = NULL;
}

static int
bins_init(BinTable *t, size_t cap)
{
    size_t bytes = cap * sizeof(Bin);
    t->map = NULL;
    t->slots = NULL;
#ifdef HUGE_TABLE_BYTES
    if (bytes >= HUGE_TABLE_BYTES) {
        size_t len = bytes + HUGE_PAGE;
        void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map != MAP_FAILED) {
            uintptr_t aligned = ((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
            (void)madvise((void *)aligned, bytes, MADV_HUGEPAGE); /* a hint; may be refused */
            t->map = map;
            t->map_len = len;
            t->slots = (Bin *)aligned;
        }
    }
#endif
    if (t->slots == NULL)
        t->slots = PyMem_RawMalloc(bytes);
    if (t->slots == NULL)
        return -1;
    for (size_t i = 0; i < cap; i++)
        t->slots[i].k1 = EMPTY;
    t->mask = cap - 1;
    t->used = 0;
    return 0;
}

static int
bins_grow(BinTable *t)
{
    BinTable bigger;
    size_t cap = (t->mask + 1) * 2;
    if (cap > PY_SSIZE_T_MAX / sizeof(Bin) || bins_init(&bigger, cap) < 0)
        return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        Bin *b = &t->slots[i];
        if (b->k1 == EMPTY)
            continue;
        size_t j = bin_hash(b->k1, b->k2, b->mode) & bigger.mask;
        while (bigger.slots[j].k1 != EMPTY)
            j = (j + 1) & bigger.mask;
        bigger.slots[j] = *b;
    }
    bigger.used = t->used;
    bins_free(t);
    *t = bigger;
    return 0;
}

/* A parsed row waiting to be added: its slot is prefetched while the next row is parsed,
 * which hides most of the cache miss of a table larger than the cache. */
typedef struct {
    uint64_t k1, k2, count, hash, length_m;
    uint32_t mode;
} Pending;

static inline int
bins_add(BinTable *t, const Pending *row)
{
    uint64_t k1 = row->k1, k2 = row->k2, count = row->count;
    uint32_t mode = row->mode;
    size_t j = row->hash & t->mask;
    for (;;) {
        Bin *b = &t->slots[j];
        if (b->k1 == k1 && b->k2 == k2 && b->mode == mode) {
            uint64_t lo = b->lo + count;
            b->hi += lo < b->lo;
            b->lo = lo;
            return 0;
        }
        if (b->k1 == EMPTY)
            break;
        j = (j + 1) & t->mask;
    }
    Bin *b = &t->slots[j];
    b->k1 = k1;
    b->k2 = k2;
    b->mode = mode;
    b->lo = count;
    b->hi = 0;
    if (++t->used * 2 > t->mask + 1)
        return bins_grow(t);
    return 0;
}

static uint64_t
mode_hash(const char *s, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * UINT64_C(0x100000001b3);
    return mix64(h);
}

static int
modes_init(ModeTable *m)
{
    m->n = 0;
    m->cap = 8;
    m->items = PyMem_RawMalloc(m->cap * sizeof(Mode));
    m->mask = 15;
    m->index = PyMem_RawCalloc(m->mask + 1, sizeof(uint32_t));
    return m->items && m->index ? 0 : -1;
}

/* The id of an upper-cased mode, added if new; -1 on memory error. */
static int64_t
modes_id(ModeTable *m, const char *s, size_t n)
{
    size_t j = mode_hash(s, n) & m->mask;
    while (m->index[j]) {
        Mode *e = &m->items[m->index[j] - 1];
        if (e->len == n && memcmp(e->text, s, n) == 0)
            return m->index[j] - 1;
        j = (j + 1) & m->mask;
    }
    if (m->n >= UINT32_MAX - 1)
        return -1;
    if (m->n == m->cap) {
        Mode *items = PyMem_RawRealloc(m->items, 2 * m->cap * sizeof(Mode));
        if (items == NULL)
            return -1;
        m->items = items;
        m->cap *= 2;
    }
    Mode *e = &m->items[m->n];
    memcpy(e->text, s, n);
    e->len = (uint32_t)n;
    m->index[j] = (uint32_t)++m->n;
    if (m->n * 2 > m->mask + 1) {
        size_t mask = m->mask * 2 + 1;
        uint32_t *index = PyMem_RawCalloc(mask + 1, sizeof(uint32_t));
        if (index == NULL)
            return -1;
        for (size_t i = 0; i < m->n; i++) {
            size_t k = mode_hash(m->items[i].text, m->items[i].len) & mask;
            while (index[k])
                k = (k + 1) & mask;
            index[k] = (uint32_t)(i + 1);
        }
        PyMem_RawFree(m->index);
        m->index = index;
        m->mask = mask;
    }
    return (int64_t)(m->n - 1);
}

static int
rejects_add(RejectList *r, uint64_t line, Py_ssize_t offset, Py_ssize_t length,
            int reason, Py_ssize_t fields)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        Reject *items = PyMem_RawRealloc(r->items, cap * sizeof(Reject));
        if (items == NULL)
            return -1;
        r->items = items;
        r->cap = cap;
    }
    Reject *x = &r->items[r->n++];
    x->line = line;
    x->offset = offset;
    x->length = length;
    x->reason = reason;
    x->fields = fields;
    return 0;
}

static void
job_free(Job *job)
{
    bins_free(&job->bins);
    bins_free(&job->lengths);
    PyMem_RawFree(job->modes.items);
    PyMem_RawFree(job->modes.index);
    PyMem_RawFree(job->rejects.items);
}

/* ------------------------------------------------------------------------------------- */
/* Field scanners. Each consumes its field's grammar from *pp and stops at the first byte
 * outside it; the caller then demands a comma (or the end of the line). */

static const uint64_t POW10_U64[20] = {
    UINT64_C(1), UINT64_C(10), UINT64_C(100), UINT64_C(1000), UINT64_C(10000),
    UINT64_C(100000), UINT64_C(1000000), UINT64_C(10000000), UINT64_C(100000000),
    UINT64_C(1000000000), UINT64_C(10000000000), UINT64_C(100000000000),
    UINT64_C(1000000000000), UINT64_C(10000000000000), UINT64_C(100000000000000),
    UINT64_C(1000000000000000), UINT64_C(10000000000000000),
    UINT64_C(100000000000000000), UINT64_C(1000000000000000000),
    UINT64_C(10000000000000000000),
};

/* The length of the run of ASCII digits at p (stopping at end) and, when that is at most 19,
 * its value in *value. (An 8-bytes-at-a-time SWAR scan measured slower on these short
 * fields.) */
static inline size_t
scan_digits(const char *p, const char *end, uint64_t *value)
{
    const char *start = p;
    uint64_t v = 0;
    while (p < end && (unsigned)((unsigned char)*p - '0') <= 9) {
        v = v * 10 + (unsigned)(*p - '0');
        p++;
    }
    *value = v;
    return (size_t)(p - start);
}

/* [0-9]{1,20} whose value fits in uint64. */
static inline int
scan_integer(const char **pp, const char *end, uint64_t *out)
{
    uint64_t v;
    size_t n = scan_digits(*pp, end, &v);
    if (n == 0 || n > 20)
        return 0;
    if (n == 20) { /* may overflow: redo it checked */
        v = 0;
        for (const char *p = *pp; p < *pp + 20; p++) {
            unsigned d = (unsigned)(*p - '0');
            if (v > (UINT64_MAX - d) / 10)
                return 0;
            v = v * 10 + d;
        }
    }
    *pp += n;
    *out = v;
    return 1;
}

/* Correctly rounded conversion of a validated decimal, as Python's float() does it
 * (PyOS_string_to_double is the same code), for the rare digit strings the fast path
 * cannot take. Needs the GIL, so takes it for the moment. */
static int
slow_decimal(Job *job, const char *s, size_t n, double *out)
{
    char small[64];
    char *buf = n < sizeof(small) ? small : PyMem_RawMalloc(n + 1);
    if (buf == NULL)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    PyEval_RestoreThread(job->thread);
    double v = PyOS_string_to_double(buf, NULL, NULL);
    int failed = v == -1.0 && PyErr_Occurred() != NULL;
    job->thread = PyEval_SaveThread();
    if (buf != small)
        PyMem_RawFree(buf);
    if (failed)
        return -1; /* memory error; the exception stays set for the caller */
    *out = v;
    return 0;
}

/* [0-9]+(\.[0-9]*)? converted to the nearest double; 0 if malformed or not finite,
 * -1 on a Python error. */
static inline int
scan_decimal(Job *job, const char **pp, const char *end, double *out)
{
    const char *p = *pp, *start = p;
    uint64_t whole, part = 0, m = 0;
    size_t digits = scan_digits(p, end, &whole), frac = 0;
    if (digits == 0)
        return 0;
    p += digits;
    if (p < end && *p == '.') {
        p++;
        frac = scan_digits(p, end, &part);
        p += frac;
        digits += frac;
    }
    if (digits <= 19)
        m = whole * POW10_U64[frac] + part;
    double v;
    if (digits <= 19 && m <= (UINT64_C(1) << 53)) { /* then frac <= 19 too */
        v = (double)m / POW10[frac];
    }
    else {
        if (slow_decimal(job, start, (size_t)(p - start), &v) < 0) {
            job->failed = 1;
            return -1;
        }
        if (!isfinite(v))
            return 0;
    }
    *pp = p;
    *out = v;
    return 1;
}

static inline int
duration_code(double seconds)
{
    /* (int) truncates, which is floor for the non-negative values the grammar allows. */
    int d = seconds >= DURATION_MAX ? DURATION_MAX : (int)seconds;
    if (d < 64)
        return d;
    if (d < 192)
        return 64 | (d - 64) / 2;
    if (d < 512)
        return 128 | (d - 192) / 5;
    return 192 | (d - 512) / 10;
}

static inline int
queue_code(double queue, double length)
{
    /* Left to right in IEEE double, as the Python twin evaluates it; no multiply-add
     * contraction is possible in this shape (a product divided, then an addition). */
    double v = 255.0 * queue / length + 0.5;
    return v < 255.0 ? (int)v : 255;
}

#define EXPECT_COMMA()              \
    do {                            \
        if (p >= end || *p != ',')  \
            goto bad;               \
        p++;                        \
        step++;                     \
    } while (0)

/* Parse one non-empty line [line, end) into *row. Returns WHY_OK or a reason; *fields is set
 * for WHY_FIELDS. On an error (job->failed set) returns -1. */
static inline int
parse_row(Job *job, const char *line, const char *end, Py_ssize_t *fields, Pending *row)
{
    const char *p = line;
    int step = 0, r;
    uint64_t segment, next = 0, count, min_ts, max_ts;
    double duration, length, queue;

    if (!scan_integer(&p, end, &segment) || segment >= ID_LIMIT)
        goto bad;
    EXPECT_COMMA();
    if (p < end && *p != ',') {
        if (!scan_integer(&p, end, &next) || next >= ID_LIMIT)
            goto bad;
        next = (next == NO_NEXT_46 || next == NO_NEXT_42) ? 0 : next + 1;
    }
    EXPECT_COMMA();
    if ((r = scan_decimal(job, &p, end, &duration)) <= 0)
        goto bad_or_error;
    EXPECT_COMMA();
    if (!scan_integer(&p, end, &count) || count == 0)
        goto bad;
    EXPECT_COMMA();
    if ((r = scan_decimal(job, &p, end, &length)) <= 0 || !(length > 0.0))
        goto bad_or_error;
    EXPECT_COMMA();
    if ((r = scan_decimal(job, &p, end, &queue)) <= 0)
        goto bad_or_error;
    EXPECT_COMMA();
    if (!scan_integer(&p, end, &min_ts))
        goto bad;
    EXPECT_COMMA();
    if (!scan_integer(&p, end, &max_ts))
        goto bad;
    if (p >= end || *p != ',')
        goto bad;
    p++;
    step++;
    if (max_ts < min_ts)
        goto bad; /* step 8: WHY_TS_ORDER */
    step++;
    /* source: anything without a comma */
    p = memchr(p, ',', (size_t)(end - p));
    if (p == NULL)
        goto bad;
    p++;
    step++;
    /* vehicle_type: the rest of the line, [A-Za-z0-9_]{1,32}, upper-cased */
    size_t n = (size_t)(end - p);
    char mode[MODE_MAX];
    if (n == 0 || n > MODE_MAX)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'a' && c <= 'z')
            c -= 'a' - 'A';
        else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            goto bad;
        mode[i] = (char)c;
    }
    /* Ten well-formed fields from here on. */
    if ((segment & TILE_MASK) != job->tile_id)
        return WHY_TILE;
    if (min_ts > job->last || max_ts < job->first)
        return WHY_HOUR;

    int64_t mode_id = job->last_mode;
    if (n != job->last_mode_len || memcmp(mode, job->last_mode_text, n) != 0) {
        mode_id = modes_id(&job->modes, mode, n);
        if (mode_id < 0) {
            job->failed = 2; /* out of memory */
            return -1;
        }
        memcpy(job->last_mode_text, mode, n);
        job->last_mode_len = n;
        job->last_mode = mode_id;
    }
    row->k1 = segment | (uint64_t)duration_code(duration) << 46
              | (uint64_t)queue_code(queue, length) << 54;
    row->k2 = next;
    double metres = floor(length + 0.5);
    row->length_m = metres > LENGTH_MAX ? (uint64_t)LENGTH_MAX : (uint64_t)metres;
    row->mode = (uint32_t)mode_id;
    row->count = count;
    row->hash = bin_hash(row->k1, row->k2, row->mode);
    return WHY_OK;

bad_or_error:
    if (r < 0)
        return -1;
bad:
    /* A wrong field count outranks every field error, so count before blaming the field. */
    *fields = 1;
    for (const char *q = line; (q = memchr(q, ',', (size_t)(end - q))) != NULL; q++)
        ++*fields;
    return *fields != FIELDS ? WHY_FIELDS : (int)STEP_REASON[step];
}

/* Adds the pending run of one (segment, length) to the lengths table. */
static int
lengths_flush(Job *job)
{
    if (job->run_count == 0)
        return 0;
    Pending p = {.k1 = job->run_segment, .k2 = job->run_length, .count = job->run_count,
                 .mode = 0};
    p.hash = bin_hash(p.k1, p.k2, 0);
    job->run_count = 0;
    return bins_add(&job->lengths, &p);
}

/* Rows of one segment mostly repeat its length: sum runs before touching the table. */
static inline int
lengths_add(Job *job, uint64_t segment, uint64_t length_m, uint64_t count)
{
    if (job->run_count && (segment != job->run_segment || length_m != job->run_length
                           || job->run_count + count < job->run_count)) {
        if (lengths_flush(job) < 0)
            return -1;
    }
    job->run_segment = segment;
    job->run_length = length_m;
    job->run_count += count;
    return 0;
}

/* The main loop over data rows; runs without the GIL. */
static void
bin_rows(Job *job, size_t start)
{
    const char *text = job->text, *end = text + job->len, *p = text + start;
    uint64_t line = 1;
    Pending ring[PREFETCH_DEPTH];
    unsigned accepted = 0; /* ring[accepted % depth] is the oldest row once the ring is full */
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        if (eol > p) {
            Py_ssize_t fields = 0;
            Pending row;
            job->rows_read++;
            int reason = parse_row(job, p, eol, &fields, &row);
            if (reason == WHY_OK) {
                PREFETCH_FOR_WRITE(&job->bins.slots[row.hash & job->bins.mask]);
                Pending *slot = &ring[accepted++ % PREFETCH_DEPTH];
                if (accepted > PREFETCH_DEPTH && bins_add(&job->bins, slot) < 0) {
                    job->failed = 2;
                    return;
                }
                *slot = row;
                if (lengths_add(job, row.k1 & ID_MASK, row.length_m, row.count) < 0) {
                    job->failed = 2;
                    return;
                }
                job->rows_accepted++;
                uint64_t lo = job->obs_lo + row.count;
                job->obs_hi += lo < job->obs_lo;
                job->obs_lo = lo;
            }
            else if (reason < 0) {
                return;
            }
            else if (rejects_add(&job->rejects, line, p - text, eol - p, reason, fields) < 0) {
                job->failed = 2;
                return;
            }
        }
        p = nl ? nl + 1 : end;
    }
    unsigned held = accepted < PREFETCH_DEPTH ? accepted : PREFETCH_DEPTH;
    for (unsigned i = 0; i < held; i++) {
        if (bins_add(&job->bins, &ring[i]) < 0) {
            job->failed = 2;
            return;
        }
    }
    if (lengths_flush(job) < 0)
        job->failed = 2;
}

/* ------------------------------------------------------------------------------------- */
/* Building the Python result. */

static PyObject *
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

static PyObject *
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

static PyObject *
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

static PyObject *
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
static PyObject *
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

static PyObject *
build_rejects(Job *job)
{
    PyObject *list = PyList_New((Py_ssize_t)job->rejects.n);
    PyObject *reasons[WHY_COUNT_OF_REASONS] = {NULL};
    if (list == NULL)
        return NULL;
    for (int i = WHY_SEGMENT; i < WHY_COUNT_OF_REASONS; i++) {
        if (!(reasons[i] = PyUnicode_InternFromString(REASON_TEXT[i])))
            goto fail;
    }
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
        if (reason && (text = PyUnicode_DecodeUTF8(job->text + x->offset, x->length, "replace"))
            && (line = PyLong_FromUnsignedLongLong(x->line)))
            item = PyTuple_Pack(3, line, text, reason);
        Py_XDECREF(line);
        Py_XDECREF(text);
        Py_XDECREF(reason);
        if (item == NULL)
            goto fail;
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    for (int i = 0; i < WHY_COUNT_OF_REASONS; i++)
        Py_XDECREF(reasons[i]);
    return list;
fail:
    for (int i = 0; i < WHY_COUNT_OF_REASONS; i++)
        Py_XDECREF(reasons[i]);
    Py_DECREF(list);
    return NULL;
}

/* ------------------------------------------------------------------------------------- */
/* PostgreSQL binary COPY payloads (signature, flags, header extension, tuples, trailer),
 * so that the histogram stage hands the server its rows without a Python object per row. */

static const char COPY_SIGNATURE[11] = "PGCOPY\n\377\r\n";
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
static PyObject *
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

static PyObject *
count_overflow(void)
{
    PyErr_SetString(PyExc_OverflowError, "a summed count does not fit a bigint column");
    return NULL;
}

/* Rows (mode, segment_id, next_segment_id, hour, duration_code, queue_code, count) of the
 * bins in result order, typed text, int8, int8, int4, int2, int2, int8. */
static PyObject *
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
static PyObject *
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

/* 0: a reporter CSV whose rows start at *start; 1: not one, *reason says why (new
 * reference); -1: an exception is set. */
static int
check_header(const char *text, size_t len, size_t *start, PyObject **reason)
{
    if (len == 0)
        *reason = PyUnicode_FromString("empty file");
    else if (memchr(text, '\0', len) != NULL)
        *reason = PyUnicode_FromString("not a reporter CSV: binary data");
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
        size_t n = h1 - h0 < HEADER_QUOTE_BYTES ? h1 - h0 : HEADER_QUOTE_BYTES;
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

static PyMethodDef methods[] = {
    {"bin_file", (PyCFunction)(void (*)(void))bin_file, METH_VARARGS | METH_KEYWORDS,
     bin_file_doc},
    {"bin_prefix", (PyCFunction)(void (*)(void))bin_prefix, METH_VARARGS | METH_KEYWORDS,
     bin_prefix_doc},
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
