/* renderer._speedtile: what its files share. speedtile.c is the module (reading the COPY,
 * the per-(segment, hour) arithmetic, writing the COPY); speedtile_sort.c puts rows read
 * in heap order into key order, so that the server need not sort them; speedtile_pack.c
 * reads traffic_speeds' packed columns back. */
#ifndef RENDERER_SPEEDTILE_H
#define RENDERER_SPEEDTILE_H

#include <Python.h> /* after PY_SSIZE_T_CLEAN, as every file of the module includes it first */
#include <stddef.h>
#include <stdint.h>

/* One histogram row as read. */
typedef struct {
    int64_t segment, next, count;
    int32_t hour;
    int16_t code, queue;
    int32_t has_next; /* 0: NULL next segment (sorts last) */
} HistRow;

/* Sort rows in place into (segment, hour, next segment NULLS LAST) order; rows equal in
 * those keep no particular order (their sums are exact). 0, or -1 with MemoryError set. */
int speedtile_sort(HistRow *rows, size_t n);

/* traffic_speeds' packed records (renderer/traffic/speedtile_pack.py): bytes an hour
 * record and a next record; a NULL next segment id. */
enum { HOUR_RECORD = 10, NEXT_RECORD = 42 };
#define NULL_ID INT64_MIN

/* unpack(hour_values, nexts) of the module: the lists of the packed columns. */
PyObject *speedtile_unpack(PyObject *unused, PyObject *args);

#endif
