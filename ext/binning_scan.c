/*
 * binning_scan.c: the hot loop of renderer._binning, run with the GIL released.
 *
 * One pass over the buffer: find each line with memchr, parse its ten fields in a single
 * left-to-right scan, bucket, and add the count into an open-addressing hash table. Only
 * when a row fails do we count its commas, because a wrong field count is reported before
 * any bad field. Rejects are recorded as (line, offset, length, reason); binning_emit.c
 * turns them, and the bins, into Python objects with the GIL held again.
 *
 * Keep every helper the loop calls on every row static inline in this file (bin_hash and
 * mix64 in binning.h): bin_rows is the one entry. What it calls rarely (a table's growth,
 * a reject) is in binning_tables.c.
 */
#include "binning.h"

#define PREFETCH_DEPTH 4 /* rows parsed ahead of their hash-table insert */
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH_FOR_WRITE(p) __builtin_prefetch((p), 1)
#else
#define PREFETCH_FOR_WRITE(p) ((void)(p))
#endif

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

/* ------------------------------------------------------------------------------------- */
/* The per-row inserts: into the bins, and a mode's id (binning_tables.c holds the rest of
 * the tables). */

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
    /* Ten well-formed fields from here on; what the histogram cannot store is rejected,
     * never capped. */
    if (count > COUNT_MAX)
        return WHY_COUNT_RANGE;
    double metres = floor(length + 0.5);
    if (metres > LENGTH_MAX)
        return WHY_LENGTH_RANGE;
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
    row->length_m = (uint64_t)metres;
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
void
bin_rows(Job *job, size_t start)
{
    const char *text = job->text, *end = text + job->len, *p = text + start;
    /* The next NUL byte (end if none): a line holding one is rejected whole, before any field
     * is parsed. Found once per NUL, so a clean file pays one memchr and a compare per line. */
    const char *nul = memchr(p, '\0', (size_t)(end - p));
    if (nul == NULL)
        nul = end;
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
            int reason;
            if (nul < eol) {
                reason = WHY_NUL;
                nul = memchr(eol, '\0', (size_t)(end - eol));
                if (nul == NULL)
                    nul = end;
            }
            else
                reason = parse_row(job, p, eol, &fields, &row);
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
