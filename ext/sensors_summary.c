/* The day summary per detector, the figures of the sensors day page
 * (sql/web_sensors.sql, day_ranking), gathered as ext/sensors.c writes each enriched row:
 *
 *   readings      count(*)
 *   jam_minutes   count(DISTINCT date_trunc('minute', recordtimestamp)) of the jam rows
 *                 (trafficjamindicator = 1): rows come in time order, so a new minute
 *                 is one unlike the last counted
 *   mean_speed    avg(currentspeed): the doubles summed in time order, then divided by
 *                 their count, as PostgreSQL's float8 avg does over the day's key order
 *   lowest_mean10 min(avgspeed10minutes)
 *   first_jam, last_jam  the first and last jam row's time
 *   mean_by_10_minutes   avg(currentspeed) per 10-minute slot of the day (NULL: no speed)
 *
 * tests/test_sensors_summary.py holds them equal to the statement's. */
#include "sensors_summary.h"

#include "pgcopy.h"

#define USEC 1000000LL
#define OID_FLOAT8 701
#define N_COLUMNS 9

int summary_add(DaySummary *s, int64_t lo, int32_t uniqueid, int64_t t, int has_speed,
                int64_t speed, int has_mean10, double mean10, int jam) {
    if (!s->n || s->d[s->n - 1].uniqueid != uniqueid) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 256;
            DetectorDay *d = PyMem_Realloc(s->d, cap * sizeof *d);
            if (!d) { PyErr_NoMemory(); return -1; }
            s->d = d;
            s->cap = cap;
        }
        memset(&s->d[s->n], 0, sizeof s->d[s->n]);
        s->d[s->n].uniqueid = uniqueid;
        s->d[s->n].last_minute = -1;
        s->n++;
    }
    DetectorDay *d = &s->d[s->n - 1];
    int64_t since = t - lo; /* >= 0: the day's rows only */
    d->readings++;
    if (has_speed) {
        double v = (double)speed / 100; /* currentspeed, as written */
        int slot = (int)(since / (600 * USEC));
        if (slot >= SUMMARY_SLOTS) slot = SUMMARY_SLOTS - 1;
        d->sum += v;
        d->speeds++;
        d->slot_sum[slot] += v;
        d->slot_n[slot]++;
    }
    if (has_mean10 && (!d->means10++ || mean10 < d->lowest)) d->lowest = mean10;
    if (jam == 1) {
        int64_t minute = since / (60 * USEC);
        if (minute != d->last_minute) {
            d->jam_minutes++;
            d->last_minute = minute;
        }
        if (!d->jam_rows++) d->first_jam = t;
        d->last_jam = t;
    }
    return 0;
}

static void put_optional(Buf *o, int present, double v) {
    if (!present) { put32(o, -1); return; }
    put32(o, 8);
    put_double(o, v);
}

PyObject *summary_copy(const DaySummary *s, int64_t lo) {
    Buf o = {NULL, 0, 0};
    size_t row = 2 + N_COLUMNS * 4 + 4 * 4 + 4 * 8 + 20 + SUMMARY_SLOTS * 12;
    if (pgcopy_put_header(&o) || buf_reserve(&o, s->n * row + 2)) {
        PyMem_Free(o.data);
        return NULL;
    }
    int32_t day = (int32_t)(lo / (86400 * USEC)); /* date: days since 2000-01-01 */
    for (size_t i = 0; i < s->n; i++) {
        const DetectorDay *d = &s->d[i];
        int any_null = 0;
        for (int k = 0; k < SUMMARY_SLOTS; k++) any_null |= !d->slot_n[k];
        put16(&o, N_COLUMNS);
        put32(&o, 4); put32(&o, day);
        put32(&o, 4); put32(&o, d->uniqueid);
        put32(&o, 4); put32(&o, (int32_t)d->jam_minutes);
        put32(&o, 4); put32(&o, (int32_t)d->readings);
        put_optional(&o, d->speeds > 0, d->speeds ? d->sum / (double)d->speeds : 0);
        put_optional(&o, d->means10 > 0, d->lowest);
        for (int k = 0; k < 2; k++) {
            if (!d->jam_rows) { put32(&o, -1); continue; }
            put32(&o, 8);
            put64(&o, k ? d->last_jam : d->first_jam);
        }
        size_t at = o.len; /* the array's length, written once known */
        put32(&o, 0);
        put32(&o, 1);            /* dimensions */
        put32(&o, any_null);     /* has NULLs */
        put32(&o, OID_FLOAT8);
        put32(&o, SUMMARY_SLOTS);
        put32(&o, 1);            /* lower bound */
        for (int k = 0; k < SUMMARY_SLOTS; k++)
            put_optional(&o, d->slot_n[k] > 0,
                         d->slot_n[k] ? d->slot_sum[k] / (double)d->slot_n[k] : 0);
        Buf len = {o.data + at, 0, 4};
        put32(&len, (int32_t)(o.len - at - 4));
    }
    put16(&o, -1);
    PyObject *r = pgcopy_take(&o);
    PyMem_Free(o.data);
    return r;
}

void summary_free(DaySummary *s) {
    PyMem_Free(s->d);
    s->d = NULL;
    s->n = s->cap = 0;
}
