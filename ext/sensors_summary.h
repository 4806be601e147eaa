/* The day summary per detector (sensors_day_detectors), gathered by the enrichment's own
 * pass over the day's rows (ext/sensors.c) and written as binary COPY. */
#ifndef RENDERER_SENSORS_SUMMARY_H
#define RENDERER_SENSORS_SUMMARY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define SUMMARY_SLOTS 144 /* 10-minute slots of a UTC day */

typedef struct {
    int32_t uniqueid;
    int64_t readings, speeds, jam_rows, jam_minutes, last_minute, means10;
    double sum, lowest;
    int64_t first_jam, last_jam; /* PostgreSQL timestamps; valid when jam_rows > 0 */
    double slot_sum[SUMMARY_SLOTS];
    int32_t slot_n[SUMMARY_SLOTS];
} DetectorDay;

typedef struct {
    DetectorDay *d;
    size_t n, cap;
} DaySummary;

/* One enriched row of the day (t >= lo): its speed in hundredths (has_speed 0: NULL), its
 * 10-minute mean (has_mean10 0: NULL) and its jam indicator. Rows come in key order.
 * -1 with MemoryError set on failure. */
int summary_add(DaySummary *s, int64_t lo, int32_t uniqueid, int64_t t, int has_speed,
                int64_t speed, int has_mean10, double mean10, int jam);
/* The summary as a binary COPY stream (header, a row per detector, trailer) of
 * sensors_day.detectors_copy's columns. */
PyObject *summary_copy(const DaySummary *s, int64_t lo);
void summary_free(DaySummary *s);

#endif
