-- Sensor read side: the enriched rows of a detector (query) and of a day (export).
-- Used by renderer/sensors/query.py and renderer/sensors/export.py.

-- name: query
-- One detector's enriched rows with lo <= recordtimestamp <= hi, in time order; the time as
-- epoch seconds (fractional only when the record had fractional seconds).
SELECT uniqueid, trim_scale(extract(epoch FROM recordtimestamp)) AS recordtimestamp,
       currentspeed, bezettingsgraad, previousspeed, trafficjamindicator,
       trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
       trafficintensityclass4, trafficintensityclass5, speeddiffindicator,
       avgspeed2minutes, avgspeed10minutes
FROM sensors_enriched
WHERE uniqueid = %(detector)s AND recordtimestamp >= %(lo)s AND recordtimestamp <= %(hi)s
ORDER BY recordtimestamp;

-- name: day_csv
-- COPY of one UTC day, CSV with a header, times as zone-less UTC ('2026-01-05 07:30:00').
-- Parameters are bound client-side (COPY takes none).
COPY (
    SELECT uniqueid, recordtimestamp AT TIME ZONE 'UTC' AS recordtimestamp,
           currentspeed, bezettingsgraad, previousspeed, trafficjamindicator,
           trafficintensityclass1, trafficintensityclass2, trafficintensityclass3,
           trafficintensityclass4, trafficintensityclass5, speeddiffindicator,
           avgspeed2minutes, avgspeed10minutes
    FROM sensors_enriched
    WHERE recordtimestamp >= %(lo)s AND recordtimestamp < %(hi)s
    ORDER BY uniqueid, recordtimestamp
) TO STDOUT (FORMAT csv, HEADER);

-- name: day_binary
-- COPY of one UTC day for Parquet, binary (renderer/sensors/export.py reads it into Arrow
-- columns in C: no text formatted here, none parsed there).
COPY (
    SELECT uniqueid, recordtimestamp, currentspeed, bezettingsgraad, previousspeed,
           trafficjamindicator, trafficintensityclass1, trafficintensityclass2,
           trafficintensityclass3, trafficintensityclass4, trafficintensityclass5,
           speeddiffindicator, avgspeed2minutes, avgspeed10minutes
    FROM sensors_enriched
    WHERE recordtimestamp >= %(lo)s AND recordtimestamp < %(hi)s
    ORDER BY uniqueid, recordtimestamp
) TO STDOUT (FORMAT binary);

-- name: enriched_days
-- Days that were enriched, between two dates (inclusive; NULL = open), with their rows.
SELECT day, enriched_rows
FROM sensors_days
WHERE enriched_version IS NOT NULL
  AND (%(start)s::date IS NULL OR day >= %(start)s)
  AND (%(end)s::date IS NULL OR day <= %(end)s)
ORDER BY day;
